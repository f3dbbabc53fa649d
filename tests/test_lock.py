"""The run lock: one holder at a time, no waiting, released however the holder ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from newsletter.lock import LockBusyError, lock_path, run_lock


def test_a_second_lock_on_the_same_directory_fails_at_once_and_names_the_holder(tmp_path: Path) -> None:
    with run_lock(tmp_path):
        with pytest.raises(LockBusyError) as caught:
            with run_lock(tmp_path):
                pass  # pragma: no cover
    assert f"pid {os.getpid()}" in caught.value.holder
    assert "another newsletter run is still running" in str(caught.value)
    with run_lock(tmp_path):  # released on leaving the block
        pass


def test_the_lock_is_released_on_an_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path):
            raise RuntimeError("boom")
    with run_lock(tmp_path):
        pass


def test_a_killed_holder_leaves_the_file_but_not_the_lock(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from newsletter.lock import run_lock
        with run_lock(Path({str(tmp_path)!r})):
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusyError, match=f"pid {holder.pid}"):
            with run_lock(tmp_path):
                pass  # pragma: no cover
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(tmp_path).exists()
    with run_lock(tmp_path):
        pass
