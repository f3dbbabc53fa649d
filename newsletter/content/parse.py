"""Read article files into Article values: the publisher's plain-text export and Markdown.

Two formats come in:
- the plain-text export of the publisher's site (plain_export.py): a publication line, the
  title, a URL slug, paragraphs separated by blank lines, short subheading lines,
  `Name - Role` signature lines at the end and page furniture ("Subscribe by email") that
  is dropped;
- Markdown (markdown.py; a .md/.markdown file, or any file opening with a `---` front
  matter block) with YAML front matter: title, date, summary, author, slug, lang.

This module reads and decodes the file and picks the format; the format modules build the
Article.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from ..errors import ArticleError
from .article import Article
from .markdown import parse_markdown
from .plain_export import parse_export

MARKDOWN_SUFFIXES = (".md", ".markdown")
MAX_FILE_BYTES = 5_000_000  # far above any article; a bigger file is a mistake


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
    if format == "markdown":
        article = parse_markdown(text, source)
    elif format == "text":
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
