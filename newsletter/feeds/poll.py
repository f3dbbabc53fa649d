"""Feeds: RSS and Atom from a URL or a local file, each new item stored once as an article.

An item is known by its feed's address plus its own key: the guid/id the feed gives it,
else its link, else a hash of its content. A feed that re-publishes or reorders its items
therefore adds nothing twice, and one that edits an item it already published does not make
a second article of it. Feed content is HTML from someone else's site: it is reduced to
text (paragraphs, headings, list items) and escaped before it becomes an article, never
passed on as markup.

A feed that cannot be fetched or parsed is recorded (last_error) and reported; the others
are still polled.
"""

from __future__ import annotations

import calendar
import hashlib
import http.client
import io
import json
import re
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
from sqlite_utils import Database

from .. import __version__
from ..db import now, transaction
from ..errors import NewsletterError

DEFAULT_TIMEOUT = 20.0
MAX_FEED_BYTES = 10_000_000  # far above any real feed; more is a mistake or an attack
MAX_TITLE = 200  # the articles contract: a title becomes a Subject
SUMMARY_LENGTH = 200
# Items older than this when first seen are stored (so they never come back as new) but
# not put in a digest: adding a feed must not mail its whole back catalogue.
BACKLOG_LIMIT = timedelta(days=7)
USER_AGENT = f"newsletter/{__version__} (+feed poller)"
_BLOCK_TAGS = {"p", "div", "br", "li", "blockquote", "pre", "tr", "section", "article", "figure",
               "figcaption", "ul", "ol", "table", "hr", "header", "footer", "dd", "dt"}
_HEADING_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SKIP_TAGS = {"script", "style", "head", "title", "noscript", "template", "iframe", "object"}
_MD_SPECIAL = re.compile(r"([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")


class FeedError(NewsletterError):
    """A feed cannot be added, fetched or parsed."""


@dataclass(frozen=True)
class FeedText:
    """One block of an item's content as plain text: a paragraph, heading or list item."""

    kind: str  # paragraph, heading or item
    text: str


@dataclass(frozen=True)
class FeedItem:
    """One item of a feed, reduced to checked plain text."""

    key: str  # id:..., link:... or hash:...
    title: str
    summary: str
    link: str
    published: datetime | None  # UTC
    author: str
    content: tuple[FeedText, ...]


@dataclass(frozen=True)
class ParsedFeed:
    """A fetched and parsed feed."""

    address: str
    title: str
    items: tuple[FeedItem, ...]
    etag: str | None = None
    modified: str | None = None
    not_modified: bool = False
    warning: str = ""  # set when the XML was broken but items could still be read


@dataclass
class PollResult:
    """What polling one feed did: the slugs of the new articles, or why it failed."""

    address: str
    new: list[str] = field(default_factory=list)
    seen: int = 0
    queued: int = 0  # new articles put in a digest (not back catalogue)
    error: str = ""
    warning: str = ""


# ---------------------------------------------------------------------------------------
# Addresses, fetching and parsing


def normalise_address(address: str, *, cwd: Path | None = None) -> str:
    """An http(s) URL as given, or a local file as an absolute path."""
    text = address.strip()
    if re.match(r"^https?://", text, re.IGNORECASE):
        return text
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        raise FeedError(f"{text!r}: only http://, https:// and local files are supported")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    return str(path.resolve())


def is_url(address: str) -> bool:
    return address.lower().startswith(("http://", "https://"))


def fetch(
    address: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    etag: str | None = None,
    modified: str | None = None,
) -> tuple[bytes | None, str | None, str | None]:
    """The raw bytes of the feed at `address` (None when the server says not modified).

    Returns (data, etag, last_modified). Raises FeedError with the reason.
    """
    if not is_url(address):
        path = Path(address)
        try:
            if path.stat().st_size > MAX_FEED_BYTES:
                raise FeedError(f"{address}: larger than {MAX_FEED_BYTES:,} bytes; not a feed")
            return path.read_bytes(), None, None
        except FileNotFoundError:
            raise FeedError(f"{address}: no such file") from None
        except IsADirectoryError:
            raise FeedError(f"{address}: a folder, not a feed file") from None
        except OSError as exc:
            raise FeedError(f"{address}: cannot read it: {exc.strerror or exc}") from None
    headers = {"User-Agent": USER_AGENT, "Accept": "application/rss+xml, application/atom+xml, "
               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    request = urllib.request.Request(address, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            data = response.read(MAX_FEED_BYTES + 1)
            if len(data) > MAX_FEED_BYTES:
                raise FeedError(f"{address}: larger than {MAX_FEED_BYTES:,} bytes; not a feed")
            return data, response.headers.get("ETag"), response.headers.get("Last-Modified")
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None, etag, modified
        raise FeedError(f"{address}: the server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FeedError(f"{address}: cannot reach it: {exc.reason}") from None
    except TimeoutError:
        raise FeedError(f"{address}: no answer within {timeout:g} seconds") from None
    except OSError as exc:
        raise FeedError(f"{address}: cannot fetch it: {exc}") from None
    except (http.client.InvalidURL, ValueError) as exc:  # a space or control character in it
        raise FeedError(f"{address}: not a usable URL ({exc})") from None
    except http.client.HTTPException as exc:  # not an HTTP answer (BadStatusLine, ...)
        raise FeedError(f"{address}: not a valid HTTP answer ({type(exc).__name__}: {exc})") from None


def parse(data: bytes, *, address: str) -> ParsedFeed:
    """Parse RSS or Atom bytes. A document with no feed in it at all raises FeedError."""
    # feedparser sanitises HTML content itself too; we reduce it to text regardless.
    # A stream, not bytes: feedparser treats a str or bytes that looks like an address as
    # one to open, and a feed's content must never make us open anything.
    headers = {"content-location": address} if is_url(address) else {}
    parsed = feedparser.parse(
        io.BytesIO(data), sanitize_html=True, resolve_relative_uris=True, response_headers=headers
    )
    version = parsed.get("version", "")
    if parsed.get("bozo") and not parsed.entries and not version:
        problem = parsed.get("bozo_exception")
        raise FeedError(
            f"{address}: not an RSS or Atom feed ({problem or 'unreadable'}); check the address "
            "or the file"
        )
    if not version and not parsed.entries:
        raise FeedError(f"{address}: not an RSS or Atom feed (no channel or feed element)")
    warning = ""
    if parsed.get("bozo"):
        warning = f"the feed is not well-formed XML ({parsed.get('bozo_exception')}); read what could be read"
    feed_title = _one_line(_text_of(parsed.feed.get("title_detail"), parsed.feed.get("title", "")))
    items = tuple(_item(entry, index=i) for i, entry in enumerate(parsed.entries))
    return ParsedFeed(address=address, title=feed_title[:MAX_TITLE], items=items, warning=warning)


def _item(entry: Any, *, index: int) -> FeedItem:
    link = str(entry.get("link") or "").strip()
    if link and not link.lower().startswith(("http://", "https://")):
        link = ""  # a javascript: or data: link never reaches an email
    content_html = ""
    content_list = entry.get("content") or []
    if content_list:
        content_html = str(content_list[0].get("value") or "")
    summary_html = str(entry.get("summary") or "")
    content = _blocks(content_html or summary_html)
    summary_text = " ".join(b.text for b in _blocks(summary_html)) if summary_html else ""
    if not summary_text:
        summary_text = " ".join(b.text for b in content if b.kind == "paragraph")
    title = _one_line(_text_of(entry.get("title_detail"), entry.get("title", "")))
    if not title:
        title = _cut(summary_text, 80) or "Untitled"
    title = _cut(title, MAX_TITLE)
    guid = str(entry.get("id") or "").strip()
    if guid:
        key = f"id:{guid}"
    elif link:
        key = f"link:{link}"
    else:
        digest = hashlib.sha256(
            json.dumps([title, summary_text, [b.text for b in content]], ensure_ascii=False).encode()
        ).hexdigest()
        key = f"hash:{digest}"
    return FeedItem(
        key=key,
        title=title,
        summary=_cut(summary_text, SUMMARY_LENGTH),
        link=link,
        published=_date(entry),
        author=_cut(_one_line(str(entry.get("author") or "")), 100),
        content=content,
    )


def _date(entry: Any) -> datetime | None:
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(name)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _text_of(detail: Any, fallback: str) -> str:
    value = str(fallback or "")
    if detail and "html" in str(detail.get("type", "")):
        return " ".join(b.text for b in _blocks(value))
    return value


def _one_line(text: str) -> str:
    """One line of printable text: control, format and line-break characters become spaces."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch != "\u200d" else ch
        for ch in text
    )
    return " ".join(cleaned.split())


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[: limit - 1]
    return cut.rstrip(" ,;:-–—") + "…"


class _TextExtractor(HTMLParser):
    """HTML to blocks of plain text; markup, scripts and styles are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[FeedText] = []
        self._parts: list[str] = []
        self._kind = "paragraph"
        self._skip = 0

    def _flush(self) -> None:
        text = _one_line("".join(self._parts))
        if text:
            self.blocks.append(FeedText(kind=self._kind, text=text))
        self._parts = []
        self._kind = "paragraph"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _HEADING_TAGS:
            self._flush()
            self._kind = "heading"
        elif tag == "li":
            self._flush()
            self._kind = "item"
        elif tag in _BLOCK_TAGS:
            self._flush()
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and not self._skip:
                self._parts.append(f" {alt} ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _HEADING_TAGS or tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def _blocks(markup: str) -> tuple[FeedText, ...]:
    if not markup.strip():
        return ()
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    return tuple(extractor.blocks)


# ---------------------------------------------------------------------------------------
# Items as articles


def _slug_words(title: str) -> str:
    text = unicodedata.normalize("NFKD", title.replace("€", " euro ")).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"['’‘`]", "", text).lower()).strip("-")
    if len(slug) > 60:
        slug = slug[:61].rsplit("-", 1)[0] if "-" in slug[:61] else slug[:60]
    return slug


def item_slug(address: str, item: FeedItem) -> str:
    """A readable slug that is the same every time for the same item of the same feed."""
    suffix = hashlib.sha256(f"{address}\n{item.key}".encode()).hexdigest()[:8]
    words = _slug_words(item.title)
    return f"{words}-{suffix}" if words else f"feed-item-{suffix}"


def _md_escape(text: str) -> str:
    # CommonMark lets every ASCII punctuation character be backslash-escaped, so escaping
    # all of them leaves no way for feed text to become a link, emphasis or a block.
    return _MD_SPECIAL.sub(r"\\\1", text)


def item_markdown(address: str, item: FeedItem, *, language: str | None = None) -> str:
    """The item as a Markdown article with front matter, in the articles module's format."""
    front = {
        "title": item.title,
        "slug": item_slug(address, item),
        "summary": item.summary,
        "date": item.published.isoformat() if item.published else None,
        "author": item.author or None,
        "lang": language,
    }
    lines = ["---"]
    for name, value in front.items():
        if value:
            # JSON strings are valid YAML double-quoted scalars: no YAML surprise in a title.
            lines.append(f"{name}: {json.dumps(value, ensure_ascii=False)}")
    lines.append("---")
    lines.append("")
    body = item.content or (FeedText("paragraph", item.summary or item.title),)
    for block in body:
        text = _md_escape(block.text)
        if block.kind == "heading":
            lines.append(f"## {text}")
        elif block.kind == "item":
            lines.append(f"- {text}")
        else:
            lines.append(text)
        lines.append("")
    if item.link:
        # An autolink: the URL is the text, so nothing in it can be read as Markdown.
        safe = item.link.replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")
        lines.append(f"<{safe}>")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Storage


def add_feed(
    db: Database, address: str, *, timeout: float = DEFAULT_TIMEOUT, check: bool = True,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Register a feed (URL or file). With `check`, fetch and parse it first, so a typo is
    refused now rather than reported on every run. Adding one twice changes nothing."""
    normalised = normalise_address(address, cwd=cwd)
    existing = get_feed(db, normalised, missing_ok=True)
    if existing is not None:
        return {**existing, "outcome": "exists"}
    title = ""
    if check:
        data, _, _ = fetch(normalised, timeout=timeout)
        assert data is not None
        title = parse(data, address=normalised).title
    with transaction(db):
        db.execute(
            "INSERT OR IGNORE INTO feeds (address, title, added_at) VALUES (?, ?, ?)",
            [normalised, title, now()],
        )
    return {**get_feed(db, normalised), "outcome": "added"}


_FEED_COLUMNS = ("id", "address", "title", "added_at", "last_polled_at", "last_ok_at", "last_error")


def get_feed(db: Database, address_or_id: str, *, missing_ok: bool = False) -> dict[str, Any]:
    """A feed by its id or address; FeedError when there is none (unless missing_ok)."""
    columns = ", ".join(_FEED_COLUMNS)
    text = str(address_or_id).strip()
    row = None
    if text.isdigit():
        row = db.execute(f"SELECT {columns} FROM feeds WHERE id = ?", [int(text)]).fetchone()
    if row is None:
        row = db.execute(f"SELECT {columns} FROM feeds WHERE address = ?", [text]).fetchone()
    if row is None and not is_url(text) and not text.isdigit():
        row = db.execute(
            f"SELECT {columns} FROM feeds WHERE address = ?", [normalise_address(text)]
        ).fetchone()
    if row is None:
        if missing_ok:
            return None  # type: ignore[return-value]
        raise FeedError(f"no feed {text!r}; `newsletter feeds list` shows the feeds and their ids")
    feed = dict(zip(_FEED_COLUMNS, row, strict=True))
    feed["items"] = db.execute(
        "SELECT count(*) FROM feed_items WHERE feed_address = ?", [feed["address"]]
    ).fetchone()[0]
    return feed


def list_feeds(db: Database) -> list[dict[str, Any]]:
    """Every feed with its item count and last poll outcome, oldest first."""
    ids = [row[0] for row in db.execute("SELECT id FROM feeds ORDER BY id").fetchall()]
    return [get_feed(db, str(i)) for i in ids]


def remove_feed(db: Database, address_or_id: str) -> dict[str, Any]:
    """Stop polling a feed. Its articles stay, and so does the record of its items, so
    adding it again later brings in only items that are new by then."""
    feed = get_feed(db, address_or_id)
    with transaction(db):
        db.execute("DELETE FROM feeds WHERE id = ?", [feed["id"]])
    return feed


StoreArticle = Callable[[Database, str, str], str]


def store_markdown_article(db: Database, markdown: str, source: str) -> str:
    """Parse `markdown` as an article and store it (articles.add_article); return its slug."""
    from ..content.parse import parse_text
    from ..content.store import add_article

    article = parse_text(markdown, source=source, format="markdown")
    add_article(db, article)
    return article.slug


def poll_feed(
    db: Database,
    address: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    language: str | None = None,
    at: datetime | None = None,
    store: StoreArticle = store_markdown_article,
) -> PollResult:
    """Fetch one feed and store each item not seen before as an article, exactly once.

    Each new item is stored in its own transaction with its feed_items row, so a crash
    between two items loses nothing and doubles nothing. Never raises for a bad feed: the
    error is in the result and in the feed's last_error.
    """
    at = at or datetime.now(UTC)
    result = PollResult(address=address)
    row = db.execute("SELECT etag, modified FROM feeds WHERE address = ?", [address]).fetchone()
    etag, modified = row if row else (None, None)
    try:
        data, new_etag, new_modified = fetch(address, timeout=timeout, etag=etag, modified=modified)
        parsed = parse(data, address=address) if data is not None else None
    except FeedError as exc:
        result.error = str(exc)
        with transaction(db):
            db.execute(
                "UPDATE feeds SET last_polled_at = ?, last_error = ? WHERE address = ?",
                [_iso(at), result.error, address],
            )
        return result
    if parsed is not None:
        result.warning = parsed.warning
        # Oldest first, so articles are created (and listed) in the order they appeared.
        for item in sorted(parsed.items, key=lambda i: i.published or at):
            outcome = _store_item(db, address, item, at=at, language=language, store=store, result=result)
            if outcome == "new":
                result.new.append(item_slug(address, item))
            elif outcome == "seen":
                result.seen += 1
    with transaction(db):
        db.execute(
            "UPDATE feeds SET last_polled_at = ?, last_ok_at = ?, last_error = NULL, etag = ?,"
            " modified = ?, title = CASE WHEN title = '' THEN ? ELSE title END WHERE address = ?",
            [_iso(at), _iso(at), new_etag, new_modified, parsed.title if parsed else "", address],
        )
    return result


def _store_item(
    db: Database, address: str, item: FeedItem, *, at: datetime, language: str | None,
    store: StoreArticle, result: PollResult,
) -> str:
    """Store one item unless known; "new", "seen" or "skipped" (refused, in result.warning)."""
    with transaction(db):
        known = db.execute(
            "SELECT 1 FROM feed_items WHERE feed_address = ? AND item_key = ?", [address, item.key]
        ).fetchone()
        if known:
            return "seen"
        markdown = item_markdown(address, item, language=language)
        try:
            slug = store(db, markdown, f"feed {address}")
        except NewsletterError as exc:
            # Not recorded as seen: a later version of the articles module (or of the
            # item) may accept it, and until then every run says so.
            result.warning = (result.warning + "; " if result.warning else "") + (
                f"item {item.key!r} skipped: {exc}"
            )
            return "skipped"
        db.execute(
            "INSERT INTO feed_items (feed_address, item_key, article_slug, link, published_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [address, item.key, slug, item.link, _iso(item.published) if item.published else None, _iso(at)],
        )
        if item.published is None or at - item.published <= BACKLOG_LIMIT:
            # Released when we first saw it, not at its own date: a digest whose period
            # has already gone out would otherwise never include it.
            db.execute(
                "INSERT OR IGNORE INTO digest_queue (article_slug, released_at, source, link)"
                " VALUES (?, ?, 'feed', ?)",
                [slug, _iso(at), item.link],
            )
            result.queued += 1
    return "new"


def poll_all(
    db: Database,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    language: str | None = None,
    at: datetime | None = None,
    store: StoreArticle = store_markdown_article,
) -> list[PollResult]:
    """Poll every feed; a broken one is reported in its result and the rest go on."""
    addresses = [row[0] for row in db.execute("SELECT address FROM feeds ORDER BY id").fetchall()]
    results = []
    for address in addresses:
        try:
            results.append(poll_feed(db, address, timeout=timeout, language=language, at=at, store=store))
        except NewsletterError as exc:  # e.g. an item the articles module refuses
            results.append(PollResult(address=address, error=str(exc)))
    return results


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def iter_items(db: Database, address: str) -> Iterable[dict[str, Any]]:
    """The items seen in a feed, in the order they were first stored."""
    cursor = db.execute(
        "SELECT item_key, article_slug, link, published_at, created_at FROM feed_items"
        " WHERE feed_address = ? ORDER BY id",
        [address],
    )
    for key, slug, link, published, created in cursor.fetchall():
        yield {"key": key, "slug": slug, "link": link, "published_at": published, "created_at": created}


__all__ = [
    "FeedError",
    "FeedItem",
    "FeedText",
    "ParsedFeed",
    "PollResult",
    "add_feed",
    "fetch",
    "get_feed",
    "item_markdown",
    "item_slug",
    "iter_items",
    "list_feeds",
    "normalise_address",
    "parse",
    "poll_all",
    "poll_feed",
    "remove_feed",
]
