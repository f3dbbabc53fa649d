"""Every template is readable: WCAG contrast of every visible text node, measured in Chromium.

The check runs in the browser on the HTML exactly as it is sent (the inlined HTML part of a
built message), so it sees what premailer's inlining made of the rules, not what the CSS
meant. To check another page (the web pages of `newsletter serve`), add a function that
returns its HTML for a configuration and a language to PAGES.

Screenshots of the confirmation and digest emails at 600 and 375 px go to the test
artefacts folder ($TEST_ARTIFACTS, else tests/artifacts/) for a human to look at.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from browser import artifacts_dir, contrast_failures, launched, open_html
from render_fixtures import make_config, seed_shaped_article, wide_article

from newsletter.config import Config
from newsletter.content.message import MessageBuilder, Recipient
from newsletter.content.parse import parse_file
from newsletter.content.render import RenderedEmail, render_article, render_confirmation, render_digest
from newsletter.periods import period_from_key

LANGUAGES = ("nl", "en")
FIXTURES = Path(__file__).parent / "fixtures"


def recipient(language: str) -> Recipient:
    return Recipient(subscriber_id=7, email="ann.jansen@example.nl", name="Ann Jansen",
                     token="Xq7-Lm2_Pz9Rt4Vw8Yb1Nc6Kd3Hf5Gj0", language=language)


def as_sent(config: Config, rendered: RenderedEmail, language: str, key: str) -> str:
    """The HTML part of the message a subscriber reading `language` receives."""
    data = MessageBuilder(config, {language: rendered}, campaign_key=key).build(recipient(language))
    message = email.message_from_bytes(data, policy=email.policy.default)
    part = message.get_body(("html",))
    assert part is not None
    html: str = part.get_content()
    return html


def article_email(config: Config, language: str) -> str:
    return as_sent(config, render_article(seed_shaped_article(), config, language=language), language, "article:1")


def markdown_article_email(config: Config, language: str) -> str:
    """A Markdown article with a byline, lists, a quote, code and a table."""
    article = parse_file(FIXTURES / "quiet-chips.md")
    return as_sent(config, render_article(article, config, language=language), language, "article:2")


def wide_article_email(config: Config, language: str) -> str:
    return as_sent(config, render_article(wide_article(), config, language=language), language, "article:3")


def full_text_digest_email(config: Config, language: str) -> str:
    articles = [seed_shaped_article(), parse_file(FIXTURES / "quiet-chips.md")]
    rendered = render_digest(articles, config, language=language, full_text=True,
                             period=period_from_key("daily:2026-12-01", zone="Europe/Amsterdam"))
    return as_sent(config, rendered, language, "digest:daily:2026-12-01")


def digest_email(config: Config, language: str) -> str:
    articles = [seed_shaped_article(), wide_article()]
    rendered = render_digest(articles, config, language=language,
                             period=period_from_key("weekly:2026-W49", zone="Europe/Amsterdam"),
                             released={a.slug: date(2026, 12, 1) for a in articles})
    return as_sent(config, rendered, language, "digest:weekly:2026-W49")


def confirm_email(config: Config, language: str) -> str:
    return as_sent(config, render_confirmation(config, language=language), language, "confirm")


# name -> the HTML of that page for (config, language). The web pages join this list.
PAGES: dict[str, Callable[[Config, str], str]] = {
    "article": article_email,
    "article-markdown": markdown_article_email,
    "article-wide": wide_article_email,
    "digest": digest_email,
    "digest-full-text": full_text_digest_email,
    "confirm": confirm_email,
}


@pytest.fixture
def config(workdir: Path) -> Config:
    return make_config(
        workdir,
        **{
            "publication.name": "Techblad Noord",
            "publication.postal_address": "Zernikeplein 11, 9747 AS Groningen",
            "web.url": "https://nieuws.example.nl",
        },
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", list(PAGES))
def test_every_visible_text_has_a_contrast_of_at_least_4_5_to_1(
    config: Config, browser: Any, name: str, language: str
) -> None:
    html = PAGES[name](config, language)
    for width in (600, 375):
        page = open_html(browser, html, width=width)
        try:
            result = contrast_failures(page)
        finally:
            page.close()
        assert result["checked"] >= 5, f"{name}/{language}: the check found almost no text: {result}"
        assert result["failures"] == [], f"{name}/{language} at {width} px, too faint: {result['failures']}"


def test_the_contrast_check_catches_faint_text(browser: Any) -> None:
    """The check itself: white on a bgcolor cell passes, the same blue on blue fails."""
    html = (
        "<!DOCTYPE html><html><body><table><tr><td bgcolor='#0b69a3'>"
        "<a style='color:#ffffff' href='#'>Wit op blauw</a> <a style='color:#0b69a3' href='#'>Blauw op blauw</a>"
        "</td></tr></table><p style='display:none;color:#fff'>verborgen</p>"
        "<p style='color:rgba(0,0,0,0.2)'>Doorschijnend</p></body></html>"
    )
    page = open_html(browser, html, width=600)
    try:
        result = contrast_failures(page)
    finally:
        page.close()
    assert result["checked"] == 3
    assert [f["text"] for f in result["failures"]] == ["Blauw op blauw", "Doorschijnend"]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["confirm", "digest"])
def test_screenshots_of_the_confirm_and_digest_emails_are_kept(
    config: Config, browser: Any, name: str, language: str
) -> None:
    html = PAGES[name](config, language)
    folder = artifacts_dir()
    for width in (600, 375):
        page = open_html(browser, html, width=width)
        try:
            target = folder / f"{name}-{language}-{width}.png"
            page.screenshot(path=str(target), full_page=True)
            scroll = page.evaluate("document.documentElement.scrollWidth")
        finally:
            page.close()
        assert target.stat().st_size > 10_000
        assert scroll <= width  # nothing sticks out sideways
