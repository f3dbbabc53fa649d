"""Storage faults in words a user can act on: a full disk, a read-only file, folder or mount.

SQLite reports them as sqlite3.OperationalError (SQLITE_FULL, SQLITE_READONLY, SQLITE_CANTOPEN,
SQLITE_IOERR), the files we write as OSError (ENOSPC, EROFS, EACCES). Either way nothing
stored is lost: the transaction that failed is rolled back, and a campaign's rows that were
in flight stay `sending`, which `resume` retries with the same Message-ID.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def storage_problem(exc: BaseException, database: Path | None) -> str | None:
    """What went wrong and what to do, or None when `exc` is not a storage fault.

    `database` is the database file, named when the fault is SQLite's.
    """
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        where = f"the database {database}" if database else "the database"
        folder = database.parent if database else Path(".")
        # SQLite reports a full disk as SQLITE_FULL, or, when growing its shared-memory
        # file failed, as a disk I/O error: the free space tells them apart.
        if "full" in text or ("disk i/o error" in text and _no_space(folder)):
            return _full(where, folder)
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            name = database.name if database else "the database"
            return (
                f"cannot write to {where}: it, its folder or its disk is read-only ({exc}). "
                f"newsletter writes {name} and its {name}-wal and {name}-shm files in {folder}: "
                f"check their owner and permissions (ls -l {folder}) and that the disk is mounted "
                "read-write. Nothing was changed."
            )
        if "disk i/o error" in text:
            return (
                f"reading or writing {where} failed with a disk I/O error ({exc}). Check the disk "
                f"(dmesg, df -h {folder}); nothing committed before was lost."
            )
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        target = Path(exc.filename) if exc.filename else None
        where = str(target) if target else "a file"
        if exc.errno in _FULL:
            return _full(where, target.parent if target else Path("."))
        if exc.errno in _READ_ONLY:
            return (
                f"cannot write {where}: {exc.strerror}. Check the owner and permissions of the "
                "file and its folder, and that the disk is mounted read-write."
            )
    return None


def _no_space(folder: Path) -> bool:
    import shutil  # not at the top: it loads the compression modules, which CLI start does not need

    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


def _full(where: str, folder: Path) -> str:
    return (
        f"the disk is full: writing {where} failed. Nothing stored was lost (the last change "
        f"was rolled back). Free some space (df -h {folder}), then run the command again; a "
        "campaign that stopped continues with `newsletter resume CAMPAIGN`."
    )
