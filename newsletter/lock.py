"""A non-blocking lock file in the newsletter directory, so cron runs never overlap.

`newsletter run` from cron every few minutes can outlast its interval (a big digest, a slow
relay). The second run must then leave at once and quietly, not queue up behind the first:
fcntl.flock with LOCK_NB either takes the lock or fails straight away. The kernel drops the
lock when the holder exits, however it exits (kill -9 included), so a stale lock file never
blocks anything; the file itself stays and only says who held it last.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .errors import NewsletterError

LOCK_NAME = ".newsletter-run.lock"


class LockBusyError(NewsletterError, BlockingIOError):
    """Another process holds the lock; `holder` says who, as far as the file knows."""

    def __init__(self, message: str, *, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


def lock_path(directory: Path) -> Path:
    """The lock file of the newsletter directory `directory`."""
    return directory / LOCK_NAME


@contextmanager
def run_lock(directory: Path, *, what: str = "newsletter run") -> Iterator[Path]:
    """Hold the directory's lock for the duration of the block, or raise LockBusyError now."""
    path = lock_path(directory)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise NewsletterError(
            f"cannot create the lock file {path}: {exc.strerror}; check that the directory is writable"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            by = f" ({holder})" if holder else ""
            raise LockBusyError(
                f"another {what} is still running in {directory}{by}; this one does nothing "
                "and leaves it to finish",
                holder=holder,
            ) from None
        # Who holds it, for the message the next run prints; written after locking so a
        # loser never overwrites the winner's line.
        os.ftruncate(fd, 0)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()} since {stamp}\n".encode(), 0)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


__all__ = ["LOCK_NAME", "LockBusyError", "lock_path", "run_lock"]
