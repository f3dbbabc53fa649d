"""Run one campaign's pool in several processes, so a large send uses more than one core.

The SMTP client is CPU-bound in Python (about 400 µs per message), so one process cannot
keep a fast relay busy. Each shard process takes the rows whose id is k modulo n, its
share of the connections and of the rate, and runs an ordinary Pool with its own ledger
writes; all share the parent's lease (same owner, each renews it), so the guarantees are
the same: every shard marks at most its own connections' worth of rows `sending`, and
their sum is the configured concurrency. The parent only waits, adds up the progress
and forwards a stop; Ctrl-C on a terminal reaches every shard anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.queues
import os
import queue
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from ..children import die_with_parent
from ..config import Config
from ..db import open_db
from .ledger import Ledger
from .pool import Pool, PoolOptions, Progress
from .signing import campaign_feed

SHARD_MIN_DUE = 2000  # below this, one process is plenty
# What a shard sends its parent: (kind: progress, done or signing; shard index; Progress as a
# dict; error, or for signing why the shard signed its messages itself; interrupted; broken).
ShardReport = tuple[str, int, dict[str, Any], str | None, bool, bool]


def shard_count(requested: int, *, due: int, concurrency: int) -> int:
    """How many processes a run of `due` messages should use."""
    if due < SHARD_MIN_DUE:
        return 1
    return max(1, min(requested, os.cpu_count() or 1, concurrency))


class ShardedRun:
    """The parent's handle on the shard processes: stop() asks each to stop."""

    def __init__(self, processes: Sequence[BaseProcess]) -> None:
        self.processes = processes
        self.interrupted = False

    def stop(self) -> None:
        self.interrupted = True
        for process in self.processes:
            if process.pid and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)


async def run_shards(
    config: Config,
    db_path: Path,
    campaign_id: int,
    *,
    owner: str,
    at: str,
    options: PoolOptions,
    shards: int,
    progress: Progress,
    on_progress: Callable[[Progress], None] | None,
    on_start: Callable[[ShardedRun], None] | None,
    on_fallback: Callable[[str], None] | None = None,
) -> tuple[str | None, bool, bool]:
    """Run `shards` processes to completion; returns (error, interrupted, broken).
    `on_fallback` hears why a shard signed its messages itself (signing.BatchSigner)."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.queues.Queue[ShardReport] = context.Queue()
    changes = {
        f.name: getattr(options, f.name) for f in fields(options) if f.name not in ("tls", "password")
    }
    processes = []
    for index in range(shards):
        share = {
            **changes,
            "concurrency": options.concurrency // shards + (index < options.concurrency % shards),
            "rate": options.rate / shards,
        }
        processes.append(
            context.Process(
                target=_shard_main,
                args=(config, str(db_path), campaign_id, owner, at, (index, shards), share, results,
                      os.getpid()),
                name=f"newsletter-shard-{index}",
            )
        )
    for process in processes:
        process.start()
    handle = ShardedRun(processes)
    if on_start:
        on_start(handle)
    loop = asyncio.get_running_loop()
    latest: dict[int, dict[str, Any]] = {}
    finished: dict[int, tuple[str | None, bool, bool]] = {}
    while len(finished) < shards:
        try:
            kind, index, snapshot, error, interrupted, broken = await loop.run_in_executor(
                None, results.get, True, 0.25
            )
        except queue.Empty:
            for index, process in enumerate(processes):
                if index not in finished and not process.is_alive():
                    if handle.interrupted and process.exitcode == -signal.SIGTERM:
                        # Stopped while still starting (before it could handle the stop):
                        # it had claimed nothing, so this is an interruption, not a crash.
                        finished[index] = (None, True, False)
                        continue
                    finished[index] = (
                        f"sending process {index} ended unexpectedly (exit code {process.exitcode})",
                        False,
                        False,
                    )
            continue
        if kind == "signing":  # error carries the shard's BatchSigner.fallback
            if on_fallback is not None and error:
                on_fallback(error)
            continue
        latest[index] = snapshot
        if kind == "done":
            finished[index] = (error, interrupted, broken)
        _add_up(progress, list(latest.values()))
        if on_progress:
            on_progress(progress)
    for process in processes:
        await loop.run_in_executor(None, process.join, 10)
    errors = [e for e, _, _ in finished.values() if e]
    interrupted = handle.interrupted or any(i for _, i, _ in finished.values())
    return (errors[0] if errors else None), interrupted, any(b for _, _, b in finished.values())


def _add_up(total: Progress, snapshots: list[dict[str, Any]]) -> None:
    counted = ("sent", "deferred", "failed", "bounced", "skipped", "slowdowns", "connections", "concurrency")
    for name in counted:
        setattr(total, name, sum(s[name] for s in snapshots))
    lowest = [s["lowest_concurrency"] for s in snapshots]
    total.lowest_concurrency = sum(lowest)


def _shard_main(
    config: Config,
    db_path: str,
    campaign_id: int,
    owner: str,
    at: str,
    shard: tuple[int, int],
    changes: dict[str, Any],
    results: multiprocessing.queues.Queue[ShardReport],
    parent: int,
) -> None:
    """One shard process: a Pool over its rows, reporting progress through `results`."""
    # A shard that outlived a kill -9 of its parent would go on sending while a resumed
    # run re-sends its in-flight rows: exactly the duplicates the ledger prevents.
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the loop takes over below
    # A stop (SIGTERM from ShardedRun.stop) that arrives while this process is still
    # starting must stop it like one that arrives later, not kill it (exit code -15, and
    # the parent reports a crashed shard instead of an interrupted run).
    stop_early = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop_early.set())
    index = shard[0]
    db = open_db(Path(db_path), migrate=False)
    options = replace(PoolOptions.from_config(config), **changes)
    options = replace(options, processes=1)
    progress = Progress(campaign_id=campaign_id, due=0)

    def report(
        p: Progress, kind: str = "progress", error: str | None = None, interrupted: bool = False,
        broken: bool = False,
    ) -> None:
        results.put((kind, index, asdict(p), error, interrupted, broken))

    async def main() -> None:
        ledger = Ledger(
            db, campaign_id, owner=owner, ttl=options.lease_ttl, min_backoff=options.min_backoff,
            max_backoff=options.max_backoff, lifetime=options.lifetime,
        )
        feed = campaign_feed(config, db, campaign_id, at=at, shard=shard,
                             on_fallback=lambda why: report(progress, "signing", why))
        pool = Pool(ledger, feed, options, progress, on_progress=report)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, pool.stop)
        if stop_early.is_set():
            pool.stop()
        error: str | None = None
        try:
            await pool.run()
            error = pool.error
        except Exception as exc:  # reported to the parent, which says what to do
            error = f"{type(exc).__name__}: {exc}"
        report(progress, "done", error, pool.interrupted, pool.broken)

    try:
        asyncio.run(main())
    finally:
        db.conn.close()
