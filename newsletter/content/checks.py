"""Checks and small text helpers shared by both article formats.

Everything an article puts in a header (title, names) passes check_line: one line, no
control characters, so a header injection cannot be written in an article file.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import ArticleError
from ..text import forbidden_char, is_line_break

MAX_TITLE_LENGTH = 200  # it becomes the Subject; longer is a paragraph, not a title
MAX_SLUG_LENGTH = 200
SUMMARY_LENGTH = 200
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Bidirectional overrides can make a subject read differently from what it contains.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_line(value: str, *, what: str, source: str, where: str = "") -> str:
    """A value that may end up in a header: one line, no control characters."""
    at = f" ({where})" if where else ""
    half = next((c for c in value if unicodedata.category(c) == "Cs"), None)
    if half is not None:  # YAML's "\ud83c\udf89" is two halves, not one emoji
        raise ArticleError(
            f"{source}: the {what}{at} contains U+{ord(half):04X}, half of a character "
            "(a \\u escape of a surrogate?); write the character itself"
        )
    char = forbidden_char(value) or next((c for c in value if c in BIDI_CONTROLS), None)
    if char is not None and is_line_break(char):
        raise ArticleError(
            f"{source}: the {what}{at} contains a line break; it must be one line of text"
        )
    if char is not None:
        raise ArticleError(
            f"{source}: the {what}{at} contains the control character U+{ord(char):04X}; "
            "remove it"
        )
    return " ".join(value.split())  # also turns no-break spaces into plain ones


def check_title(title: str, *, source: str, where: str = "") -> str:
    """A title fit to be a Subject: one line, not empty, not a paragraph."""
    title = check_line(title, what="title", source=source, where=where)
    if not title:
        raise ArticleError(f"{source} has no title")
    if len(title) > MAX_TITLE_LENGTH:
        raise ArticleError(
            f"{source} has no title: the first line{f' ({where})' if where else ''} is "
            f"{len(title)} characters long, which is a paragraph; put the title (at most "
            f"{MAX_TITLE_LENGTH} characters) on its own line at the top"
        )
    return title


def check_slug(slug: str, *, source: str, where: str = "") -> str:
    """A slug as it appears in URLs: lowercase ASCII words joined by single hyphens."""
    if not SLUG_RE.match(slug) or len(slug) > MAX_SLUG_LENGTH:
        at = f" ({where})" if where else ""
        raise ArticleError(
            f"{source}: the slug{at} {slug!r} is not valid: use lowercase letters a-z, "
            f"digits and single hyphens, at most {MAX_SLUG_LENGTH} characters "
            "(like ai-voor-engineers)"
        )
    return slug


def check_controls(lines: list[str], *, source: str, first_line: int = 1) -> None:
    """Refuse control characters (tabs aside) in body text, naming line and column."""
    for number, line in enumerate(lines, start=first_line):
        for column, char in enumerate(line, start=1):
            if char != "\t" and (unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS):
                what = "a carriage return without a line feed" if char == "\r" else "the control character"
                raise ArticleError(
                    f"{source}: line {number}, column {column} contains {what} "
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


def derived_slug(title: str, source: str) -> str:
    """The slug of a file that names none, made from its title."""
    slug = slugify(title)
    if not slug:
        raise ArticleError(
            f"{source}: cannot make a URL slug from the title {title!r}; add a slug line "
            "(like ai-voor-engineers) below the title"
        )
    return slug
