"""The web archive: what was sent, as it was emailed, without anyone's personal links.

`/archive` lists the sent articles and digests newest first; `/archive/<slug>` and
`/archive/digest-<period>` (digest-2026-W48, digest-2026-11-26) show the stored email of
the campaign, the exact HTML subscribers got, with each personal link removed (the
paragraph around an unsubscribe or preferences link goes) and the name a reader would see
without one; `/archive/feed.xml` is an Atom feed of the list; `/a/<slug>`, the web-view
link of older emails, redirects to the archive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

import lxml.html
from sqlite_utils import Database
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..config import Config
from ..content.render import ARTICLE_PATH, PLACEHOLDER_RE, RenderedEmail
from ..delivery.records import ArchiveEntry, archive_entries, archived_campaign
from .pages import ARCHIVE_CSP, page, pick_language
from .store import Store

_DAILY_RE = re.compile(r"digest-(\d{4}-\d{2}-\d{2})")
_WEEKLY_RE = re.compile(r"digest-(\d{4}-W\d{2})", re.IGNORECASE)
_SLUG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,199}")


def archive_key(entry: ArchiveEntry) -> str:
    """The URL name of an entry: the slug, or digest-<period> for a digest."""
    if entry.kind == "digest":
        return "digest-" + entry.key.partition(":")[2]
    return entry.key


def period_key(name: str) -> str | None:
    """digest-2026-W48 -> weekly:2026-W48, digest-2026-11-26 -> daily:2026-11-26, else None."""
    if match := _WEEKLY_RE.fullmatch(name):
        return "weekly:" + match.group(1).upper()
    if match := _DAILY_RE.fullmatch(name):
        return "daily:" + match.group(1)
    return None


def public_html(email: RenderedEmail, *, self_links: tuple[str, ...] = ()) -> str:
    """The email's HTML for everyone: personal links and their paragraphs removed, and the
    "view in browser" link when it points at this very page (one of `self_links`)."""
    tree = lxml.html.document_fromstring(email.html)
    for link in list(tree.iter("a")):
        href = link.get("href") or ""
        if "{nl:" not in href and href not in self_links:
            continue
        block = next((a for a in link.iterancestors() if a.tag in ("p", "li", "div")), link)
        if block.getparent() is not None:
            block.drop_tree()
    html = lxml.html.tostring(tree, doctype="<!DOCTYPE html>", encoding="unicode")
    values = {"name": email.name_fallback}
    return PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), ""), html)


@dataclass(frozen=True)
class Archive:
    """The archive routes over one configuration and store."""

    config: Config
    store: Store

    async def index(self, request: Request) -> Response:
        entries = await self.store.read(archive_entries)
        language = pick_language(self.config, request.headers.get("accept-language"))
        shown = [
            {"key": archive_key(e), "kind": e.kind, "title": e.title, "summary": e.summary, "sent_at": e.sent_at}
            for e in entries
        ]
        return page(self.config, "archive.html", language=language, entries=shown,
                    headers={"cache-control": "max-age=300"})

    async def show(self, request: Request) -> Response:
        name = request.path_params["name"]
        key = period_key(name)

        def lookup(db: Database) -> object:
            found = archived_campaign(db, kind="digest", key=key) if key is not None else None
            if found is None and _SLUG_RE.fullmatch(name):
                found = archived_campaign(db, kind="article", key=name)
            if found is not None:
                found.rendered  # noqa: B018 -- decoded here, in the reader's thread, not in the loop's
            return found

        campaign = await self.store.read(lookup)
        if campaign is None:
            raise HTTPException(404)
        rendered = campaign.rendered  # type: ignore[attr-defined]
        language = pick_language(self.config, request.headers.get("accept-language"))
        email = rendered.get(language) or rendered.get(self.config.publication_language) or next(iter(rendered.values()))
        here = (f"{self.config.public_url}/archive/{quote(name, safe='-_.~')}",
                f"{self.config.public_url}{ARTICLE_PATH}{quote(name, safe='-_.~')}")
        return HTMLResponse(
            public_html(email, self_links=here),
            headers={"content-security-policy": ARCHIVE_CSP, "cache-control": "max-age=300"},
        )

    async def feed(self, request: Request) -> Response:
        entries = await self.store.read(archive_entries)
        base = self.config.public_url
        updated = entries[0].sent_at if entries else "1970-01-01T00:00:00+00:00"
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">',
            f"<title>{escape(self.config.publication_name)}</title>",
            f"<id>{escape(base)}/archive</id>",
            f'<link rel="alternate" type="text/html" href="{escape(base)}/archive"/>',
            f'<link rel="self" type="application/atom+xml" href="{escape(base)}/archive/feed.xml"/>',
            f"<updated>{escape(updated)}</updated>",
            f"<author><name>{escape(self.config.publication_name)}</name></author>",
        ]
        for entry in entries[:50]:
            url = f"{base}/archive/{quote(archive_key(entry), safe='-_.~')}"
            parts += [
                "<entry>",
                f"<title>{escape(entry.title)}</title>",
                f"<id>{escape(url)}</id>",
                f'<link rel="alternate" type="text/html" href="{escape(url)}"/>',
                f"<updated>{escape(entry.sent_at)}</updated>",
                f"<summary>{escape(entry.summary)}</summary>" if entry.summary else "",
                "</entry>",
            ]
        parts.append("</feed>\n")
        return Response("\n".join(p for p in parts if p), media_type="application/atom+xml; charset=utf-8",
                        headers={"cache-control": "max-age=300"})

    async def old_link(self, request: Request) -> Response:
        """/a/<slug>: the web-view link of emails sent before the archive existed."""
        slug = request.path_params["slug"]
        if not _SLUG_RE.fullmatch(slug):
            raise HTTPException(404)
        return RedirectResponse(f"/archive/{quote(slug, safe='-_.~')}", status_code=301)
