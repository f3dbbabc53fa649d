"""The article model: Article and its Blocks, immutable and already safe to render.

Block.html is escaped/sanitised HTML for the template, Block.text the plain-text rendering
of the same block. parse.py builds them from files; render.py and message.py only read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
