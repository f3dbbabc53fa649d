"""Digests read like a person wrote them: the period in words in the reader's language, each
article's date, and a "view in browser" link to the digest's own archive page."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from click.testing import Result
from render_fixtures import make_config, paragraph, seed_shaped_article
from send_helpers import relay_env, server  # noqa: F401
from smtp_server import Server

from newsletter.config import Config
from newsletter.content.article import Article
from newsletter.content.render import render_digest
from newsletter.periods import period_from_archive_key, period_from_key

AMS = ZoneInfo("Europe/Amsterdam")


@pytest.fixture
def config(workdir: Path) -> Config:
    return make_config(workdir, **{"web.url": "https://nieuws.example.nl"})


def dated(slug: str, title: str, published: str | None = None, author: str | None = None) -> Article:
    return Article(slug=slug, title=title, summary=f"Over {title}.", blocks=(paragraph("Tekst."),),
                   language="nl", published=published, author=author)


@pytest.mark.parametrize(
    ("key", "language", "title"),
    [
        ("weekly:2026-W50", "nl", "Weekoverzicht 7 t/m 13 december 2026"),
        ("weekly:2026-W50", "en", "Weekly digest, 7–13 December 2026"),
        ("daily:2026-12-01", "nl", "Dagoverzicht dinsdag 1 december 2026"),
        ("daily:2026-12-01", "en", "Daily digest, Tuesday 1 December 2026"),
        ("weekly:2026-W49", "nl", "Weekoverzicht 30 november t/m 6 december 2026"),
        ("weekly:2026-W49", "en", "Weekly digest, 30 November – 6 December 2026"),
        ("weekly:2026-W53", "nl", "Weekoverzicht 28 december 2026 t/m 3 januari 2027"),
        ("weekly:2026-W53", "en", "Weekly digest, 28 December 2026 – 3 January 2027"),
    ],
)
def test_the_period_reads_as_words_in_the_readers_language(config: Config, key: str, language: str, title: str) -> None:
    rendered = render_digest([seed_shaped_article()], config, language=language,
                             period=period_from_key(key, zone=AMS))
    assert rendered.subject == f"Testblad: {title}"
    assert f">{title}</h1>" in rendered.html
    assert f"{title}\n{'=' * len(title)}" in rendered.text
    words = rendered.subject + "\n".join(line for line in rendered.text.split("\n") if "https://" not in line)
    for machine in ("2026-W", "2026-12-", " to 2026", "daily:", "weekly:"):
        assert machine not in words


def test_a_publisher_changes_the_period_words_in_strings_toml(config: Config) -> None:
    (config.templates / "strings.toml").write_text(
        '[nl]\ndigest_weekly = "De week van {period}"\nperiod_week = "{start_day} tot en met {end_day} {end_month}"\n'
        'digest_subject = "{digest} bij {publication}"\n',
        encoding="utf-8",
    )
    rendered = render_digest([seed_shaped_article()], config, language="nl",
                             period=period_from_key("weekly:2026-W50", zone=AMS))
    assert rendered.subject == "De week van 7 tot en met 13 december bij Testblad"


def test_each_article_in_a_digest_shows_its_date(config: Config) -> None:
    articles = [dated("eerste", "Eerste"), dated("tweede", "Tweede", published="2026-12-02", author="Ann Jansen")]
    rendered = render_digest(articles, config, language="nl", period=period_from_key("weekly:2026-W49", zone=AMS),
                             released={"eerste": date(2026, 12, 1), "tweede": date(2026, 12, 5)})
    text = rendered.text
    assert "Eerste\n------\n1 december 2026\n" in text
    assert "Tweede\n------\nDoor Ann Jansen · 2 december 2026\n" in text  # the front matter date wins
    assert '<p class="meta"' in rendered.html
    assert ">1 december 2026</p>" in rendered.html and ">Door Ann Jansen · 2 december 2026</p>" in rendered.html
    english = render_digest(articles, config, language="en", period=period_from_key("weekly:2026-W49", zone=AMS),
                            released={"eerste": date(2026, 12, 1)})
    assert "Eerste\n------\n1 December 2026\n" in english.text
    assert "By Ann Jansen · 2 December 2026" in english.text


def test_view_in_browser_goes_to_the_digests_archive_page(config: Config) -> None:
    period = period_from_key("weekly:2026-W50", zone=AMS)
    rendered = render_digest([seed_shaped_article()], config, language="nl", period=period)
    assert period.archive_key == "digest-2026-W50"
    assert period_from_archive_key("digest-2026-W50", zone=AMS) == period
    assert period_from_key("daily:2026-12-01", zone=AMS).archive_key == "digest-2026-12-01"
    assert 'href="https://nieuws.example.nl/archive/digest-2026-W50"' in rendered.html
    assert "\nhttps://nieuws.example.nl/archive/digest-2026-W50\n" in rendered.text
    slug = seed_shaped_article().slug
    assert f'href="https://nieuws.example.nl/archive/{slug}"' in rendered.html
    for part in (rendered.html, rendered.text):
        assert "https://nieuws.example.nl/a/" not in part


def test_a_sent_weekly_digest_has_human_words_dates_and_its_archive_link(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result]  # noqa: F811
) -> None:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=AMS)

    with time_machine.travel(at("2026-11-30 08:00"), tick=True):
        assert invoke("subscribe", "week@example.nl", "--confirmed", "--cadence", "weekly").exit_code == 0
        assert invoke("subscribe", "week-en@example.nl", "--confirmed", "--cadence", "weekly", "--lang", "en").exit_code == 0
    for day, slug in (("2026-12-01", "dinsdag"), ("2026-12-02", "woensdag")):
        with time_machine.travel(at(f"{day} 10:00"), tick=True):
            (workdir / f"{slug}.md").write_text(f"---\ntitle: Stuk van {slug}\nslug: {slug}\n---\nTekst.\n", encoding="utf-8")
            result = invoke("send", f"{slug}.md")
            assert result.exit_code == 0, result.stderr
    with time_machine.travel(at("2026-12-07 07:05"), tick=True):
        result = invoke("digest", "--period", "weekly")
        assert result.exit_code == 0, result.stderr
    received = {m.rcpt: email.message_from_bytes(m.data, policy=email.policy.default) for m in server.handler.messages}
    dutch, english = received["week@example.nl"], received["week-en@example.nl"]
    assert dutch["Subject"] == "Testblad: Weekoverzicht 30 november t/m 6 december 2026"
    assert english["Subject"] == "Testblad: Weekly digest, 30 November – 6 December 2026"
    text = dutch.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Stuk van dinsdag\n----------------\n1 december 2026\n" in text
    assert "Stuk van woensdag\n-----------------\n2 december 2026\n" in text
    html = dutch.get_body(("html",)).get_content()
    assert 'href="https://example.nl/archive/digest-2026-W49"' in html
    assert 'href="https://example.nl/archive/dinsdag"' in html
    assert "/a/" not in html and "/a/" not in text
