"""Retention: fold the delivery rows of campaigns finished long ago into per-campaign counts.

A sent delivery row is only needed while its campaign can still change: sending, retries,
a bounce tied back to it. Past `--older-than` (or the setting prune.older_than, run by
`newsletter run`), a finished campaign keeps its row, its rendered emails (the web archive)
and its counts per status (delivery_counts, which `status` reads); its delivery rows go.
Subscribers, suppressions, events and returned messages are not touched.

Never folded: a campaign that is not done or cancelled, one with a row queued, in flight or
deferred, and a cancelled article campaign with no later campaign of its article (its sent
rows are who the next send of that article skips). Reads here; ledger.py writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from ..config import parse_age
from ..db import now
from ..errors import PruneAgeError
from . import codes
from .ledger import OPEN_NAMES, fold_campaign

_FOLDABLE_SQL = f"""
SELECT c.id, c.kind, c.subject, c.finished_at FROM campaigns AS c
WHERE c.status IN ('done', 'cancelled') AND c.finished_at IS NOT NULL AND c.finished_at < ?
  AND EXISTS (SELECT 1 FROM deliveries AS d WHERE d.campaign_id = c.id)
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.campaign_id = c.id
                  AND d.status IN ({codes.in_list(*OPEN_NAMES)}))
  AND NOT (c.status = 'cancelled' AND c.kind = 'article' AND NOT EXISTS (
      SELECT 1 FROM campaigns AS later
      WHERE later.kind = 'article' AND later.article_slug = c.article_slug AND later.id > c.id))
ORDER BY c.id
"""


@dataclass(frozen=True)
class Fold:
    """One campaign whose delivery rows were (or, on a dry run, would be) folded."""

    campaign_id: int
    kind: str
    subject: str
    finished_at: str
    counts: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def age_days(text: str | None, *, setting: int | None) -> int:
    """The age to prune at: `text` (--older-than) or else the setting, in days."""
    if text:
        try:
            return parse_age(text)
        except ValueError as exc:
            raise PruneAgeError(f"--older-than: {exc}") from None
    if setting is None:
        raise PruneAgeError(
            "say how old a campaign must be: `newsletter prune --older-than 90d`, or set "
            "prune.older_than in newsletter.toml"
        )
    return setting


def foldable(db: Database, *, older_than_days: int, now_at: datetime | None = None) -> list[Fold]:
    """The campaigns finished more than `older_than_days` ago whose rows can be folded."""
    before = ((now_at or datetime.now(UTC)) - timedelta(days=older_than_days)).astimezone(UTC)
    found = []
    for campaign_id, kind, subject, finished in db.execute(
        _FOLDABLE_SQL, [before.isoformat(timespec="microseconds")]
    ).fetchall():
        counts = {
            codes.name(status): n for status, n in db.execute(
                "SELECT status, count(*) FROM deliveries WHERE campaign_id = ? GROUP BY status ORDER BY status",
                [campaign_id],
            )
        }
        found.append(Fold(campaign_id, kind, subject, finished, counts))
    return found


def prune(
    db: Database, *, older_than_days: int, dry_run: bool = False, now_at: datetime | None = None
) -> list[Fold]:
    """Fold every foldable campaign (one transaction each); with dry_run, only say which."""
    found = foldable(db, older_than_days=older_than_days, now_at=now_at)
    if dry_run:
        return found
    folded = []
    for fold in found:
        counts = fold_campaign(db, fold.campaign_id, at=now())  # checked again under the lock
        if counts is not None:
            folded.append(Fold(fold.campaign_id, fold.kind, fold.subject, fold.finished_at, counts))
    return folded
