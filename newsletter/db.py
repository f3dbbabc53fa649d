"""Open the SQLite database: WAL mode, a busy timeout, and every pending migration applied."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from .errors import NewsletterError
from .files import create_private
from .migrations import MIGRATIONS

BUSY_TIMEOUT_S = 30.0


class DatabaseError(NewsletterError):
    """The database file cannot be opened or upgraded."""


def open_db(path: Path | str, *, migrate: bool = True) -> Database:
    """Open (creating if needed) the database at `path` and bring its schema up to date."""
    path = Path(path)
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
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode is durable against process crashes (kill -9); only a power
        # loss can drop the last transactions.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        db = Database(conn)
        if migrate:
            apply_migrations(db)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(
            f"{path} is not a usable newsletter database ({exc}). "
            "Check the path (--db or NEWSLETTER_DB), or move the file away and run "
            "`newsletter init` again."
        ) from exc
    return db


def apply_migrations(db: Database) -> None:
    """Apply pending migrations under the write lock, so two processes cannot race."""
    if not MIGRATIONS.pending(db):
        return
    with transaction(db):
        MIGRATIONS.apply(db)  # looks again under the lock; its own transactions nest as savepoints


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
        name = f"sp_{secrets.token_hex(8)}"
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
