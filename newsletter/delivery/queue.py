"""Stream a campaign's due deliveries, with their final bytes built, to the sending pool.

Rows are read in id order, a batch at a time (never the whole list), and each becomes an
Item with the exact bytes message.py builds for that subscriber. Building is cheap next to
sending (about 30 µs against 400 µs), so it is done in the sending process, between the
replies; a large run uses more cores through processes.py, each shard building its own.
Reading claims nothing, so a feed running ahead never widens the crash window.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

from sqlite_utils import Database

from ..config import Config
from ..content.headers import ascii_address
from ..content.message import MessageBuilder, Recipient
from ..errors import HeaderValueError
from . import codes
from .campaigns import builder_for, envelope_sender, get_campaign, verp_token
from .ledger import Item, fail_unbuildable

BATCH = 200
BATCH_BYTES = 8 * 2**20  # a batch is cut short past this many bytes of built messages

# Rows due in this run: never finished (queued), in flight when a previous run died
# (sending: outcome unknown, retried with the same Message-ID), or deferred and due.
# deliveries_retry holds exactly the unfinished rows (next_attempt_at set), by campaign in
# id order: the walk is an index range scan over what is left to do, never the sent rows.
_DUE_SQL = f"""
SELECT d.id, d.subscriber_id, d.status, d.attempts, d.first_attempt_at,
       s.email, s.name, s.token, s.language
FROM deliveries AS d INDEXED BY deliveries_retry JOIN subscribers AS s ON s.id = d.subscriber_id
WHERE d.campaign_id = ? AND d.id > ? AND d.id % ? = ? AND d.next_attempt_at IS NOT NULL
  AND (d.status IN ({codes.QUEUED}, {codes.SENDING})
       OR (d.status = {codes.DEFERRED} AND d.next_attempt_at <= ?))
ORDER BY d.id LIMIT ?
"""

_COUNT_SQL = f"""
SELECT count(*) FROM deliveries INDEXED BY deliveries_retry
WHERE campaign_id = ? AND next_attempt_at IS NOT NULL
  AND (status IN ({codes.QUEUED}, {codes.SENDING}) OR (status = {codes.DEFERRED} AND next_attempt_at <= ?))
"""


def count_due(db: Database, campaign_id: int, *, at: str) -> int:
    return db.execute(_COUNT_SQL, [campaign_id, codes.to_ms(at)]).fetchone()[0]


def iter_batches(
    config: Config, db: Database, campaign_id: int, *, at: str, batch: int = BATCH,
    shard: tuple[int, int] = (0, 1), max_bytes: int = BATCH_BYTES,
    builder: MessageBuilder | None = None, build: Callable[[Recipient], bytes] | None = None,
) -> Iterator[list[Item]]:
    """Due items in id order, `batch` rows (or `max_bytes` of messages) at a time, bytes built.

    `shard` (k, n) keeps the rows whose id is k modulo n: one sending process's share.
    signing.py passes the `builder` it made and its own `build` (unsigned bytes, the
    signature added off the loop's core); by default the builder's build() makes them.
    """
    index, shards = shard
    max_bytes = max(1, min(max_bytes, config.sending_buffer_mb * 2**20 // 4))
    campaign = get_campaign(db, campaign_id)
    builder = builder or builder_for(config, campaign)
    build = build or builder.build
    after = 0
    due_ms = codes.to_ms(at)
    while True:
        rows = db.execute(_DUE_SQL, [campaign_id, after, shards, index, due_ms, batch]).fetchall()
        if not rows:
            return
        items: list[Item] = []
        size = 0
        for did, sid, status, attempts, first, email, name, token, language in rows:
            recipient = Recipient(
                subscriber_id=sid, email=email, name=name, token=token, language=language
            )
            try:
                data = build(recipient)
                # RCPT TO in its xn-- form: an SMTP envelope is ASCII (no SMTPUTF8 here).
                rcpt = ascii_address(email)
            except HeaderValueError as exc:
                # One row that cannot become a message (a stored name or address from
                # before today's checks) fails with its reason; it must not stop the rest.
                fail_unbuildable(db, did, str(exc))
                continue
            items.append(
                Item(
                    did, sid, rcpt, envelope_sender(config, verp_token(did, campaign.campaign_key)),
                    builder.message_id(recipient),
                    data, codes.name(status), attempts, first,
                )
            )
            size += len(data)
            if size >= max_bytes:  # large messages: memory grows with bytes, not rows
                yield items
                items, size = [], 0
        after = rows[-1][0]
        yield items


async def inline_feed(
    config: Config, db: Database, campaign_id: int, *, at: str, batch: int = 50,
    shard: tuple[int, int] = (0, 1),
) -> AsyncIterator[list[Item]]:
    """Build in the event loop's thread, in small batches so replies are not held up."""
    for items in iter_batches(config, db, campaign_id, at=at, batch=batch, shard=shard):
        yield items
        await asyncio.sleep(0)
