"""Worker processes that die with the process that started them.

A worker that outlives its parent is at best a leak (a killed import leaves its address
checkers running) and at worst harmful (a sending shard that goes on after a kill -9 sends
what the resumed run sends again). Every worker the package starts calls
`die_with_parent` first thing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import threading
import time

_PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL:
    # glibc's name first: find_library runs `ldconfig -p`, a process per worker started.
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def die_with_parent(parent: int) -> None:
    """Make this process die when `parent` does.

    Linux kills us with the parent (prctl PR_SET_PDEATHSIG); elsewhere a watcher thread
    notices the orphaning within a tenth of a second. `parent` is the pid the caller saw
    before starting us: if it is gone already, we leave at once.
    """
    try:
        libc = _libc()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.1)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
