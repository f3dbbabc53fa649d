"""Rendering: templates, strings per language, premailer once, placeholders, escaping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from render_fixtures import (
    PARAGRAPHS,
    SIGNATURE,
    SLUG,
    TITLE,
    make_config,
    script_article,
    seed_shaped_article,
    wide_article,
)

from newsletter.config import Config
from newsletter.content.article import Article
from newsletter.content.render import (
    CONFIRM_URL,
    NAME,
    UNSUBSCRIBE_URL,
    TemplateError,
    render_article,
    render_confirmation,
    render_digest,
)
from newsletter.errors import ArticleError


@pytest.fixture
def config(workdir: Path) -> Config:
    return make_config(
        workdir,
        **{
            "publication.postal_address": "Zernikeplein 11, 9747 AS Groningen",
            "web.url": "https://nieuws.example.nl",
        },
    )


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_article_html_follows_the_email_layout_rules(config: Config) -> None:
    html = render_article(seed_shaped_article(), config, language="nl").html
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="nl">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    tables = re.findall(r"<table[^>]*>", html)
    assert tables and all('role="presentation"' in t for t in tables)
    assert re.search(r'<table[^>]*class="container"[^>]*width="600"', html)
    assert '<div class="preheader" style="display:none' in html
    assert "Groningen wil de komende tien jaar" in html.split('class="preheader"')[1][:400]
    assert "Testblad" in html  # the publication name from the config
    assert TITLE in html
    for line in SIGNATURE:
        assert line in html
    assert f'href="{UNSUBSCRIBE_URL}"' in html
    assert f'href="https://nieuws.example.nl/archive/{SLUG}"' in html
    assert "Zernikeplein 11, 9747 AS Groningen" in html


def test_css_is_inlined_and_media_rules_keep_their_important(config: Config) -> None:
    html = render_article(seed_shaped_article(), config, language="nl").html
    head, body = html.split("<body", 1)
    assert "@media only screen and (max-width: 620px)" in head
    assert "width: 100% !important" in head
    assert "<style" not in body
    assert re.search(r"<h1 style=['\"][^>]*font-size:28px", body)
    assert 'class="greeting" style="margin:0 0 16px 0; color:#52606d"' in body


def test_every_paragraph_is_in_both_parts(config: Config) -> None:
    rendered = render_article(seed_shaped_article(), config, language="nl")
    html_text = visible_text(rendered.html)
    for paragraph in PARAGRAPHS:
        assert paragraph in rendered.text
        assert paragraph in html_text
    assert "Subscribe by email" not in rendered.text
    assert "\n\nTalent vasthouden\n-----------------\n\n" in rendered.text  # subheadings stand out
    assert rendered.text.count("\n\n\n") == 0


def test_personal_placeholders_survive_templates_and_premailer(config: Config) -> None:
    rendered = render_article(seed_shaped_article(), config, language="nl")
    for part in (rendered.html, rendered.text):
        assert f"Hallo {NAME}," in part
        assert UNSUBSCRIBE_URL in part
    assert rendered.name_fallback == "lezer"


def test_markup_in_an_article_arrives_as_text(config: Config) -> None:
    rendered = render_article(script_article(), config, language="nl")
    assert "<script>" not in rendered.html
    assert "<b>" not in rendered.html and "<i>Ann</i>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "Titel met &lt;b&gt;tags&lt;/b&gt; &amp; &#34;quotes&#34;" in rendered.html or (
        "Titel met &lt;b&gt;tags&lt;/b&gt; &amp; \"quotes\"" in rendered.html
    )
    # the text part is not HTML: nothing to escape there
    assert '<script>alert("x")</script>' in rendered.text
    assert rendered.subject == 'Titel met <b>tags</b> & "quotes"'


def test_words_follow_the_subscriber_language_and_fall_back_to_the_publication(config: Config) -> None:
    article = seed_shaped_article()
    english = render_article(article, config, language="en")
    assert english.language == "en"
    assert f"Hello {NAME}," in english.text and "Unsubscribe" in english.html
    assert '<html lang="nl">' in english.html  # the article itself is Dutch
    german = render_article(article, config, language="de")
    assert german.language == "nl"
    assert "Uitschrijven" in german.html


def test_edited_user_templates_win_and_removed_ones_fall_back(config: Config) -> None:
    templates = config.templates
    (templates / "strings.toml").write_text('[nl]\nunsubscribe = "Afmelden"\n', encoding="utf-8")
    (templates / "article.txt").unlink()
    rendered = render_article(seed_shaped_article(), config, language="nl")
    assert "Afmelden</a>" in rendered.html
    assert "Hallo " in rendered.text  # the packaged article.txt and the packaged greeting


def test_a_broken_user_template_is_reported_with_its_name(config: Config) -> None:
    (config.templates / "article.html").write_text('{% extends "base.html" %}{% block content %}{{ nosuch }}{% endblock %}')
    with pytest.raises(TemplateError, match="article"):
        render_article(seed_shaped_article(), config, language="nl")


def test_a_title_with_a_line_break_is_refused(config: Config) -> None:
    article = Article(slug="x", title="Titel\r\nBcc: eve@example.org", summary="", blocks=())
    with pytest.raises(ArticleError, match="line break"):
        render_article(article, config, language="nl")


def test_the_seed_shaped_html_stays_far_below_gmails_clipping_size(config: Config) -> None:
    html = render_article(seed_shaped_article(), config, language="nl").html
    assert len(html.encode("utf-8")) < 102 * 1024
    wide = render_article(wide_article(), config, language="nl").html
    assert len(wide.encode("utf-8")) < 102 * 1024


def test_the_confirmation_email_carries_the_confirm_placeholder(config: Config) -> None:
    rendered = render_confirmation(config, language="nl")
    assert rendered.subject == "Bevestig je aanmelding voor Testblad"
    assert f'href="{CONFIRM_URL}"' in rendered.html
    assert CONFIRM_URL in rendered.text
    english = render_confirmation(config, language="en")
    assert english.subject == "Confirm your subscription to Testblad"


def test_the_digest_links_every_article(config: Config) -> None:
    articles = [seed_shaped_article(), wide_article()]
    rendered = render_digest(articles, config, language="nl", period_label="week 48")
    assert rendered.subject == "Testblad: week 48"
    for article in articles:
        url = f"https://nieuws.example.nl/archive/{article.slug}"
        assert f'href="{url}"' in rendered.html
        assert url in rendered.text
        assert article.title in rendered.text
    empty = render_digest([], config, language="en", period_label="week 49")
    assert "No new articles" in empty.text
    assert '<html lang="nl">' in rendered.html
    assert '<html lang="en">' in empty.html  # its words are English, whatever the publication's


def test_a_template_syntax_error_names_the_file_and_line(config: Config) -> None:
    (config.templates / "article.txt").write_text("{% extends 'base.txt' %}\n{% block content %}\n{{ title }\n{% endblock %}\n")
    with pytest.raises(TemplateError, match=r"article\.txt, line 3"):
        render_article(seed_shaped_article(), config, language="nl")


def test_a_full_text_digest_carries_each_article_body_in_html_and_text(config: Config) -> None:
    article = seed_shaped_article()
    paragraph = next(b.text for b in article.blocks if b.kind == "paragraph" and len(b.text) > 200)
    short = render_digest([article], config, language="nl", period_label="week 48")
    full = render_digest([article], config, language="nl", period_label="week 48", full_text=True)
    assert paragraph not in short.text
    assert " ".join(paragraph.split()) in " ".join(full.text.split())
    assert article.signature[0] in full.text
    heading = next(b.text for b in article.blocks if b.kind == "heading")
    assert f">{heading}</h2>" in full.html
    assert f"https://nieuws.example.nl/archive/{article.slug}" in full.text
