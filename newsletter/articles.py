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

import difflib
import hashlib
import html
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from sqlite_utils import Database

from .config import LANGUAGES
from .db import now
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
FRONT_MATTER_KEYS = ("title", "date", "summary", "author", "slug", "lang")
MAX_FILE_BYTES = 5_000_000  # far above any article; a bigger file is a mistake
MAX_TITLE_LENGTH = 200  # it becomes the Subject; longer is a paragraph, not a title
MAX_SLUG_LENGTH = 200
SUMMARY_LENGTH = 200
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# Whole lines of the site's page around an article, not part of it.
FURNITURE = frozenset(
    {
        "subscribe by email",
        "subscribe by e-mail",
        "subscribe via email",
        "subscribe via e-mail",
        "abonneer per e-mail",
        "abonneer per email",
        "abonneer via e-mail",
        "abonneren per e-mail",
    }
)
# Name particles that stay lowercase inside a signature name ("Anouk de Vries").
NAME_PARTICLES = frozenset(
    {"van", "de", "der", "den", "ter", "ten", "te", "'t", "’t", "la", "le", "du", "da", "di", "von", "zu", "del"}
)
_SIGNATURE_RE = re.compile(r"^(?P<name>\S[^–—]*?)\s+[-–—]\s+(?P<role>\S.*)$")
_NAME_WORD_RE = re.compile(r"^[^\W\d_][\w'’.-]*$")
_BULLET_RE = re.compile(r"^[-•*–]\s+")
# A subheading or signature role ends without these; a sentence ends with one of them.
_FINAL_PUNCTUATION = ".,;:!?…\"”’'»)"
# Bidirectional overrides can make a subject read differently from what it contains.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ALLOWED_LINK_SCHEMES = ("http:", "https:", "mailto:")


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
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ArticleError(f"{source} is empty")
    if "\x00" in text:
        raise ArticleError(f"{source} is a binary file, not text (it contains NUL characters)")
    if format is None:
        is_markdown = source.lower().endswith(MARKDOWN_SUFFIXES) or text.startswith("---\n")
        format = "markdown" if is_markdown else "text"
    if format == "markdown":
        article = _parse_markdown(text, source)
    elif format == "text":
        article = _parse_export(text, source)
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
# Checks shared by both formats


def _check_line(value: str, *, what: str, source: str, where: str = "") -> str:
    """A value that may end up in a header: one line, no control characters."""
    at = f" ({where})" if where else ""
    for char in value:
        if char in "\n\r\u2028\u2029\x85\x0b\x0c":
            raise ArticleError(
                f"{source}: the {what}{at} contains a line break; it must be one line of text"
            )
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            raise ArticleError(
                f"{source}: the {what}{at} contains the control character U+{ord(char):04X}; "
                "remove it"
            )
    return " ".join(value.split())  # also turns no-break spaces into plain ones


def _check_title(title: str, *, source: str, where: str = "") -> str:
    title = _check_line(title, what="title", source=source, where=where)
    if not title:
        raise ArticleError(f"{source} has no title")
    if len(title) > MAX_TITLE_LENGTH:
        raise ArticleError(
            f"{source} has no title: the first line{f' ({where})' if where else ''} is "
            f"{len(title)} characters long, which is a paragraph; put the title (at most "
            f"{MAX_TITLE_LENGTH} characters) on its own line at the top"
        )
    return title


def _check_slug(slug: str, *, source: str, where: str = "") -> str:
    if not SLUG_RE.match(slug) or len(slug) > MAX_SLUG_LENGTH:
        at = f" ({where})" if where else ""
        raise ArticleError(
            f"{source}: the slug{at} {slug!r} is not valid: use lowercase letters a-z, "
            f"digits and single hyphens, at most {MAX_SLUG_LENGTH} characters "
            "(like ai-voor-engineers)"
        )
    return slug


def _check_body_controls(lines: list[str], *, source: str, first_line: int = 1) -> None:
    for number, line in enumerate(lines, start=first_line):
        for column, char in enumerate(line, start=1):
            if char != "\t" and (unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS):
                raise ArticleError(
                    f"{source}: line {number}, column {column} contains the control character "
                    f"U+{ord(char):04X}; remove it"
                )


def slugify(title: str) -> str:
    """A URL slug from a title: ASCII lowercase words joined by hyphens ("" if none)."""
    text = title.replace("€", " euro ").replace("&", " ")
    text = re.sub(r"['’‘`]", "", text)  # "wat’s" -> "wats", not "wat-s"
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > 80:
        slug = slug[:81].rsplit("-", 1)[0] if "-" in slug[:81] else slug[:80]
    return slug


def summarise(text: str, *, limit: int = SUMMARY_LENGTH) -> str:
    """`text` cut at a word boundary to about `limit` characters, with … when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[: limit + 1] else text[:limit]
    return cut.rstrip(" ,;:-–—") + "…"


def _paragraph(kind: str, text: str) -> Block:
    tag = {"paragraph": "p", "heading": "h2"}[kind]
    return Block(kind=kind, text=text, html=f"<{tag}>{html.escape(text)}</{tag}>")


# ---------------------------------------------------------------------------------------
# The plain-text export


def _parse_export(text: str, source: str) -> Article:
    lines = [line.strip() for line in text.split("\n")]
    lines = ["" if _is_furniture(line) else line for line in lines]
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line]
    if not numbered:
        raise ArticleError(f"{source} has no title (it holds only page furniture)")

    publication, title, slug, body_start = _export_header(numbered, source)
    _check_body_controls(lines[body_start - 1 :], source=source, first_line=body_start)

    chunks = _chunks(lines, body_start)
    signature: list[str] = []
    while chunks and all(_is_signature(line) for _, line in chunks[-1][1]):
        signature[:0] = [" ".join(line.split()) for _, line in chunks[-1][1]]
        chunks.pop()
    if not chunks:
        raise ArticleError(f"{source} has no body: nothing follows the title")

    blocks: list[Block] = []
    short = [_is_subheading(chunk_lines) for _, chunk_lines in chunks]
    for index, (_, chunk_lines) in enumerate(chunks):
        texts = [line for _, line in chunk_lines]
        if all(_BULLET_RE.match(t) for t in texts):
            items = [_BULLET_RE.sub("", t) for t in texts]
            blocks.append(
                Block(
                    kind="list",
                    text="\n".join(f"- {item}" for item in items),
                    html="<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>",
                )
            )
            continue
        joined = " ".join(texts)  # lines of one paragraph are soft-wrapped
        # A subheading sits between paragraphs: something before it, a paragraph after it.
        between = 0 < index < len(chunks) - 1 and not short[index + 1]
        blocks.append(_paragraph("heading" if short[index] and between else "paragraph", joined))

    first_paragraph = next((b.text for b in blocks if b.kind == "paragraph"), blocks[0].text)
    return Article(
        slug=slug or _derived_slug(title, source),
        title=title,
        summary=summarise(first_paragraph),
        blocks=tuple(blocks),
        signature=tuple(signature),
        publication=publication,
    )


def _export_header(numbered: list[tuple[int, str]], source: str) -> tuple[str, str, str, int]:
    """publication, title, slug ("" if the file has none) and the line the body starts on.

    The shape is: publication line, title, slug line. Without a slug line, two short
    heading-like lines at the top are the publication and the title; one is the title.
    """

    def slug_like(index: int) -> bool:
        # One token with a hyphen or underscore: meant as a slug, so checked as one.
        if index >= len(numbered):
            return False
        line = numbered[index][1]
        return not any(c.isspace() for c in line) and ("-" in line or "_" in line) and len(line) > 2

    def where(index: int) -> str:
        return f"line {numbered[index][0]}"

    if slug_like(0):
        raise ArticleError(
            f"{source} has no title: the first line ({where(0)}) is the slug "
            f"{numbered[0][1]!r}; the title goes above it"
        )
    if slug_like(2) and not slug_like(1):
        pub, title_at, slug_at = 0, 1, 2
    elif slug_like(1):
        pub, title_at, slug_at = None, 0, 1
    elif (
        len(numbered) > 2
        and _is_subheading(numbered[0:1])
        and _is_title_like(numbered[1][1])
        and numbered[2][0] > numbered[1][0] + 1  # a title stands alone, not atop a paragraph
    ):
        pub, title_at, slug_at = 0, 1, None
    else:
        pub, title_at, slug_at = None, 0, None

    publication = ""
    if pub is not None:
        publication = _check_line(numbered[pub][1], what="publication line", source=source, where=where(pub))
    title = _check_title(numbered[title_at][1], source=source, where=where(title_at))
    slug = ""
    if slug_at is not None:
        slug = _check_slug(numbered[slug_at][1], source=source, where=where(slug_at))
    last = slug_at if slug_at is not None else title_at
    return publication, title, slug, numbered[last][0] + 1


def _derived_slug(title: str, source: str) -> str:
    slug = slugify(title)
    if not slug:
        raise ArticleError(
            f"{source}: cannot make a URL slug from the title {title!r}; add a slug line "
            "(like ai-voor-engineers) below the title"
        )
    return slug


def _chunks(lines: list[str], start: int) -> list[tuple[int, list[tuple[int, str]]]]:
    """Groups of consecutive non-blank lines from line `start` on, with their line numbers."""
    chunks: list[tuple[int, list[tuple[int, str]]]] = []
    current: list[tuple[int, str]] = []
    for number in range(start, len(lines) + 1):
        line = lines[number - 1]
        if line:
            current.append((number, line))
        elif current:
            chunks.append((current[0][0], current))
            current = []
    if current:
        chunks.append((current[0][0], current))
    return chunks


def _is_furniture(line: str) -> bool:
    return " ".join(line.split()).lower().rstrip(" .:»>›") in FURNITURE


def _is_subheading(chunk_lines: list[tuple[int, str]]) -> bool:
    """One short line without final punctuation: a subheading (or a publication/title line)."""
    if len(chunk_lines) != 1:
        return False
    line = chunk_lines[0][1]
    return (
        len(line) <= 80
        and len(line.split()) <= 10
        and line[-1] not in _FINAL_PUNCTUATION
        and not _BULLET_RE.match(line)
    )


def _is_title_like(line: str) -> bool:
    """A line that reads as a headline rather than as the start of the text."""
    return len(line) <= 150 and len(line.split()) <= 25 and line[-1] not in ".,;:"


def _is_signature(line: str) -> bool:
    """`Name - Role`: a capitalised name of a few words, a dash, a role without a full stop."""
    match = _SIGNATURE_RE.match(" ".join(line.split()))
    if not match or len(line) > 120 or line[-1] in _FINAL_PUNCTUATION:
        return False
    words = match["name"].split()
    if not 1 <= len(words) <= 6 or not words[0][0].isupper():
        return False
    return all(
        _NAME_WORD_RE.match(w) and (w[0].isupper() or w.lower() in NAME_PARTICLES) for w in words
    )


# ---------------------------------------------------------------------------------------
# Markdown with YAML front matter


class _FrontMatterLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, but dates stay strings so a bad one gets our own message."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _markdown_parser() -> MarkdownIt:
    # html=False: raw HTML in an article arrives as escaped text, never as markup.
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    # Only web and mail links; anything else (javascript:, data:, file:) stays plain text.
    md.validateLink = lambda url: url.strip().lower().startswith(_ALLOWED_LINK_SCHEMES)
    return md


_MD = _markdown_parser()


def _parse_markdown(text: str, source: str) -> Article:
    meta, body, body_line = _front_matter(text, source)
    lines = body.split("\n")
    _check_body_controls(lines, source=source, first_line=body_line)

    tree = SyntaxTreeNode(_MD.parse(body))
    nodes = list(tree.children)
    title_value = meta.get("title")
    title_where = "front matter"
    if nodes and nodes[0].type == "heading" and nodes[0].tag == "h1":
        heading = " ".join(_block_text(nodes[0]).split())
        # A leading `# Title` is the title when the front matter has none, and a
        # duplicate of it (not shown twice) when the front matter has the same one.
        if title_value is None:
            title_value = heading
            title_where = f"line {body_line + (nodes[0].map or (0, 0))[0]}"
            nodes = nodes[1:]
        elif heading == title_value:
            nodes = nodes[1:]
    if title_value is None:
        raise ArticleError(
            f"{source} has no title: add `title: ...` to the front matter or start the text "
            "with a `# Title` line"
        )
    title = _check_title(title_value, source=source, where=title_where)

    blocks = tuple(_markdown_block(node, source, body_line) for node in nodes)
    if not blocks:
        raise ArticleError(f"{source} has no body: nothing follows the front matter and title")

    summary = meta.get("summary")
    if summary is None:
        first = next((b.text for b in blocks if b.kind == "paragraph"), blocks[0].text)
        summary = summarise(first)
    slug = meta.get("slug") or _derived_slug(title, source)
    return Article(
        slug=slug,
        title=title,
        summary=summary,
        blocks=blocks,
        language=meta.get("lang"),
        author=meta.get("author"),
        published=meta.get("date"),
    )


def _front_matter(text: str, source: str) -> tuple[dict[str, Any], str, int]:
    """The checked front matter, the body and the body's first line number."""
    lines = text.split("\n")
    if lines[0].rstrip() != "---":
        return {}, text, 1
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        raise ArticleError(
            f"{source}: the front matter opened on line 1 is never closed; end it with a `---` line"
        )
    try:
        raw = yaml.load("\n".join(lines[1:end]), Loader=_FrontMatterLoader)  # noqa: S506 (safe)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" on line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ArticleError(f"{source}: the front matter is not valid YAML{at}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ArticleError(
            f"{source}: the front matter must be `key: value` lines (title, date, summary, "
            "author, slug, lang)"
        )
    unknown = [str(k) for k in raw if k not in FRONT_MATTER_KEYS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, FRONT_MATTER_KEYS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ArticleError(
            f"{source}: unknown front matter key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(hints)}; the keys are {', '.join(FRONT_MATTER_KEYS)}"
        )

    meta: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ArticleError(
                f"{source}: front matter {key!r} must be text, not {type(value).__name__} "
                f"{value!r}; put the value in quotes"
            )
        meta[key] = value
    where = "front matter"
    if "title" in meta:
        meta["title"] = _check_title(meta["title"], source=source, where=where)
    for key in ("summary", "author"):
        if key in meta:
            # YAML block scalars keep line breaks; a summary or name is one line of text.
            value = " ".join(meta[key].split()) if key == "summary" else meta[key]
            meta[key] = _check_line(value, what=key, source=source, where=where)
    if "slug" in meta:
        meta["slug"] = _check_slug(meta["slug"].strip(), source=source, where=where)
    if "lang" in meta:
        meta["lang"] = _check_language(meta["lang"], source)
    if "date" in meta:
        meta["date"] = _check_date(meta["date"], source)
    return meta, "\n".join(lines[end + 1 :]), end + 2


def _check_language(value: str, source: str) -> str:
    primary = value.strip().lower().replace("_", "-").split("-")[0]
    if primary not in LANGUAGES:
        raise ArticleError(
            f"{source}: front matter lang {value!r} is not supported; use one of {', '.join(LANGUAGES)}"
        )
    return primary


def _check_date(value: str, source: str) -> str:
    value = value.strip()
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        raise ArticleError(
            f"{source}: front matter date {value!r} is not a date; write it like 2026-11-26 "
            "or 2026-11-26T09:30:00+01:00"
        ) from None


def _markdown_block(node: SyntaxTreeNode, source: str, first_line: int) -> Block:
    rendered = _MD.renderer.render(node.to_tokens(), _MD.options, {}).strip()
    kind = {
        "paragraph": "paragraph",
        "heading": "heading",
        "bullet_list": "list",
        "ordered_list": "list",
        "blockquote": "quote",
        "fence": "code",
        "code_block": "code",
        "table": "table",
        "hr": "rule",
    }.get(node.type)
    if kind is None:  # html=False means no html_block; anything else is a parser surprise
        line = first_line + node.map[0] if node.map else first_line
        raise ArticleError(f"{source}: line {line}: unsupported Markdown block {node.type!r}")
    if kind == "paragraph":
        inline = node.children[0]
        content = [c for c in inline.children if c.type not in ("softbreak", "hardbreak")]
        if len(content) == 1 and content[0].type == "image":
            return Block(kind="image", text=_inline_text(content[0]), html=rendered)
    return Block(kind=kind, text=_block_text(node), html=rendered)


def _block_text(node: SyntaxTreeNode) -> str:
    """The plain-text rendering of one Markdown block."""
    if node.type in ("paragraph", "heading"):
        return _inline_text(node.children[0]) if node.children else ""
    if node.type in ("fence", "code_block"):
        return node.content.rstrip("\n")
    if node.type == "hr":
        return "---"
    if node.type == "blockquote":
        inner = "\n\n".join(_block_text(child) for child in node.children)
        return "\n".join(f"> {line}".rstrip() for line in inner.split("\n"))
    if node.type in ("bullet_list", "ordered_list"):
        start = int(node.attrs.get("start", 1)) if node.type == "ordered_list" else 1
        items = []
        for number, item in enumerate(node.children, start=start):
            marker = f"{number}. " if node.type == "ordered_list" else "- "
            inner = "\n".join(_block_text(child) for child in item.children)
            pad = " " * len(marker)
            items.append(marker + inner.replace("\n", "\n" + pad))
        return "\n".join(items)
    if node.type == "table":
        rows = [
            [_inline_text(cell.children[0]) if cell.children else "" for cell in row.children]
            for section in node.children
            for row in section.children
        ]
        widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
        return "\n".join(
            " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
        )
    return node.content


def _inline_text(node: SyntaxTreeNode) -> str:
    """Plain text of inline Markdown: emphasis dropped, links as `text (url)`."""
    parts: list[str] = []
    for child in node.children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "link":
            label = _inline_text(child)
            href = str(child.attrs.get("href", ""))
            target = href.removeprefix("mailto:")
            parts.append(label if label in (href, target) else f"{label} ({target})")
        else:  # em, strong, image (its alt text), s
            parts.append(_inline_text(child))
    return "".join(parts)


# ---------------------------------------------------------------------------------------
# Storage


@contextmanager
def _write_transaction(db: Database) -> Iterator[None]:
    """Hold the write lock from the first read, so two processes cannot both add a slug."""
    if db.conn.in_transaction:  # the caller's transaction decides
        yield
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()


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
    with _write_transaction(db):
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


def load_article(db: Database, file_or_slug: str | Path, *, encoding: str | None = None) -> Article:
    """An article named by a file (parsed and stored, as `articles add` does) or a stored slug."""
    path = Path(file_or_slug)
    if path.exists():
        article = parse_file(path, encoding=encoding)
        add_article(db, article)
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
