"""Read article files into Article values: the publisher's plain-text export and Markdown.

CONTRACT (shared by render.py, message.py and send.py; fill in the parsing, keep the shape):
an Article is immutable and already safe: Block.html is escaped/sanitised HTML for the
template, Block.text the plain-text rendering of the same block.

Two formats come in:
- the plain-text export of the publisher's site: a publication line, the title, a URL slug,
  paragraphs separated by blank lines, short subheading lines, `Name - Role` signature lines
  at the end and page furniture ("Subscribe by email") that is dropped;
- Markdown (a .md/.markdown file, or any file opening with a `---` front matter block) with
  YAML front matter: title, date, summary, author, slug, lang.

Articles are stored by slug in the `articles` table with the decoded source text, so a
stored article is re-parsed rather than kept in a second, drifting representation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from .article_checks import SLUG_RE, slugify, summarise
from .db import now, transaction
from .errors import ArticleError


@dataclass(frozen=True)
class Block:
    """One block of the body: kind is paragraph, heading, list, quote, code, table, image or rule."""

    kind: str
    text: str
    html: str


@dataclass(frozen=True)
class Article:
    """An article as parsed from its file."""

    slug: str
    title: str
    summary: str
    blocks: tuple[Block, ...]
    signature: tuple[str, ...] = ()  # name/role lines at the end ("Ann - Editor")
    publication: str = ""  # the publication line of a plain-text export
    language: str | None = None
    author: str | None = None
    published: str | None = None  # ISO date if the file gave one
    source: str = ""  # the file it came from
    content_hash: str = ""  # sha256 of the file's bytes
    format: str = "text"  # text or markdown
    # The decoded file, kept so add_article can store it and get_article re-parse it.
    source_text: str = field(default="", repr=False, compare=False)


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


MARKDOWN_SUFFIXES = (".md", ".markdown")
MAX_FILE_BYTES = 5_000_000  # far above any article; a bigger file is a mistake


# ---------------------------------------------------------------------------------------
# Reading files


def parse_file(path: Path | str, *, encoding: str | None = None) -> Article:
    """Read and parse the article file at `path` (UTF-8 unless `encoding` names another)."""
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ArticleError(f"{source} is a folder, not an article file") from None
    except OSError as exc:
        raise ArticleError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ArticleError(
            f"{source} is {len(data):,} bytes; an article file is at most {MAX_FILE_BYTES:,} bytes"
        )
    text = decode(data, source=source, encoding=encoding)
    article = parse_text(text, source=source)
    return replace(article, content_hash=hashlib.sha256(data).hexdigest())


def decode(data: bytes, *, source: str, encoding: str | None = None) -> str:
    """The text of a file's bytes: UTF-8 (a BOM is allowed) unless `encoding` names another."""
    if not data.strip():
        raise ArticleError(f"{source} is empty")
    if encoding is None:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ArticleError(f"{source} is UTF-16 text, not UTF-8; read it with --encoding utf-16")
        nul = data.find(b"\x00")
        if nul >= 0:
            raise ArticleError(
                f"{source} is a binary file, not text (NUL byte at offset {nul}); "
                "an article is a .txt or .md file (a UTF-16 text file needs --encoding utf-16)"
            )
        body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = exc.start + len(data) - len(body)
            raise ArticleError(
                f"{source} is not UTF-8 text: byte 0x{data[offset]:02x} at offset {offset} "
                "cannot be decoded; save it as UTF-8, or name its encoding with --encoding "
                "(for example --encoding cp1252)"
            ) from None
    else:
        try:
            text = data.decode(encoding)
        except LookupError:
            raise ArticleError(f"unknown encoding {encoding!r} for {source}") from None
        except UnicodeDecodeError as exc:
            raise ArticleError(
                f"{source} is not {encoding} text: byte 0x{data[exc.start]:02x} at offset "
                f"{exc.start} cannot be decoded; check --encoding"
            ) from None
        text = text.removeprefix("\ufeff")
        if "\x00" in text:
            raise ArticleError(f"{source} is a binary file, not text (it contains NUL characters)")
    if not text.strip():
        raise ArticleError(f"{source} is empty")
    return text


def parse_text(text: str, *, source: str, format: str | None = None) -> Article:
    """Parse an article from its decoded text; `source` names the file in errors.

    The format is Markdown when `source` ends in .md/.markdown or the text opens with a
    `---` front matter block, else the plain-text export; `format` forces one.
    """
    # CRLF is tolerated; a lone CR is not turned into a line break, so "Title\rBcc: ..."
    # is refused by the checks instead of quietly becoming two lines.
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise ArticleError(f"{source} is empty")
    if "\x00" in text:
        raise ArticleError(f"{source} is a binary file, not text (it contains NUL characters)")
    if format is None:
        opens_front_matter = text.split("\n", 1)[0].rstrip() == "---"
        is_markdown = source.lower().endswith(MARKDOWN_SUFFIXES) or opens_front_matter
        format = "markdown" if is_markdown else "text"
    # Imported here because the format modules build Article and Block from this module.
    if format == "markdown":
        from .article_markdown import parse_markdown

        article = parse_markdown(text, source)
    elif format == "text":
        from .article_text import parse_export

        article = parse_export(text, source)
    else:
        raise ArticleError(f"unknown article format {format!r} for {source}: use text or markdown")
    return replace(
        article,
        source=source,
        source_text=text,
        format=format,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


# ---------------------------------------------------------------------------------------
# Storage


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


__all__ = [
    "AddResult",
    "Article",
    "Block",
    "add_article",
    "decode",
    "get_article",
    "list_articles",
    "load_article",
    "parse_file",
    "parse_text",
    "slugify",
    "summarise",
]
