"""One rule for one line of text (text.py): every path that takes one refuses the same characters."""

from __future__ import annotations

from pathlib import Path

import pytest
from render_fixtures import make_config as render_config

from newsletter.audience.subscribers import check_name
from newsletter.config import load_config
from newsletter.content.article import Article
from newsletter.content.checks import check_line
from newsletter.content.message import HeaderValueError, check_header_value
from newsletter.content.render import render_article
from newsletter.errors import ArticleError, ConfigError, NewsletterError
from newsletter.feeds.read import parse
from newsletter.text import clean_line, forbidden_char

# Line and paragraph separators, CR, LF, NUL, and other C0 and C1 controls (NEL among them).
FORBIDDEN = ["\x85", "\u2028", "\u2029", "\r", "\n", "\x00", "\x01", "\x0b", "\x1b", "\x1c", "\x7f", "\x80", "\x9f"]


@pytest.mark.parametrize("char", FORBIDDEN)
def test_the_rule_refuses_every_line_break_and_control_character(char: str) -> None:
    assert forbidden_char(f"Ann{char}Bcc: eve@example.org") == char
    assert forbidden_char(f"Ann{char}", tab=True) == char
    assert forbidden_char(clean_line(f"Ann{char}Bcc")) is None


def test_a_tab_is_refused_unless_the_caller_allows_it() -> None:
    assert forbidden_char("a\tb") == "\t" and forbidden_char("a\tb", tab=True) is None
    assert forbidden_char("Één regel, met émoji 👩‍💻 en € ") is None


@pytest.mark.parametrize("char", FORBIDDEN)
def test_config_refuses_it_in_a_text_setting(tmp_path: Path, char: str) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_text('[sender]\naddress = "nieuws@example.nl"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="publication.name"):
        load_config(path, environ={"NEWSLETTER_PUBLICATION_NAME": f"Blad{char}Bcc: eve@example.org"})


@pytest.mark.parametrize("char", FORBIDDEN)
def test_an_article_title_with_it_is_refused(char: str) -> None:
    with pytest.raises(ArticleError):
        check_line(f"Titel{char}Bcc: eve@example.org", what="title", source="a.txt")


@pytest.mark.parametrize("char", FORBIDDEN)
def test_render_refuses_it_in_a_title(workdir: Path, char: str) -> None:
    config = render_config(workdir)
    article = Article(slug="x", title=f"Titel{char}Bcc: eve@example.org", summary="", blocks=())
    with pytest.raises(ArticleError):
        render_article(article, config, language="nl")


@pytest.mark.parametrize("char", FORBIDDEN)
def test_a_header_value_with_it_is_refused(char: str) -> None:
    with pytest.raises(HeaderValueError):
        check_header_value(f"Ann{char}Bcc: eve@example.org", what="the To name")


@pytest.mark.parametrize("char", [*FORBIDDEN, "\t"])
def test_a_subscriber_name_with_it_is_refused(char: str) -> None:
    with pytest.raises(NewsletterError, match="one line"):
        check_name(f"Ann{char}Bcc: eve@example.org")


@pytest.mark.parametrize("char", [*FORBIDDEN, "\t"])
def test_a_feed_title_comes_out_as_one_line_without_it(char: str) -> None:
    reference = f"&#x{ord(char):x};" if char in "\x85\u2028\u2029\x80\x9f" else char
    rss = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<item><title>Een{reference}Bcc: x</title><link>https://example.nl/a</link>"
        "<description>d</description></item></channel></rss>"
    ).encode()
    (item,) = parse(rss, address="https://example.nl/feed").items
    assert forbidden_char(item.title) is None and item.title.startswith("Een")
