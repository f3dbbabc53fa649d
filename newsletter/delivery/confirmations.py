"""Confirmation emails to every pending subscriber at once, as a campaign of their own kind.

`subscribers resend-confirmation --all-pending` makes one `confirmation` campaign: its
rendered emails are the double opt-in email in every language and its delivery rows are the
pending subscribers, written in one transaction with the campaign (born `ready`, so nothing
else ever fills it). The sending pool and the ledger then do what they do for an article:
batches, the rate limit, retries of deferred rows, resume after a crash, and a row whose
subscriber confirmed or left in the meantime is skipped (the ledger's audience for this
kind is `pending`).

An address gets at most one confirmation email per RESEND_AFTER: one sent (by a campaign or
by `resend-confirmation EMAIL`) within that time, or still queued or deferred, leaves it
out, unless force is given. An unfinished confirmation campaign is resumed, not doubled.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from ..config import LANGUAGES, Config
from ..content.render import render_confirmation
from ..db import now, transaction
from . import codes
from .ledger import mark_ready, new_campaign, queue_deliveries
from .records import UNFINISHED

KIND = "confirmation"
RESEND_AFTER = timedelta(hours=24)

# Pending subscribers who had a confirmation email within the window, or have one on its way.
# (A sent row's sent_at is its last_attempt_at, in ms: delivery/codes.py.)
_RECENT_SQL = f"""
SELECT subscriber_id FROM events
WHERE kind = 'confirmation_sent' AND subscriber_id IS NOT NULL AND at > ?
UNION
SELECT d.subscriber_id FROM deliveries AS d JOIN campaigns AS c ON c.id = d.campaign_id
WHERE c.kind = 'confirmation'
  AND (d.status IN ({codes.in_list('queued', 'sending', 'deferred')})
       OR (d.status = {codes.SENT} AND coalesce(d.sent_at, d.last_attempt_at) > ?))
"""
_ON_ITS_WAY_SQL = f"""
SELECT d.subscriber_id FROM deliveries AS d JOIN campaigns AS c ON c.id = d.campaign_id
WHERE c.kind = 'confirmation' AND d.status IN ({codes.in_list('queued', 'sending', 'deferred')})
"""


@dataclass(frozen=True)
class ConfirmationCampaign:
    """What resend_all_pending made or found: the campaign to run (None: nobody to mail)."""

    campaign_id: int | None
    queued: int  # deliveries in the campaign
    pending: int  # pending subscribers in all
    recent: int  # left out: mailed within RESEND_AFTER (or on its way)
    resumed: bool  # an unfinished confirmation campaign, finished rather than doubled


def resend_all_pending(
    config: Config, db: Database, *, force: bool = False, at: datetime | None = None
) -> ConfirmationCampaign:
    """The confirmation campaign to send now: the unfinished one, or a new one for every
    pending subscriber not mailed within RESEND_AFTER (with force: every pending one that
    has no confirmation on its way already)."""
    pending = db.execute("SELECT count(*) FROM subscribers WHERE status = 'pending'").fetchone()[0]
    unfinished = _unfinished(db)
    if unfinished is not None:
        return ConfirmationCampaign(unfinished[0], unfinished[1], pending, 0, resumed=True)
    # Render before writing anything: a broken template never leaves a half-made campaign.
    rendered = {language: render_confirmation(config, language=language) for language in LANGUAGES}
    subject = rendered[config.publication_language].subject
    cutoff = ((at or datetime.now(UTC)) - RESEND_AFTER).astimezone(UTC).isoformat(timespec="microseconds")
    left_out_sql = _ON_ITS_WAY_SQL if force else _RECENT_SQL
    left_out_params: list[object] = [] if force else [cutoff, codes.to_ms(cutoff)]
    stamp = now()
    with transaction(db):
        unfinished = _unfinished(db)  # again under the write lock: another command may have made one
        if unfinished is not None:
            return ConfirmationCampaign(unfinished[0], unfinished[1], pending, 0, resumed=True)
        recent = db.execute(
            f"SELECT count(*) FROM subscribers WHERE status = 'pending' AND id IN ({left_out_sql})",
            left_out_params,
        ).fetchone()[0]
        if recent == pending:
            return ConfirmationCampaign(None, 0, pending, recent, resumed=False)
        campaign_id = new_campaign(
            db, kind=KIND, article_slug=None, subject=subject, rendered=rendered, status="ready",
            campaign_key=f"confirm:{secrets.token_hex(8)}", at=stamp,
        )
        queued = queue_deliveries(
            db, campaign_id,
            subscribers_sql=f"SELECT id FROM subscribers WHERE status = 'pending' AND id NOT IN ({left_out_sql})"
            " ORDER BY id",
            params=left_out_params,
        )
        mark_ready(db, campaign_id)
    return ConfirmationCampaign(campaign_id, queued, pending, recent, resumed=False)


def _unfinished(db: Database) -> tuple[int, int] | None:
    marks = ", ".join("?" * len(UNFINISHED))
    row = db.execute(
        f"SELECT id, total FROM campaigns WHERE kind = ? AND status IN ({marks}) ORDER BY id LIMIT 1",
        [KIND, *UNFINISHED],
    ).fetchone()
    return (row[0], row[1]) if row else None
