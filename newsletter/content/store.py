"""The articles table: store an article by slug, get it back, list and load articles.

Articles are stored by slug with the decoded source text, so a stored article is re-parsed
rather than kept in a second, drifting representation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..db import now, transaction
from ..errors import ArticleError
from .article import Article
from .checks import SLUG_RE
from .parse import parse_file, parse_text


@dataclass(frozen=True)
class AddResult:
    """What add_article did: action is added, updated or unchanged."""

    action: str
    article: Article

    @property
    def message(self) -> str:
        """One line for the user, naming the slug and what happened."""
        slug = self.article.slug
        if self.action == "unchanged":
            return f"{slug} is unchanged (same content as stored); nothing to do."
        return f"{self.action} {slug}: {self.article.title}"


def add_article(db: Database, article: Article, *, force: bool = False) -> AddResult:
    """Store `article` by slug: added, updated if changed, unchanged if the same content.

    A changed article whose slug was already sent is refused unless `force`: subscribers
    have the old version, so replacing it silently would make the archive lie.
    """
    if not article.source_text:
        raise ArticleError(f"article {article.slug!r} has no source text; read it with parse_file")
    values = {
        "slug": article.slug,
        "title": article.title,
        "summary": article.summary,
        "format": article.format,
        "language": article.language,
        "author": article.author,
        "published_at": article.published,
        "source_file": article.source,
        "source_text": article.source_text,
        "content_hash": article.content_hash,
    }
    # BEGIN IMMEDIATE: the write lock from the first read, so two processes cannot both add a slug.
    with transaction(db):
        row = db.execute(
            "SELECT id, content_hash, sent_at FROM articles WHERE slug = ?", [article.slug]
        ).fetchone()
        if row is None:
            stamp = now()
            columns = [*values, "created_at", "updated_at"]
            db.execute(
                f"INSERT INTO articles ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [*values.values(), stamp, stamp],
            )
            return AddResult(action="added", article=article)
        _, stored_hash, sent_at = row
        if stored_hash == article.content_hash:
            return AddResult(action="unchanged", article=article)
        if sent_at is not None and not force:
            raise ArticleError(
                f"{article.source}: article {article.slug!r} was already sent ({sent_at}) and "
                "this file differs from the stored version; use --force to replace it anyway "
                "(subscribers keep the old version), or give the new version its own slug"
            )
        assignments = ", ".join(f"{column} = ?" for column in values)
        db.execute(
            f"UPDATE articles SET {assignments}, updated_at = ? WHERE slug = ?",
            [*values.values(), now(), article.slug],
        )
    return AddResult(action="updated", article=article)


def mark_sent(db: Database, slug: str, *, at: str) -> None:
    """Record that `slug` went out (the first time only); in the caller's transaction."""
    db.conn.execute("UPDATE articles SET sent_at = coalesce(sent_at, ?) WHERE slug = ?", [at, slug])


def get_article(db: Database, slug: str) -> Article:
    """The stored article `slug`, re-parsed from the text that was stored."""
    row = db.execute(
        "SELECT source_text, source_file, format, content_hash FROM articles WHERE slug = ?",
        [slug],
    ).fetchone()
    if row is None:
        raise ArticleError(f"no article with slug {slug!r}; see `newsletter articles list`")
    source_text, source_file, format, content_hash = row
    article = parse_text(source_text, source=source_file, format=format)
    # The stored hash is of the file's bytes, which the decoded text cannot reproduce.
    return replace(article, slug=slug, content_hash=content_hash)


LIST_COLUMNS = (
    "slug",
    "title",
    "format",
    "language",
    "author",
    "published_at",
    "source_file",
    "content_hash",
    "created_at",
    "updated_at",
    "sent_at",
)


def list_articles(db: Database) -> list[dict[str, Any]]:
    """Every stored article (without its text), newest first."""
    cursor = db.execute(
        f"SELECT {', '.join(LIST_COLUMNS)} FROM articles ORDER BY created_at DESC, id DESC"
    )
    return [dict(zip(LIST_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def load_article(
    db: Database, file_or_slug: str | Path, *, encoding: str | None = None, force: bool = False,
    store: bool = True,
) -> Article:
    """An article named by a file (parsed and stored, as `articles add` does) or a stored slug.

    With store=False (a dry run) a file is only parsed: nothing is written."""
    path = Path(file_or_slug)
    if path.exists():
        article = parse_file(path, encoding=encoding)
        if store:
            add_article(db, article, force=force)
        return article
    name = str(file_or_slug)
    if SLUG_RE.match(name):
        try:
            return get_article(db, name)
        except ArticleError:
            raise ArticleError(
                f"{name!r} is neither a file nor a stored article; see `newsletter articles list`"
            ) from None
    raise ArticleError(f"no such file: {name}")
