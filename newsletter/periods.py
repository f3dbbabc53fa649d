"""Digest periods and schedule times, in the publication's time zone.

A period is a local calendar day or ISO week, kept as [start, end) in UTC computed from the
local midnights that bound it. A daylight-saving change therefore makes a 23- or 25-hour
day (a 167- or 169-hour week) instead of shifting every later boundary by an hour.

A schedule entry ("daily 07:00", "weekly monday 07:00") says when a digest goes out; the
digest sent at an occurrence covers the last period that had ended by then (the day
before, the ISO week before), so a digest never covers a period still in progress.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import NewsletterError

KINDS = ("daily", "weekly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_KEY_RE = re.compile(r"^(?:daily:(?P<day>\d{4}-\d{2}-\d{2})|weekly:(?P<year>\d{4})-W(?P<week>\d{2}))$")
ARCHIVE_PREFIX = "digest-"
_TIME_RE = re.compile(r"^(?P<hour>\d{1,2}):(?P<minute>\d{2})$")


class PeriodError(NewsletterError, ValueError):
    """A period, schedule entry or time cannot be understood."""


def zone_of(name: str | tzinfo) -> tzinfo:
    """The time zone named `name` (a tzinfo passes through)."""
    if isinstance(name, tzinfo):
        return name
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"{name!r} is not a time zone name such as Europe/Amsterdam") from None


def local_midnight(day: date, zone: str | tzinfo) -> datetime:
    """The UTC instant at which local day `day` begins.

    Where a zone skips midnight (a DST gap at 00:00), zoneinfo reads the missing time with
    the offset from before the gap, which is exactly the instant the day begins.
    """
    return datetime.combine(day, time(0), tzinfo=zone_of(zone)).astimezone(UTC)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise PeriodError(f"{at.isoformat()} has no time zone; pass an aware datetime")
    return at.astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """One daily or weekly digest period: local days [first_day, first_day + length)."""

    kind: str
    first_day: date
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    zone: str

    @property
    def key(self) -> str:
        """A stable name: daily:2026-11-26 or weekly:2026-W48 (ISO year and week)."""
        if self.kind == "daily":
            return f"daily:{self.first_day.isoformat()}"
        year, week, _ = self.first_day.isocalendar()
        return f"weekly:{year}-W{week:02d}"

    @property
    def archive_key(self) -> str:
        """The digest's name in web addresses: digest-2026-W48 or digest-2026-11-26."""
        return ARCHIVE_PREFIX + self.key.split(":", 1)[1]

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=0 if self.kind == "daily" else 6)

    @property
    def label(self) -> str:
        """A short human label: 2026-11-26, or 2026-W48 (2026-11-23 to 2026-11-29)."""
        if self.kind == "daily":
            return self.first_day.isoformat()
        return f"{self.key.split(':', 1)[1]} ({self.first_day.isoformat()} to {self.last_day.isoformat()})"

    def contains(self, at: datetime) -> bool:
        return self.start <= _utc(at) < self.end

    def previous(self) -> Period:
        step = timedelta(days=1 if self.kind == "daily" else 7)
        return period_of_day(self.kind, self.first_day - step, zone=self.zone)

    def next(self) -> Period:
        step = timedelta(days=1 if self.kind == "daily" else 7)
        return period_of_day(self.kind, self.first_day + step, zone=self.zone)


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise PeriodError(f"the period must be daily or weekly, not {kind!r}")
    return kind


def _zone_name(zone: str | tzinfo) -> str:
    return zone if isinstance(zone, str) else str(zone)


def period_of_day(kind: str, day: date, *, zone: str | tzinfo) -> Period:
    """The period of `kind` that contains local date `day`."""
    _check_kind(kind)
    first = day if kind == "daily" else day - timedelta(days=day.weekday())
    length = timedelta(days=1 if kind == "daily" else 7)
    return Period(
        kind=kind,
        first_day=first,
        start=local_midnight(first, zone),
        end=local_midnight(first + length, zone),
        zone=_zone_name(zone),
    )


def period_at(kind: str, at: datetime, *, zone: str | tzinfo) -> Period:
    """The period of `kind` that contains the instant `at` (an aware datetime)."""
    local_day = _utc(at).astimezone(zone_of(zone)).date()
    return period_of_day(kind, local_day, zone=zone)


def period_ended_by(kind: str, at: datetime, *, zone: str | tzinfo) -> Period:
    """The latest period of `kind` that had ended at instant `at` (end <= at)."""
    return period_at(kind, at, zone=zone).previous()


def period_from_key(key: str, *, zone: str | tzinfo) -> Period:
    """The period named by a key such as daily:2026-11-26 or weekly:2026-W48."""
    match = _KEY_RE.match(key.strip())
    if match is None:
        raise PeriodError(f"{key!r} is not a period; write daily:2026-11-26 or weekly:2026-W48")
    try:
        if match["day"]:
            return period_of_day("daily", date.fromisoformat(match["day"]), zone=zone)
        day = date.fromisocalendar(int(match["year"]), int(match["week"]), 1)
    except ValueError as exc:
        raise PeriodError(f"{key!r} is not a real day or ISO week: {exc}") from None
    return period_of_day("weekly", day, zone=zone)


def period_from_archive_key(key: str, *, zone: str | tzinfo) -> Period:
    """The period of a digest's web name (Period.archive_key): digest-2026-W48, digest-2026-11-26."""
    name = key.strip()
    if not name.startswith(ARCHIVE_PREFIX):
        raise PeriodError(f"{key!r} is not a digest; its name looks like digest-2026-W48 or digest-2026-11-26")
    rest = name.removeprefix(ARCHIVE_PREFIX)
    return period_from_key(("weekly:" if "-W" in rest else "daily:") + rest, zone=zone)


@dataclass(frozen=True)
class ScheduleEntry:
    """When a digest goes out: every day at a local time, or one weekday at a local time."""

    kind: str
    at: time
    weekday: int | None = None  # 0 is Monday; only for weekly

    def __str__(self) -> str:
        clock = self.at.strftime("%H:%M")
        if self.kind == "weekly" and self.weekday is not None:
            return f"weekly {WEEKDAYS[self.weekday]} {clock}"
        return f"daily {clock}"

    def occurrence_on(self, day: date, *, zone: str | tzinfo) -> datetime:
        """The UTC instant of this entry's time on local date `day`.

        A time that does not exist that day (02:30 when the clocks go forward) happens an
        hour later by the wall clock; one that happens twice (when they go back) happens
        the first time. Either way it happens exactly once.
        """
        return datetime.combine(day, self.at, tzinfo=zone_of(zone)).astimezone(UTC)

    def last_occurrence(self, at: datetime, *, zone: str | tzinfo) -> datetime:
        """The latest occurrence at or before instant `at`."""
        at = _utc(at)
        day = at.astimezone(zone_of(zone)).date()
        for back in range(0, 9):
            candidate_day = day - timedelta(days=back)
            if self.kind == "weekly" and candidate_day.weekday() != self.weekday:
                continue
            occurrence = self.occurrence_on(candidate_day, zone=zone)
            if occurrence <= at:
                return occurrence
        raise AssertionError("unreachable: a weekly entry occurs within 8 days")  # pragma: no cover

    def period_for(self, occurrence: datetime, *, zone: str | tzinfo) -> Period:
        """The period whose digest goes out at `occurrence`: the last one ended by then."""
        return period_ended_by(self.kind, occurrence, zone=zone)


def parse_schedule(kind: str, text: str) -> ScheduleEntry | None:
    """A schedule entry from newsletter.toml: daily "07:00", weekly "monday 07:00".

    An empty value means no scheduled digest of that kind (None).
    """
    _check_kind(kind)
    text = " ".join(text.strip().lower().split())
    if not text:
        return None
    weekday: int | None = None
    clock = text
    if kind == "weekly":
        day_name, _, clock = text.partition(" ")
        matches = [i for i, name in enumerate(WEEKDAYS) if len(day_name) >= 3 and name.startswith(day_name)]
        if len(matches) != 1 or not clock:
            raise PeriodError(
                f"schedule.weekly {text!r} is not a weekday and a time; write it like "
                "\"monday 07:00\" (or leave it empty for no weekly digest)"
            )
        weekday = matches[0]
    match = _TIME_RE.match(clock)
    if match is None or int(match["hour"]) > 23 or int(match["minute"]) > 59:
        example = "monday 07:00" if kind == "weekly" else "07:00"
        raise PeriodError(
            f"schedule.{kind} {text!r} has no valid 24-hour time; write it like \"{example}\" "
            f"(or leave it empty for no {kind} digest)"
        )
    return ScheduleEntry(kind=kind, at=time(int(match["hour"]), int(match["minute"])), weekday=weekday)


def parse_local_time(text: str, *, zone: str | tzinfo) -> datetime:
    """A moment the user typed ("2026-12-01 09:00", or ISO 8601 with an offset), in UTC.

    Without an offset it is wall-clock time in `zone`. A wall-clock time that does not
    exist there (skipped when the clocks go forward) is refused rather than guessed.
    """
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PeriodError(
            f"{text!r} is not a date and time; write it like \"2026-12-01 09:00\""
        ) from None
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    local_zone = zone_of(zone)
    aware = parsed.replace(tzinfo=local_zone)
    if aware.astimezone(UTC).astimezone(local_zone).replace(tzinfo=None) != parsed:
        raise PeriodError(
            f"{value} does not exist in {_zone_name(zone)}: the clocks skip that hour "
            "(daylight saving time); pick a time outside it"
        )
    return aware.astimezone(UTC)


def format_local(at: datetime, *, zone: str | tzinfo) -> str:
    """An instant as local wall-clock time with its offset, for people: 2026-12-01 09:00 +01:00."""
    local = _utc(at).astimezone(zone_of(zone))
    offset = local.strftime("%z")
    return f"{local.strftime('%Y-%m-%d %H:%M')} {offset[:3]}:{offset[3:]}"


__all__ = [
    "ARCHIVE_PREFIX",
    "KINDS",
    "Period",
    "PeriodError",
    "ScheduleEntry",
    "format_local",
    "local_midnight",
    "parse_local_time",
    "parse_schedule",
    "period_at",
    "period_ended_by",
    "period_from_archive_key",
    "period_from_key",
    "period_of_day",
    "zone_of",
]
