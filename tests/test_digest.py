"""Digest planning without the engine: what is offered per period, what is due, who gets what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlite_utils import Database

from newsletter.audience.subscribers import subscribe
from newsletter.content.parse import parse_text
from newsletter.content.store import add_article
from newsletter.db import open_db
from newsletter.periods import period_from_key
from newsletter.digests.plan import (
    due_digests,
    mark_for_digest,
    offered,
    plan_digest,
    recorded,
    schedule_entries,
)

AMS = "Europe/Amsterdam"
LIMIT = timedelta(hours=12)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_db(tmp_path / "test.db")


def release(db: Database, slug: str, at: str) -> None:
    add_article(db, parse_text(f"---\ntitle: {slug}\nslug: {slug}\n---\nTekst.\n", source=f"{slug}.md"))
    assert mark_for_digest(db, slug, at=utc(at))


def test_an_article_belongs_to_the_local_day_it_was_released_across_the_autumn_change(db: Database) -> None:
    release(db, "laat-op-zondag", "2026-10-25 22:30")  # 23:30 CET on Sunday the 25th
    release(db, "vroeg-op-maandag", "2026-10-25 23:00")  # 00:00 CET on Monday the 26th
    sunday = period_from_key("daily:2026-10-25", zone=AMS)
    in_sunday = [c.slug for c in offered(db, sunday) if sunday.contains(c.released_at)]
    assert in_sunday == ["laat-op-zondag"]
    week = period_from_key("weekly:2026-W43", zone=AMS)
    assert [c.slug for c in offered(db, week) if week.contains(c.released_at)] == ["laat-op-zondag"]
    assert [c.slug for c in offered(db, week.next())] == ["laat-op-zondag", "vroeg-op-maandag"]  # look-back


def test_an_article_released_once_stays_in_its_period(db: Database) -> None:
    release(db, "een", "2026-03-29 00:30")  # 01:30 CET, before the spring change
    assert not mark_for_digest(db, "een", at=utc("2026-03-30 12:00"))
    day = period_from_key("daily:2026-03-29", zone=AMS)
    assert [c.slug for c in offered(db, day)] == ["een"]


def test_the_schedule_makes_yesterdays_digest_due_once_and_skips_one_past_the_late_limit(db: Database) -> None:
    entries = schedule_entries(daily="07:00", weekly="monday 07:00")
    with time_machine.travel(utc("2026-11-25 06:30"), tick=False):  # Wednesday 07:30 CET
        due = due_digests(db, entries, zone=AMS, late_limit=LIMIT, now_at=datetime.now(UTC))
    assert [(d.period.key, d.late, d.skip) for d in due] == [
        ("daily:2026-11-24", timedelta(minutes=30), False),
        ("weekly:2026-W47", timedelta(days=2, minutes=30), True),  # Monday's, the machine was off
    ]
    assert recorded(db, "weekly:2026-W47")["status"] == "skipped"
    again = due_digests(db, entries, zone=AMS, late_limit=LIMIT, now_at=utc("2026-11-25 06:35"))
    assert [d.period.key for d in again] == ["daily:2026-11-24"]  # not made yet; the skip is not repeated


def test_an_empty_schedule_entry_makes_no_digest_due(db: Database) -> None:
    assert schedule_entries(daily="", weekly="") == []


def test_the_plan_gives_each_subscriber_the_period_and_a_newcomer_only_from_their_period(db: Database) -> None:
    with time_machine.travel(utc("2026-11-20 09:00"), tick=False):
        subscribe(db, "oud@example.nl", cadence="daily", confirmed=True, source="cli")
        subscribe(db, "week@example.nl", cadence="weekly", confirmed=True, source="cli")
    release(db, "maandag", "2026-11-23 09:00")
    release(db, "dinsdag", "2026-11-24 09:00")
    with time_machine.travel(utc("2026-11-24 12:00"), tick=False):
        subscribe(db, "nieuw@example.nl", cadence="daily", confirmed=True, source="cli")
    tuesday = period_from_key("daily:2026-11-24", zone=AMS)
    plan = plan_digest(db, tuesday)
    # Without an engine nobody has received anything, so the old subscriber is offered the
    # whole look-back week; the newcomer only the day they joined.
    assert plan.groups == [("maandag", "dinsdag"), ("dinsdag",)]
    assert plan.group_sizes == [1, 1] and plan.recipients == 2
    assert plan.sample == ["oud@example.nl", "nieuw@example.nl"]
    members = db.execute(
        "SELECT s.email, p.grp FROM temp.digest_plan p JOIN subscribers s ON s.id = p.subscriber_id ORDER BY s.id"
    ).fetchall()
    assert members == [("oud@example.nl", 0), ("nieuw@example.nl", 1)]
    assert not db.conn.in_transaction


def record_period(db: Database, key: str, status: str) -> None:
    """A digest_periods row as create_digest or a late skip leaves it."""
    period = period_from_key(key, zone=AMS)
    db.execute(
        "INSERT INTO digest_periods (period_key, kind, start_at, end_at, status, note, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, '', '2026-11-24T06:00:00+00:00', '2026-11-24T06:00:00+00:00')",
        [key, period.kind, period.start.isoformat(), period.end.isoformat(), status],
    )
    db.conn.commit()


def test_a_period_without_its_own_articles_plans_nothing(db: Database) -> None:
    with time_machine.travel(utc("2026-11-20 09:00"), tick=False):
        subscribe(db, "oud@example.nl", cadence="daily", confirmed=True, source="cli")
    release(db, "maandag", "2026-11-23 09:00")
    record_period(db, "daily:2026-11-23", "created")  # Monday's digest went out
    plan = plan_digest(db, period_from_key("daily:2026-11-25", zone=AMS))
    assert [c.slug for c in plan.offered] == ["maandag"]
    assert plan.groups == [] and plan.recipients == 0


@pytest.mark.parametrize("monday", [None, "skipped"])
def test_articles_whose_own_digest_never_went_out_make_a_digest_on_their_own(db: Database, monday: str | None) -> None:
    with time_machine.travel(utc("2026-11-20 09:00"), tick=False):
        subscribe(db, "oud@example.nl", cadence="daily", confirmed=True, source="cli")
    release(db, "maandag", "2026-11-23 09:00")
    if monday:
        record_period(db, "daily:2026-11-23", monday)  # too late, skipped; None: machine was off
    plan = plan_digest(db, period_from_key("daily:2026-11-25", zone=AMS))
    assert plan.groups == [("maandag",)] and plan.recipients == 1


def test_the_digest_command_means_the_last_ended_period_and_refuses_one_still_running() -> None:
    from newsletter.digests.plan import DigestError, period_for_command

    now_at = utc("2026-11-26 12:00")
    assert period_for_command("daily", zone=AMS, now_at=now_at).key == "daily:2026-11-25"
    assert period_for_command("weekly", zone=AMS, now_at=now_at).key == "weekly:2026-W47"
    assert period_for_command("daily", zone=AMS, key="daily:2026-11-20", now_at=now_at).key == "daily:2026-11-20"
    with pytest.raises(DigestError, match="has not ended yet"):
        period_for_command("weekly", zone=AMS, key="weekly:2026-W48", now_at=now_at)
    with pytest.raises(DigestError, match="pass --period daily"):
        period_for_command("weekly", zone=AMS, key="daily:2026-11-20", now_at=now_at)
