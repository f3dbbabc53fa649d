"""The web pages in a real browser: Debian's chromium driven by Playwright, from the links in
messages that aiosmtpd received. Screenshots at 375 px (a phone) and 1024 px go to
$TEST_ARTIFACTS/web/, else tests/artifacts/web/ (not committed), for a person to look at;
a contrast check computed in the browser holds every text to 4.5:1 against the background
it is drawn on.

The browser and the contrast check are tests/browser.py's, the same as test_contrast.py's
for the emails. Never skipped in CI (CI=true): there a missing chromium is a failure.
Locally it is skipped only when chromium or playwright is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import artifacts_dir, contrast_failures, launched
from send_helpers import add_subscribers, relay_env, server, write_article  # noqa: F401
from smtp_server import Server
from web_helpers import WebServer, db_of, links_in, subscriber, wait_for_messages, web  # noqa: F401

from newsletter.audience import subscribers

WIDTHS = (375, 1024)

try:
    from playwright.sync_api import expect
except ImportError:  # reported by launched(): a skip locally, a failure in CI
    expect = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="nl-NL", viewport={"width": 375, "height": 740})
    yield context.new_page()
    context.close()


def shoot(page: Any, name: str) -> None:
    """Screenshots at a phone's and a desktop's width, and the contrast check at both."""
    folder = artifacts_dir() / "web"
    folder.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 740})
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        result = contrast_failures(page)
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
    workdir: Path, server: Server, relay_env, run_cli, web: WebServer, page: Any
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
    workdir: Path, server: Server, web: WebServer, page: Any
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
    workdir: Path, server: Server, relay_env, run_cli, web: WebServer, page: Any
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
    workdir: Path, server: Server, relay_env, run_cli, web: WebServer, page: Any
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
