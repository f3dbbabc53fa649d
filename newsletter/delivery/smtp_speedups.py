"""Fast paths for aiosmtplib's DATA preparation that produce exactly the same bytes.

Before DATA, aiosmtplib runs two regular expressions over the whole message: one turns lone
CR and LF into CRLF, one doubles a dot at the start of a line (dot-stuffing, RFC 5321
4.5.2). On a 20 KB newsletter they cost about 270 µs, more than half of the sender's CPU
per message. Line ends: message.py's bytes are CRLF already, which three counts at C speed
confirm (otherwise the original code runs). Dot-stuffing: the pattern matches only at the
start and right after a line feed, so bytes.replace does the same work at memory speed.
It also parses each address twice; parse_address is pure, so it is remembered. The output
is identical in every case (tests/test_smtp_fastpath.py checks it against the originals),
so installing this changes speed, never bytes.

Nothing happens at import: `install()` (called once by each Pool) first checks that
aiosmtplib's internals are what these fast paths replace (names, the pattern, behaviour on
a few samples, the DATA code still using them). When they are not, it leaves aiosmtplib's
own code in place and says why, so a new aiosmtplib makes sending slower, never wrong.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import aiosmtplib.protocol as _protocol
import aiosmtplib.smtp as _smtp

_EXPECTED_PERIOD = rb"(?m)^\."
# aiosmtplib's own objects, kept when they are replaced (the fast paths fall back on them).
_STOCK: dict[str, Any] = {}


@functools.lru_cache(maxsize=4096)
def parse_address(address: str) -> str:
    """aiosmtplib's parse_address, remembered (a ValueError is raised again every time).

    sendmail() parses the envelope sender and the recipient twice each (to check them,
    then for MAIL and RCPT), with email.utils.parseaddr: a pure function, about 25 µs a
    call. Remembering the last addresses makes three of the four calls per message free.
    """
    result: str = _stock("parse_address")(address)
    return result


def quote_address(address: str) -> str:
    """aiosmtplib's quote_address over the remembered parse_address."""
    return f"<{parse_address(address)}>"


def normalize_message_line_endings(message: bytes) -> bytes:
    """aiosmtplib's normalize_message_line_endings, without a copy when already normal."""
    crlf = message.count(b"\r\n")
    if message.count(b"\n") == crlf and message.count(b"\r") == crlf and message.endswith(b"\r\n"):
        return message
    result: bytes = _stock("normalize")(message)
    return result


class _PeriodPattern:
    """Stands in for PERIOD_REGEX: the same dot-stuffing, done by bytes.replace."""

    def __init__(self, original: re.Pattern[bytes] | None = None) -> None:
        self.original: re.Pattern[bytes] = original or _stock("period")
        self.pattern = self.original.pattern
        self.flags = self.original.flags

    def sub(self, repl: Any, string: bytes, count: int = 0) -> bytes:
        if repl != b".." or count or not isinstance(string, bytes):
            return self.original.sub(repl, string, count)
        # `^` (multiline) matches at the start and right after each "\n", nowhere else, so
        # a plain replace does the same in C at memory speed. HTML parts hit this often:
        # their CSS puts ".class" at the start of lines.
        if string.startswith(b"."):
            return b"." + string.replace(b"\n.", b"\n..")
        return string.replace(b"\n.", b"\n..")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def _stock(name: str) -> Any:
    """aiosmtplib's own `name` (normalize, period, parse_address, quote_address)."""
    value = _STOCK.get(name)
    return value if value is not None else originals()[name]


def check() -> str | None:
    """Why install() would leave aiosmtplib's own code in place, or None (installs nothing)."""
    return _problem(originals())


def originals() -> dict[str, Any]:
    """aiosmtplib's own objects (the ones in place, or the ones the fast paths replaced)."""
    current: dict[str, Any] = {
        "normalize": getattr(_protocol, "normalize_message_line_endings", None),
        "period": getattr(_protocol, "PERIOD_REGEX", None),
        "parse_address": getattr(_smtp, "parse_address", None),
        "quote_address": getattr(_smtp, "quote_address", None),
    }
    ours: dict[str, Callable[..., Any]] = {
        "normalize": normalize_message_line_endings,
        "parse_address": parse_address,
        "quote_address": quote_address,
    }
    for name, value in current.items():
        if isinstance(value, _PeriodPattern):
            current[name] = value.original
        elif value is not None and value is ours.get(name):
            current[name] = _STOCK[name]
    return current


def _problem(stock: dict[str, Any]) -> str | None:
    """Why the fast paths would not do what aiosmtplib does, or None when they would."""
    missing = [name for name, value in stock.items() if value is None]
    if missing:
        return f"aiosmtplib has no {', '.join(missing)} any more"
    period = stock["period"]
    if not isinstance(period, re.Pattern) or period.pattern != _EXPECTED_PERIOD:
        return f"aiosmtplib's PERIOD_REGEX is {period!r}, not {_EXPECTED_PERIOD!r}"
    data_code = getattr(getattr(_protocol, "SMTPProtocol", None), "execute_data_command", None)
    names = getattr(getattr(data_code, "__code__", None), "co_names", ())
    if "normalize_message_line_endings" not in names or "PERIOD_REGEX" not in names:
        return "aiosmtplib's DATA code no longer uses normalize_message_line_endings and PERIOD_REGEX"
    try:
        samples_agree = (
            stock["normalize"](b"a\r\nb\r\n") == b"a\r\nb\r\n"
            and stock["normalize"](b"a\nb") == b"a\r\nb\r\n"
            and stock["parse_address"]("Ann <ann@example.nl>") == "ann@example.nl"
            and stock["quote_address"]("ann@example.nl") == "<ann@example.nl>"
        )
    except Exception as exc:  # noqa: BLE001 - any surprise means: keep aiosmtplib's own code
        return f"aiosmtplib's internals behave differently ({type(exc).__name__}: {exc})"
    if not samples_agree:
        return "aiosmtplib's line-end or address functions give other results than the fast paths expect"
    return None


def install() -> str | None:
    """Put the fast paths in place if aiosmtplib is what they expect (idempotent).

    Returns None when they are in place, or why aiosmtplib's own code is used instead
    (then any fast path installed before is taken out again).
    """
    stock = originals()
    problem = _problem(stock)
    if problem is not None:
        _put(stock)
        return problem
    if stock["parse_address"] is not _STOCK.get("parse_address"):
        parse_address.cache_clear()  # results of another parse function
    _STOCK.update(stock)
    _put({
        "normalize": normalize_message_line_endings,
        "period": _PeriodPattern(stock["period"]),
        "parse_address": parse_address,
        "quote_address": quote_address,
    })
    return None


def _put(values: dict[str, Any]) -> None:
    """Set aiosmtplib's module globals (only those that exist, and only if they differ)."""
    targets = {
        "normalize": (_protocol, "normalize_message_line_endings"),
        "period": (_protocol, "PERIOD_REGEX"),
        "parse_address": (_smtp, "parse_address"),
        "quote_address": (_smtp, "quote_address"),
    }
    for name, (module, attribute) in targets.items():
        value = values.get(name)
        if value is None or not hasattr(module, attribute):
            continue
        current = getattr(module, attribute)
        if current is value or (isinstance(current, _PeriodPattern) and isinstance(value, _PeriodPattern)):
            continue
        setattr(module, attribute, value)
