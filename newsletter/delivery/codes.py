"""How a delivery row is stored: its status as a small integer, its times as integer ms.

The one mapping between the names the code and people use (queued, sent, ...) and the
integers in `deliveries.status`; migration 0010 wrote the same numbers (a released
migration is frozen, so it spells them out; tests/test_compact_storage.py checks they
agree). The most common final status, `sent`, is 1, and `queued` 0: SQLite stores the
integers 0 and 1 in the row's header alone, so they cost no byte of their own.

Times in `deliveries` are milliseconds since 1970-01-01 UTC (6 bytes where an ISO 8601
text took 32); the rest of the database keeps ISO text, and these helpers convert.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

QUEUED = 0
SENT = 1
SENDING = 2
DEFERRED = 3
FAILED = 4
BOUNCED = 5
SKIPPED = 6
CANCELLED = 7

CODES: dict[str, int] = {
    "queued": QUEUED, "sent": SENT, "sending": SENDING, "deferred": DEFERRED,
    "failed": FAILED, "bounced": BOUNCED, "skipped": SKIPPED, "cancelled": CANCELLED,
}
_EPOCH_TEXT = "0001-01-01T00:00:00"
NAMES: dict[int, str] = {code: name for name, code in CODES.items()}
# Rows that still have work: in the partial index deliveries_retry (next_attempt_at set).
OPEN = (QUEUED, SENDING, DEFERRED)


def code(name: str) -> int:
    """The stored integer of a delivery status name (KeyError for an unknown one)."""
    return CODES[name]


def name(value: int) -> str:
    """The name of a stored delivery status."""
    return NAMES[value]


def in_list(*names: str) -> str:
    """An SQL list of the codes of these statuses, for `status IN (...)`: integers only."""
    return ", ".join(str(CODES[n]) for n in names)


def now_ms(*, later_by: float = 0.0) -> int:
    """The current time (plus `later_by` seconds) as stored in deliveries."""
    return int((time.time() + later_by) * 1000)


def to_ms(iso: str | None) -> int | None:
    """An ISO 8601 time (db.now()'s form; naive means UTC) as stored in deliveries."""
    if iso is None:
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        # A shortened time ("2026-12", "9999": the end of time) means its first moment,
        # as it did when these times were compared as text.
        moment = datetime.fromisoformat(iso + _EPOCH_TEXT[len(iso):])
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def to_iso(ms: int | None) -> str | None:
    """A stored deliveries time as ISO 8601 in UTC (db.now()'s form, to the millisecond)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="microseconds")
