"""Reading a feed: RSS and Atom from a URL or a local file, parsed, each item made an article's Markdown.

An item is known by its feed's address plus its own key: the guid/id the feed gives it,
else its link, else a hash of its content. Feed content is HTML from someone else's site:
it is reduced to text (paragraphs, headings, list items) and escaped before it becomes an
article, never passed on as markup. Nothing here touches the database (poll.py does).
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
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser

from .. import __version__
from ..errors import NewsletterError
from ..text import clean_line

DEFAULT_TIMEOUT = 20.0
MAX_FEED_BYTES = 10_000_000  # far above any real feed; more is a mistake or an attack
MAX_TITLE = 200  # the articles contract: a title becomes a Subject
SUMMARY_LENGTH = 200
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
    """One line of printable text (text.py's rule): control and line-break characters, and
    the invisible format characters (but the zero-width joiner of emoji), become spaces."""
    return clean_line(
        "".join(" " if unicodedata.category(ch) == "Cf" and ch != "\u200d" else ch for ch in text)
    )


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


__all__ = [
    "FeedError",
    "FeedItem",
    "FeedText",
    "ParsedFeed",
    "fetch",
    "item_markdown",
    "item_slug",
    "normalise_address",
    "parse",
]
