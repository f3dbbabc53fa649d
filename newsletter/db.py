"""Open the SQLite database: WAL mode, a busy timeout, and every pending migration applied.

open_db gives sqlite-utils' Database, for everything that writes. open_reader gives a
plain sqlite3 connection that cannot write, for the commands that only read (`status`,
`subscribers list` and `count`), so they start without importing sqlite-utils; a database
that is not up to date goes through open_db first.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import __version__
from .errors import NewsletterError
from .files import create_private
from .migration_set import MIGRATIONS_TABLE
from .migrations import MIGRATIONS
from .storage import storage_problem

if TYPE_CHECKING:
    from sqlite_utils import Database

BUSY_TIMEOUT_S = 30.0
Params = Sequence[Any] | dict[str, Any] | None


class Reads(Protocol):
    """What a read needs of a database: sqlite-utils' Database has it, and so has Reader."""

    conn: sqlite3.Connection

    def execute(self, sql: str, parameters: Params = None) -> sqlite3.Cursor: ...

    def query(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]: ...


class Reader:
    """A read-only connection (PRAGMA query_only) to an up-to-date database, in plain sqlite3."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Params = None) -> sqlite3.Cursor:
        return self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)

    def query(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]:
        """The rows as dicts (as sqlite-utils' query gives them); the SQL runs at once."""
        cursor = self.execute(sql, params)
        keys = [column[0] for column in cursor.description or ()]
        return (dict(zip(keys, row, strict=True)) for row in cursor)

    def close(self) -> None:
        self.conn.close()


class DatabaseError(NewsletterError):
    """The database file cannot be opened or upgraded."""


def open_db(path: Path | str, *, migrate: bool = True, create: bool = True, source: str = "") -> Database:
    """Open the database at `path` and bring its schema up to date.

    With `create` false a missing file is an error rather than a new empty database (a
    misspelled --db must not start a second list); `source` says where the path came from.
    A database made by a newer version, or another program's SQLite file, is refused
    untouched.
    """
    # Imported here, not at the top: the commands that only read open with open_reader
    # and never import sqlite-utils (it is most of their start-up time).
    from sqlite_utils import Database

    path = Path(path)
    if not create and not path.exists():
        came = f" (from {source})" if source else ""
        raise DatabaseError(
            f"there is no database at {path}{came}. Check the path (--db, NEWSLETTER_DB or "
            "`database` in newsletter.toml); `newsletter init` creates a new one."
        )
    if not path.parent.is_dir():
        raise DatabaseError(f"cannot create {path}: folder {path.parent} does not exist")
    try:
        # Created 0600 before SQLite opens it: SQLite gives -wal and -shm the database
        # file's mode, and all three hold addresses and unsubscribe tokens.
        create_private(path)
    except OSError as exc:
        raise DatabaseError(f"cannot create {path}: {exc.strerror}; check that {path.parent} is writable") from exc
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        db = Database(conn)
        if migrate:
            try:
                _check_ours(db, path)  # before anything writes, even the journal mode
            except DatabaseError:
                conn.close()
                raise
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode is durable against process crashes (kill -9); only a power
        # loss can drop the last transactions.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if migrate:
            apply_migrations(db)
    except sqlite3.DatabaseError as exc:
        problem = storage_problem(exc, path)
        if problem:
            raise DatabaseError(problem) from exc
        raise DatabaseError(
            f"{path} is not a usable newsletter database ({exc}). "
            "Check the path (--db or NEWSLETTER_DB), or move the file away and run "
            "`newsletter init` again."
        ) from exc
    return db


def apply_migrations(db: Database) -> None:
    """Apply pending migrations under the write lock, so two processes cannot race, and
    record which version of newsletter did (a newer schema names it to an older program)."""
    if not MIGRATIONS.pending(db):
        return
    with transaction(db):
        MIGRATIONS.apply(db)  # looks again under the lock; its own transactions nest as savepoints
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('migrated_by', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [__version__],
        )


def _check_ours(db: Database, path: Path) -> None:
    """Refuse, before changing anything, a database this version cannot safely use."""
    applied = [m.name for m in MIGRATIONS.applied(db)]
    if not applied:
        tables = sorted(
            t for t in db.table_names() if not t.startswith("sqlite_") and t != MIGRATIONS_TABLE
        )
        if tables:
            shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
            raise DatabaseError(
                f"{path} is another program's SQLite database (tables {shown}), not a newsletter "
                "database; it was left as it is. Check the path (--db, NEWSLETTER_DB or "
                "`database` in newsletter.toml)."
            )
        return
    known = set(MIGRATIONS.names)  # every migration this version has
    unknown = [name for name in applied if name not in known]
    if unknown:
        made_by = "a newer version"
        if "meta" in db.table_names():
            row = db.execute("SELECT value FROM meta WHERE key = 'migrated_by'").fetchone()
            made_by = f"newsletter {row[0]}" if row else made_by
        raise DatabaseError(
            f"{path} was made by {made_by}, newer than this newsletter {__version__} (it has "
            f"schema migration {unknown[-1]}, which this version does not know). It was left "
            "as it is: upgrade newsletter (pip install --upgrade newsletter) to use it."
        )


def open_reader(path: Path | str, *, source: str = "") -> Reads:
    """The database at `path` for reading only, opened without sqlite-utils when it is
    already up to date (every migration of this version applied, none unknown, WAL mode).

    Anything else (a missing file, an older or newer schema, another program's file, not
    a database at all) goes through open_db, which migrates it or says what is wrong.
    """
    path = Path(path)
    if path.is_file():
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error:
            pass
        else:
            try:
                if _is_current(conn):
                    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                    conn.execute("PRAGMA foreign_keys = ON")
                    conn.execute("PRAGMA query_only = ON")  # a reader never writes
                    return Reader(conn)
            except sqlite3.DatabaseError:
                pass
            conn.close()
    return open_db(path, create=False, source=source)


def _is_current(conn: sqlite3.Connection) -> bool:
    """Whether this is a newsletter database in WAL mode with exactly this version's migrations."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        return False
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [MIGRATIONS_TABLE]
    ).fetchone():
        return False
    applied = conn.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?", [MIGRATIONS.name]
    ).fetchall()
    return sorted(row[0] for row in applied) == sorted(MIGRATIONS.names)


def now(*, later_by: float = 0.0) -> str:
    """The current time (plus `later_by` seconds) as stored in the database: ISO 8601 in
    UTC, to the microsecond."""
    return (datetime.now(UTC) + timedelta(seconds=later_by)).isoformat(timespec="microseconds")


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """A write transaction that takes the write lock at once (BEGIN IMMEDIATE).

    Read-then-write code needs this: a deferred transaction that reads first can fail with
    "database is locked" when it tries to write after another process did. Nested use
    becomes a savepoint.
    """
    conn = db.conn
    if conn.in_transaction:
        name = f"sp_{os.urandom(8).hex()}"  # not secrets: it loads OpenSSL, which `status` does not need
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield db
        except BaseException:
            conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
