"""Digests: which period is due, which articles each subscriber gets, and the campaigns.

An article is "released" for the digests when `newsletter send` makes its campaign (the
mail to `each` subscribers) or when a feed poll brings it in (the digest_queue table). The
digest of a period offers the articles released in it, and also those of the week before
that a subscriber has not received yet; from that offer each subscriber gets exactly what
they have not already received (through an article campaign or an earlier digest), and
nothing from before the period in which they joined. So a subscriber who switches from
`each` to `weekly` mid-week gets the rest of the week, one who switches from `weekly` to
`daily` gets the week's earlier articles in their first daily digest, one who switches
from `weekly` to `each` gets the articles of before the switch in that week's digest, and
nobody gets an article twice.

Subscribers with the same set of articles share one campaign (one render, as the engine
wants); most share the period's full set, so a period normally makes one campaign. All the
campaigns and delivery rows of a period are written in one transaction under the period's
key (digest_periods), so a digest exists entirely or not at all, and a second run for the
same period creates nothing. Sending them is the engine's job, with its own guarantees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from ..config import LANGUAGES, Config
from ..content.render import render_digest
from ..content.rendered import RenderedEmail
from ..content.store import get_article
from ..db import now, transaction
from ..delivery.campaigns import check_message_size
from ..delivery.codes import in_list
from ..delivery.ledger import new_campaign, queue_deliveries
from ..errors import NewsletterError
from ..periods import (
    Period,
    ScheduleEntry,
    format_local,
    parse_schedule,
    period_at,
    period_from_key,
    zone_of,
)

# How far back a digest looks for articles a subscriber has not received: one week covers a
# switch between any two cadences and a period skipped for being too late.
LOOKBACK = timedelta(days=7)
# A delivery in one of these states means the subscriber has (or is getting) the article.
RECEIVED = ("queued", "sending", "sent", "deferred")
_PLAN_CHUNK = 5_000


class DigestError(NewsletterError):
    """A digest cannot be made (not one recipient's failure: the digest itself)."""


@dataclass(frozen=True)
class DueDigest:
    """A schedule entry whose latest occurrence has passed and whose period has no digest."""

    entry: ScheduleEntry
    occurrence: datetime
    period: Period
    late: timedelta
    skip: bool  # True: later than schedule.late_limit; recorded as skipped


@dataclass(frozen=True)
class Candidate:
    """An article offered to a digest: released at this time."""

    slug: str
    released_at: datetime


@dataclass
class DigestPlan:
    """Who gets which articles for one period (before anything is written)."""

    period: Period
    offered: list[Candidate]
    groups: list[tuple[str, ...]] = field(default_factory=list)  # article slugs per group
    group_sizes: list[int] = field(default_factory=list)
    recipients: int = 0
    sample: list[str] = field(default_factory=list)  # a few addresses, for --dry-run

    @property
    def articles(self) -> list[str]:
        """Every article that at least one subscriber gets, in release order."""
        wanted = {slug for group in self.groups for slug in group}
        return [c.slug for c in self.offered if c.slug in wanted]


@dataclass(frozen=True)
class DigestOutcome:
    """What `create_digest` did: created, exists (made before), empty, or skipped."""

    period: Period
    status: str
    campaigns: list[int]
    recipients: int
    articles: int
    note: str = ""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------
# What is due


def schedule_entries(*, daily: str, weekly: str) -> list[ScheduleEntry]:
    """The configured schedule (schedule.daily, schedule.weekly); empty ones are left out."""
    entries = [parse_schedule("daily", daily), parse_schedule("weekly", weekly)]
    return [e for e in entries if e is not None]


def recorded(db: Database, period_key: str) -> dict[str, Any] | None:
    """The digest_periods row of a period, if its digest was made (or skipped)."""
    row = db.execute(
        "SELECT period_key, status, articles, recipients, campaigns, note, created_at"
        " FROM digest_periods WHERE period_key = ?",
        [period_key],
    ).fetchone()
    if row is None:
        return None
    keys = ("period_key", "status", "articles", "recipients", "campaigns", "note", "created_at")
    found = dict(zip(keys, row, strict=True))
    found["campaigns"] = json.loads(found["campaigns"])
    return found


def due_digests(
    db: Database,
    entries: Iterable[ScheduleEntry],
    *,
    zone: str,
    late_limit: timedelta,
    now_at: datetime | None = None,
) -> list[DueDigest]:
    """The digests the schedule says should exist by now and do not.

    Only each entry's latest occurrence counts: a machine that was off for a week sends
    one digest per cadence when it comes back, not seven (the look-back brings the missed
    articles along). One that is later than `late_limit` is marked skipped, once, unless
    it ended before the install existed (see installed_at): a new install's first run has
    nothing to say about the weeks before it.
    """
    current = (now_at or datetime.now(UTC)).astimezone(UTC)
    since = installed_at(db)
    if since is not None and since > current:
        since = None  # a clock set back (or a test's clock): no period is before the install
    due = []
    for entry in entries:
        occurrence = entry.last_occurrence(current, zone=zone)
        period = entry.period_for(occurrence, zone=zone)
        if recorded(db, period.key) is not None:
            continue
        late = current - occurrence
        skip = late > late_limit
        if skip and since is not None and period.end <= since:
            continue  # it ended before this install existed: not late, never ours; no warning
        if skip:
            _record_skip(db, period, note=f"due {_iso(occurrence)[:16].replace('T', ' ')} UTC, "
                         f"{int(late.total_seconds() // 60)} min late, past schedule.late_limit")
        due.append(DueDigest(entry=entry, occurrence=occurrence, period=period, late=late, skip=skip))
    return due


def installed_at(db: Database) -> datetime | None:
    """When this install began: when its database got its first migration."""
    stamp = db.execute(
        "SELECT min(applied_at) FROM _sqlite_migrations WHERE migration_set = 'newsletter'"
    ).fetchone()[0]
    return _parse(stamp) if stamp else None


def _record_skip(db: Database, period: Period, *, note: str) -> None:
    stamp = now()
    with transaction(db):
        db.execute(
            "INSERT OR IGNORE INTO digest_periods (period_key, kind, start_at, end_at, status, note,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 'skipped', ?, ?, ?)",
            [period.key, period.kind, _iso(period.start), _iso(period.end), note, stamp, stamp],
        )


def period_for_command(kind: str, *, zone: str, key: str | None = None, now_at: datetime | None = None) -> Period:
    """The period `newsletter digest --period KIND` means: the last one that has ended."""
    current = (now_at or datetime.now(UTC)).astimezone(UTC)
    if key:
        period = period_from_key(key, zone=zone)
        if period.kind != kind:
            raise DigestError(f"{key} is not a {kind} period; pass --period {period.kind}")
        if period.end > current:
            # Its digest would be final, and the articles still to come in it would miss it.
            raise DigestError(
                f"{key} has not ended yet (it ends {format_local(period.end, zone=zone)}); "
                "a digest covers a whole period"
            )
        return period
    return period_at(kind, current, zone=zone).previous()


# ---------------------------------------------------------------------------------------
# Who gets what


def mark_for_digest(
    db: Database, slug: str, *, at: datetime | None = None, source: str = "cli", link: str = ""
) -> bool:
    """Put an article in the digest of the period that contains `at` (default: now).

    `newsletter send` does this through its campaign; feeds through their poll (with the
    item's `link`). Returns False when the article was already released (it stays where it
    was).
    """
    with transaction(db):
        cursor = db.execute(
            "INSERT OR IGNORE INTO digest_queue (article_slug, released_at, source, link) VALUES (?, ?, ?, ?)",
            [slug, _iso(at or datetime.now(UTC)), source, link],
        )
    return cursor.rowcount == 1


def offered(db: Database, period: Period) -> list[Candidate]:
    """The articles a digest of `period` may carry: released in [start - LOOKBACK, end)."""
    # An article campaign is the release: `send` marks an article for the digests.
    sources = (
        "SELECT article_slug AS slug, released_at FROM digest_queue UNION ALL"
        " SELECT article_slug, created_at FROM campaigns WHERE kind = 'article' AND article_slug IS NOT NULL"
    )
    rows = db.execute(
        f"SELECT r.slug, min(r.released_at) AS released FROM ({sources}) r"
        " JOIN articles a ON a.slug = r.slug GROUP BY r.slug"
        " HAVING released >= ? AND released < ? ORDER BY released, r.slug",
        [_iso(period.start - LOOKBACK), _iso(period.end)],
    ).fetchall()
    return [Candidate(slug=slug, released_at=_parse(released)) for slug, released in rows]


def _received_by_campaign(db: Database, slugs: list[str]) -> dict[int, frozenset[str]]:
    """Earlier campaigns that carried any of `slugs`, with the ones each carried."""
    if not slugs:
        return {}
    marks = ", ".join("?" * len(slugs))
    carried: dict[int, set[str]] = {}
    for campaign_id, slug in db.execute(
        f"SELECT id, article_slug FROM campaigns WHERE kind = 'article' AND article_slug IN ({marks})", slugs
    ).fetchall():
        carried.setdefault(campaign_id, set()).add(slug)
    for campaign_id, slug in db.execute(
        f"SELECT campaign_id, article_slug FROM digest_campaigns WHERE article_slug IN ({marks})", slugs
    ).fetchall():
        carried.setdefault(campaign_id, set()).add(slug)
    return {k: frozenset(v) for k, v in carried.items()}


def _subscribers(db: Database, kind: str, campaign_ids: list[int]) -> Iterator[tuple[int, str, str, str]]:
    """(id, email, joined, received campaign ids) of the active subscribers of a cadence."""
    joined = "max(s.created_at, coalesce(s.confirmed_at, s.created_at))"
    if campaign_ids:
        ids = ", ".join(str(int(i)) for i in campaign_ids)
        states = in_list(*RECEIVED)
        sql = (
            f"SELECT s.id, s.email, {joined}, coalesce(group_concat(d.campaign_id), '') FROM subscribers s"
            f" LEFT JOIN deliveries d ON d.subscriber_id = s.id AND d.campaign_id IN ({ids})"
            f" AND d.status IN ({states})"
            " WHERE s.status = 'active' AND s.cadence = ? GROUP BY s.id ORDER BY s.id"
        )
    else:
        sql = (
            f"SELECT s.id, s.email, {joined}, '' FROM subscribers s"
            " WHERE s.status = 'active' AND s.cadence = ? ORDER BY s.id"
        )
    yield from db.execute(sql, [kind])


def plan_digest(db: Database, period: Period) -> DigestPlan:
    """Work out each subscriber's articles; the assignment is left in the temp table
    `temp.digest_plan` (subscriber_id, grp) of this connection. Writes nothing else."""
    if db.conn.in_transaction:
        # The temp table's writes open a transaction that plan_digest commits; it must
        # not commit someone else's along with it.
        raise DigestError("plan_digest must not run inside a transaction")
    candidates = offered(db, period)
    plan = DigestPlan(period=period, offered=candidates)
    db.execute("CREATE TEMP TABLE IF NOT EXISTS digest_plan (subscriber_id INTEGER PRIMARY KEY, grp INTEGER)")
    db.execute("DELETE FROM temp.digest_plan")
    try:
        if candidates:
            _assign(db, plan)
    finally:
        db.conn.commit()  # only temp.digest_plan was written
    return plan


def _assign(db: Database, plan: DigestPlan, *, sample: int = 5) -> None:
    period, candidates = plan.period, plan.offered
    slugs = [c.slug for c in candidates]
    carried = _received_by_campaign(db, slugs)
    window_start = period.start - LOOKBACK
    group_index: dict[tuple[str, ...], int] = {}
    received_cache: dict[str, frozenset[str]] = {}
    batch: list[tuple[int, int]] = []
    for subscriber_id, _email, joined, campaign_list in _subscribers(db, period.kind, list(carried)):
        lower = window_start
        joined_at = _parse(joined)
        if joined_at > window_start:
            # Nothing from before the period they joined in: a new subscriber gets the
            # current period, not the back catalogue.
            lower = max(lower, period_at(period.kind, joined_at, zone=period.zone).start)
        received = received_cache.get(campaign_list)
        if received is None:
            received = frozenset().union(
                *(carried[int(i)] for i in campaign_list.split(",") if i and int(i) in carried)
            )
            received_cache[campaign_list] = received
        chosen = tuple(c.slug for c in candidates if c.released_at >= lower and c.slug not in received)
        # A subscriber whose articles are all from before this period (catch-up only)
        # still gets them: the look-back exists for exactly that case.
        if not chosen:
            continue
        batch.append((subscriber_id, _group_of(plan, group_index, chosen)))
        if len(batch) >= _PLAN_CHUNK:
            db.conn.executemany("INSERT INTO temp.digest_plan VALUES (?, ?)", batch)
            batch.clear()
    for subscriber_id, chosen in _left_for_each(db, period, candidates, carried):
        batch.append((subscriber_id, _group_of(plan, group_index, chosen)))
    if batch:
        db.conn.executemany("INSERT INTO temp.digest_plan VALUES (?, ?)", batch)
    # A digest is worth sending for articles of this period, or for articles whose own
    # period never had its digest (skipped as too late, or not made while the machine was
    # off): otherwise nobody would ever get those. Catch-up whose period's digest went
    # out does not make a digest on its own.
    worth = {c.slug for c in candidates if period.contains(c.released_at)} | _owed(db, period, candidates)
    keep = [i for i, group in enumerate(plan.groups) if worth.intersection(group)]
    if len(keep) != len(plan.groups):
        _keep_groups(db, plan, keep)
    plan.sample = [row[0] for row in db.execute(
        "SELECT s.email FROM temp.digest_plan p JOIN subscribers s ON s.id = p.subscriber_id"
        " ORDER BY p.subscriber_id LIMIT ?", [sample],
    ).fetchall()]


def _owed(db: Database, period: Period, candidates: list[Candidate]) -> set[str]:
    """Earlier articles whose own period (of this kind) has no digest: skipped or never made."""
    owed: set[str] = set()
    made: dict[str, bool] = {}
    for candidate in candidates:
        if period.contains(candidate.released_at):
            continue
        own = period_at(period.kind, candidate.released_at, zone=period.zone)
        if own.key not in made:
            row = recorded(db, own.key)
            made[own.key] = row is not None and row["status"] != "skipped"
        if not made[own.key]:
            owed.add(candidate.slug)
    return owed


def _group_of(plan: DigestPlan, group_index: dict[tuple[str, ...], int], chosen: tuple[str, ...]) -> int:
    """The group (campaign) of a subscriber who gets `chosen`, counted in the plan."""
    group = group_index.get(chosen)
    if group is None:
        group = group_index[chosen] = len(plan.groups)
        plan.groups.append(chosen)
        plan.group_sizes.append(0)
    plan.group_sizes[group] += 1
    plan.recipients += 1
    return group


def _left_for_each(
    db: Database, period: Period, candidates: list[Candidate], carried: dict[int, frozenset[str]]
) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Subscribers now on `each` who had this digest's cadence during the window, with the
    articles released while they had it that they have not received.

    `each` has no catch-up of its own: an article released before the switch was mailed
    to the `each` subscribers of that moment only. The digest of the cadence they left
    is the one place those articles can still come from.
    """
    window_start = period.start - LOOKBACK
    rows = db.execute(
        "SELECT e.subscriber_id, e.at, e.detail FROM events e JOIN subscribers s ON s.id = e.subscriber_id"
        " WHERE s.status = 'active' AND s.cadence = 'each' AND e.subscriber_id IN ("
        "  SELECT subscriber_id FROM events WHERE kind = 'changed' AND at >= ?)"
        " ORDER BY e.subscriber_id, e.id",
        [_iso(window_start)],
    ).fetchall()
    timelines: dict[int, list[tuple[datetime, str]]] = {}
    for subscriber_id, at, detail in rows:
        cadence = json.loads(detail).get("cadence")
        if cadence:
            timelines.setdefault(subscriber_id, []).append((_parse(at), cadence))
    for subscriber_id, timeline in timelines.items():
        spans = [
            (start, timeline[i + 1][0] if i + 1 < len(timeline) else period.end)
            for i, (start, cadence) in enumerate(timeline)
            if cadence == period.kind
        ]
        spans = [(max(a, window_start, timeline[0][0]), min(b, period.end)) for a, b in spans]
        spans = [(a, b) for a, b in spans if a < b]
        if not spans:
            continue
        received: set[str] = set()
        if carried:
            ids = ", ".join(str(int(i)) for i in carried)
            states = in_list(*RECEIVED)
            for (campaign_id,) in db.execute(
                f"SELECT campaign_id FROM deliveries WHERE subscriber_id = ? AND campaign_id IN ({ids})"
                f" AND status IN ({states})",
                [subscriber_id],
            ).fetchall():
                received |= carried.get(campaign_id, frozenset())
        chosen = tuple(
            c.slug for c in candidates
            if c.slug not in received and any(a <= c.released_at < b for a, b in spans)
        )
        if chosen:
            yield subscriber_id, chosen


def _keep_groups(db: Database, plan: DigestPlan, keep: list[int]) -> None:
    renumber = {old: new for new, old in enumerate(keep)}
    dropped = [i for i in range(len(plan.groups)) if i not in renumber]
    marks = ", ".join("?" * len(dropped))
    db.execute(f"DELETE FROM temp.digest_plan WHERE grp IN ({marks})", dropped)
    for old, new in renumber.items():
        if old != new:
            db.execute("UPDATE temp.digest_plan SET grp = ? WHERE grp = ?", [new, old])
    plan.recipients -= sum(plan.group_sizes[i] for i in dropped)
    plan.groups = [plan.groups[i] for i in keep]
    plan.group_sizes = [plan.group_sizes[i] for i in keep]


# ---------------------------------------------------------------------------------------
# Making the campaigns


def create_digest(config: Config, db: Database, period: Period, *, late: bool = False) -> DigestOutcome:
    """Make the digest campaigns of `period` (once): render, then write everything at once.

    Returns status `exists` when the period was done before (nothing is written), `skipped`
    when `run` skipped it as too late (late=True makes it after all, once), `empty` when
    nobody has anything to get (recorded, so later runs say so at once), `created`.
    """
    done = recorded(db, period.key)
    if done is not None and not (late and done["status"] == "skipped"):
        return _outcome_of(period, done, status="skipped" if done["status"] == "skipped" else "exists")
    plan = plan_digest(db, period)
    if not plan.groups:
        note = "no articles in this period" if not any(period.contains(c.released_at) for c in plan.offered) \
            else f"no active {period.kind} subscriber has anything to receive"
        if done is not None:  # skipped, and still nothing to send: it stays skipped
            return DigestOutcome(period=period, status="empty", campaigns=[], recipients=0, articles=0, note=note)
        return _record_empty(db, period, note)
    released = {c.slug: c.released_at.astimezone(zone_of(period.zone)).date() for c in plan.offered}
    rendered = [_render_group(config, db, period, group, released) for group in plan.groups]
    for group, (_subject, emails) in zip(plan.groups, rendered, strict=True):
        # As for an article: too large for the relay is refused before anything is written,
        # so the next run tries again once the setting or the period's articles change.
        check_message_size(
            config, emails, slug=period.key,
            what=f"the {period.kind} digest {period.label} with {len(group)} articles",
            advice=("send links instead of whole articles (schedule.full_text = false)"
                    if config.schedule_full_text else "shorten its articles' summaries"),
        )
    stamp = now()
    with transaction(db):
        done = recorded(db, period.key)  # again, under the write lock: another run may have won
        if done is not None and not (late and done["status"] == "skipped"):
            return _outcome_of(period, done, status="exists")
        if done is not None:  # sent late on purpose: the skipped record gives way to the digest
            db.execute("DELETE FROM digest_periods WHERE period_key = ? AND status = 'skipped'", [period.key])
        campaign_ids = []
        for index, (group, (subject, emails)) in enumerate(zip(plan.groups, rendered, strict=True)):
            key = period.key if index == 0 else f"{period.key}/{index + 1}"
            campaign_id = new_campaign(
                db, kind="digest", article_slug=None, subject=subject, rendered=emails, status="ready",
                campaign_key=key, total=plan.group_sizes[index], at=stamp,
            )
            campaign_ids.append(campaign_id)
            queue_deliveries(
                db, campaign_id, params=[index],
                subscribers_sql="SELECT subscriber_id FROM temp.digest_plan WHERE grp = ? ORDER BY subscriber_id",
            )
            db.conn.executemany(
                "INSERT INTO digest_campaigns (campaign_id, period_key, article_slug) VALUES (?, ?, ?)",
                [(campaign_id, period.key, slug) for slug in group],
            )
        db.execute(
            "INSERT INTO digest_periods (period_key, kind, start_at, end_at, status, articles, recipients,"
            " campaigns, created_at, updated_at) VALUES (?, ?, ?, ?, 'created', ?, ?, ?, ?, ?)",
            [period.key, period.kind, _iso(period.start), _iso(period.end), len(plan.articles),
             plan.recipients, json.dumps(campaign_ids), stamp, stamp],
        )
    db.execute("DELETE FROM temp.digest_plan")
    db.conn.commit()
    return DigestOutcome(period=period, status="created", campaigns=campaign_ids,
                         recipients=plan.recipients, articles=len(plan.articles))


def _render_group(
    config: Config, db: Database, period: Period, group: tuple[str, ...], released: dict[str, date]
) -> tuple[str, dict[str, RenderedEmail]]:
    """(subject, rendered emails by language) of one group, as the engine stores them."""
    articles = [get_article(db, slug) for slug in group]
    emails = {
        language: render_digest(
            articles, config, language=language, period=period, released=released,
            full_text=config.schedule_full_text,
        )
        for language in LANGUAGES
    }
    return emails[config.publication_language].subject, emails


def _record_empty(db: Database, period: Period, note: str) -> DigestOutcome:
    stamp = now()
    with transaction(db):
        done = recorded(db, period.key)
        if done is not None:
            return _outcome_of(period, done, status="exists")
        db.execute(
            "INSERT INTO digest_periods (period_key, kind, start_at, end_at, status, note, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, 'empty', ?, ?, ?)",
            [period.key, period.kind, _iso(period.start), _iso(period.end), note, stamp, stamp],
        )
    return DigestOutcome(period=period, status="empty", campaigns=[], recipients=0, articles=0, note=note)


def _outcome_of(period: Period, row: dict[str, Any], *, status: str) -> DigestOutcome:
    return DigestOutcome(
        period=period, status=status, campaigns=list(row["campaigns"]), recipients=row["recipients"],
        articles=row["articles"], note=f"{row['status']} {row['created_at'][:16].replace('T', ' ')} UTC"
        + (f": {row['note']}" if row["note"] else ""),
    )


