"""Read one returned message: what it is, and which of our messages it is about.

No database here: parse_message() turns bytes into a Parsed, which record.py ties to a
delivery. In order, a message is
- a complaint: an ARF feedback report (RFC 5965, report-type=feedback-report);
- a bounce: a DSN (RFC 3464, report-type=delivery-status), each recipient's Action and
  Status; `failed` with 5.x.x is hard, `delayed` and 4.x.x soft, 5.7.x (and the sender
  codes 5.1.7/5.1.8) a policy refusal that is the sender's problem;
- an unsubscribe request: sent to the `mailto:` of List-Unsubscribe, the token in the
  subject or in the address (unsubscribe+TOKEN@...);
- an auto-reply (RFC 3834 Auto-Submitted, out-of-office, vacation): counted, ignored;
- a bounce in another format (Exim, qmail, Exchange, Yahoo, ...), found by flufl.bounce;
- anything else: `other`, listed with the reason, never guessed at. Input that is not a
  readable message at all (too large, empty, binary, broken MIME) is `bad`.
What ties a message to a delivery is collected as well: the addresses it was delivered
to (for the VERP token) and the Message-IDs and Return-Paths of the returned message.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses

from flufl.bounce import all_failures

MAX_BYTES = 10 * 1024 * 1024  # a bounce carries headers or one newsletter, far below this
_TEXT_LIMIT = 256 * 1024  # text read from one part when looking for codes and addresses

_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_CODE_RE = re.compile(r"(?<![\d.])([245]\d\d)(?![\d.])")
_HEADER_LINE_RE = re.compile(rb"[!-9;-~]+:")
# Our Message-IDs (content/message.make_message_id): <label.digest16.subscriber@domain>.
_OUR_MESSAGE_ID_RE = re.compile(rb"<[A-Za-z0-9-]{1,64}\.[0-9a-f]{16}\.\d{1,18}@[A-Za-z0-9.-]{1,253}>")
_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{20,64}(?![A-Za-z0-9_-])")
_DAEMON_RE = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|mdaemon|mail\.delivery)", re.I)
_AUTO_SUBJECT_RE = re.compile(
    r"\b(out of (the )?office|automatic reply|auto(matic)?[ -]?(reply|response)|autoreply|vacation|"
    r"afwezig|automatisch antwoord|abwesen(d|heit)|absence|r[ée]ponse automatique|on leave|away from)\b",
    re.I,
)
_BOUNCE_SUBJECT_RE = re.compile(
    r"(undeliver|delivery (status|failure|has failed)|returned mail|failure notice|mail delivery|"
    r"not delivered|delivery notification|unzustellbar|onbestelbaar)",
    re.I,
)
_ADDRESS_RE = re.compile(r"[^\s<>,;:\"'()\[\]]+@[A-Za-z0-9.\-\[\]:]+[A-Za-z0-9\]]")
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")

KINDS = ("bounce", "complaint", "unsubscribe", "auto_reply", "other", "bad")


@dataclass(frozen=True)
class Failure:
    """One recipient a bounce says was not delivered."""

    recipient: str  # the address as the report gives it ('' when it names none)
    action: str  # failed or delayed
    status: str  # enhanced status code (RFC 3463), '' when unknown
    severity: str  # hard, soft or policy
    code: int | None  # the SMTP reply code in the diagnostic, if any
    diagnostic: str  # the receiver's words: may quote an address, so never put in an event


@dataclass
class Parsed:
    """What one message is (`kind`, one of KINDS) and what ties it to our deliveries."""

    kind: str
    fingerprint: str
    reason: str = ""  # why it is other or bad, or what was noticed
    detector: str = ""  # dsn, arf, mailto, auto-reply, flufl
    failures: list[Failure] = field(default_factory=list)
    delivered_to: list[str] = field(default_factory=list)  # where it arrived: VERP
    returned_ids: list[str] = field(default_factory=list)  # our Message-IDs it quotes
    returned_senders: list[str] = field(default_factory=list)  # Return-Path, Original-Mail-From
    tokens: list[str] = field(default_factory=list)  # unsubscribe token candidates
    feedback_type: str = ""
    complained_by: list[str] = field(default_factory=list)  # ARF Original-Rcpt-To


@dataclass(frozen=True)
class Context:
    """What parsing needs to know of the configuration."""

    unsubscribe_domain: str  # the domain of the mailto: in List-Unsubscribe
    recipient: str = ""  # the envelope recipient, when the MTA passes it (pipe)


def severity_of(action: str, status: str, code: int | None) -> str:
    """hard, soft or policy for one recipient (STANDARDS.md: SMTP replies, retries, bounces)."""
    if action == "delayed":
        return "soft"
    klass = status[:1] if status else (str(code)[:1] if code else "5")
    if klass == "4":
        return "soft"
    if status.startswith("5.7.") or status in ("5.1.7", "5.1.8"):
        return "policy"
    if status == "5.2.2":  # mailbox full: it may empty again
        return "soft"
    return "hard"


def fingerprint_of(data: bytes) -> str:
    """The same for one message however it arrived: the headers an MTA prepends on the way
    (Received, Delivered-To, Return-Path) and the line ends differ, the rest does not."""
    end = _header_end(data)
    head = data[:end]
    keys = []
    for name in (rb"message-id", rb"date", rb"subject", rb"from"):
        match = re.search(rb"(?im)^" + name + rb":[ \t]*(.*(?:\r?\n[ \t].*)*)", head)
        keys.append(b" ".join(match.group(1).split()) if match else b"")
    body = data[end:].replace(b"\r\n", b"\n").strip()
    digest = hashlib.sha256(b"\0".join(keys))
    digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def _header_end(data: bytes) -> int:
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else len(data)


def parse_message(data: bytes, *, context: Context, size: int | None = None) -> Parsed:
    """What the message in `data` is. Never raises: unreadable input is kind `bad`.

    `size` is the message's full size when `data` holds only its start (a large file).
    """
    size = len(data) if size is None else size
    fingerprint = fingerprint_of(data)
    problem = _unreadable(data, size)
    if problem:
        return Parsed(kind="bad", fingerprint=fingerprint, reason=problem)
    try:
        return _classify(data, fingerprint, context)
    except Exception as exc:  # noqa: BLE001 - one odd message must never stop a run
        return Parsed(kind="bad", fingerprint=fingerprint,
                      reason=f"could not be read as an email message ({type(exc).__name__})")


def _unreadable(data: bytes, size: int) -> str:
    if size > MAX_BYTES:
        return f"too large: {size / 1_000_000:.1f} MB (a bounce is at most {MAX_BYTES // 1_000_000} MB); not read"
    if not data.strip():
        return "empty message"
    lines = data.lstrip(b"\r\n").split(b"\n", 2)
    # An mbox separator line kept by the MTA (Postfix pipe flag F) comes before the headers.
    first = lines[1] if lines[0].startswith(b"From ") and len(lines) > 1 else lines[0]
    head = data[: _header_end(data)]
    if b"\0" in head or data[:65536].count(b"\0") > 16:
        return "binary data, not an email message"
    if not _HEADER_LINE_RE.match(first):
        return "not an email message: it does not start with header lines"
    return ""


def _classify(data: bytes, fingerprint: str, context: Context) -> Parsed:
    message = email.message_from_bytes(data)
    parsed = Parsed(kind="other", fingerprint=fingerprint)
    parsed.delivered_to = _delivered_to(message, context)
    end = _header_end(data)
    parsed.returned_ids = _unique(m.decode("ascii") for m in _OUR_MESSAGE_ID_RE.findall(data, end))
    content_type = message.get_content_type()
    report_type = (message.get_param("report-type") or "").__str__().lower()
    parts = list(_walk(message))
    types = [p.get_content_type() for p in parts]

    feedback = parts[types.index("message/feedback-report")] if "message/feedback-report" in types else None
    if feedback is not None or (content_type == "multipart/report" and report_type == "feedback-report"):
        return _complaint(parsed, feedback, parts)

    status_part = parts[types.index("message/delivery-status")] if "message/delivery-status" in types else None
    if status_part is not None:
        _returned_headers(parsed, parts)
        blocks = _status_blocks(status_part)
        failures = [f for f in (_failure(b) for b in blocks) if f is not None]
        if failures:
            parsed.kind, parsed.detector, parsed.failures = "bounce", "dsn", failures
            return parsed
        actions = sorted({_text(b.get("Action", "")).strip().lower() for b in blocks} - {""})
        parsed.reason = (
            f"a delivery report without a failure (Action: {', '.join(actions)})" if actions
            else "a delivery report without any recipient block"
        )
        return parsed

    subject = _text(message.get("Subject", ""))
    if _is_unsubscribe(parsed, context, subject):
        return parsed

    sender = _text(message.get("From", ""))
    from_daemon = bool(_DAEMON_RE.match(_local_part(sender))) or bool(_BOUNCE_SUBJECT_RE.search(subject))
    if not from_daemon and _is_auto_reply(message, subject):
        parsed.kind, parsed.detector = "auto_reply", "auto-reply"
        parsed.reason = "an automatic reply (out of office, vacation): not a bounce"
        return parsed

    _returned_headers(parsed, parts)
    failures = _flufl_failures(message, parts)
    if failures:
        parsed.kind, parsed.detector, parsed.failures = "bounce", "flufl", failures
        return parsed
    defects = sorted({type(d).__name__ for p in parts for d in p.defects})
    if defects:
        parsed.kind = "bad"
        parsed.reason = f"malformed or truncated MIME ({', '.join(defects)}) and nothing recognisable in it"
    elif from_daemon:
        parsed.reason = "looks like a bounce, but no failed address was found in it"
    else:
        parsed.reason = "not a bounce, complaint, unsubscribe request or auto-reply"
    return parsed


def _walk(message: Message) -> Iterator[Message]:
    """Every part, without descending into a delivery-status part's blocks."""
    yield message
    if message.get_content_type() == "message/delivery-status":
        return
    payload = message.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from _walk(part)


def _text(value: object) -> str:
    """A header value as readable text, whatever its encoding (never raises)."""
    if isinstance(value, str) and value.isascii() and "=?" not in value:
        return value  # the common case, without the decoder's cost
    try:
        text = str(make_header(decode_header(str(value))))
    except (UnicodeError, LookupError, ValueError, TypeError):
        text = str(value)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _unique(items: Iterator[str] | list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _local_part(header: str) -> str:
    addresses = getaddresses([header])
    address = addresses[0][1] if addresses else header
    return address.rpartition("@")[0] or address


def _addresses(values: list[str]) -> list[str]:
    """The addresses in header values (a pattern, not a full RFC 5322 parse: these headers
    are machine-written, and the parse is most of the cost of a message)."""
    return [a for value in values for a in _ADDRESS_RE.findall(value)]


def _delivered_to(message: Message, context: Context) -> list[str]:
    values = [context.recipient] if context.recipient else []
    for name in _RECIPIENT_HEADERS:
        values += [str(v) for v in message.get_all(name, [])]
    return _unique(_addresses(values))


def _returned_headers(parsed: Parsed, parts: list[Message]) -> None:
    """Message-IDs and envelope senders of the returned message (message/rfc822 or
    text/rfc822-headers part)."""
    for part in parts:
        kind = part.get_content_type()
        headers: Message | None = None
        if kind == "message/rfc822":
            payload = part.get_payload()
            first = payload[0] if isinstance(payload, list) and payload else None
            headers = first if isinstance(first, Message) else None
        elif kind in ("text/rfc822-headers", "message/rfc822-headers"):
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                headers = HeaderParser().parsestr(raw.decode("utf-8", "replace"))
        if headers is None:
            continue
        message_id = _text(headers.get("Message-ID", "")).strip()
        if message_id:
            parsed.returned_ids = _unique([message_id, *parsed.returned_ids])
        for name in ("Return-Path", "X-Envelope-From", "Sender"):
            parsed.returned_senders += _addresses([str(v) for v in headers.get_all(name, [])])
    parsed.returned_senders = _unique(parsed.returned_senders)


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    # Not parsed into blocks (an odd encoding): split the text at blank lines ourselves.
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    return [HeaderParser().parsestr(block) for block in re.split(r"\r?\n\s*\r?\n", text) if block.strip()]


def _failure(block: Message) -> Failure | None:
    action = _text(block.get("Action", "")).strip().lower()
    if action not in ("failed", "delayed"):
        return None
    recipient = _text(block.get("Final-Recipient", "") or block.get("Original-Recipient", ""))
    recipient = recipient.partition(";")[2].strip() if ";" in recipient else recipient.strip()
    status_match = _STATUS_RE.search(_text(block.get("Status", "")))
    status = status_match.group(0) if status_match else ""
    diagnostic = " ".join(_text(block.get("Diagnostic-Code", "")).split())
    diagnostic = diagnostic.partition(";")[2].strip() if ";" in diagnostic[:20] else diagnostic
    code_match = _CODE_RE.match(diagnostic)
    code = int(code_match.group(1)) if code_match else None
    if not status and diagnostic:
        found = _STATUS_RE.search(diagnostic)
        status = found.group(0) if found else ""
    return Failure(
        recipient=recipient.strip("<>"),
        action=action,
        status=status,
        severity=severity_of(action, status, code),
        code=code,
        diagnostic=diagnostic or f"{action} ({status or 'no status'})",
    )


def _complaint(parsed: Parsed, feedback: Message | None, parts: list[Message]) -> Parsed:
    parsed.kind, parsed.detector = "complaint", "arf"
    _returned_headers(parsed, parts)
    if feedback is not None:
        fields = _status_blocks(feedback)
        merged = Message()
        for block in fields:
            for name, value in block.items():
                merged[name] = value
        # A token (abuse, fraud, virus, other, ...): kept to its letters, it goes into an event.
        kind = re.sub(r"[^a-z-]", "", _text(merged.get("Feedback-Type", "")).lower())[:20]
        parsed.feedback_type = kind or "abuse"
        parsed.complained_by = _unique(_addresses([str(v) for v in merged.get_all("Original-Rcpt-To", [])]))
        parsed.returned_senders = _unique(
            [*parsed.returned_senders, *_addresses([str(v) for v in merged.get_all("Original-Mail-From", [])])]
        )
    else:
        parsed.feedback_type = "abuse"
    return parsed


def _is_unsubscribe(parsed: Parsed, context: Context, subject: str) -> bool:
    domain = context.unsubscribe_domain.lower()
    hit = False
    for address in parsed.delivered_to:
        local, _, host = address.lower().rpartition("@")
        base, _, extension = local.partition("+")
        if host == domain and base == "unsubscribe":
            hit = True
            if extension:
                # The extension as written: Postfix keeps its case unless told otherwise.
                parsed.tokens.append(address.rpartition("@")[0].partition("+")[2])
    if not hit:
        return False
    parsed.tokens = _unique([*parsed.tokens, *_TOKEN_RE.findall(subject)])
    parsed.kind, parsed.detector = "unsubscribe", "mailto"
    if not parsed.tokens:
        parsed.kind = "other"
        parsed.reason = "sent to the unsubscribe address, but without a token in the subject or address"
    return True


def _is_auto_reply(message: Message, subject: str) -> bool:
    auto = _text(message.get("Auto-Submitted", "")).strip().lower()
    if auto and not auto.startswith("no"):
        return True
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response-Suppress"):
        if message.get(name) is not None:
            return True
    precedence = _text(message.get("Precedence", "") or message.get("X-Precedence", "")).strip().lower()
    return precedence == "auto_reply" or bool(_AUTO_SUBJECT_RE.search(subject))


def _body_text(parts: list[Message]) -> str:
    texts = []
    for part in parts:
        if part.get_content_maintype() != "text" or part.get_content_type() == "text/rfc822-headers":
            continue
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            texts.append(raw[:_TEXT_LIMIT].decode(charset, "replace"))
        except LookupError:
            texts.append(raw[:_TEXT_LIMIT].decode("utf-8", "replace"))
    return "\n".join(texts)


def _flufl_failures(message: Message, parts: list[Message]) -> list[Failure]:
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - a detector tripping over odd input finds nothing
        return []
    if not temporary and not permanent:
        return []
    text = _body_text(parts)
    failures = []
    for addresses, action in ((permanent, "failed"), (temporary - permanent, "delayed")):
        for raw in sorted(addresses):
            address = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            diagnostic = _diagnostic_near(text, address)
            status_match = _STATUS_RE.search(diagnostic) or _STATUS_RE.search(text)
            code_match = _CODE_RE.search(diagnostic)
            status = status_match.group(0) if status_match else ""
            if action == "failed" and status.startswith("4"):
                action = "delayed"
            code = int(code_match.group(1)) if code_match else None
            failures.append(Failure(
                recipient=address, action=action, status=status,
                severity=severity_of(action, status, code), code=code,
                diagnostic=diagnostic or f"{action} (no reason given)",
            ))
    return failures


def _diagnostic_near(text: str, address: str) -> str:
    """The lines around the first mention of the address: what the receiver said about it."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if address.lower() in line.lower():
            near = [w for w in lines[index : index + 4] if w.strip()]
            return " ".join(" ".join(near).split())[:500]
    return ""
