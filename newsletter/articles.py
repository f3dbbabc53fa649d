"""Read article files into Article values: the publisher's plain-text export and Markdown.

CONTRACT (shared by render.py, message.py and send.py; fill in the parsing, keep the shape):
an Article is immutable and already safe: Block.html is escaped/sanitised HTML for the
template, Block.text the plain-text rendering of the same block.
"""

from __future__ import annotations

from dataclasses import dataclass


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
