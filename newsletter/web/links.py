"""The subscriber's own links: /u/TOKEN (unsubscribe), /c/TOKEN (confirm), /p/TOKEN (preferences).

A GET never changes anything (mail scanners and link previews follow every link): it shows
a page whose one button POSTs. The POST to /u/TOKEN is also RFC 8058's one-click
unsubscribe: the mailbox provider posts `List-Unsubscribe=One-Click` and the subscriber is
unsubscribed at once, with 200 and no further step. A token that matches nobody answers
404 with a page that says nothing about why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from sqlite_utils import Database
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..audience import subscribers
from ..config import LANGUAGES, Config
from ..errors import NewsletterError
from .pages import page, word
from .store import Store

TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,200}")
MAX_FORM_BYTES = 16_384


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a urlencoded POST body (first value of each); others give {}."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413)
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


@dataclass(frozen=True)
class Links:
    """The token routes over one configuration and store."""

    config: Config
    store: Store

    async def _subscriber(self, request: Request) -> tuple[str, dict[str, Any]]:
        token = request.path_params["token"]
        if not TOKEN_RE.fullmatch(token):
            raise HTTPException(404)
        found = await self.store.read(lambda db: subscribers.get_by_token(db, token))
        if found is None:
            raise HTTPException(404)
        return token, found

    async def unsubscribe_page(self, request: Request) -> Response:
        token, subscriber = await self._subscriber(request)
        t = subscriber["language"]
        if subscriber["status"] in subscribers.SUPPRESSED:
            return page(self.config, "message.html", language=t, title=word(self.config, t, "unsubscribed_title"),
                        text=word(self.config, t, "unsubscribed_text"), action="", more="")
        return page(self.config, "message.html", language=t, title=word(self.config, t, "unsubscribe_title"),
                    text=word(self.config, t, "unsubscribe_ask"), action=f"/u/{token}",
                    button=word(self.config, t, "unsubscribe_button"), more="")

    async def unsubscribe(self, request: Request) -> Response:
        """RFC 8058: any POST here unsubscribes (the body is List-Unsubscribe=One-Click)."""
        token = request.path_params["token"]
        if not TOKEN_RE.fullmatch(token):
            raise HTTPException(404)
        await form_fields(request)  # read (and bound) the body; its content changes nothing
        outcome = await self.store.write(lambda db: _unsubscribe_with_language(db, token))
        if outcome is None:
            raise HTTPException(404)
        _, language = outcome
        return page(self.config, "message.html", language=language, title=word(self.config, language, "unsubscribed_title"),
                    text=word(self.config, language, "unsubscribed_text"), action="", more="")

    async def confirm_page(self, request: Request) -> Response:
        token, subscriber = await self._subscriber(request)
        language = subscriber["language"]
        if subscriber["status"] == "active":
            return page(self.config, "message.html", language=language, title=word(self.config, language, "confirmed_title"),
                        text=word(self.config, language, "confirmed_text"), action="", more="")
        if subscriber["status"] != "pending":
            raise HTTPException(404)
        return page(self.config, "message.html", language=language, title=word(self.config, language, "confirm_title"),
                    text=word(self.config, language, "confirm_ask"), action=f"/c/{token}",
                    button=word(self.config, language, "confirm_button"), more="")

    async def confirm(self, request: Request) -> Response:
        token, subscriber = await self._subscriber(request)
        await form_fields(request)
        outcome = await self.store.write(lambda db: subscribers.confirm_by_token(db, token))
        if outcome is None:
            raise HTTPException(404)
        language = subscriber["language"]
        return page(self.config, "message.html", language=language, title=word(self.config, language, "confirmed_title"),
                    text=word(self.config, language, "confirmed_text"), action="", more="")

    async def preferences_page(self, request: Request) -> Response:
        token, subscriber = await self._subscriber(request)
        return self._preferences(token, subscriber, saved=False)

    async def save_preferences(self, request: Request) -> Response:
        token, _ = await self._subscriber(request)
        fields = await form_fields(request)
        cadence = fields.get("cadence") or None
        language = fields.get("language") or None
        if (cadence is not None and cadence not in subscribers.CADENCES) or (
            language is not None and language not in LANGUAGES
        ):
            raise HTTPException(400)

        def change(db: Database) -> dict[str, Any] | None:
            return subscribers.update_by_token(db, token, cadence=cadence, language=language)

        try:
            updated = await self.store.write(change)
        except NewsletterError:
            raise HTTPException(400) from None
        if updated is None:
            raise HTTPException(404)
        return self._preferences(token, updated, saved=True)

    def _preferences(self, token: str, subscriber: dict[str, Any], *, saved: bool) -> Response:
        return page(
            self.config, "preferences.html", language=subscriber["language"], saved=saved,
            active=subscriber["status"] in ("active", "pending"), action=f"/p/{token}",
            unsubscribe_action=f"/u/{token}", cadences=subscribers.CADENCES, cadence=subscriber["cadence"],
            languages=LANGUAGES, current_language=subscriber["language"],
        )


def _unsubscribe_with_language(db: Database, token: str) -> tuple[str, str] | None:
    outcome = subscribers.unsubscribe_by_token(db, token, source="web")
    if outcome is None:
        return None
    found = subscribers.get_by_token(db, token)
    return outcome[1], found["language"] if found else "en"
