"""Articles to email content: Jinja2 templates, then premailer, once per campaign and language.

The result (RenderedEmail) still holds a few personal placeholders such as `{nl:name}`;
message.py fills them in per recipient with a plain substitution, so the expensive steps
(templates, CSS inlining) run once however long the list is. Placeholders use only
characters that Jinja2's autoescape, premailer/lxml and URL attributes leave untouched.

Templates come from the user's folder (Config.templates, copied there by `newsletter init`)
with the packaged copies as the fallback for any file the user removed; the words around the
article come from strings.toml, keyed by language, and dates are written out in words by
dates.py. Every email's "view in browser" link goes to its page in the web archive:
WEB_URL/archive/<slug> for an article, WEB_URL/archive/<digest key> for a digest
(Period.archive_key, e.g. digest-2026-W50).
"""

from __future__ import annotations

import functools
import logging
import re
import textwrap
import tomllib
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import jinja2
from markupsafe import Markup
from premailer import Premailer

from .. import packaged_templates
from ..config import Config
from ..errors import ArticleError, NewsletterError
from ..text import forbidden_char
from .article import Article
from .dates import date_words, day_words, range_words
from .rendered import RenderedEmail

STRINGS_FILE = "strings.toml"
FALLBACK_LANGUAGE = "en"
PREHEADER_CHARS = 140

# Personal placeholders, substituted per recipient by message.py. The syntax `{nl:key}`
# never occurs in ordinary text, and braces and colons pass through autoescape, premailer
# and lxml's href serialisation unchanged (tests check that).
PLACEHOLDER_RE = re.compile(r"\{nl:([a-z_]+)\}")


def placeholder(key: str) -> str:
    """The placeholder text for one personal field."""
    return "{nl:" + key + "}"


NAME = placeholder("name")
EMAIL = placeholder("email")
UNSUBSCRIBE_URL = placeholder("unsubscribe_url")
CONFIRM_URL = placeholder("confirm_url")
PREFERENCES_URL = placeholder("preferences_url")
PERSONAL_FIELDS = ("name", "email", "unsubscribe_url", "confirm_url", "preferences_url")

# URL paths of the web endpoints (`newsletter serve` implements them).
UNSUBSCRIBE_PATH = "/u/"
CONFIRM_PATH = "/c/"
PREFERENCES_PATH = "/p/"
ARTICLE_PATH = "/a/"  # the old short article address; the web server redirects it to ARCHIVE_PATH
ARCHIVE_PATH = "/archive/"  # /archive/<slug> for an article, /archive/<digest key> for a digest
BYLINE_SEPARATOR = " · "


class DigestPeriod(Protocol):
    """What a digest needs of its period (periods.Period has it): only these four."""

    @property
    def kind(self) -> str: ...  # daily or weekly
    @property
    def first_day(self) -> date: ...
    @property
    def last_day(self) -> date: ...
    @property
    def archive_key(self) -> str: ...  # its name in the web archive: digest-2026-W50


class TemplateError(NewsletterError):
    """An email template or strings.toml cannot be loaded or rendered."""


def unsubscribe_url(config: Config, token: str) -> str:
    """The one-click unsubscribe URL of a subscriber (GET shows a button, POST unsubscribes)."""
    return f"{config.public_url}{UNSUBSCRIBE_PATH}{token}"


def confirm_url(config: Config, token: str) -> str:
    """The double opt-in confirmation URL of a subscriber."""
    return f"{config.public_url}{CONFIRM_PATH}{token}"


def preferences_url(config: Config, token: str) -> str:
    """The page where a subscriber changes cadence and language, or unsubscribes."""
    return f"{config.public_url}{PREFERENCES_PATH}{token}"


def archive_url(config: Config, key: str) -> str:
    """The web view of an article (key: its slug) or a digest (key: Period.archive_key)."""
    return f"{config.public_url}{ARCHIVE_PATH}{quote(key, safe='-_.~')}"


def article_url(config: Config, slug: str) -> str:
    """The web view of an article."""
    return archive_url(config, slug)


def render_article(article: Article, config: Config, *, language: str) -> RenderedEmail:
    """Render one article for subscribers who read `language`; raises ArticleError or TemplateError."""
    title = _one_line(article.title, what="the article's title")
    if not title:
        raise ArticleError(f"{article.source or article.slug}: the article has no title")
    web_url = article_url(config, article.slug)
    blocks = _blocks(article)
    first_text = next((b.text for b in article.blocks if b.kind == "paragraph"), "")
    strings = _strings_for(config, language)
    context = {
        "title": _defuse(title),
        "blocks": blocks,
        "byline": _byline(article, strings, language=_language_key(config, language)),
        "signature": [_defuse(line) for line in article.signature],
        "author": article.author,
        "published": article.published,
        "preheader": _defuse(_preheader(article.summary or first_text)),
        "web_url": web_url,
        "lang": article.language or config.publication_language,
    }
    return _render("article", context, config, language=language, subject=title)


def render_digest(
    articles: Iterable[Article],
    config: Config,
    *,
    language: str,
    period: DigestPeriod | None = None,
    period_label: str | None = None,
    released: Mapping[str, date] | None = None,
    full_text: bool = False,
) -> RenderedEmail:
    """Render a digest: a list of articles with title, date, summary and a link to each, and
    with `full_text` the body and signature of each as well.

    The period's words (`Weekoverzicht 7 t/m 13 december 2026`) come from strings.toml in
    the reader's language; `period_label` replaces them with words of the caller's own. An
    article shows its front matter date, else the day it was released (`released`, by slug).
    """
    key = _language_key(config, language)
    strings = _strings_for(config, key)
    if period_label is not None:
        span = digest_name = _one_line(period_label, what="the digest period")
    elif period is not None:
        if period.kind == "daily":
            span = day_words(period.first_day, language=key, strings=strings)
        else:
            span = range_words(period.first_day, period.last_day, language=key, strings=strings)
        digest_name = _fill(strings[f"digest_{period.kind}"], {"period": span})
    else:
        raise TypeError("render_digest needs the period (or a period_label)")
    items: list[dict[str, Any]] = [
        {
            "title": _defuse(_one_line(a.title, what="an article's title")),
            "summary": _defuse(a.summary),
            "url": article_url(config, a.slug),
            "date": _article_date(a, (released or {}).get(a.slug), strings, language=key),
            "author": _defuse(a.author or ""),
            "blocks": _blocks(a) if full_text else [],
            "signature": [_defuse(line) for line in a.signature] if full_text else [],
        }
        for a in articles
    ]
    words = {"publication": config.publication_name, "period": span, "digest": digest_name}
    subject = _fill(strings["digest_subject"], words)
    context = {
        "title": digest_name,
        "items": items,
        "period": span,
        "preheader": _preheader(" · ".join(str(i["title"]) for i in items)),
        # a digest has a page of its own only when it is a period's digest
        "web_url": archive_url(config, period.archive_key) if period is not None else "",
        "lang": key,  # the digest's own words are in this language
    }
    return _render("digest", context, config, language=language, subject=subject,
                   fill={"period": span, "digest": digest_name})


def _article_date(article: Article, released: date | None, strings: Mapping[str, str], *, language: str) -> str:
    """The article's date in words: its front matter date, else the day it was released."""
    day = released
    if article.published:
        try:
            day = date.fromisoformat(article.published[:10])
        except ValueError:  # the parser checked it; an odd stored one just shows no date
            day = released
    return date_words(day, language=language, strings=strings) if day else ""


def _byline(article: Article, strings: Mapping[str, str], *, language: str) -> list[str]:
    """The lines under the title: `Door Ann Jansen · 1 december 2026` from the front matter,
    else the `Name - Role` lines the plain-text export ends with."""
    first: list[str] = []
    if article.author:
        first.append(_fill(strings["byline_author"], {"author": _defuse(article.author)}))
    published = _article_date(article, None, strings, language=language)
    if published:
        first.append(published)
    lines = [BYLINE_SEPARATOR.join(first)] if first else []
    return lines + [_defuse(line) for line in article.signature]


def _blocks(article: Article) -> list[dict[str, Any]]:
    # the contract: Block.html is already safe markup
    return [
        {"kind": b.kind, "text": _defuse(b.text), "html": Markup(_defuse(b.html))}
        for b in article.blocks
    ]


def render_confirmation(config: Config, *, language: str) -> RenderedEmail:
    """Render the double opt-in email; `{nl:confirm_url}` is filled in per recipient."""
    strings = _strings_for(config, language)
    subject = _fill(strings["confirm_subject"], {"publication": config.publication_name})
    context = {
        "title": subject,
        "preheader": _preheader(_fill(strings["confirm_intro"], {"publication": config.publication_name})),
        "confirm_url": CONFIRM_URL,
        "web_url": "",
        "lang": _language_key(config, language),
    }
    return _render("confirm", context, config, language=language, subject=subject)


def inline_css(html: str) -> str:
    """Inline the <style> rules into style attributes; keep @media rules and their !important."""
    try:
        inlined = Premailer(
            html,
            allow_network=False,
            strip_important=False,  # the default strips !important in @media too: mobile breaks
            # premailer copies a CSS height into the height attribute, overwriting it: the
            # `height: auto` that keeps images in proportion would replace a logo's or an
            # image's real height="60" with the invalid height="auto" Outlook then ignores.
            disable_basic_attributes=["height"],
            keep_style_tags=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
        ).transform(pretty_print=False)
    except Exception as exc:  # premailer raises bare lxml/cssutils errors
        raise TemplateError(f"cannot inline the CSS of the email: {exc}") from exc
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = "<!DOCTYPE html>\n" + inlined
    return inlined.replace("\r\n", "\n")


def _render(
    name: str,
    context: dict[str, Any],
    config: Config,
    *,
    language: str,
    subject: str,
    fill: Mapping[str, str] | None = None,
) -> RenderedEmail:
    key = _language_key(config, language)
    strings = _strings_for(config, key)
    values = {"publication": config.publication_name, **(fill or {})}
    common = {
        "publication": config.publication_name,
        "site_url": config.publication_site_url,
        "postal_address": config.publication_postal_address,
        "logo_url": config.publication_logo_url,
        "logo_width": config.publication_logo_width,
        "logo_height": config.publication_logo_height,
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "preferences_url": PREFERENCES_URL,
        "name": NAME,
        "email": EMAIL,
        "t": _translator(strings, values),
    }
    env = _environment(_template_dirs(config))
    full = {**common, **context}
    try:
        html = env.get_template(f"{name}.html").render(full)
        text = env.get_template(f"{name}.txt").render(full)
    except jinja2.TemplateError as exc:
        lineno = getattr(exc, "lineno", None)  # only syntax errors know their line
        where = f"{getattr(exc, 'filename', None) or name}, line {lineno}: " if lineno else ""
        raise TemplateError(f"template {name}: {where}{exc.message or exc}") from exc
    return RenderedEmail(
        subject=subject,
        html=inline_css(html),
        text=_tidy_text(text),
        language=key,
        name_fallback=strings.get("reader", ""),
    )


def _template_dirs(config: Config) -> tuple[Path, ...]:
    dirs = [config.templates] if config.templates.is_dir() else []
    packaged = packaged_templates()
    if packaged.resolve() not in {d.resolve() for d in dirs}:
        dirs.append(packaged)
    return tuple(dirs)


@functools.lru_cache(maxsize=8)
def _environment(dirs: tuple[Path, ...]) -> jinja2.Environment:
    # One environment per template folder, so compiled templates are reused across campaigns.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,  # a typo in an edited template fails, not sends blanks
        keep_trailing_newline=True,
    )


def _strings_for(config: Config, language: str) -> dict[str, str]:
    """The words of one language: the user's strings.toml over the packaged one."""
    key = _language_key(config, language)
    tables = _string_tables(_template_dirs(config))
    merged: dict[str, str] = {}
    for table in reversed(tables):  # packaged first, the user's edits on top
        merged.update(table.get(FALLBACK_LANGUAGE, {}))
        merged.update(table.get(key, {}))
    return merged


def _language_key(config: Config, language: str) -> str:
    """The language whose strings exist: the one asked for, else the publication's, else English."""
    known: set[str] = set()
    for table in _string_tables(_template_dirs(config)):
        known.update(table)
    for candidate in (language, config.publication_language, FALLBACK_LANGUAGE):
        if candidate and candidate.lower() in known:
            return candidate.lower()
    return FALLBACK_LANGUAGE


def _string_tables(dirs: tuple[Path, ...]) -> list[dict[str, dict[str, str]]]:
    tables = []
    for directory in dirs:
        path = directory / STRINGS_FILE
        if path.is_file():
            tables.append(_load_strings(path, path.stat().st_mtime_ns))
    return tables


@functools.lru_cache(maxsize=16)
def _load_strings(path: Path, _mtime: int) -> dict[str, dict[str, str]]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TemplateError(f"{path}: cannot read the template strings: {exc}") from exc
    tables: dict[str, dict[str, str]] = {}
    for language, table in raw.items():
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise TemplateError(f"{path}: [{language}] must be a table of text values")
        tables[language.lower()] = dict(table)
    return tables


_FIELD_RE = re.compile(r"\{(\w+)\}")


def _fill(text: str, values: Mapping[str, str]) -> str:
    # Not str.format: an edited string with a stray brace or attribute access must not fail
    # or reach into objects; unknown fields stay as written.
    return _FIELD_RE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _translator(strings: Mapping[str, str], defaults: Mapping[str, str]) -> Callable[..., str]:
    def t(key: str, **values: str) -> str:
        if key not in strings:
            raise TemplateError(f"strings.toml has no {key!r} (used by a template)")
        return _fill(strings[key], {**defaults, **values})

    return t


def _defuse(text: str) -> str:
    """Article text that happens to contain `{nl:...}` must not be personalised: a word
    joiner (U+2060, invisible) after the brace keeps the placeholder pattern from matching."""
    return text.replace("{nl:", "{\u2060nl:") if "{nl:" in text else text


def _one_line(text: str, *, what: str) -> str:
    if forbidden_char(text) is not None:
        raise ArticleError(f"{what} contains a line break or control character: {text!r}")
    return text.strip()


def _preheader(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= PREHEADER_CHARS:
        return text
    return textwrap.shorten(text, width=PREHEADER_CHARS, placeholder=" …")


_BLANK_RUNS = re.compile(r"\n{3,}")


def _tidy_text(text: str) -> str:
    # Trailing spaces would cost =20 in quoted-printable; "-- " is the signature separator.
    lines = [line if line == "-- " else line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"

