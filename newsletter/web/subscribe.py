"""The public subscribe form: GET /subscribe shows it, POST /subscribe takes an address.

Nobody may learn through the form who subscribes: the answer is the same page whether the
address was new, pending, active or suppressed, and so is its timing, because the request
only checks the address's syntax and queues it; the database and the confirmation email are
handled afterwards, in the background. The form cannot be used to flood an inbox (at most
`subscribe.per_address` confirmation emails per address in 24 hours, counted in the events)
or by a bot (`subscribe.per_client` posts per client address an hour, and a honeypot field
that people never see and bots fill in). A subscriber made here is pending until they press
the link in the confirmation email; an address that left or was erased must confirm anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from ..audience import subscribers
from ..config import LANGUAGES, Config
from ..db import open_db
from ..delivery.single import send_confirmation
from ..errors import NewsletterError
from .links import form_fields
from .pages import page, pick_language, word
from .store import Store

log = logging.getLogger("newsletter.web")

WINDOW_S = 3600.0
MAX_CLIENTS = 100_000  # remembered client addresses; the oldest are forgotten first
QUEUE_LIMIT = 10_000


@dataclass
class ClientLimit:
    """At most `per_window` requests per client address in a sliding window."""

    per_window: int
    window: float = WINDOW_S
    _seen: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def allow(self, client: str, *, at: float | None = None) -> bool:
        at = time.monotonic() if at is None else at
        times = self._seen.pop(client, None) or deque()
        while times and times[0] <= at - self.window:
            times.popleft()
        allowed = len(times) < self.per_window
        if allowed:
            times.append(at)
        self._seen[client] = times  # most recent last
        while len(self._seen) > MAX_CLIENTS:
            self._seen.popitem(last=False)
        return allowed


class Mailer:
    """Sends confirmation emails from a thread of its own, one after the other."""

    def __init__(self, config: Config, path: Path) -> None:
        self.config = config
        self.path = path
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="newsletter-web-mailer", daemon=True)
        self._thread.start()

    def send_later(self, subscriber_id: int) -> None:
        self._queue.put(subscriber_id)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _main(self) -> None:
        db = open_db(self.path, migrate=False)
        loop = asyncio.new_event_loop()
        try:
            while (subscriber_id := self._queue.get()) is not None:
                try:
                    loop.run_until_complete(send_confirmation(self.config, db, subscriber_id))
                except NewsletterError:
                    # The reason names the address: the log gets the id only.
                    log.warning("the confirmation email to subscriber %d was not sent", subscriber_id)
                except Exception:
                    log.exception("the confirmation email to subscriber %d failed", subscriber_id)
        finally:
            loop.close()
            db.conn.close()


class SubscribeForm:
    """The form's routes, its limits and the background worker that does the real work."""

    def __init__(self, config: Config, store: Store, mailer: Mailer) -> None:
        self.config = config
        self.store = store
        self.mailer = mailer
        self.limit = ClientLimit(config.subscribe_per_client)
        self._work: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue(QUEUE_LIMIT)
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._process())

    async def stop(self) -> None:
        if self._worker is not None:
            await self._work.join()
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def show(self, request: Request) -> Response:
        language = pick_language(self.config, request.headers.get("accept-language"))
        return page(self.config, "subscribe.html", language=language, error="", email="", name="")

    async def submit(self, request: Request) -> Response:
        fields = await form_fields(request)
        language = fields.get("language", "")
        if language not in LANGUAGES:
            language = pick_language(self.config, request.headers.get("accept-language"))
        client = request.client.host if request.client else "unknown"
        if not self.limit.allow(client):
            return page(self.config, "message.html", language=language, status_code=429,
                        title=word(self.config, language, "too_many_title"),
                        text=word(self.config, language, "too_many_text"), action="", more="",
                        headers={"retry-after": "3600"})
        email, name = fields.get("email", ""), fields.get("name", "")
        if not fields.get("website"):  # the honeypot: a bot gets the same answer, nothing happens
            try:
                address = subscribers.normalize_email(email)
                name = subscribers.check_name(name)
            except NewsletterError:
                return page(self.config, "subscribe.html", language=language, status_code=400,
                            error=word(self.config, language, "subscribe_invalid"), email=email[:320],
                            name=name[:200])
            with contextlib.suppress(asyncio.QueueFull):
                self._work.put_nowait((address, name, language))
        return page(self.config, "message.html", language=language,
                    title=word(self.config, language, "subscribe_sent_title"),
                    text=word(self.config, language, "subscribe_sent_text"), action="", more="")

    async def _process(self) -> None:
        per_day = self.config.subscribe_per_address
        while True:
            address, name, language = await self._work.get()
            try:
                result = await self.store.write(
                    functools.partial(
                        subscribers.subscribe_from_form, email=address, name=name, language=language, per_day=per_day
                    )
                )
                if result.send_to is not None:
                    self.mailer.send_later(result.send_to)
            except Exception:
                log.exception("a subscription from the form could not be stored")
            finally:
                self._work.task_done()
