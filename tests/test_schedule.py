"""Scheduled sends: stored, listed, cancelled, claimed once when due, skipped when too late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlite_utils import Database

from newsletter.db import open_db
from newsletter.digests.schedule import (
    ScheduleError,
    cancel,
    claim_due,
    list_scheduled,
    mark_sent,
    schedule_send,
)

ARTICLE = """---
title: "Nieuws van de week"
slug: nieuws-van-de-week
---
Een alinea met € en é.
"""
LIMIT = timedelta(hours=12)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_db(tmp_path / "test.db")


@pytest.fixture
def article(tmp_path: Path) -> Path:
    path = tmp_path / "nieuws.md"
    path.write_text(ARTICLE, encoding="utf-8")
    return path


def test_a_scheduled_send_is_stored_with_its_article_and_listed(db: Database, article: Path) -> None:
    with time_machine.travel(utc("2026-11-30 12:00"), tick=False):
        send = schedule_send(db, article, at=utc("2026-12-01 08:00"))
    assert (send.article_slug, send.due_at, send.status) == ("nieuws-van-de-week", utc("2026-12-01 08:00"), "scheduled")
    assert db.execute("SELECT slug FROM articles").fetchall() == [("nieuws-van-de-week",)]
    assert [s.id for s in list_scheduled(db)] == [send.id]


def test_a_time_in_the_past_or_a_second_schedule_of_the_same_article_is_refused(db: Database, article: Path) -> None:
    with time_machine.travel(utc("2026-11-30 12:00"), tick=False):
        with pytest.raises(ScheduleError, match="not in the future"):
            schedule_send(db, article, at=utc("2026-11-30 11:00"))
        first = schedule_send(db, article, at=utc("2026-12-01 08:00"))
        with pytest.raises(ScheduleError, match=f"schedule cancel {first.id}"):
            schedule_send(db, "nieuws-van-de-week", at=utc("2026-12-02 08:00"))


def test_a_cancelled_send_is_never_claimed_and_cannot_be_cancelled_twice(db: Database, article: Path) -> None:
    with time_machine.travel(utc("2026-11-30 12:00"), tick=False):
        send = schedule_send(db, article, at=utc("2026-12-01 08:00"))
    assert cancel(db, send.id).status == "cancelled"
    with pytest.raises(ScheduleError, match="already cancelled"):
        cancel(db, send.id)
    with pytest.raises(ScheduleError, match="no scheduled send 99"):
        cancel(db, 99)
    claim = claim_due(db, late_limit=LIMIT, now_at=utc("2026-12-01 09:00"))
    assert claim.to_send == [] and claim.skipped == []
    assert list_scheduled(db) == []
    assert [s.status for s in list_scheduled(db, include_done=True)] == ["cancelled"]


def test_a_send_is_claimed_once_when_due_and_not_before(db: Database, article: Path) -> None:
    with time_machine.travel(utc("2026-11-30 12:00"), tick=False):
        send = schedule_send(db, article, at=utc("2026-12-01 08:00"))
    assert claim_due(db, late_limit=LIMIT, now_at=utc("2026-12-01 07:59")).to_send == []
    claim = claim_due(db, late_limit=LIMIT, now_at=utc("2026-12-01 08:02"))
    assert [(s.id, s.status, late) for s, late in claim.to_send] == [(send.id, "started", timedelta(minutes=2))]
    mark_sent(db, send.id, campaign_id=7)
    assert claim_due(db, late_limit=LIMIT, now_at=utc("2026-12-01 08:07")).to_send == []
    assert list_scheduled(db, include_done=True)[0].campaign_id == 7


def test_a_send_claimed_by_a_run_that_died_is_claimed_again(db: Database, article: Path) -> None:
    with time_machine.travel(utc("2026-11-30 12:00"), tick=False):
        send = schedule_send(db, article, at=utc("2026-12-01 08:00"))
    claim_due(db, late_limit=LIMIT, now_at=utc("2026-12-01 08:01"))  # and then the run is killed
    # Even past the late limit: its campaign may be half-sent and must be finished.
    again = claim_due(db, late_limit=LIMIT, now_at=utc("2026-12-03 08:01"))
    assert [s.id for s, _ in again.to_send] == [send.id]


def test_a_send_due_while_the_machine_was_off_goes_late_once_or_is_skipped_past_the_limit(
    db: Database, tmp_path: Path
) -> None:
    for slug, due in (("laat", "2026-12-01 08:00"), ("te-laat", "2026-11-30 16:00")):
        path = tmp_path / f"{slug}.md"
        path.write_text(ARTICLE.replace("nieuws-van-de-week", slug), encoding="utf-8")
        with time_machine.travel(utc("2026-11-29 12:00"), tick=False):
            schedule_send(db, path, at=utc(due))
    # The machine comes back on 1 December at 10:00: 2 hours and 18 hours late.
    claim = claim_due(db, late_limit=LIMIT, now_at=utc("2026-12-01 10:00"))
    assert [(s.article_slug, late) for s, late in claim.to_send] == [("laat", timedelta(hours=2))]
    assert [(s.article_slug, s.status) for s, _ in claim.skipped] == [("te-laat", "skipped")]
    assert "18 h late, more than schedule.late_limit (12 h)" in claim.skipped[0][0].note
    later = claim_due(db, late_limit=LIMIT, now_at=utc("2026-12-01 10:05"))
    assert later.skipped == []  # the warning is given once
