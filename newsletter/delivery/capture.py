"""The built-in capture relay: an SMTP server on 127.0.0.1 that writes each message to outbox/.

Used when no smtp.url is configured, so a first run (and `make demo`) goes through exactly
the same SMTP code path as a real relay, while nothing leaves the machine. Each message is
stored as the exact bytes received, named after its Message-ID (a retried message
overwrites its earlier copy instead of doubling it).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from .relays import Relay

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


class OutboxHandler:
    """aiosmtpd handler writing every accepted message to `outbox` as an .eml file."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.count = 0
        self._serial = itertools.count(1)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content  # bytes: the server keeps them undecoded
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else (raw or b"")
        head = data.split(b"\r\n\r\n", 1)[0]
        match = _MESSAGE_ID.search(head)
        serial = next(self._serial)
        name = _UNSAFE.sub("_", match.group(1).decode("ascii", "replace")) if match else f"message-{serial}"
        path = self.outbox / f"{name}.eml"
        tmp = path.with_suffix(".eml.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # a reader never sees half a message
        self.count += 1
        return f"250 2.0.0 Ok: queued as {serial}"


@asynccontextmanager
async def capture_server(outbox: Path) -> AsyncIterator[tuple[Relay, OutboxHandler]]:
    """Run the capture relay in this event loop on a free port of 127.0.0.1."""
    outbox.mkdir(parents=True, exist_ok=True)
    handler = OutboxHandler(outbox)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTPServer(handler, hostname="newsletter-capture", ident="newsletter capture"),
        host="127.0.0.1",
        port=0,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield Relay(host="127.0.0.1", port=port, tls="none"), handler
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def relays_or_capture(relays: list[Relay], outbox: Path) -> AsyncIterator[tuple[list[Relay], Path | None]]:
    """The relays to send through: the configured ones, or (none configured) the capture
    server writing to `outbox`; with the outbox when it is used, else None."""
    if relays:
        yield relays, None
        return
    async with capture_server(outbox) as (relay, _handler):
        yield [relay], outbox
