"""The web pages in a real browser: Debian's chromium driven by Playwright, from the links in
messages that aiosmtpd received. Screenshots at 375 px (a phone) and 1024 px go to
$TEST_ARTIFACTS/web/, else tests/artifacts/web/ (not committed), for a person to look at;
a contrast check computed in the browser holds every text to 4.5:1 against the background
it is drawn on.

Never skipped in CI (CI=true): there a missing chromium is a failure. Locally it is
skipped only when /usr/bin/chromium is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from send_helpers import add_subscribers, relay_env, server, write_article  # noqa: F401
from smtp_server import Server
from web_helpers import WebServer, db_of, links_in, subscriber, wait_for_messages, web  # noqa: F401

from newsletter.audience import subscribers

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts") / "web"
WIDTHS = (375, 1024)

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it and never skips)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright

# For every element that draws text: its colour against the first opaque background behind
# it (the layers in between blended in), as WCAG 2 defines the ratio.
CONTRAST_JS = """
() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return [0,0,0,0];
    const p = m[1].split(',').map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const blend = (top, bottom) => { const a = top[3]; return [0,1,2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]); };
  const background = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    let color = [255, 255, 255, 1]; for (const layer of layers.reverse()) color = blend(layer, color); return color; };
  const failures = []; let checked = 0;
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.getClientRects().length === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || parseFloat(style.opacity) === 0) continue;
    const rect = el.getBoundingClientRect(); if (rect.right < 0 || rect.bottom < 0) continue;
    const bg = background(el); const fg = blend(parse(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a); const ratio = (hi + 0.05) / (lo + 0.05);
    checked += 1;
    if (ratio < 4.5) failures.push({text: el.textContent.trim().slice(0, 40), ratio: Math.round(ratio * 100) / 100,
                                    color: style.color, background: 'rgb(' + bg.slice(0, 3).join(',') + ')'});
  }
  return {checked, failures};
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="nl-NL", viewport={"width": 375, "height": 740})
    yield context.new_page()
    context.close()


def shoot(page: Page, name: str) -> None:
    """Screenshots at a phone's and a desktop's width, and the contrast check at both."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 740})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        result = page.evaluate(CONTRAST_JS)
        assert result["checked"] > 0, name
        assert result["failures"] == [], (name, width, result["failures"])
        # Readable on a phone: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
    page.set_viewport_size({"width": 375, "height": 740})


def _send_article(workdir: Path, run_cli, relay_env: dict[str, str], web: WebServer, server: Server,
                  address: str) -> bytes:
    db = db_of(workdir)
    subscribers.subscribe(db, address, name="Ann", language="nl", confirmed=True, actor="test")
    write_article(workdir)
    # A subprocess: Playwright's sync API keeps an event loop of its own in this thread.
    sent = run_cli("send", "artikel.txt", cwd=workdir, env={**relay_env, "NEWSLETTER_WEB_URL": web.url})
    assert sent.returncode == 0, sent.stderr
    (message,) = [m for m in server.handler.messages if m.rcpt == address]
    return message.data


def test_unsubscribe_in_a_browser_from_the_link_in_a_received_message(
    workdir: Path, server: Server, relay_env, run_cli, web: WebServer, page: Page
) -> None:
    data = _send_article(workdir, run_cli, relay_env, web, server, "ann@example.nl")
    (link,) = links_in(data, "/u/")
    page.goto(link)
    expect(page.get_by_role("heading", name="Uitschrijven")).to_be_visible()
    shoot(page, "unsubscribe")
    assert subscriber(db_of(workdir), "ann@example.nl")["status"] == "active"  # the page changed nothing
    page.get_by_role("button", name="Uitschrijven").click()
    expect(page.get_by_role("heading", name="Je bent uitgeschreven")).to_be_visible()
    shoot(page, "unsubscribed")
    assert subscriber(db_of(workdir), "ann@example.nl")["status"] == "unsubscribed"


def test_subscribe_then_confirm_in_a_browser_from_the_confirmation_email(
    workdir: Path, server: Server, web: WebServer, page: Page
) -> None:
    page.goto(f"{web.url}/subscribe")
    expect(page.get_by_role("heading", name="Aanmelden voor Testblad")).to_be_visible()
    shoot(page, "subscribe")
    page.get_by_label("E-mailadres").fill("nieuw@example.nl")
    page.get_by_label("Naam (niet verplicht)").fill("Nieuwe Lezer")
    page.get_by_role("button", name="Aanmelden").click()
    expect(page.get_by_role("heading", name="Kijk in je mailbox")).to_be_visible()
    shoot(page, "subscribe-sent")

    wait_for_messages(server, 1)
    (message,) = server.handler.messages
    assert message.rcpt == "nieuw@example.nl"
    link = links_in(message.data, "/c/")[0]
    assert subscriber(db_of(workdir), "nieuw@example.nl")["status"] == "pending"
    page.goto(link)
    expect(page.get_by_role("heading", name="Bevestig je aanmelding")).to_be_visible()
    shoot(page, "confirm")
    page.get_by_role("button", name="Aanmelding bevestigen").click()
    expect(page.get_by_role("heading", name="Aanmelding bevestigd")).to_be_visible()
    assert subscriber(db_of(workdir), "nieuw@example.nl")["status"] == "active"


def test_preferences_in_a_browser_from_the_footer_of_a_received_message(
    workdir: Path, server: Server, relay_env, run_cli, web: WebServer, page: Page
) -> None:
    data = _send_article(workdir, run_cli, relay_env, web, server, "ann@example.nl")
    (link,) = links_in(data, "/p/")
    page.goto(link)
    expect(page.get_by_role("heading", name="Je voorkeuren")).to_be_visible()
    shoot(page, "preferences")
    page.get_by_label("Een wekelijks overzicht").check()
    page.get_by_label("English").check()
    page.get_by_role("button", name="Opslaan").click()
    expect(page.get_by_text("Your preferences are saved.")).to_be_visible()
    shoot(page, "preferences-saved")
    row = subscriber(db_of(workdir), "ann@example.nl")
    assert (row["cadence"], row["language"], row["status"]) == ("weekly", "en", "active")


def test_the_archive_and_the_other_pages_pass_the_contrast_check_at_both_widths(
    workdir: Path, server: Server, relay_env, run_cli, web: WebServer, page: Page
) -> None:
    _send_article(workdir, run_cli, relay_env, web, server, "ann@example.nl")
    page.goto(f"{web.url}/archive")
    expect(page.get_by_role("link", name="Waarom de fietsenmaker van Zwolle nu software schrijft")).to_be_visible()
    shoot(page, "archive")
    page.get_by_role("link", name="Waarom de fietsenmaker van Zwolle nu software schrijft").click()
    expect(page.get_by_role("heading", name="Waarom de fietsenmaker van Zwolle nu software schrijft")).to_be_visible()
    shoot(page, "archive-article")
    page.goto(f"{web.url}/u/{'A' * 24}")
    expect(page.get_by_role("heading", name="Pagina niet gevonden")).to_be_visible()
    shoot(page, "not-found")
    page.goto(f"{web.url}/subscribe")
    page.get_by_label("E-mailadres").fill("geen-adres")
    page.evaluate("document.querySelector('#email').type = 'text'")  # past the browser's own check
    page.get_by_role("button", name="Aanmelden").click()
    expect(page.get_by_role("alert")).to_be_visible()
    shoot(page, "subscribe-invalid")
