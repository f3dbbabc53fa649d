"""The registry of schema migrations: their names and functions, cheap to import.

migrations.py registers each migration here, in order. Knowing whether a database is up to
date needs only the names and plain sqlite3 (db.open_reader: `status` and the subscriber
listings start without importing sqlite-utils); applying migrations hands the same list to
sqlite-utils' Migrations, which records each in its table and runs it in a transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlite_utils import Database, Migrations

# Where sqlite-utils records which migrations ran (its Migrations.migrations_table).
MIGRATIONS_TABLE = "_sqlite_migrations"

F = TypeVar("F", bound=Callable[["Database"], None])


class MigrationSet:
    """Migrations registered in order (`@MIGRATIONS(name=...)`), applied by sqlite-utils."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._registered: list[tuple[str, Callable[[Database], None], bool]] = []
        self._engine: Migrations | None = None

    def __call__(self, *, name: str | None = None, transactional: bool = True) -> Callable[[F], F]:
        def register(func: F) -> F:
            migration_name = name or func.__name__
            if migration_name in self.names:
                raise ValueError(f"migration {migration_name!r} is already registered in set {self.name!r}")
            self._registered.append((migration_name, func, transactional))
            self._engine = None
            return func

        return register

    @property
    def names(self) -> tuple[str, ...]:
        """Every migration this version has, in order."""
        return tuple(name for name, _, _ in self._registered)

    def engine(self) -> Migrations:
        """sqlite-utils' Migrations holding the same list."""
        if self._engine is None:
            # Imported here, not at the top: commands that only read (status, subscribers
            # list and count) never apply a migration, and sqlite-utils is most of their start.
            from sqlite_utils import Migrations

            engine = Migrations(self.name)
            for name, func, transactional in self._registered:
                engine(name=name, transactional=transactional)(func)
            self._engine = engine
        return self._engine

    @property
    def _migrations(self) -> list[Migrations._Migration]:
        return self.engine()._migrations

    def pending(self, db: Database) -> list[Migrations._Migration]:
        return self.engine().pending(db)

    def applied(self, db: Database) -> list[Migrations._AppliedMigration]:
        return self.engine().applied(db)

    def apply(self, db: Database, *, stop_before: str | Iterable[str] | None = None) -> None:
        self.engine().apply(db, stop_before=stop_before)
