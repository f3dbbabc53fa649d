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
# The replies that ask the whole pool to slow down (STANDARDS.md): any 421, and the
# providers' throttling codes at any stage (Gmail 4.7.28, Microsoft 4.7.650 and 4.5.3).
# Other 4xx, greylisting (450 4.2.0, 451 4.7.1) and a full mailbox (452 4.2.2) among
# them, are about one recipient: that one is deferred, the pool goes on at full speed.
RATE_LIMIT_CODES = frozenset({"4.7.28", "4.7.650", "4.5.3"})

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
    timed_out: bool = False  # no reply in time: the outcome is unknown
    # A reply about our sender or session (a login or TLS required, relaying denied, our
    # envelope sender refused), not about the recipient: every message would get it. The
    # run stops and the row stays queued; the text says which setting to fix.
    run_error: str | None = None


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
    fix = session_fault(code, text, sender_refused=sender_refused)
    if fix is not None:
        return Outcome(FAILED if code >= 500 else DEFERRED, code, enhanced, text, run_error=fix,
                       drop_connection=True)
    if 400 <= code < 500:
        # 421: the server is closing the connection and wants fewer of them; the rate
        # codes are the providers' "too fast". Both slow every connection down.
        slow = code == 421 or enhanced in RATE_LIMIT_CODES
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


def session_fault(code: int, text: str, *, sender_refused: bool = False) -> str | None:
    """What to fix when reply `code` `text` is about our session or sender, else None.

    `sender_refused`: the reply refused MAIL FROM. A permanent refusal there can never be
    about a recipient (none was named yet); a 530 is a login or TLS demand at any stage.
    """
    if code < 500:
        return None
    lowered = text.lower()
    if "starttls" in lowered:
        return (
            "the relay wants TLS before mail: use smtp:// (STARTTLS) or smtps:// (implicit "
            "TLS) in smtp.url instead of smtp+plain://"
        )
    if code == 530 or "authentication" in lowered:
        return (
            "the relay wants a login: set smtp.username and NEWSLETTER_SMTP_PASSWORD (or "
            "smtp.password_file), and use smtp:// or smtps:// in smtp.url"
        )
    if "relay" in lowered and ("denied" in lowered or "not permitted" in lowered):
        return (
            "the relay does not relay mail for us: check smtp.url (is it the right relay?) "
            "and the login (smtp.username, NEWSLETTER_SMTP_PASSWORD)"
        )
    if sender_refused and (enhanced_code(text) == "5.3.4" or "size" in lowered):
        return (
            "the message is larger than the relay accepts: shorten the article, and set "
            "sending.max_message_mb to the relay's limit"
        )
    if sender_refused or enhanced_code(text) in _SENDER_CODES:
        return (
            "the relay refused our envelope sender: check sender.envelope (or sender.address) "
            "and that the relay accepts mail from that domain"
        )
    return None


def classify_exception(exc: BaseException) -> Outcome:
    """The outcome of a transaction that raised `exc` instead of returning a 250."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refused = exc.recipients[0]
        return classify_reply(refused.code, refused.message)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return Outcome(
            DEFERRED, None, None,
            "timed out waiting for the relay (outcome unknown; retried with the same Message-ID)",
            drop_connection=True, timed_out=True,
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
