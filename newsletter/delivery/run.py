"""Run one campaign: take its lease, send what is due through a Pool (or several processes), close the run.

Without configured relays the run goes to the built-in capture server, which writes each
message to the outbox folder instead of sending it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlite_utils import Database

from ..config import Config
from ..db import now
from ..errors import SendError
from ..storage import storage_problem
from . import smtp_speedups
from .campaigns import populate
from .capture import relays_or_capture
from .ledger import Ledger, acquire_lease, finish_run, mark_sending
from .pool import Pool, PoolOptions, Progress, RunResult
from .processes import ShardedRun, run_shards, shard_count
from .queue import count_due
from .records import next_retry_at
from .signing import campaign_feed


async def run_campaign(
    config: Config,
    db: Database,
    campaign_id: int,
    *,
    owner: str,
    options: PoolOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[Pool | ShardedRun], None] | None = None,
) -> RunResult:
    """Send what is due in a campaign, under its lease. Raises CampaignBusyError if held.

    `on_start` receives the pool, or the handle on its processes for a sharded run (either
    has stop(): the CLI wires Ctrl-C to it); `on_progress` gets the counters a few times a
    second.
    """
    options = options or PoolOptions.from_config(config)
    acquire_lease(db, campaign_id, owner=owner, ttl=options.lease_ttl)
    progress = Progress(campaign_id=campaign_id, due=0)
    captured: Path | None = None
    error: str | None = None
    interrupted = False
    fallback: str | None = None
    signing_fallback: list[str] = []
    broken = False
    try:
        populate(db, campaign_id)  # finishes a campaign whose creation was interrupted
        mark_sending(db, campaign_id, owner=owner)
        at = now()
        progress.due = count_due(db, campaign_id, at=at)
        shards = shard_count(options.processes, due=progress.due, concurrency=options.concurrency)
        path = db.execute("PRAGMA database_list").fetchone()[2]
        async with relays_or_capture(options.relays, config.outbox) as (relays, captured):
            run_options = replace(options, relays=relays)
            if shards > 1 and path:
                fallback = smtp_speedups.check()  # each shard's pool installs them itself
                error, interrupted, broken = await run_shards(
                    config, Path(path), campaign_id, owner=owner, at=at, options=run_options,
                    shards=shards, progress=progress, on_progress=on_progress, on_start=on_start,
                    on_fallback=signing_fallback.append,
                )
            else:
                ledger = Ledger(
                    db, campaign_id, owner=owner, ttl=options.lease_ttl,
                    min_backoff=options.min_backoff, max_backoff=options.max_backoff,
                    lifetime=options.lifetime,
                )
                feed = campaign_feed(config, db, campaign_id, at=at, on_fallback=signing_fallback.append)
                pool = Pool(ledger, feed, run_options, progress, on_progress=on_progress)
                if on_start:
                    on_start(pool)
                try:
                    await pool.run()
                finally:
                    error, interrupted, broken = pool.error, pool.interrupted, pool.broken
                    fallback = pool.smtp_fallback
    except BaseException:
        # The run's own exception is the one to report; closing the run may fail for the
        # same reason (a full disk) and must not hide it.
        with contextlib.suppress(sqlite3.Error):
            finish_run(db, campaign_id, owner=owner, broken=broken)
        raise
    try:
        status, counts = finish_run(db, campaign_id, owner=owner, broken=broken)
    except sqlite3.Error as exc:
        if error is None:
            raise
        # The pool stopped on a storage fault and closing the run hit it again: say both.
        problem = storage_problem(exc, config.database) or f"storing the campaign's status failed too ({exc})."
        raise SendError(
            f"campaign {campaign_id} stopped: {error}. {problem[0].upper()}{problem[1:]} Once that is fixed, "
            f"`newsletter resume {campaign_id}` finishes it: nobody is lost, and the messages "
            "that were in flight go out again with the same Message-ID."
        ) from exc
    next_retry = next_retry_at(db, campaign_id)
    return RunResult(
        campaign_id=campaign_id,
        status=status,
        counts=counts,
        progress=progress,
        error=error,
        interrupted=interrupted,
        next_retry_at=next_retry,
        captured_to=captured,
        smtp_fallback=fallback,
        signing_fallback=signing_fallback[0] if signing_fallback else None,
    )
