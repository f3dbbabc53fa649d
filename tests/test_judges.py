"""External judges: SpamAssassin scores the message, headless Chromium lays out the HTML.

Locally a missing tool skips with the reason; with CI set (see .ci/run, which installs
Debian's spamassassin and chromium) a missing tool fails instead, so CI never passes by
skipping. Screenshots are kept in $TMPDIR/newsletter-screenshots for a human to look at.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from render_fixtures import make_config, seed_shaped_article, wide_article

from newsletter.config import Config
from newsletter.content.article import Article
from newsletter.content.message import MessageBuilder, Recipient
from newsletter.content.render import render_article, render_confirmation, render_digest

SCREENSHOTS = Path(tempfile.gettempdir()) / "newsletter-screenshots"
ANN = Recipient(subscriber_id=42, email="ann.jansen@example.nl", name="Ann Jansen", token="Xq7-Lm2_Pz9Rt4Vw8Yb1Nc6Kd3Hf5Gj0", language="nl")
FORBIDDEN_RULES = ("MISSING_DATE", "MISSING_MID", "MIME_HTML_ONLY", "MPART_ALT_DIFF", "HTML_IMAGE_ONLY", "DKIM_INVALID", "MIME_QP_LONG_LINE",
                   "HTML_FONT_LOW_CONTRAST")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--mute-audio",
)


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed; CI must run this judge (.ci/run installs it)")
        pytest.skip(f"{tool} is not installed (apt-get install {tool}); CI runs this test")
    return path


@pytest.fixture
def config(workdir: Path) -> Config:
    return make_config(
        workdir,
        **{
            "publication.name": "Techblad Noord",
            "sender.name": "Techblad Noord",
            "publication.list_id": "techblad.example.nl",
            "publication.postal_address": "Zernikeplein 11, 9747 AS Groningen",
            "web.url": "https://nieuws.example.nl",
        },
    )


def spamassassin(data: bytes, tmp_path: Path) -> tuple[float, list[str], str]:
    tool = require("spamassassin")
    (tmp_path / "message.eml").write_bytes(data)
    result = subprocess.run([tool, "-L", "-t"], input=data, capture_output=True, timeout=120)
    output = result.stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: (.*?)\n(?=\S)", output, re.S | re.M)
    assert status, f"no X-Spam-Status in spamassassin's output:\n{output[:2000]}\n{result.stderr[:2000]!r}"
    # A long tests= list is folded over several lines: join it again without the spaces
    # after its commas, so the rules on the continuation lines are read too.
    unfolded = re.sub(r",\s+", ",", " ".join(status.group(1).split()))
    score = float(re.search(r"score=(-?[\d.]+)", unfolded).group(1))
    rules = re.search(r"tests=(\S*)", unfolded).group(1).split(",")
    report = output[output.find("Content analysis details"):]
    return score, [r for r in rules if r and r != "none"], report


@pytest.mark.parametrize("kind", ["article", "confirmation", "digest"])
def test_spamassassin_scores_the_messages_as_clean(config: Config, tmp_path: Path, kind: str) -> None:
    if kind == "article":
        rendered = render_article(seed_shaped_article(), config, language="nl")
    elif kind == "confirmation":
        rendered = render_confirmation(config, language="nl")
    else:
        rendered = render_digest([seed_shaped_article(), wide_article()], config, language="nl", period_label="week 48")
    data = MessageBuilder(config, {"nl": rendered}, campaign_key=f"{kind}:1").build(ANN)
    score, rules, report = spamassassin(data, tmp_path)
    assert score <= 1.0, report
    for forbidden in FORBIDDEN_RULES:
        assert not any(rule.startswith(forbidden) for rule in rules), report


def chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    tool = require("chromium")
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp)  # fresh: no state between runs
    return subprocess.run(
        [tool, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120,
    )


def frame_page(html: str, width: int, height: int, *, probe: bool) -> str:
    """The email in an iframe of exactly `width` CSS pixels.

    Headless Chromium will not make a window narrower than 500 px, so a phone is imitated by
    a frame: the email's @media rules see the frame's width, as they would see a phone's.
    """
    source = json.dumps(html).replace("</", "<\\/")
    script = ""
    if probe:
        script = (
            "f.onload = function () { var d = f.contentDocument.documentElement;"
            " document.body.setAttribute('data-probe', JSON.stringify({scroll: d.scrollWidth,"
            " client: d.clientWidth, inner: f.contentWindow.innerWidth, height: d.scrollHeight})); };"
        )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head>"
        "<body style='margin:0;background:#888'>"
        f"<iframe id='f' style='display:block;border:0;width:{width}px;height:{height}px'></iframe>"
        f"<script>var f = document.getElementById('f'); {script} f.srcdoc = {source};</script>"
        "</body></html>"
    )


def measure(html: str, width: int, tmp: Path) -> dict[str, int]:
    page = tmp / f"probe-{width}.html"
    page.write_text(frame_page(html, width, 900, probe=True), encoding="utf-8")
    result = chromium(["--window-size=800,900", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()], tmp)
    found = re.search(r'data-probe="([^"]*)"', result.stdout)
    assert found, f"chromium printed no measurement (exit {result.returncode}):\n{result.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


def screenshot(html: str, width: int, height: int, tmp: Path, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / name
    target.unlink(missing_ok=True)
    page = tmp / f"shot-{width}.html"
    page.write_text(frame_page(html, width, height, probe=False), encoding="utf-8")
    window = max(width, 500)
    result = chromium([f"--window-size={window},{height}", "--virtual-time-budget=5000",
                       f"--screenshot={target}", page.as_uri()], tmp)
    assert target.is_file() and target.stat().st_size > 10_000, result.stderr[-2000:]
    return target


def personal_html(config: Config, article: Article) -> str:
    rendered = render_article(article, config, language="nl")
    data = MessageBuilder(config, {"nl": rendered}, campaign_key="article:1").build(ANN)
    message = email.message_from_bytes(data, policy=email.policy.default)
    return message.get_body(("html",)).get_content()


@pytest.mark.parametrize("width", [600, 375])
def test_chromium_lays_out_the_article_without_horizontal_overflow(config: Config, tmp_path: Path, width: int) -> None:
    html = personal_html(config, seed_shaped_article())
    size = measure(html, width, tmp_path)
    assert size["inner"] == width
    assert size["scroll"] <= size["client"] == width, size
    shot = screenshot(html, width, min(size["height"] + 20, 8000), tmp_path, f"article-{width}.png")
    assert shot.stat().st_size > 10_000


def test_chromium_keeps_wide_content_inside_a_phone_screen(config: Config, tmp_path: Path) -> None:
    html = personal_html(config, wide_article())
    size = measure(html, 375, tmp_path)
    assert size["scroll"] <= size["client"] == 375, size
    screenshot(html, 375, min(size["height"] + 20, 8000), tmp_path, "wide-375.png")


def test_chromium_keeps_a_parsed_markdown_article_inside_a_phone_screen(config: Config, tmp_path: Path) -> None:
    from newsletter.content.parse import parse_file

    article = parse_file(Path(__file__).parent / "fixtures" / "quiet-chips.md")
    html = personal_html(config, article)
    size = measure(html, 375, tmp_path)
    assert size["scroll"] <= size["client"] == 375, size
    screenshot(html, 375, min(size["height"] + 20, 8000), tmp_path, "markdown-375.png")
