"""Polling feeds: the feeds table, and each new item of a feed stored once as an article.

A feed that re-publishes or reorders its items adds nothing twice (feed_items remembers
each item by its key, see read.py), and one that edits an item it already published does
not make a second article of it. A feed that cannot be fetched or parsed is recorded
(last_error) and reported; the others are still polled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..content.parse import parse_text
from ..content.store import add_article
from ..db import now, transaction
from ..digests.plan import mark_for_digest
from ..errors import NewsletterError
from .read import (
    DEFAULT_TIMEOUT,
    FeedError,
    FeedItem,
    fetch,
    is_url,
    item_markdown,
    item_slug,
    normalise_address,
    parse,
)

# Items older than this when first seen are stored (so they never come back as new) but
# not put in a digest: adding a feed must not mail its whole back catalogue.
BACKLOG_LIMIT = timedelta(days=7)


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
            mark_for_digest(db, slug, at=at, source="feed", link=item.link)
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
    "PollResult",
    "add_feed",
    "get_feed",
    "iter_items",
    "list_feeds",
    "poll_all",
    "poll_feed",
    "remove_feed",
]
