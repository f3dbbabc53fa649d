"""The ASGI application of `newsletter serve`: routes, security headers, start and stop.

At start it deletes the subscriptions left unconfirmed past `subscribe.pending_ttl`, and
again every hour while it runs (as `newsletter run` does), so their data is not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from sqlite_utils import Database
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..audience import subscribers
from ..config import Config
from .archive import Archive
from .links import Links
from .pages import SECURITY_HEADERS, STATIC, page, pick_language, word
from .store import Store
from .subscribe import Mailer, SubscribeForm

log = logging.getLogger("newsletter.web")

EXPIRE_EVERY_S = 3600.0


class SecurityHeaders:
    """Adds the security headers to every response that has not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def expire_pending(config: Config, db: Database) -> int:
    """Delete the subscriptions pending longer than subscribe.pending_ttl; how many."""
    return subscribers.expire_pending(db, older_than=config.subscribe_pending_ttl, source="web")


def create_app(config: Config, *, database: Path | None = None) -> Starlette:
    """The app over `config` (and its database, or `database`)."""
    store = Store(database or config.database)
    links = Links(config, store)
    archive = Archive(config, store)
    stylesheet = (STATIC / "web.css").read_bytes()
    state: dict[str, object] = {}

    async def healthz(request: Request) -> Response:
        try:
            await store.read(lambda db: db.execute("SELECT count(*) FROM subscribers").fetchone())
        except Exception as exc:  # noqa: BLE001 - the answer is the report
            return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", "web_url": config.public_url})

    async def css(request: Request) -> Response:
        return Response(stylesheet, media_type="text/css", headers={"cache-control": "max-age=3600"})

    async def home(request: Request) -> Response:
        return RedirectResponse("/archive", status_code=302)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        language = pick_language(config, request.headers.get("accept-language"))
        if status == 404:
            return page(config, "message.html", language=language, status_code=404,
                        title=word(config, language, "not_found_title"),
                        text=word(config, language, "not_found_text"), action="", more="")
        headers = getattr(exc, "headers", None) or {}
        return Response(f"{status}\n", status_code=status, media_type="text/plain", headers=headers)

    async def expire_now() -> None:
        try:
            count = await store.write(lambda db: expire_pending(config, db))
        except Exception:
            log.exception("could not delete the expired pending subscriptions")
            return
        if count:
            log.info("deleted %d subscription(s) left unconfirmed past subscribe.pending_ttl", count)

    async def expire_loop() -> None:
        while True:
            await asyncio.sleep(EXPIRE_EVERY_S)
            await expire_now()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        mailer = Mailer(config, store.path)
        form = SubscribeForm(config, store, mailer)
        state["form"] = form
        await expire_now()
        await form.start()
        expiring = asyncio.create_task(expire_loop())
        try:
            yield
        finally:
            expiring.cancel()
            await form.stop()
            mailer.close()
            store.close()

    async def subscribe_get(request: Request) -> Response:
        return await _form(state).show(request)

    async def subscribe_post(request: Request) -> Response:
        return await _form(state).submit(request)

    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/static/web.css", css),
        Route("/u/{token}", links.unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", links.unsubscribe, methods=["POST"]),
        Route("/c/{token}", links.confirm_page, methods=["GET"]),
        Route("/c/{token}", links.confirm, methods=["POST"]),
        Route("/p/{token}", links.preferences_page, methods=["GET"]),
        Route("/p/{token}", links.save_preferences, methods=["POST"]),
        Route("/subscribe", subscribe_get, methods=["GET"]),
        Route("/subscribe", subscribe_post, methods=["POST"]),
        Route("/archive", archive.index),
        Route("/archive/feed.xml", archive.feed),
        Route("/archive/{name}", archive.show),
        Route("/a/{slug}", archive.old_link),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})
    app.add_middleware(SecurityHeaders)
    return app


def _form(state: dict[str, object]) -> SubscribeForm:
    form = state["form"]
    assert isinstance(form, SubscribeForm)
    return form
