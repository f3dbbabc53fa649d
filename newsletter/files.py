"""Files and folders only their owner can read: what holds addresses and unsubscribe tokens.

The database (and SQLite's -wal and -shm, which take the database file's mode), captured
messages, previews, exports and backups are created 0600 and their folders 0700, whatever
the umask allows; a stricter umask still wins (0600 & ~umask). Existing folders keep
their mode: the user may have shared one on purpose.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

FILE_MODE = 0o600
DIR_MODE = 0o700


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (no race with threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def private_mode(mode: int = FILE_MODE) -> int:
    """`mode` narrowed by the umask."""
    return mode & ~current_umask()


def private_dir(path: Path) -> Path:
    """Create the folder `path` (and its parents) 0700 if it does not exist."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def create_private(path: Path) -> bool:
    """Create `path` empty and 0600 if it does not exist; True when this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` 0600, atomically: a reader never sees half a file, and a file
    that was there before is replaced by a new one (so it loses its old, wider mode)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def open_private(path: Path, *, encoding: str = "utf-8") -> Iterator[TextIO]:
    """Open `path` for writing text (truncating it), 0600 even when it existed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    if stat.S_ISREG(os.fstat(fd).st_mode):  # never chmod /dev/null or a pipe
        os.fchmod(fd, private_mode())
    with os.fdopen(fd, "w", encoding=encoding, newline="") as out:
        yield out
