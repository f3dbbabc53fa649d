"""`newsletter check ARTICLE`, content: the message as it would be sent (preview's path),
its size, images, links, unsubscribe link, words and SpamAssassin's score."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from send_helpers import make_config, write_article

from newsletter.config import Config
from newsletter.content.parse import parse_file
from newsletter.preflight.content import spamassassin
from newsletter.preflight.findings import Finding
from newsletter.preflight.run import article_findings

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
MARKDOWN = """---
title: Stille chips
slug: stille-chips
---

Een chipontwerper uit Eindhoven wil dat hoortoestellen een week op één batterij werken.
Lees het [volledige rapport](https://example.nl/rapport).

![](https://example.nl/chip.png)

![De chip onder de microscoop](https://example.nl/microscoop.png)
"""


@pytest.fixture
def config(workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """A right config; spamassassin is off the PATH here (it has tests of its own below),
    which saves its few seconds in every other test."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    return make_config(workdir, **{"web.url": "https://nieuws.example.nl", "publication.list_id": "nieuws.example.nl",
                                   "publication.postal_address": "Markt 1, 8011 Zwolle"})


def content(config: Config, path: Path) -> dict[str, tuple[str, str]]:
    """Finding per kind: size, images, links, unsubscribe, words, spamassassin."""
    found: list[Finding] = article_findings(config, parse_file(path))
    assert {f.check for f in found} == {"content"}
    names = ("size", "images", "links", "unsubscribe", "words", "spamassassin")
    return {name: (f.status, f.message) for name, f in zip(names, found, strict=True)}


def test_a_right_article_is_ok_on_every_point_but_spamassassin_which_is_off_the_path(config, workdir) -> None:
    found = content(config, write_article(workdir))
    assert found["spamassassin"] == ("warn", "spamassassin is not installed, so the message was not scored")
    assert found["size"][0] == "ok" and found["size"][1].endswith("KB (Gmail clips above 102 KB)")
    assert found["images"] == ("ok", "every image has alt text (0 images)")
    # masthead, unsubscribe, preferences (the footer link `newsletter serve` answers), view online
    assert found["links"] == ("ok", "every link uses https:// (4 links)")
    assert found["unsubscribe"] == ("ok", "the unsubscribe link is in both parts (https://nieuws.example.nl/u/preview)")
    assert found["words"][0] == "ok"


def test_images_without_alt_text_and_http_links_warn(config, workdir) -> None:
    path = workdir / "stille-chips.md"
    path.write_text(MARKDOWN.replace("https://example.nl/rapport", "http://example.nl/rapport"), encoding="utf-8")
    found = content(config, path)
    assert found["images"] == ("warn", "1 of 2 images have no alt text (first: https://example.nl/chip.png); "
                                       "readers who block images see nothing")
    assert found["links"] == ("warn", "1 link uses http:// (first: http://example.nl/rapport); filters and browsers "
                                      "distrust them")


def test_an_html_part_over_gmail_s_clip_fails(config, workdir) -> None:
    paragraph = "Een lange zin over chips, batterijen en hoortoestellen die steeds terugkomt. " * 20
    path = workdir / "lang.md"
    path.write_text("---\ntitle: Heel lang\nslug: heel-lang\n---\n\n" + "\n\n".join([paragraph] * 80),
                    encoding="utf-8")
    status, message = content(config, path)["size"]
    assert status == "fail"
    assert message.startswith("the HTML part is 1") and message.endswith(
        "KB: Gmail clips it above 102 KB and hides the rest, unsubscribe link included")


def test_a_template_without_the_unsubscribe_link_in_the_text_part_fails(config, workdir) -> None:
    base = workdir / "templates" / "base.txt"
    base.write_text(base.read_text(encoding="utf-8").replace("{{ unsubscribe_url }}\n", ""), encoding="utf-8")
    assert content(config, write_article(workdir))["unsubscribe"] == (
        "fail", "the unsubscribe link is missing from the text part")


def test_a_text_part_that_is_not_the_html_s_words_warns(config, workdir) -> None:
    template = workdir / "templates" / "article.txt"
    text = template.read_text(encoding="utf-8")
    start, end = text.index("{% for block in blocks %}"), text.index("{% endfor %}") + len("{% endfor %}")
    template.write_text(text[:start] + "Lees het online." + text[end:], encoding="utf-8")
    status, message = content(config, write_article(workdir))["words"]
    assert status == "warn"
    assert "of the words are in one part only (e.g. " in message and message.endswith(
        "SpamAssassin flags a text part that is not the HTML's words (MPART_ALT_DIFF)")


def test_an_email_that_cannot_be_built_is_one_failed_finding(config, workdir) -> None:
    (workdir / "templates" / "article.html").write_text("{% extends 'base.html' %}{% block content %}{{ oops(",
                                                         encoding="utf-8")
    found = article_findings(config, parse_file(write_article(workdir)))
    assert [(f.check, f.status) for f in found] == [("content", "fail")]
    assert found[0].message.startswith("the email cannot be built: ")


def require_spamassassin() -> None:
    if shutil.which("spamassassin") is None:
        if os.environ.get("CI"):
            pytest.fail("spamassassin is not installed; CI must run this test (.ci/run installs it)")
        pytest.skip("spamassassin is not installed (apt-get install spamassassin); CI runs this test")


def message(body: str, *, dated: bool) -> bytes:
    head = "From: nieuws@example.nl\r\nTo: ann@example.nl\r\nSubject: Hallo\r\n"
    if dated:
        head += "Date: Tue, 01 Dec 2026 10:00:00 +0100\r\nMessage-ID: <a1@example.nl>\r\n"
    return (head + "\r\n" + body + "\r\n").encode()


def test_spamassassin_scores_warn_above_1_and_fail_above_5() -> None:
    require_spamassassin()
    clean = spamassassin(message("Hallo Ann, tot morgen bij de koffie.", dated=True), subject="m")
    assert clean.status == "ok" and clean.message.startswith("SpamAssassin scores it ")
    undated = spamassassin(message("Hallo Ann, tot morgen bij de koffie.", dated=False), subject="m")
    assert undated.status == "warn" and undated.message.endswith(": above 1")
    # every rule, also those past the fold of X-Spam-Status's tests= list
    assert all(rule in undated.message for rule in ("MISSING_DATE", "MISSING_MID", "NO_RECEIVED", "NO_RELAYS"))
    gtube = spamassassin(message(GTUBE, dated=True), subject="m")
    assert gtube.status == "fail" and "GTUBE" in gtube.message
    assert gtube.message.endswith(": above 5, most filters reject or junk it")


def test_without_spamassassin_the_score_is_a_warning(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no spamassassin on the path
    found = spamassassin(message("Hallo", dated=True), subject="m")
    assert (found.status, found.message) == ("warn", "spamassassin is not installed, so the message was not scored")
    assert found.fix == "install it (apt-get install spamassassin) and run the check again"
