"""Byline and brand: who wrote an article and when, under its title; the publication's logo."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import artifacts_dir, launched, open_html
from render_fixtures import make_config, seed_shaped_article
from send_helpers import ARTICLE

from newsletter.config import Config
from newsletter.content.parse import parse_text
from newsletter.content.render import render_article, render_confirmation, render_digest
from newsletter.errors import ConfigError
from newsletter.periods import period_from_key

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


LOGO = "https://cdn.example.nl/techblad-logo.png"


def png(width: int, height: int) -> bytes:
    """A plain PNG of width x height pixels, white on the masthead's blue."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\xff\xff\xff" * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


@pytest.fixture
def logo_config(workdir: Path) -> Config:
    return make_config(workdir, **{"publication.logo_url": LOGO, "publication.logo_width": 240,
                                   "publication.logo_height": 60})


def masthead(html: str) -> str:
    match = re.search(r'<td class="masthead"[^>]*>(.*?)</td>', html, re.S)
    assert match, html
    return match.group(1)


def every_email(config: Config) -> dict[str, str]:
    return {
        "article": render_article(seed_shaped_article(), config, language="nl").html,
        "digest": render_digest([seed_shaped_article()], config, language="en",
                                period=period_from_key("weekly:2026-W49", zone="Europe/Amsterdam")).html,
        "confirm": render_confirmation(config, language="nl").html,
    }


def test_without_a_logo_the_header_is_the_name_as_a_link(config: Config) -> None:
    for name, html in every_email(config).items():
        head = masthead(html)
        assert re.fullmatch(r'<a href="https://example.nl"[^>]*>Testblad</a>', head), (name, head)


def test_a_logo_shows_in_the_header_with_the_name_as_alt_text_and_its_size(logo_config: Config) -> None:
    for name, html in every_email(logo_config).items():
        head = masthead(html)
        image = re.fullmatch(r'<a href="https://example.nl"[^>]*>(<img [^>]*>)</a>', head)
        assert image, (name, head)
        tag = image.group(1)
        for attribute in (f'src="{LOGO}"', 'alt="Testblad"', 'width="240"', 'height="60"'):
            assert attribute in tag, (name, tag)
        assert "max-width:100%" in tag.replace(" ", "") and "height:auto" in tag.replace(" ", "")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://cdn.example.nl/logo.png", "https://"),
        ("javascript:alert(1)", "https://"),
        ("//cdn.example.nl/logo.png", "https://"),
    ],
)
def test_a_logo_that_is_not_https_is_refused(workdir: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"publication.logo_url.*{message}"):
        make_config(workdir, **{"publication.logo_url": value})


def test_a_logo_wider_than_the_layout_is_refused(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="publication.logo_width.*600 px"):
        make_config(workdir, **{"publication.logo_url": LOGO, "publication.logo_width": 700})


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


@pytest.mark.parametrize("width", [600, 375])
def test_chromium_shows_the_logo_inside_the_header_at_its_proportions(logo_config: Config, browser: Any, width: int) -> None:
    html = render_article(seed_shaped_article(), logo_config, language="nl").html
    page = open_html(browser, html, width=width, files={LOGO: ("image/png", png(960, 240))})
    try:
        box = page.evaluate(
            "() => { const i = document.querySelector('.masthead img'); const c = document.querySelector('.container');"
            " const r = i.getBoundingClientRect(), k = c.getBoundingClientRect();"
            " return {loaded: i.complete && i.naturalWidth, left: r.left, right: r.right, w: r.width, h: r.height,"
            " inner: k.right, scroll: document.documentElement.scrollWidth}; }"
        )
        page.screenshot(path=str(artifacts_dir() / f"logo-nl-{width}.png"))
    finally:
        page.close()
    assert box["loaded"] == 960
    assert box["w"] == 240 and box["h"] == 60  # the size asked for, not the image's own 960 x 240
    assert box["right"] <= box["inner"] and box["scroll"] <= width
