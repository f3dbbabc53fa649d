"""Classify SMTP replies and connection faults into delivery outcomes (STANDARDS.md).

Pure functions, no I/O: 2xx sent; 4xx and connection faults deferred; 5xx failed; 5.1.x and
5.2.1 hard bounces that suppress the subscriber; 421 and 4.7.x rate signals that slow the
whole pool down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiosmtplib

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
# Postfix: "2.0.0 Ok: queued as 4Xyz"; Haraka, Exim and services: "id=...", "OK id=...".
_QUEUE_ID = re.compile(r"(?:queued as|\bid=|\bid:)\s*<?([A-Za-z0-9._@-]+)", re.IGNORECASE)

# RFC 3463 X.1.7 and X.1.8 are about the sender's address, not the recipient's.
_SENDER_CODES = ("5.1.7", "5.1.8")

SENT = "sent"
DEFERRED = "deferred"
FAILED = "failed"
BOUNCED = "bounced"


@dataclass(frozen=True)
class Outcome:
    """What one SMTP transaction means for its delivery row and for the pool."""

    status: str  # sent, deferred, failed or bounced
    code: int | None
    enhanced: str | None
    text: str
    queue_id: str | None = None
    slow_down: bool = False  # a rate signal: the whole pool backs off
    suppress: bool = False  # a hard bounce: the subscriber is never mailed again
    drop_connection: bool = False  # the connection must not carry another message


def enhanced_code(text: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of a reply text, if any."""
    match = _ENHANCED.match(text)
    return match.group(1) if match else None


def queue_id(text: str) -> str | None:
    """The relay's queue id from a 250 reply to DATA, if it gives one."""
    match = _QUEUE_ID.search(text)
    return match.group(1) if match else None


def classify_reply(code: int, text: str, *, sender_refused: bool = False) -> Outcome:
    """The outcome of a final reply `code` `text` to one message.

    `sender_refused`: the reply refused MAIL FROM, our envelope sender, so whatever its
    enhanced code says, it is no verdict on the recipient's address.
    """
    text = " ".join(text.split())[:500]
    enhanced = enhanced_code(text)
    if 200 <= code < 300:
        return Outcome(SENT, code, enhanced, text, queue_id=queue_id(text))
    if 400 <= code < 500:
        # 421 means the server is closing the connection and wants fewer of them;
        # 4.7.x (4.7.28 at Gmail, 4.7.0 throttling, 4.7.1 greylisting) are about the
        # sender's behaviour, so every connection slows down, not just this recipient.
        slow = code == 421 or (enhanced or "").startswith("4.7.")
        return Outcome(DEFERRED, code, enhanced, text, slow_down=slow, drop_connection=code == 421)
    if 500 <= code < 600:
        hard = not sender_refused and enhanced not in _SENDER_CODES and (
            (enhanced or "").startswith("5.1.") or enhanced == "5.2.1"
        )
        # 5.7.x is a policy or authentication rejection of the sender, and a refused MAIL
        # FROM (5.1.7, 5.1.8: our bounce address) is ours too: fail the message, never
        # blame (suppress) the recipient, or one bad envelope setting would suppress the
        # whole list.
        return Outcome(BOUNCED if hard else FAILED, code, enhanced, text, suppress=hard)
    return Outcome(DEFERRED, code, enhanced, f"unexpected reply: {text}", drop_connection=True)


def classify_exception(exc: BaseException) -> Outcome:
    """The outcome of a transaction that raised `exc` instead of returning a 250."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refused = exc.recipients[0]
        return classify_reply(refused.code, refused.message)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return Outcome(
            DEFERRED, None, None,
            "timed out waiting for the relay (outcome unknown; retried with the same Message-ID)",
            drop_connection=True,
        )
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError | OSError):
        return Outcome(
            DEFERRED, None, None,
            f"connection lost: {exc or type(exc).__name__} "
            "(outcome unknown; retried with the same Message-ID)",
            drop_connection=True,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_reply(
            exc.code, exc.message, sender_refused=isinstance(exc, aiosmtplib.SMTPSenderRefused)
        )
    # Anything else (an address the client refuses to put in an envelope, a bug) would
    # fail the same way on every retry.
    return Outcome(FAILED, None, None, f"not sent: {type(exc).__name__}: {exc}", drop_connection=True)
