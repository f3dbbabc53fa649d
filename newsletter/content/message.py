"""Per-recipient MIME bytes: headers, quoted-printable parts and an optional DKIM signature.

The bytes are built here once and sent as they are (aiosmtplib `sendmail`), never through
an EmailMessage that would be re-flattened: Python's header folding rewrites long List-*
headers into encoded-words and any re-serialisation breaks the DKIM signature. The
Subject, From and To lines come from headers.py (RFC 2047 for any text that is not plain
ASCII); the other headers are ASCII the builder checks itself.

Speed matters (one call per subscriber, millions of subscribers), so a MessageBuilder
prepares a skeleton per language once: every header that is the same for the campaign, and
the quoted-printable encoding of every body line that holds no personal placeholder.
Quoted-printable encodes each hard line on its own, so per recipient only the few lines
with a placeholder are substituted and encoded, and the pieces are joined.

Test sends (`test=True`) are the real message with "[TEST] " before the subject and a
Message-ID of their own, so a later real send is never collapsed with the test as a
duplicate. They keep List-Unsubscribe with the recipient's own token: the test shows exactly
what subscribers get, and a real subscriber who uses it really unsubscribes.
"""

from __future__ import annotations

import binascii
import hashlib
import html
import re
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from ..config import Config
from ..errors import HeaderValueError
from .dkim import DkimSigner, load_signer, relaxed_lines
from .dkim import body_hash as dkim_body_hash
from .headers import (
    MAX_LINE,
    address_header,
    ascii_domain,
    check_header_value,
    check_token,
    unstructured_header,
)
from .render import PLACEHOLDER_RE, RenderedEmail, confirm_url, preferences_url, unsubscribe_url

TEST_PREFIX = "[TEST] "
CRLF = b"\r\n"
LIST_ID_MAX = 255

# Headers the DKIM signature covers (h=), in the order they are written. Feedback-ID is
# added when configured; MIME-Version and Content-Type protect the structure.
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
)


@dataclass(frozen=True)
class Recipient:
    """Who one message goes to; token is the subscriber's secret for their links."""

    subscriber_id: int
    email: str
    name: str
    token: str
    language: str


_LABEL_RE = re.compile(r"[^A-Za-z0-9-]+")


def make_message_id(*, campaign_key: str, subscriber_id: int, domain: str) -> str:
    """The Message-ID of one campaign's message to one subscriber: the same on every build,
    so a retry after a crash carries the same ID and a receiver can collapse a duplicate."""
    if not isinstance(subscriber_id, int) or subscriber_id < 0:
        raise HeaderValueError(f"subscriber id must be a whole number >= 0, not {subscriber_id!r}")
    domain = ascii_domain(domain)
    digest = hashlib.sha256(campaign_key.encode("utf-8")).hexdigest()[:16]
    # A readable label helps whoever greps a mail log; the digest keeps distinct keys distinct.
    label = _LABEL_RE.sub("-", campaign_key).strip("-")[:40].strip("-") or "campaign"
    return f"<{label}.{digest}.{subscriber_id}@{domain}>"


@dataclass(frozen=True)
class _Skeleton:
    """Everything of one language's message that does not depend on the recipient."""

    before_to: bytes  # From
    after_to: bytes  # Subject
    after_mid: bytes  # List-Id
    after_unsub: bytes  # List-Unsubscribe-Post ... the first part's headers
    text: tuple[bytes | str, ...]  # encoded static lines, or lines with placeholders
    middle: bytes  # end of the text part, headers of the HTML part
    html: tuple[bytes | str, ...]
    end: bytes
    name_fallback: str
    # For DKIM's bh=: the body's start (inside after_unsub) and every static body piece,
    # canonicalised once per campaign; each message canonicalises only its personal lines.
    body_start: bytes = b""
    canonical: Mapping[bytes, bytes] = field(default_factory=dict)


class MessageBuilder:
    """Builds the wire bytes of one campaign's message for each recipient."""

    def __init__(
        self,
        config: Config,
        rendered: Mapping[str, RenderedEmail],
        *,
        campaign_key: str,
        test: bool = False,
    ) -> None:
        if not rendered:
            raise ValueError("MessageBuilder needs at least one rendered email")
        self.config = config
        self.campaign_key = campaign_key
        self.test = test
        self.domain = ascii_domain(config.sender_address.rpartition("@")[2])
        public_url = check_header_value(config.public_url, what="web.url")
        if not public_url.isascii() or any(c in public_url for c in " <>,\"'"):
            raise HeaderValueError(
                f"web.url {public_url!r} cannot go into List-Unsubscribe: use an ASCII URL "
                "(an internationalised host name in its xn-- form)"
            )
        self._message_key = f"test:{campaign_key}" if test else campaign_key
        self._zone = ZoneInfo(config.publication_time_zone)
        self._date_second = -1
        self._date_line = b""
        self._signer: DkimSigner | None = load_signer(config)  # reads the key once
        self._feedback_id = check_header_value(config.publication_feedback_id, what="publication.feedback_id")
        if not self._feedback_id.isascii() or " " in self._feedback_id:
            raise HeaderValueError(
                f"publication.feedback_id {self._feedback_id!r} must be ASCII without spaces, "
                "like campaign:newsletter:publisher:SenderId"
            )
        self._signed = SIGNED_HEADERS + (("Feedback-ID",) if self._feedback_id else ())
        self._skeletons = {lang: self._skeleton(r) for lang, r in rendered.items()}
        self._default = self._skeletons.get(config.publication_language) or next(iter(self._skeletons.values()))

    def message_id(self, recipient: Recipient) -> str:
        """The recipient's Message-ID (stable across builds and re-renders)."""
        return make_message_id(
            campaign_key=self._message_key, subscriber_id=recipient.subscriber_id, domain=self.domain
        )

    @property
    def signer(self) -> DkimSigner | None:
        """The DKIM signer build() uses, None when DKIM is not configured."""
        return self._signer

    @property
    def signed_headers(self) -> tuple[str, ...]:
        """The headers the DKIM signature covers (h=), for signing build(sign=False)'s bytes."""
        return self._signed

    def build(self, recipient: Recipient, *, sign: bool = True) -> bytes:
        """The final message bytes (CRLF line ends), DKIM-signed when configured.

        `sign=False` leaves the signature out (see build_for_signing).
        """
        message, body_hash = self.build_for_signing(recipient, body_hash=sign and self._signer is not None)
        if body_hash is None or self._signer is None:
            return message
        head = message[:message.index(b"\r\n\r\n")]
        return self._signer.sign_head(head, body_hash=body_hash, include_headers=self._signed) + message

    def build_for_signing(self, recipient: Recipient, *, body_hash: bool = True) -> tuple[bytes, str | None]:
        """The unsigned bytes and their DKIM body hash (bh=), for signing elsewhere.

        delivery/signing.py signs off the event loop's core: the signature header goes
        before the bytes, `signer.sign_head(head, body_hash=..., include_headers=
        signed_headers) + data`, where head is the header block before the blank line.
        """
        skeleton = self._skeleton_for(recipient.language)
        token = check_token(recipient.token, what=f"subscriber {recipient.subscriber_id}")
        to = address_header("To", recipient.name, recipient.email)
        unsub_url = unsubscribe_url(self.config, token)
        text_values, html_values = self._values(recipient, skeleton, unsub_url)
        parts = [
            skeleton.before_to,
            to.encode("ascii"),
            skeleton.after_to,
            self._date(),
            b"Message-ID: ",
            self.message_id(recipient).encode("ascii"),
            CRLF,
            skeleton.after_mid,
            b"List-Unsubscribe: <",
            unsub_url.encode("ascii"),
            b">,\r\n <mailto:unsubscribe@",
            self.domain.encode("ascii"),
            b"?subject=",
            token.encode("ascii"),
            b">\r\n",
            skeleton.after_unsub,
        ]
        body_from = len(parts)
        _fill_into(parts, skeleton.text, text_values)
        parts.append(skeleton.middle)
        _fill_into(parts, skeleton.html, html_values)
        parts.append(skeleton.end)
        message = b"".join(parts)
        if not body_hash:
            return message, None
        canonical = [skeleton.body_start]
        for piece in parts[body_from:]:
            known = skeleton.canonical.get(piece)
            canonical.append(relaxed_lines(piece) if known is None else known)
        return message, dkim_body_hash(canonical)

    def personalised(self, recipient: Recipient) -> tuple[str, str]:
        """The recipient's text and HTML (for previews), exactly as build() encodes them."""
        skeleton = self._skeleton_for(recipient.language)
        text_values, html_values = self._values(recipient, skeleton, unsubscribe_url(self.config, recipient.token))
        return _fill_text(skeleton.text, text_values), _fill_text(skeleton.html, html_values)

    def _skeleton_for(self, language: str) -> _Skeleton:
        # rendered is keyed by language; anything else gets the publication's language
        return self._skeletons.get(language) or self._skeletons.get((language or "").lower()) or self._default

    def _values(self, recipient: Recipient, skeleton: _Skeleton, unsub_url: str) -> tuple[dict[str, str], dict[str, str]]:
        text = {
            "name": " ".join(recipient.name.split()) or skeleton.name_fallback,
            "email": recipient.email,
            "unsubscribe_url": unsub_url,
            "confirm_url": confirm_url(self.config, recipient.token),
            "preferences_url": preferences_url(self.config, recipient.token),
        }
        return text, {key: html.escape(value) for key, value in text.items()}

    def _date(self) -> bytes:
        # formatting a date costs more than the rest of the headers; once a second is enough
        now = int(time.time())
        if now != self._date_second:
            stamp = format_datetime(datetime.fromtimestamp(now, self._zone))
            self._date_line = f"Date: {stamp}\r\n".encode("ascii")
            self._date_second = now
        return self._date_line

    def _skeleton(self, rendered: RenderedEmail) -> _Skeleton:
        config = self.config
        subject = rendered.subject
        if self.test:
            subject = TEST_PREFIX + subject
        boundary = "=_nl_" + hashlib.sha256(
            f"{self.campaign_key}\0{rendered.language}".encode()
        ).hexdigest()[:24]  # "=_" never occurs in quoted-printable output
        from_line = address_header("From", config.sender_name, config.sender_address)
        subject_line = unstructured_header("Subject", subject, what="the subject")
        after_mid = f"List-Id: {_list_id(config)}\r\n"
        after_unsub = "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        if self._feedback_id:
            after_unsub += f"Feedback-ID: {self._feedback_id}\r\n"
        after_unsub += (
            "Precedence: bulk\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
            "\r\n"
            f"--{boundary}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n"
            "\r\n"
        )
        # The CRLF before a boundary belongs to the delimiter (RFC 2046), so each part's own
        # final line break needs one more to survive parsing.
        middle = (
            f"\r\n--{boundary}\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n"
            "\r\n"
        )
        for line in (from_line + subject_line + after_mid + after_unsub).split("\r\n"):
            if len(line) > MAX_LINE:
                raise HeaderValueError(f"a header line is longer than {MAX_LINE} characters: {line[:60]}...")
        text = _segments(rendered.text)
        html_segments = _segments(rendered.html)
        end = f"\r\n--{boundary}--\r\n".encode("ascii")
        static = [s for s in (*text, middle.encode("ascii"), *html_segments, end) if isinstance(s, bytes)]
        return _Skeleton(
            before_to=from_line.encode("ascii"),
            after_to=subject_line.encode("ascii"),
            after_mid=after_mid.encode("ascii"),
            after_unsub=after_unsub.encode("ascii"),
            text=text,
            middle=middle.encode("ascii"),
            html=html_segments,
            end=end,
            name_fallback=rendered.name_fallback,
            body_start=relaxed_lines(after_unsub.encode("ascii").partition(b"\r\n\r\n")[2]),
            canonical={piece: relaxed_lines(piece) for piece in static},
        )


def _list_id(config: Config) -> str:
    """`Name <label>` (RFC 2919) in plain ASCII: no List-* header may hold an encoded-word."""
    label = ascii_domain(check_header_value(config.publication_list_id, what="publication.list_id"))
    name = check_header_value(config.publication_name, what="publication.name")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = " ".join(ascii_name.replace("\\", "").replace('"', "").split())
    if not re.fullmatch(r"[A-Za-z0-9 !#$%&'*+/=?^_`{|}~-]*", ascii_name):
        ascii_name = f'"{ascii_name}"'
    value = f"{ascii_name} <{label}>" if ascii_name else f"<{label}>"
    if len(value) > LIST_ID_MAX:  # RFC 2919: the whole value at most 255 octets
        value = f"<{label}>"
    if len(value) > LIST_ID_MAX:
        raise HeaderValueError(f"publication.list_id is longer than {LIST_ID_MAX - 2} characters")
    return value


def qp_encode(text: str) -> bytes:
    """Quoted-printable of text whose lines end in CRLF (soft breaks keep lines under 77)."""
    return binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)


def _segments(content: str) -> tuple[bytes | str, ...]:
    """Split content into runs of lines: static runs pre-encoded, placeholder lines kept as text.

    Every run ends with a CRLF, so encoding run by run gives the same bytes as encoding the
    whole text after substitution (b2a_qp resets its line length at every hard line break).
    """
    lines = content.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    segments: list[bytes | str] = []
    static: list[str] = []
    for line in lines:
        if "{nl:" in line and PLACEHOLDER_RE.search(line):
            if static:
                segments.append(qp_encode("\r\n".join(static) + "\r\n"))
                static = []
            segments.append(line + "\r\n")
        else:
            static.append(line)
    if static:
        segments.append(qp_encode("\r\n".join(static) + "\r\n"))
    return tuple(segments)


def _substitute(line: str, values: Mapping[str, str]) -> str:
    # One pass, so a value that happens to contain a placeholder is never expanded again.
    return PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), line)


def _fill_into(parts: list[bytes], segments: tuple[bytes | str, ...], values: Mapping[str, str]) -> None:
    for segment in segments:
        if isinstance(segment, bytes):
            parts.append(segment)
        else:
            parts.append(qp_encode(_substitute(segment, values)))


def _fill_text(segments: tuple[bytes | str, ...], values: Mapping[str, str]) -> str:
    out = []
    for segment in segments:
        if isinstance(segment, bytes):
            out.append(binascii.a2b_qp(segment).decode("utf-8"))
        else:
            out.append(_substitute(segment, values))
    return "".join(out).replace("\r\n", "\n")
