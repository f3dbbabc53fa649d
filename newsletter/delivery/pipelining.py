"""One message over a relay that offers PIPELINING (RFC 2920): two round trips, not four.

MAIL FROM, RCPT TO and DATA go out in one write and their three replies are read together;
after the 354 the message (dot-stuffed) and the final dot go out in a second write, and the
final reply is read. Every reply is judged as in the plain path (pool._transaction): a
refused MAIL FROM raises SMTPSenderRefused, a refused RCPT SMTPRecipientRefused, a DATA
other than 354 or a final reply other than 250 SMTPDataError, so outcomes.py classifies
them exactly as before. When RCPT was refused a conforming server answers DATA with
503/554 and the message is not sent; a server that says 354 all the same gets an empty
message (a lone dot), then RSET. A connection lost before the message went out raises
NotSent (nothing was delivered: the row goes back untouched); lost after, the outcome is
unknown and aiosmtplib's SMTPServerDisconnected is raised (deferred, same Message-ID).

aiosmtplib reads one reply per command and drops data that arrives while a reply is
waiting to be collected, so its protocol cannot read three replies to one write. The
protocol class here is aiosmtplib's own with one addition: while `replies()` waits, every
byte received goes to a small reply collector instead. `install()` checks once that
aiosmtplib still creates its connections through the name it replaces; otherwise it leaves
aiosmtplib alone and says why, and every connection takes the plain path.
"""

from __future__ import annotations

import asyncio
import re

import aiosmtplib
import aiosmtplib.smtp as _smtp
from aiosmtplib.protocol import SMTPProtocol

from . import smtp_speedups

MAX_REPLIES_BYTES = 64 * 1024  # more than this without the replies complete: not an SMTP server
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")  # as aiosmtplib refuses in a command argument
# A bare addr-spec of dot-atoms, as queue.py makes envelopes: aiosmtplib's parse_address
# returns it unchanged, so it is quoted without parsing (each VERP sender is new: no cache).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_STOCK_PROTOCOL: type[SMTPProtocol] | None = None


class NotSent(Exception):
    """The connection failed before the message data went out: nothing was delivered."""


class Lost(aiosmtplib.SMTPServerDisconnected):
    """The connection ended before every reply came; `replies` are the ones that did."""

    def __init__(self, message: str, replies: list[aiosmtplib.SMTPResponse]) -> None:
        super().__init__(message)
        self.replies = replies


class _Collector:
    """The replies to one pipelined write, as they arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wanted: int) -> None:
        self.wanted = wanted
        self.replies: list[aiosmtplib.SMTPResponse] = []
        self.buffer = bytearray()
        self.done: asyncio.Future[None] = loop.create_future()

    def feed(self, data: bytes) -> None:
        if self.done.done():
            return  # anything after the replies we wait for is unsolicited: dropped
        self.buffer += data
        try:
            while len(self.replies) < self.wanted:
                reply = _parse_reply(self.buffer)
                if reply is None:
                    break
                self.replies.append(reply)
        except aiosmtplib.SMTPResponseException as exc:
            self.done.set_exception(exc)
            return
        if len(self.replies) == self.wanted:
            self.done.set_result(None)
        elif len(self.buffer) > MAX_REPLIES_BYTES:
            self.done.set_exception(aiosmtplib.SMTPResponseException(-1, "Response too long"))

    def lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            error = Lost("Connection lost", list(self.replies))
            error.__cause__ = exc
            self.done.set_exception(error)

    def timed_out(self) -> None:
        if not self.done.done():
            self.done.set_exception(aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"))


def _parse_reply(buffer: bytearray) -> aiosmtplib.SMTPResponse | None:
    """Take one complete (possibly multi-line) reply off the front of `buffer`, or None."""
    offset = 0
    lines: list[bytes] = []
    while True:
        end = buffer.find(b"\n", offset)
        if end == -1:
            return None
        line = bytes(buffer[offset:end + 1])
        offset = end + 1
        code_text = line[:3]
        if not code_text.isdigit():
            text = line.decode("utf-8", errors="ignore").strip()
            raise aiosmtplib.SMTPResponseException(-1, f"Malformed SMTP response line: {text}")
        lines.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] != b"-":
            del buffer[:offset]
            return aiosmtplib.SMTPResponse(int(code_text), b"\n".join(lines).decode("utf-8", "surrogateescape"))


class PipeliningProtocol(SMTPProtocol):
    """aiosmtplib's SMTPProtocol, which can also collect several replies to one write."""

    _collector: _Collector | None = None

    def data_received(self, data: bytes) -> None:
        collector = self._collector
        if collector is None:
            super().data_received(data)
        else:
            collector.feed(data)

    def eof_received(self) -> bool:
        if self._collector is not None:
            self._collector.lost(None)
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._collector is not None:
            self._collector.lost(exc)
        super().connection_lost(exc)

    async def replies(self, data: bytes, wanted: int, *, timeout: float | None) -> list[aiosmtplib.SMTPResponse]:
        """Write `data` and return the next `wanted` replies (raises when they do not come).

        NotSent when the connection was gone before `data` could be written.
        """
        if self._collector is not None:
            raise RuntimeError("replies() is already waiting on this connection")
        collector = _Collector(self._loop, wanted)
        self._collector = collector
        timer = self._loop.call_later(timeout, collector.timed_out) if timeout else None
        try:
            try:
                self.write(data)
            except aiosmtplib.SMTPServerDisconnected as exc:
                raise NotSent(f"connection lost before the data: {exc}") from exc
            await collector.done
        finally:
            self._collector = None
            if timer is not None:
                timer.cancel()
        return collector.replies


def install() -> str | None:
    """Make aiosmtplib open its connections with PipeliningProtocol (idempotent).

    Returns None when it does, or why it cannot (then nothing is changed, and connections
    keep aiosmtplib's protocol: `usable()` is False for them).
    """
    global _STOCK_PROTOCOL
    current = getattr(_smtp, "SMTPProtocol", None)
    if current is PipeliningProtocol:
        return None
    if current is not SMTPProtocol:
        return "aiosmtplib.smtp no longer uses aiosmtplib.protocol.SMTPProtocol"
    connect_code = getattr(getattr(_smtp.SMTP, "_create_connection", None), "__code__", None)
    if connect_code is None or "SMTPProtocol" not in connect_code.co_names:
        return "aiosmtplib no longer creates its protocol in SMTP._create_connection"
    for name in ("data_received", "eof_received", "connection_lost", "write", "is_connected"):
        if not hasattr(SMTPProtocol, name):
            return f"aiosmtplib's SMTPProtocol has no {name} any more"
    _STOCK_PROTOCOL = current
    _smtp.SMTPProtocol = PipeliningProtocol  # type: ignore[misc]
    return None


def usable(client: aiosmtplib.SMTP) -> bool:
    """True when this connection can take the pipelined exchange (the relay offers it)."""
    return (
        isinstance(client.protocol, PipeliningProtocol)
        and client.last_ehlo_response is not None
        and client.supports_extension("pipelining")
    )


def wire_data(data: bytes, *, crlf_only: bool = False, dots: tuple[int, ...] | None = None) -> bytes:
    """The message as it goes after the 354: CRLF line ends, dot-stuffed, with the final dot.

    `crlf_only`: the builder made sure every line ends in CRLF (message.py), so the 20 KB
    are not counted through three more times for every message; `dots` (with crlf_only):
    the offsets of the dots that start a line, so stuffing is one copy, not a search.
    """
    if not (crlf_only and data.endswith(b"\r\n")):
        data = smtp_speedups.normalize_message_line_endings(data)
    elif dots is not None:
        view = memoryview(data)
        pieces = [view[start:end] for start, end in zip((0, *dots), (*dots, len(data)), strict=True)]
        return b".".join(pieces) + b".\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\n.", b"\n..") + b".\r\n"


def _command(verb: bytes, address: str, options: list[bytes]) -> bytes:
    quoted = f"<{address}>" if _PLAIN_ADDRESS.fullmatch(address) else smtp_speedups.quote_address(address)
    argument = verb + quoted.encode("ascii")
    if _CONTROL.search(argument) or any(_CONTROL.search(option) for option in options):
        raise ValueError("Command arg contains a prohibited control character")
    return b" ".join([argument, *options]) + b"\r\n"


async def transaction(
    client: aiosmtplib.SMTP, *, envelope: str, recipient: str, data: bytes, size: int | None,
    timeout: float | None, crlf_only: bool = False, dots: tuple[int, ...] | None = None,
) -> str:
    """Send one message in two round trips; the text of the final 250 reply.

    `size` is declared with MAIL FROM (RFC 1870) when not None; `crlf_only` and `dots`: see wire_data. Raises what the plain path
    raises (aiosmtplib's exceptions), and NotSent when nothing can have been delivered.
    """
    protocol = client.protocol
    if not isinstance(protocol, PipeliningProtocol) or not protocol.is_connected:
        raise NotSent("connection lost before the data")
    options = [f"SIZE={size}".encode("ascii")] if size is not None else []
    commands = _command(b"MAIL FROM:", envelope, options) + _command(b"RCPT TO:", recipient, []) + b"DATA\r\n"
    body = wire_data(data, crlf_only=crlf_only, dots=dots)
    try:
        mail, rcpt, start = await protocol.replies(commands, 3, timeout=timeout)
    except NotSent:
        client.close()
        raise
    except aiosmtplib.SMTPServerDisconnected as exc:
        client.close()
        # A relay may refuse and hang up at once (421 to MAIL or RCPT): that reply is the
        # outcome, as in the plain path (a 421 slows the pool down). Otherwise nothing was
        # answered that says so, and nothing was delivered.
        partial = exc.replies if isinstance(exc, Lost) else []
        if partial and partial[0].code != 250:
            raise aiosmtplib.SMTPSenderRefused(partial[0].code, partial[0].message, envelope) from exc
        if len(partial) > 1 and partial[1].code not in (250, 251):
            raise aiosmtplib.SMTPRecipientRefused(partial[1].code, partial[1].message, recipient) from exc
        raise NotSent(f"connection lost before the data: {exc}") from exc
    except aiosmtplib.SMTPException:
        client.close()  # a timeout or garbage: the replies can no longer be paired
        raise
    refusal: aiosmtplib.SMTPResponseException | None = None
    if mail.code != 250:
        refusal = aiosmtplib.SMTPSenderRefused(mail.code, mail.message, envelope)
    elif rcpt.code not in (250, 251):
        refusal = aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, recipient)
    elif start.code != 354:
        refusal = aiosmtplib.SMTPDataError(start.code, start.message)
    if refusal is not None:
        await _abandon(client, protocol, accepted_data=start.code == 354, timeout=timeout)
        raise refusal
    try:
        (final,) = await protocol.replies(body, 1, timeout=timeout)
    except (NotSent, aiosmtplib.SMTPException):
        # NotSent: gone before the message was written. Otherwise lost or timed out after
        # it went out: the outcome is unknown (SMTPServerDisconnected, SMTPReadTimeoutError).
        client.close()
        raise
    if final.code != 250:
        await _abandon(client, protocol, accepted_data=False, timeout=timeout)
        raise aiosmtplib.SMTPDataError(final.code, final.message)
    return final.message


async def _abandon(
    client: aiosmtplib.SMTP, protocol: PipeliningProtocol, *, accepted_data: bool, timeout: float | None
) -> None:
    """After a refusal: end a DATA the server opened anyway with an empty message, then RSET,
    so the connection can carry the next message (as aiosmtplib's sendmail does)."""
    try:
        if accepted_data:
            # RFC 2920 3.1: a server that answers 354 although no recipient was accepted
            # gets a lone dot: a message with nobody to go to.
            await protocol.replies(b".\r\n", 1, timeout=timeout)
        await client.rset()
    except (NotSent, aiosmtplib.SMTPException, ConnectionError):
        client.close()
