"""A real aiosmtpd SMTP server on 127.0.0.1 for the tests, with faults injected into it.

The server records every message it accepted (envelope, Message-ID, bytes). A test injects
a fault by setting `server.handler.on_data` (or `on_rcpt`, `on_mail`): a function of the recipient and
the number of messages seen so far that returns a reply line, DROP (close the connection
after the data arrived, without a reply), STALL (sleep past the client's timeout) or HOLD
(no reply until `handler.release` is set, then a 451). `restart()` after `stop()` makes an outage.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

DROP = "drop"
STALL = "stall"
HOLD = "hold"  # keep the DATA unanswered until handler.release is set, then refuse it with 451
_MID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)

Fault = Callable[[str, int], str | None]


@dataclass
class Received:
    mail_from: str
    rcpt: str
    message_id: str
    data: bytes


@dataclass
class RecordingHandler:
    """Accepts everything unless a fault says otherwise; remembers what it accepted."""

    messages: list[Received] = field(default_factory=list)
    on_data: Fault | None = None
    on_rcpt: Fault | None = None
    on_mail: Fault | None = None  # called with the envelope sender instead of the recipient
    stall_seconds: float = 5.0
    release: threading.Event = field(default_factory=threading.Event)
    held: int = 0  # DATA commands being held by HOLD right now
    delay: float = 0.0  # seconds each DATA takes, so that messages are really in flight
    attempts: int = 0  # DATA commands seen, accepted or not
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.on_mail is not None:
            reply = self.on_mail(address, self.attempts)
            if reply:
                return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.on_rcpt is not None:
            reply = self.on_rcpt(address, self.attempts)
            if reply:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempts += 1
            seen = self.attempts
        rcpt = envelope.rcpt_tos[0]
        reply = self.on_data(rcpt, seen) if self.on_data is not None else None
        if reply == STALL:
            await asyncio.sleep(self.stall_seconds)
            return "451 4.3.0 too late"
        if reply == HOLD:
            with self.lock:
                self.held += 1
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            with self.lock:
                self.held -= 1
            return "451 4.3.0 timed out waiting for the queue"
        data = envelope.original_content or envelope.content
        if reply is None or reply == DROP:
            match = _MID.search(data)
            with self.lock:
                self.messages.append(
                    Received(envelope.mail_from, rcpt, match.group(1).decode() if match else "", data)
                )
        if self.delay:
            # Like a real MTA writing its queue file: the message is in, the 250 not yet out.
            await asyncio.sleep(self.delay)
        if reply == DROP:
            # The data arrived, the reply never does: the client cannot know the outcome.
            server.transport.abort()
            return "250 2.0.0 never seen"
        return reply or f"250 2.0.0 Ok: queued as Q{seen}"

    def by_rcpt(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for message in self.messages:
            out.setdefault(message.rcpt, []).append(message)
        return out


class _LimitedController(Controller):
    """A Controller whose server greets with 421 beyond `max_sessions` open sessions, as
    a relay with a per-client connection limit does (Postfix: smtpd_client_connection_count_limit)."""

    def __init__(self, *args: Any, max_sessions: int, **kwargs: Any) -> None:
        self.max_sessions = max_sessions
        self.open_sessions = 0
        self.refused = 0
        super().__init__(*args, **kwargs)

    def factory(self) -> SMTP:
        controller = self
        base = super().factory()

        class Limited(type(base)):  # type: ignore[misc]
            counted = False

            async def _handle_client(self) -> None:
                if controller.open_sessions >= controller.max_sessions:
                    controller.refused += 1
                    await self.push("421 4.7.0 Too many connections from your host, try later")
                    assert self.transport is not None
                    self.transport.close()
                    return
                controller.open_sessions += 1
                self.counted = True
                await super()._handle_client()

            def connection_lost(self, error: Exception | None) -> None:
                if self.counted:
                    controller.open_sessions -= 1
                    self.counted = False
                super().connection_lost(error)

        base.__class__ = Limited
        return base


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A running aiosmtpd Controller plus its handler and URL."""

    def __init__(self, handler: RecordingHandler | None = None, *, scheme: str = "smtp+plain",
                 ssl_context: Any = None, max_sessions: int | None = None, **server_kwargs: Any) -> None:
        self.handler = handler or RecordingHandler()
        self.port = free_port()
        self.scheme = scheme
        self._arguments = (ssl_context, max_sessions, server_kwargs)
        self.controller = self._controller()

    def _controller(self) -> Controller:
        ssl_context, max_sessions, server_kwargs = self._arguments
        limit = {} if max_sessions is None else {"max_sessions": max_sessions}
        return (_LimitedController if limit else Controller)(
            self.handler, hostname="127.0.0.1", port=self.port, ssl_context=ssl_context,
            ready_timeout=10, **limit, **server_kwargs,
        )

    def restart(self) -> Server:
        """Start again on the same port with the same handler (after stop(): an outage)."""
        self.controller = self._controller()
        return self.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def authenticator(user: str, password: str) -> Callable[..., AuthResult]:
    """An aiosmtpd authenticator accepting exactly one user name and password."""

    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    return check
