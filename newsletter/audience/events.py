"""The event log: the one writer of the append-only `events` table.

Every change to a subscriber is logged here (what, when, through what: cli, import, web,
bounce, send; and who). An event never holds an address, a name or a relay's reply text
(which may quote the address): the events outlive `subscribers erase`, which must leave
no personal data behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..db import now

if TYPE_CHECKING:
    from sqlite_utils import Database

# (at, subscriber_id, kind, source, actor, detail as JSON): one row of log_many.
EventRow = tuple[str, int | None, str, str, str, str]


def log_event(
    db: Database,
    *,
    kind: str,
    source: str,
    subscriber_id: int | None,
    actor: str = "",
    detail: dict[str, Any] | None = None,
    at: str | None = None,
) -> None:
    """Append one event. Callers hold the transaction that made the change."""
    db.execute(
        "INSERT INTO events (at, subscriber_id, kind, source, actor, detail) VALUES (?, ?, ?, ?, ?, ?)",
        [at or now(), subscriber_id, kind, source, actor, json.dumps(detail or {}, sort_keys=True)],
    )


def log_many(db: Database, rows: Iterable[EventRow]) -> None:
    """Append many events at once (an import); `detail` is already JSON."""
    db.conn.executemany(
        "INSERT INTO events (at, subscriber_id, kind, source, actor, detail) VALUES (?,?,?,?,?,?)",
        rows,
    )


def highest_subscriber_id(db: Database) -> int:
    """The highest subscriber id any event names (0 when none)."""
    return db.execute("SELECT coalesce(max(subscriber_id), 0) FROM events").fetchone()[0]


def for_subscriber(db: Database, subscriber_id: int) -> list[dict[str, Any]]:
    """A subscriber's events, oldest first, with their detail decoded."""
    rows = db.execute(
        "SELECT at, kind, source, actor, detail FROM events WHERE subscriber_id = ? ORDER BY id",
        [subscriber_id],
    ).fetchall()
    return [
        {"at": at, "kind": kind, "source": source, "actor": actor, "detail": json.loads(detail)}
        for at, kind, source, actor, detail in rows
    ]
