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
"""

from __future__ import annotations

import functools
import re
from typing import Any

import aiosmtplib.email as _email
import aiosmtplib.protocol as _protocol
import aiosmtplib.smtp as _smtp

_ORIGINAL_NORMALIZE = _protocol.normalize_message_line_endings
_ORIGINAL_PERIOD: re.Pattern[bytes] = _protocol.PERIOD_REGEX
_ORIGINAL_PARSE = _email.parse_address
_ORIGINAL_QUOTE = _email.quote_address


# sendmail() parses the envelope sender and the recipient twice each (to check them, then
# for MAIL and RCPT), with email.utils.parseaddr: a pure function, about 25 µs a call.
# Remembering the last addresses makes three of the four calls per message free.
@functools.lru_cache(maxsize=4096)
def parse_address(address: str) -> str:
    """aiosmtplib's parse_address, remembered (a ValueError is raised again every time)."""
    return _ORIGINAL_PARSE(address)


def quote_address(address: str) -> str:
    """aiosmtplib's quote_address over the remembered parse_address."""
    return f"<{parse_address(address)}>"


def normalize_message_line_endings(message: bytes) -> bytes:
    """aiosmtplib's normalize_message_line_endings, without a copy when already normal."""
    crlf = message.count(b"\r\n")
    if message.count(b"\n") == crlf and message.count(b"\r") == crlf and message.endswith(b"\r\n"):
        return message
    return _ORIGINAL_NORMALIZE(message)


class _PeriodPattern:
    """Stands in for PERIOD_REGEX: the same dot-stuffing, done by bytes.replace."""

    pattern = _ORIGINAL_PERIOD.pattern
    flags = _ORIGINAL_PERIOD.flags

    def sub(self, repl: Any, string: bytes, count: int = 0) -> bytes:
        if repl != b".." or count or not isinstance(string, bytes):
            return _ORIGINAL_PERIOD.sub(repl, string, count)
        # `^` (multiline) matches at the start and right after each "\n", nowhere else, so
        # a plain replace does the same in C at memory speed. HTML parts hit this often:
        # their CSS puts ".class" at the start of lines.
        if string.startswith(b"."):
            return b"." + string.replace(b"\n.", b"\n..")
        return string.replace(b"\n.", b"\n..")

    def __getattr__(self, name: str) -> Any:
        return getattr(_ORIGINAL_PERIOD, name)


def install() -> None:
    """Put the fast paths in place (idempotent)."""
    if _protocol.normalize_message_line_endings is _ORIGINAL_NORMALIZE:
        _protocol.normalize_message_line_endings = normalize_message_line_endings
    if _protocol.PERIOD_REGEX is _ORIGINAL_PERIOD:
        _protocol.PERIOD_REGEX = _PeriodPattern()  # type: ignore[assignment]
    if _smtp.parse_address is _ORIGINAL_PARSE:
        _smtp.parse_address = parse_address
    if _smtp.quote_address is _ORIGINAL_QUOTE:
        _smtp.quote_address = quote_address


def originals() -> dict[str, Any]:
    """aiosmtplib's own functions, for the tests that compare outputs."""
    return {
        "normalize": _ORIGINAL_NORMALIZE,
        "period": _ORIGINAL_PERIOD,
        "parse_address": _ORIGINAL_PARSE,
        "quote_address": _ORIGINAL_QUOTE,
    }
