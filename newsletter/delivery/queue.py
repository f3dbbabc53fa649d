"""Stream a campaign's due deliveries, with their final bytes built, to the sending pool.

Rows are read in id order, a batch at a time (never the whole list), and each becomes an
Item with the exact bytes message.py builds for that subscriber. Building is cheap next to
sending (about 30 µs against 400 µs), so it is done in the sending process; optionally a
one-process run hands it to a builder process that streams batches through a pipe ahead
of the pool. Reading claims nothing, so a feed running ahead never widens the crash window.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import AsyncIterator, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

from sqlite_utils import Database

from ..children import die_with_parent
from ..config import Config
from ..content.headers import ascii_address
from ..db import now, open_db, transaction
from ..errors import HeaderValueError
from .campaigns import Recipient, builder_for, envelope_sender, get_campaign, verp_token
from .ledger import Item

BATCH = 200
BATCH_BYTES = 8 * 2**20  # a batch is cut short past this many bytes of built messages

# Rows due in this run: never finished (queued), in flight when a previous run died
# (sending: outcome unknown, retried with the same Message-ID), or deferred and due.
# NOT INDEXED keeps it a rowid range scan, cheap however far the walk has come.
_DUE_SQL = """
SELECT d.id, d.subscriber_id, d.status, d.attempts, d.first_attempt_at,
       s.email, s.name, s.token, s.language
FROM deliveries AS d NOT INDEXED JOIN subscribers AS s ON s.id = d.subscriber_id
WHERE d.campaign_id = ? AND d.id > ? AND d.id % ? = ?
  AND (d.status IN ('queued', 'sending') OR (d.status = 'deferred' AND d.next_attempt_at <= ?))
ORDER BY d.id LIMIT ?
"""

_COUNT_SQL = """
SELECT count(*) FROM deliveries
WHERE campaign_id = ?
  AND (status IN ('queued', 'sending') OR (status = 'deferred' AND next_attempt_at <= ?))
"""


def count_due(db: Database, campaign_id: int, *, at: str) -> int:
    return db.execute(_COUNT_SQL, [campaign_id, at]).fetchone()[0]


def iter_batches(
    config: Config, db: Database, campaign_id: int, *, at: str, batch: int = BATCH,
    shard: tuple[int, int] = (0, 1), max_bytes: int = BATCH_BYTES,
) -> Iterator[list[Item]]:
    """Due items in id order, `batch` rows (or `max_bytes` of messages) at a time, bytes built.

    `shard` (k, n) keeps the rows whose id is k modulo n: one sending process's share.
    """
    index, shards = shard
    max_bytes = max(1, min(max_bytes, config.sending_buffer_mb * 2**20 // 4))
    campaign = get_campaign(db, campaign_id)
    builder = builder_for(config, campaign)
    after = 0
    while True:
        rows = db.execute(_DUE_SQL, [campaign_id, after, shards, index, at, batch]).fetchall()
        if not rows:
            return
        items: list[Item] = []
        size = 0
        for did, sid, status, attempts, first, email, name, token, language in rows:
            recipient = Recipient(
                subscriber_id=sid, email=email, name=name, token=token, language=language
            )
            try:
                data = builder.build(recipient)
                # RCPT TO in its xn-- form: an SMTP envelope is ASCII (no SMTPUTF8 here).
                rcpt = ascii_address(email)
            except HeaderValueError as exc:
                # One row that cannot become a message (a stored name or address from
                # before today's checks) fails with its reason; it must not stop the rest.
                _unbuildable(db, did, str(exc))
                continue
            items.append(
                Item(
                    did, sid, rcpt, envelope_sender(config, verp_token(did, campaign.campaign_key)),
                    builder.message_id(recipient),
                    data, status, attempts, first,
                )
            )
            size += len(data)
            if size >= max_bytes:  # large messages: memory grows with bytes, not rows
                yield items
                items, size = [], 0
        after = rows[-1][0]
        yield items


def _unbuildable(db: Database, delivery_id: int, reason: str) -> None:
    stamp = now()
    with transaction(db):
        db.execute(
            "UPDATE deliveries SET status = 'failed', reply_text = ?, last_attempt_at = ?"
            " WHERE id = ? AND status IN ('queued', 'sending', 'deferred')",
            [f"cannot build the message: {reason}", stamp, delivery_id],
        )


async def inline_feed(
    config: Config, db: Database, campaign_id: int, *, at: str, batch: int = 50,
    shard: tuple[int, int] = (0, 1),
) -> AsyncIterator[list[Item]]:
    """Build in the event loop's thread, in small batches so replies are not held up."""
    for items in iter_batches(config, db, campaign_id, at=at, batch=batch, shard=shard):
        yield items
        await asyncio.sleep(0)


def _builder_main(
    conn: Connection, config: Config, db_path: str, campaign_id: int, at: str, parent: int
) -> None:
    die_with_parent(parent)
    db = open_db(Path(db_path), migrate=False)
    batches = iter_batches(config, db, campaign_id, at=at)
    try:
        # Credit-based flow control: one batch per request, so the builder stays only a
        # few batches ahead and memory stays flat.
        while conn.recv() is not None:
            conn.send(next(batches, None))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        db.conn.close()


async def process_feed(
    config: Config, db_path: Path, campaign_id: int, *, at: str, ahead: int = 3
) -> AsyncIterator[list[Item]]:
    """Build in a worker process on another core; batches arrive through a pipe."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_builder_main,
        args=(child, config, str(db_path), campaign_id, at, os.getpid()),
        name="newsletter-builder",
        daemon=True,
    )
    process.start()
    child.close()
    loop = asyncio.get_running_loop()
    try:
        for _ in range(ahead):
            parent.send(True)
        while True:
            # recv() blocks; a thread waits for it so the loop keeps serving replies.
            items = await loop.run_in_executor(None, parent.recv)
            if items is None:
                return
            parent.send(True)
            yield items
    finally:
        try:
            parent.send(None)
        except (BrokenPipeError, OSError):
            pass
        parent.close()
        await loop.run_in_executor(None, process.join, 5)
        if process.is_alive():
            process.kill()


def feed_for(
    config: Config, db: Database, campaign_id: int, *, at: str, process: bool = False
) -> AsyncIterator[list[Item]]:
    """The feed of the items due at `at` for a single-process run."""
    path = db.execute("PRAGMA database_list").fetchone()[2]
    if process and path:
        return process_feed(config, Path(path), campaign_id, at=at)
    return inline_feed(config, db, campaign_id, at=at)
