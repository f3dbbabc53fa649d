"""Daily and ISO-week periods and schedule entries in Europe/Amsterdam, across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine

from newsletter.periods import (
    PeriodError,
    ScheduleEntry,
    format_local,
    parse_local_time,
    parse_schedule,
    period_at,
    period_ended_by,
    period_from_key,
    period_of_day,
)

AMS = "Europe/Amsterdam"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_winter_day_runs_from_local_midnight_to_local_midnight_in_utc() -> None:
    day = period_of_day("daily", date(2026, 11, 26), zone=AMS)
    assert day.key == "daily:2026-11-26"
    assert day.start == utc("2026-11-25 23:00")
    assert day.end == utc("2026-11-26 23:00")


def test_the_day_the_clocks_go_forward_is_23_hours_long() -> None:
    day = period_of_day("daily", date(2026, 3, 29), zone=AMS)
    assert day.start == utc("2026-03-28 23:00")
    assert day.end == utc("2026-03-29 22:00")
    assert day.end - day.start == timedelta(hours=23)
    assert day.next().start == day.end


def test_the_day_the_clocks_go_back_is_25_hours_long() -> None:
    day = period_of_day("daily", date(2026, 10, 25), zone=AMS)
    assert day.start == utc("2026-10-24 22:00")
    assert day.end == utc("2026-10-25 23:00")
    assert day.end - day.start == timedelta(hours=25)
    assert day.previous().end == day.start


def test_weeks_across_dst_changes_are_167_and_169_hours_and_keyed_by_iso_week() -> None:
    spring = period_from_key("weekly:2026-W13", zone=AMS)
    assert spring.first_day == date(2026, 3, 23)
    assert spring.end - spring.start == timedelta(hours=167)
    autumn = period_from_key("weekly:2026-W43", zone=AMS)
    assert autumn.first_day == date(2026, 10, 19)
    assert autumn.end - autumn.start == timedelta(hours=169)
    assert autumn.next().key == "weekly:2026-W44"
    assert autumn.next().start == autumn.end


def test_the_iso_week_of_new_year_belongs_to_its_iso_year() -> None:
    week = period_at("weekly", utc("2027-01-01 12:00"), zone=AMS)
    assert week.key == "weekly:2026-W53"
    assert week.first_day == date(2026, 12, 28)
    assert period_from_key(week.key, zone=AMS) == week


def test_an_instant_belongs_to_the_local_day_not_the_utc_day() -> None:
    # 23:30 UTC on 28 March is already 00:30 on the 29th in Amsterdam.
    assert period_at("daily", utc("2026-03-28 23:30"), zone=AMS).key == "daily:2026-03-29"
    # 22:30 UTC on 25 October is 23:30 CET, still the 25th.
    assert period_at("daily", utc("2026-10-25 22:30"), zone=AMS).key == "daily:2026-10-25"


@pytest.mark.parametrize(
    ("moment", "daily", "weekly"),
    [
        ("2026-03-29 22:00", "daily:2026-03-29", "weekly:2026-W13"),  # 00:00 CEST, Monday 30 March
        ("2026-03-29 21:59", "daily:2026-03-28", "weekly:2026-W12"),
        ("2026-10-25 23:00", "daily:2026-10-25", "weekly:2026-W43"),  # 00:00 CET, Monday 26 October
        ("2026-10-25 22:59", "daily:2026-10-24", "weekly:2026-W42"),
    ],
)
def test_the_period_that_just_ended_follows_the_local_clock(moment: str, daily: str, weekly: str) -> None:
    with time_machine.travel(utc(moment), tick=False):
        now = datetime.now(UTC)
        assert period_ended_by("daily", now, zone=AMS).key == daily
        assert period_ended_by("weekly", now, zone=AMS).key == weekly


def test_a_daily_07_00_digest_goes_out_at_06_00_utc_in_winter_and_05_00_utc_in_summer() -> None:
    entry = parse_schedule("daily", "07:00")
    assert entry == ScheduleEntry(kind="daily", at=time(7, 0))
    with time_machine.travel(utc("2026-03-29 05:30"), tick=False):
        occurrence = entry.last_occurrence(datetime.now(UTC), zone=AMS)
    assert occurrence == utc("2026-03-29 05:00")  # 07:00 CEST
    assert entry.period_for(occurrence, zone=AMS).key == "daily:2026-03-28"
    with time_machine.travel(utc("2026-03-29 04:59"), tick=False):
        occurrence = entry.last_occurrence(datetime.now(UTC), zone=AMS)
    assert occurrence == utc("2026-03-28 06:00")  # 07:00 CET the day before
    assert entry.period_for(occurrence, zone=AMS).key == "daily:2026-03-27"


def test_a_weekly_monday_digest_covers_the_iso_week_before() -> None:
    entry = parse_schedule("weekly", "Monday 07:00")
    assert entry is not None and entry.weekday == 0
    with time_machine.travel(utc("2026-10-28 12:00"), tick=False):  # a Wednesday
        occurrence = entry.last_occurrence(datetime.now(UTC), zone=AMS)
    assert occurrence == utc("2026-10-26 06:00")  # Monday 07:00 CET, the day after the change
    period = entry.period_for(occurrence, zone=AMS)
    assert period.key == "weekly:2026-W43"
    assert period.end == utc("2026-10-25 23:00")


def test_a_schedule_time_skipped_by_dst_happens_once_an_hour_later() -> None:
    entry = parse_schedule("daily", "02:30")
    assert entry is not None
    assert entry.occurrence_on(date(2026, 3, 29), zone=AMS) == utc("2026-03-29 01:30")  # 03:30 CEST
    # The repeated 02:30 of 25 October happens once, the first time.
    assert entry.occurrence_on(date(2026, 10, 25), zone=AMS) == utc("2026-10-25 00:30")


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("daily", "7 o'clock", "no valid 24-hour time"),
        ("daily", "25:00", "no valid 24-hour time"),
        ("weekly", "07:00", "not a weekday and a time"),
        ("weekly", "funday 07:00", "not a weekday and a time"),
        ("hourly", "07:00", "daily or weekly"),
    ],
)
def test_a_bad_schedule_entry_says_how_to_write_it(kind: str, text: str, message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        parse_schedule(kind, text)


def test_an_empty_schedule_entry_means_no_digest() -> None:
    assert parse_schedule("weekly", "  ") is None


def test_a_local_time_is_read_in_the_zone_and_a_skipped_one_is_refused() -> None:
    assert parse_local_time("2026-12-01 09:00", zone=AMS) == utc("2026-12-01 08:00")
    assert parse_local_time("2026-07-01T09:00", zone=AMS) == utc("2026-07-01 07:00")
    assert parse_local_time("2026-07-01 09:00+00:00", zone=AMS) == utc("2026-07-01 09:00")
    with pytest.raises(PeriodError, match="does not exist in Europe/Amsterdam"):
        parse_local_time("2026-03-29 02:30", zone=AMS)
    with pytest.raises(PeriodError, match="2026-12-01 09:00"):
        parse_local_time("tomorrow", zone=AMS)
    assert format_local(utc("2026-12-01 08:00"), zone=AMS) == "2026-12-01 09:00 +01:00"


def test_a_bad_period_key_is_refused() -> None:
    with pytest.raises(PeriodError, match="weekly:2026-W48"):
        period_from_key("2026-48", zone=AMS)
    with pytest.raises(PeriodError, match="not a real day or ISO week"):
        period_from_key("weekly:2026-W54", zone=AMS)
