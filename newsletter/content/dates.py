"""Dates and digest periods in words, in the reader's language: `dinsdag 1 december 2026`,
`7 t/m 13 december 2026`, `28 December 2026 – 3 January 2027`.

The month and weekday names come from Babel (CLDR), so every language Babel knows gets
them right without tables of our own; the order of the words and the words around them
come from strings.toml (keys `date`, `period_day`, `period_week`, `period_week_months`,
`period_week_years`), so a publisher can change them. In those patterns {weekday}, {day},
{month} and {year} name the parts of one day, and {start_...} / {end_...} the two ends of
a range.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import date

from babel import Locale, UnknownLocaleError
from babel.dates import format_date

FALLBACK_LOCALE = "en"
_FIELD_RE = re.compile(r"\{(\w+)\}")


@functools.lru_cache(maxsize=32)
def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(FALLBACK_LOCALE)


def day_parts(day: date, *, language: str) -> dict[str, str]:
    """The words of one day: weekday, day (no leading zero), month and year, in `language`."""
    locale = _locale(language)
    return {
        "weekday": format_date(day, "EEEE", locale=locale),
        "day": str(day.day),
        "month": format_date(day, "MMMM", locale=locale),
        "year": str(day.year),
    }


def _fill(pattern: str, values: Mapping[str, str]) -> str:
    # Unknown fields stay as written, as in render's strings (no str.format surprises).
    return _FIELD_RE.sub(lambda m: values.get(m.group(1), m.group(0)), pattern)


def date_words(day: date, *, language: str, strings: Mapping[str, str]) -> str:
    """One date as a reader writes it: strings['date'], e.g. `1 december 2026`."""
    return _fill(strings["date"], day_parts(day, language=language))


def day_words(day: date, *, language: str, strings: Mapping[str, str]) -> str:
    """A daily digest's day: strings['period_day'], e.g. `dinsdag 1 december 2026`."""
    return _fill(strings["period_day"], day_parts(day, language=language))


def range_words(first: date, last: date, *, language: str, strings: Mapping[str, str]) -> str:
    """A span of days: `7 t/m 13 december 2026`; the month (and year) show at both ends
    only when the span crosses one: `30 november t/m 6 december 2026`,
    `28 december 2026 t/m 3 januari 2027`."""
    if first.year != last.year:
        key = "period_week_years"
    elif first.month != last.month:
        key = "period_week_months"
    else:
        key = "period_week"
    values = {f"start_{k}": v for k, v in day_parts(first, language=language).items()}
    values.update({f"end_{k}": v for k, v in day_parts(last, language=language).items()})
    return _fill(strings[key], values)


__all__ = ["date_words", "day_parts", "day_words", "range_words"]
