"""Byline and brand: who wrote an article and when, under its title; the publication's logo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.articles import parse_text
from newsletter.config import Config
from newsletter.render import render_article
from render_fixtures import make_config
from send_helpers import ARTICLE

MARKDOWN = "---\ntitle: Stille chips\nauthor: Ann Jansen\ndate: 2026-11-26\n---\nDe tekst van het stuk.\n"


@pytest.fixture
def config(workdir: Path) -> Config:
    return make_config(workdir)


def after_title(html: str) -> str:
    """The markup from the end of the <h1> to the next paragraph's end."""
    match = re.search(r"</h1>\s*(<p[^>]*>.*?</p>)", html, re.S)
    assert match, html
    return match.group(1)


def test_the_author_and_date_of_the_front_matter_stand_under_the_title(config: Config) -> None:
    article = parse_text(MARKDOWN, source="stille-chips.md")
    dutch = render_article(article, config, language="nl")
    assert 'class="byline"' in after_title(dutch.html)
    assert ">Door Ann Jansen · 26 november 2026</p>" in after_title(dutch.html)
    assert "Stille chips\n============\n\nDoor Ann Jansen · 26 november 2026\n\nDe tekst van het stuk." in dutch.text
    english = render_article(article, config, language="en")
    assert ">By Ann Jansen · 26 November 2026</p>" in after_title(english.html)
    assert "============\n\nBy Ann Jansen · 26 November 2026\n" in english.text


def test_the_signature_lines_of_a_plain_export_stand_under_the_title(config: Config) -> None:
    article = parse_text(ARTICLE, source="artikel.txt")
    assert article.signature == ("Joost Ekker - Eigenaar Fietswerk Zwolle", "Marieke Dam - Redacteur Testblad")
    rendered = render_article(article, config, language="nl")
    byline = after_title(rendered.html)
    assert 'class="byline"' in byline
    assert ">Joost Ekker - Eigenaar Fietswerk Zwolle<br>Marieke Dam - Redacteur Testblad</p>" in byline
    title = article.title
    assert (f"{title}\n{'=' * len(title)}\n\nJoost Ekker - Eigenaar Fietswerk Zwolle\n"
            "Marieke Dam - Redacteur Testblad\n\nToen Joost Ekker") in rendered.text


def test_an_article_without_author_date_or_signature_has_no_byline(config: Config) -> None:
    article = parse_text("---\ntitle: Kaal\n---\nAlleen tekst.\n", source="kaal.md")
    rendered = render_article(article, config, language="nl")
    assert "byline" not in rendered.html
    assert "Kaal\n====\n\nAlleen tekst." in rendered.text


def test_a_byline_is_text_not_markup(config: Config) -> None:
    article = parse_text('---\ntitle: T\nauthor: "<b>Eve</b> & co"\n---\nTekst.\n', source="t.md")
    rendered = render_article(article, config, language="nl")
    assert "Door &lt;b&gt;Eve&lt;/b&gt; &amp; co" in rendered.html
    assert "<b>Eve</b>" not in rendered.html
