"""Parse Markdown with YAML front matter into an Article.

Front matter keys: title, date, summary, author, slug, lang (others are refused, so a typo
is not silently ignored). The body is CommonMark plus tables, parsed by markdown-it-py with
raw HTML disabled (it arrives as escaped text) and only http, https and mailto links.
Each top-level block becomes one Block.
"""

from __future__ import annotations

import difflib
from datetime import date, datetime
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from ..config import LANGUAGES
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

FRONT_MATTER_KEYS = ("title", "date", "summary", "author", "slug", "lang")
_ALLOWED_LINK_SCHEMES = ("http:", "https:", "mailto:")


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
    md.validateLink = lambda url: url.strip().lower().startswith(_ALLOWED_LINK_SCHEMES)  # type: ignore[method-assign]
    return md


_MD = _markdown_parser()


def parse_markdown(text: str, source: str) -> Article:
    """The Article in a Markdown file (LF line endings, no BOM: parse_text sees to that)."""
    meta, body, body_line = _front_matter(text, source)
    lines = body.split("\n")
    check_controls(lines, source=source, first_line=body_line)

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
    title = check_title(title_value, source=source, where=title_where)

    blocks = tuple(_markdown_block(node, source, body_line) for node in nodes)
    if not blocks:
        raise ArticleError(f"{source} has no body: nothing follows the front matter and title")

    summary = meta.get("summary")
    if summary is None:
        first = next((b.text for b in blocks if b.kind == "paragraph"), blocks[0].text)
        summary = summarise(first)
    slug = meta.get("slug") or derived_slug(title, source)
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
        meta["title"] = check_title(meta["title"], source=source, where=where)
    for key in ("summary", "author"):
        if key in meta:
            # YAML block scalars keep line breaks; a summary or name is one line of text.
            value = " ".join(meta[key].split()) if key == "summary" else meta[key]
            meta[key] = check_line(value, what=key, source=source, where=where)
    if "slug" in meta:
        meta["slug"] = check_slug(meta["slug"].strip(), source=source, where=where)
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
