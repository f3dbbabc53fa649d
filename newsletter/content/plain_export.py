"""Parse the publisher's plain-text export into an Article.

The shape (see DESIGN.md): a publication line, the title, a URL slug line, paragraphs
separated by blank lines, short subheading lines between them, `Name - Role` signature
lines at the end, and page furniture ("Subscribe by email") that is not part of the article.
"""

from __future__ import annotations

import html
import re

from ..errors import ArticleError
from .article import Article, Block
from .checks import (
    check_controls,
    check_line,
    check_slug,
    check_title,
    derived_slug,
    summarise,
)

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


def parse_export(text: str, source: str) -> Article:
    """The Article in a plain-text export (LF line endings, no BOM: parse_text sees to that)."""
    lines = [line.strip() for line in text.split("\n")]
    lines = ["" if _is_furniture(line) else line for line in lines]
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line]
    if not numbered:
        raise ArticleError(f"{source} has no title (it holds only page furniture)")

    publication, title, slug, body_start = _export_header(numbered, source)
    check_controls(lines[body_start - 1 :], source=source, first_line=body_start)

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
        slug=slug or derived_slug(title, source),
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
        # One token with a hyphen or underscore is meant as a slug, so it is checked as one.
        # Above the third line it must also be lowercase: "Tech-Nieuws" is a publication.
        if index >= len(numbered):
            return False
        line = numbered[index][1]
        token = not any(c.isspace() for c in line) and ("-" in line or "_" in line) and len(line) > 2
        return token and (index >= 2 or line == line.lower())

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
        publication = check_line(numbered[pub][1], what="publication line", source=source, where=where(pub))
    title = check_title(numbered[title_at][1], source=source, where=where(title_at))
    slug = ""
    if slug_at is not None:
        slug = check_slug(numbered[slug_at][1], source=source, where=where(slug_at))
    last = slug_at if slug_at is not None else title_at
    return publication, title, slug, numbered[last][0] + 1


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


def _paragraph(kind: str, text: str) -> Block:
    tag = {"paragraph": "p", "heading": "h2"}[kind]
    return Block(kind=kind, text=text, html=f"<{tag}>{html.escape(text)}</{tag}>")
