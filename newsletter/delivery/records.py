"""Campaigns and deliveries read back: the Campaign row, counts, failures, what is pending.

What `status` and `newsletter run` read. Reads only (delivery/ledger.py writes both tables),
and it imports nothing of the sending engine, so reading a campaign stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..content.rendered import RenderedEmail, load_rendered
from ..db import Reads, now
from ..errors import SendError
from . import codes

if TYPE_CHECKING:
    from sqlite_utils import Database

UNFINISHED = ("creating", "ready", "sending", "paused")
DELIVERY_STATUSES = ("queued", "sending", "sent", "deferred", "failed", "bounced", "skipped", "cancelled")
# Ended without finishing: `broken` (its messages cannot be built; waits for a cancel) and
# `cancelled`. Neither is resumed by `send` or `newsletter run`.
STOPPED = ("broken", "cancelled")


class CampaignNotFoundError(SendError, LookupError):
    """No campaign has that id."""


# A campaign in one of these states keeps its counts in its row (finish and cancel write
# them, record_bounce moves them): its delivery rows need not be counted to show it.
FINISHED = ("done", "cancelled")
# The counts a campaign row stores (every delivery status but the two in flight).
STORED_COUNTS = ("sent", "deferred", "failed", "bounced", "skipped", "cancelled")


@dataclass(frozen=True)
class Campaign:
    """A campaign row; its rendered emails are decoded when first asked for."""

    id: int
    kind: str
    article_slug: str | None
    subject: str
    status: str
    campaign_key: str
    total: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    lease_owner: str | None
    lease_expires_at: str | None
    stored_counts: dict[str, int]
    # The stored JSON of the rendered emails: None when listed without them (list_campaigns).
    rendered_json: str | None = field(default=None, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Campaign:
        columns = {f.name: row[f.name] for f in fields(cls) if f.name not in ("stored_counts", "rendered_json")}
        stored = {name: row[name] for name in STORED_COUNTS}
        return cls(**columns, stored_counts=stored, rendered_json=row.get("rendered"))

    @cached_property
    def rendered(self) -> dict[str, RenderedEmail]:
        if self.rendered_json is None:
            raise ValueError(f"campaign {self.id} was listed without its emails: get_campaign loads them")
        return load_rendered(self.rendered_json)


def get_campaign(db: Reads, campaign_id: int) -> Campaign:
    rows = list(db.query("SELECT * FROM campaigns WHERE id = ?", [campaign_id]))
    if not rows:
        raise CampaignNotFoundError(
            f"there is no campaign {campaign_id}; `newsletter status` lists the campaigns"
        )
    return Campaign.from_row(rows[0])


def list_campaigns(db: Reads) -> list[Campaign]:
    """Every campaign, oldest first, without its rendered emails (the large column)."""
    listed = ", ".join(
        [f.name for f in fields(Campaign) if f.name not in ("stored_counts", "rendered_json")] + list(STORED_COUNTS)
    )
    return [Campaign.from_row(r) for r in db.query(f"SELECT {listed} FROM campaigns ORDER BY id")]


def campaign_counts(db: Reads, campaign_id: int) -> dict[str, int]:
    """Deliveries per status, every status present (zero when none); a campaign whose rows
    `prune` folded counts them from delivery_counts."""
    counts = dict.fromkeys(DELIVERY_STATUSES, 0)
    for status, n in db.execute(
        "SELECT status, count(*) FROM deliveries WHERE campaign_id = ? GROUP BY status"
        " UNION ALL SELECT status, count FROM delivery_counts WHERE campaign_id = ?",
        [campaign_id, campaign_id],
    ):
        counts[codes.name(status)] += n
    return counts


def shown_counts(db: Reads, campaign: Campaign) -> dict[str, int]:
    """Deliveries per status as `status` shows them: a finished campaign's from its row
    (kept exact without counting its rows), any other's counted from its rows."""
    if campaign.status not in FINISHED:
        return campaign_counts(db, campaign.id)
    return {**dict.fromkeys(DELIVERY_STATUSES, 0), **campaign.stored_counts}


def folded_at(db: Reads, campaign_id: int) -> str | None:
    """When `prune` folded the campaign's delivery rows into counts, or None."""
    row = db.execute("SELECT max(folded_at) FROM delivery_counts WHERE campaign_id = ?", [campaign_id]).fetchone()
    return row[0] if row else None


def latest_for(db: Database, slug: str) -> dict[str, Any] | None:
    """The newest article campaign row of `slug`, or None."""
    rows = list(
        db.query(
            "SELECT * FROM campaigns WHERE kind = 'article' AND article_slug = ? "
            "ORDER BY id DESC LIMIT 1",
            [slug],
        )
    )
    return rows[0] if rows else None


def last_sent_at(db: Reads, campaign_id: int) -> str | None:
    """When the campaign's last message was sent (reads every row of the campaign)."""
    # A sent row's sent_at is its last_attempt_at (NULL in the row, migration 0010).
    (last,) = db.execute(
        f"SELECT max(CASE WHEN status = {codes.SENT} THEN coalesce(sent_at, last_attempt_at) ELSE sent_at END)"
        " FROM deliveries WHERE campaign_id = ?",
        [campaign_id],
    ).fetchone()
    return codes.to_iso(last)


def next_retry_at(db: Reads, campaign_id: int) -> str | None:
    """When the campaign's next deferred delivery is due, or None (only the rows with work
    left are read: deliveries_retry holds just those)."""
    (next_retry,) = db.execute(
        f"SELECT min(next_attempt_at) FROM deliveries INDEXED BY deliveries_retry"
        f" WHERE campaign_id = ? AND next_attempt_at IS NOT NULL AND status = {codes.DEFERRED}",
        [campaign_id],
    ).fetchone()
    return codes.to_iso(next_retry)


FAILURE_COLUMNS = ("campaign", "email", "status", "code", "enhanced", "attempts", "reply", "next_attempt")


def failed_deliveries(db: Reads, campaign_ids: list[int]) -> list[dict[str, Any]]:
    """The deliveries of these campaigns that were not sent (yet), with the relay's reply."""
    if not campaign_ids:
        return []
    marks = ",".join("?" * len(campaign_ids))
    return [
        dict(zip(FAILURE_COLUMNS, (cid, email, codes.name(status), code, enhanced, attempts, reply,
                                   codes.to_iso(next_at)), strict=True))
        for cid, email, status, code, enhanced, attempts, reply, next_at in db.execute(
            "SELECT d.campaign_id, s.email, d.status, d.reply_code, d.enhanced_code, d.attempts,"
            " d.reply_text, d.next_attempt_at FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            f" WHERE d.campaign_id IN ({marks}) AND d.status IN ({codes.in_list('deferred', 'failed', 'bounced', 'skipped')})"
            " ORDER BY d.campaign_id, d.id",
            campaign_ids,
        )
    ]


def pending(db: Database, *, now_at: datetime) -> list[int]:
    """Campaigns with work now: unfinished, or with deferred deliveries due for a retry."""
    marks = ", ".join("?" * len(UNFINISHED))
    rows = db.execute(
        # A broken or cancelled campaign is not retried: it would fail on every run.
        f"SELECT id FROM campaigns WHERE kind != 'test' AND status NOT IN ('broken', 'cancelled')"
        f" AND (status IN ({marks}) OR id IN ("
        " SELECT DISTINCT campaign_id FROM deliveries INDEXED BY deliveries_retry"
        f" WHERE next_attempt_at IS NOT NULL AND status = {codes.DEFERRED} AND next_attempt_at <= ?))"
        " ORDER BY id",
        [*UNFINISHED, codes.to_ms(now_at.isoformat())],
    ).fetchall()
    return [row[0] for row in rows]


def broken(db: Database) -> list[int]:
    """Campaigns whose messages cannot be built: left alone, waiting for a cancel."""
    return [row[0] for row in db.execute("SELECT id FROM campaigns WHERE status = 'broken' ORDER BY id")]


@dataclass(frozen=True)
class ArchiveEntry:
    """One sent article or digest as the web archive lists it."""

    kind: str  # article or digest
    key: str  # the article's slug, or the digest's period key (daily:2026-11-26, weekly:2026-W48)
    campaign_id: int
    title: str
    summary: str
    sent_at: str


def archive_entries(db: Database, *, limit: int = 1000) -> list[ArchiveEntry]:
    """What went out, newest first: each article once (its latest campaign) and each digest
    period once (its first campaign). A campaign counts once its sending has started."""
    rows = db.execute(
        """
        SELECT c.kind, coalesce(c.article_slug, c.campaign_key), c.id,
               coalesce(a.title, c.subject), coalesce(a.summary, ''), c.started_at
        FROM campaigns AS c LEFT JOIN articles AS a ON a.slug = c.article_slug
        WHERE c.id IN (
            SELECT max(id) FROM campaigns WHERE kind = 'article' AND started_at IS NOT NULL
            GROUP BY article_slug
            UNION ALL
            SELECT id FROM campaigns WHERE kind = 'digest' AND started_at IS NOT NULL
            AND instr(campaign_key, '/') = 0
        )
        ORDER BY c.started_at DESC, c.id DESC LIMIT ?
        """,
        [limit],
    ).fetchall()
    return [ArchiveEntry(*row) for row in rows]


def archived_campaign(db: Database, *, kind: str, key: str) -> Campaign | None:
    """The campaign whose email the archive shows for an article slug or a digest period key."""
    if kind == "article":
        sql = ("SELECT * FROM campaigns WHERE kind = 'article' AND article_slug = ?"
               " AND started_at IS NOT NULL ORDER BY id DESC LIMIT 1")
        params = [key]
    else:
        # A period's subscribers may get different article sets (one campaign each, keyed
        # KEY, KEY/2, ...); the archive shows the one that carried the most articles.
        sql = ("SELECT * FROM campaigns AS c WHERE kind = 'digest' AND started_at IS NOT NULL"
               " AND (campaign_key = ? OR campaign_key LIKE ? ESCAPE '\\')"
               " ORDER BY (SELECT count(*) FROM digest_campaigns AS d WHERE d.campaign_id = c.id) DESC, id"
               " LIMIT 1")
        params = [key, key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"]
    rows = list(db.query(sql, params))
    return Campaign.from_row(rows[0]) if rows else None


def holder_is_dead(owner: str) -> bool:
    """True when the lease holder was a process on this host that no longer exists."""
    import socket  # not at the top: only a campaign with a lease asks, and socket is slow to import (CLI start)

    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def lease_is_live(owner: str | None, expires: str | None) -> bool:
    """Whether a process holds this lease and, as far as we can tell, is still sending: the
    lease has not expired and its holder is not a process of this machine that is gone."""
    return bool(owner and expires and expires > now() and not holder_is_dead(owner))
