"""Backups: a consistent copy of the database, taken while a campaign sends, checked before it counts.

SQLite's online backup API copies the pages under one read transaction, so the copy is the
database as it was at one moment, whatever other processes write meanwhile (in WAL mode
they are not blocked). The copy goes to a temporary 0600 file beside the target, is opened
and checked (PRAGMA integrity_check, and that it is a newsletter database), and only then
takes the target's name. A campaign that was sending keeps its sender's lease in the copy:
restored on the same machine, that sender is gone and `resume` takes over at once; on
another machine, once the lease ends (sending.lease). Restoring is at-least-once for what the backup had not seen: rows sent after the
copy was taken go out again, with the same Message-ID.

`newsletter run` can keep one backup a day in backup.dir, the newest backup.keep of them.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlite_utils import Database

from .errors import NewsletterError
from .files import create_private, private_dir
from .migrations import MIGRATIONS


class BackupError(NewsletterError, OSError):
    """The backup could not be made or did not check out; no file was left behind."""


@dataclass(frozen=True)
class Backup:
    """A verified backup file."""

    path: Path
    size: int
    seconds: float
    subscribers: int
    campaigns: int


@dataclass(frozen=True)
class DailyBackup:
    """What `run`'s daily backup did: made one (or not: today's exists) and removed old ones."""

    made: Backup | None
    removed: list[Path] = field(default_factory=list)


def backup_database(db: Database, target: Path) -> Backup:
    """Copy the open database `db` to `target`, verified, written 0600. Replaces `target`."""
    source_path = Path(db.execute("PRAGMA database_list").fetchone()[2])
    target = target.expanduser().absolute()
    if target.exists() and target.resolve() == source_path.resolve():
        raise BackupError(f"{target} is the database itself; name another file for the backup")
    if not target.parent.is_dir():
        raise BackupError(f"cannot write {target}: folder {target.parent} does not exist")
    if target.is_dir():
        raise BackupError(f"{target} is a folder; name the backup file, e.g. {target / 'subscribers.db'}")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    started = time.monotonic()
    try:
        for stale in (tmp, *_sidecars(tmp)):
            stale.unlink(missing_ok=True)
        create_private(tmp)
        copy = sqlite3.connect(tmp)
        try:
            db.conn.backup(copy)  # every page in one step: one consistent snapshot
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            copy.close()
        subscribers, campaigns = _verify(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, target)
        _fsync_folder(target.parent)
    except BaseException as exc:
        for leftover in (tmp, *_sidecars(tmp)):
            leftover.unlink(missing_ok=True)
        if isinstance(exc, (sqlite3.Error, OSError)) and not isinstance(exc, BackupError):
            raise BackupError(
                f"the backup to {target} failed ({exc}); nothing was kept. Check the free space "
                f"and the permissions of {target.parent} (df -h, ls -ld), then try again."
            ) from exc
        raise
    return Backup(
        path=target, size=target.stat().st_size, seconds=time.monotonic() - started,
        subscribers=subscribers, campaigns=campaigns,
    )


def _verify(path: Path) -> tuple[int, int]:
    """Open the copy as a restore would: it must be intact and a newsletter database."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if check != ["ok"]:
            raise BackupError(f"the copy failed its integrity check ({'; '.join(check[:3])}); nothing was kept")
        applied = {row[0] for row in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [MIGRATIONS.name]
        )}
        if not applied:
            raise BackupError("the copy holds no newsletter schema; nothing was kept")
        subscribers = conn.execute("SELECT count(*) FROM subscribers").fetchone()[0]
        campaigns = conn.execute("SELECT count(*) FROM campaigns").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupError(f"the copy cannot be read back ({exc}); nothing was kept") from exc
    finally:
        conn.close()
    return subscribers, campaigns


def _sidecars(path: Path) -> tuple[Path, Path, Path]:
    return (path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"))


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder is written out.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def daily_name(database: Path, day: date) -> str:
    """The file name of the daily backup of `database` for `day`."""
    return f"{database.stem}-{day.isoformat()}{database.suffix or '.db'}"


def daily_backup(db: Database, *, database: Path, folder: Path, keep: int, today: date) -> DailyBackup:
    """Make today's backup in `folder` unless it exists; keep the newest `keep` of them."""
    private_dir(folder)
    target = folder / daily_name(database, today)
    made = None if target.exists() else backup_database(db, target)
    pattern = re.compile(rf"{re.escape(database.stem)}-\d{{4}}-\d{{2}}-\d{{2}}{re.escape(database.suffix or '.db')}")
    daily = sorted(p for p in folder.iterdir() if p.is_file() and pattern.fullmatch(p.name))
    removed = daily[:-keep] if len(daily) > keep else []
    for old in removed:
        old.unlink()
    return DailyBackup(made=made, removed=removed)


__all__ = ["Backup", "BackupError", "DailyBackup", "backup_database", "daily_backup", "daily_name"]
