"""`newsletter serve` over real HTTP: the server runs as a subprocess on 127.0.0.1, httpx asks."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from send_helpers import add_subscribers, relay_env, server, write_article  # noqa: F401
from smtp_server import RecordingHandler, Server
from web_helpers import (  # noqa: F401
    WebServer,
    db_of,
    events,
    links_in,
    start_web,
    subscriber,
    wait_for_messages,
    web,
)

from newsletter.audience import subscribers
from newsletter.delivery.records import archive_entries, archived_campaign
from newsletter.digests.plan import mark_for_digest

ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}


def _add(workdir: Path, address: str, *, confirmed: bool = True, language: str = "nl") -> dict[str, object]:
    db = db_of(workdir)
    subscribers.subscribe(db, address, name="Test", language=language, confirmed=confirmed, actor="test")
    return subscriber(db, address)


def _snapshot(workdir: Path) -> tuple[list[tuple[object, ...]], int]:
    db = db_of(workdir)
    rows = db.execute("SELECT id, status, cadence, language, updated_at FROM subscribers ORDER BY id").fetchall()
    (count,) = db.execute("SELECT count(*) FROM events").fetchone()
    return rows, count


def test_the_one_click_post_exactly_as_gmail_sends_it_unsubscribes_at_once(workdir: Path, web: WebServer) -> None:
    ann = _add(workdir, "ann@example.nl")
    # What Gmail sends for List-Unsubscribe-Post (RFC 8058): no cookies, no referrer, this body.
    response = httpx.post(
        f"{web.url}/u/{ann['token']}", content=b"List-Unsubscribe=One-Click",
        headers={**ONE_CLICK, "user-agent": "Mozilla/5.0 (compatible; Google-Unsubscribe)"},
    )
    assert response.status_code == 200
    db = db_of(workdir)
    assert subscriber(db, "ann@example.nl")["status"] == "unsubscribed"
    assert events(db, ann["id"])[-1] == ("unsubscribed", "web")
    assert "uitgeschreven" in response.text

    again = httpx.post(f"{web.url}/u/{ann['token']}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert again.status_code == 200
    assert [e for e in events(db_of(workdir), ann["id"]) if e[0] == "unsubscribed"] == [("unsubscribed", "web")]


def test_a_get_of_any_link_changes_nothing_and_shows_one_button_that_posts(workdir: Path, web: WebServer) -> None:
    active = _add(workdir, "ann@example.nl")
    pending = _add(workdir, "bob@example.nl", confirmed=False)
    before = _snapshot(workdir)
    pages = {
        f"/u/{active['token']}": f'action="/u/{active["token"]}"',
        f"/c/{pending['token']}": f'action="/c/{pending["token"]}"',
        f"/p/{active['token']}": f'action="/p/{active["token"]}"',
    }
    for path, form in pages.items():
        for method in ("GET", "HEAD"):
            response = httpx.request(method, web.url + path)
            assert response.status_code == 200, path
        page = httpx.get(web.url + path).text
        assert form in page and 'method="post"' in page
    assert httpx.get(f"{web.url}/u/{active['token']}").text.count("<form") == 1
    assert _snapshot(workdir) == before


def test_unknown_and_malformed_tokens_answer_404_with_a_page_that_reveals_nothing(
    workdir: Path, web: WebServer
) -> None:
    _add(workdir, "ann@example.nl")
    before = _snapshot(workdir)
    generic = httpx.get(f"{web.url}/no-such-page")
    assert generic.status_code == 404
    for token in (secrets.token_urlsafe(18), "short", "x" * 300, "..%2f..%2fetc"):
        for path in ("u", "c", "p"):
            for method in ("GET", "POST"):
                response = httpx.request(method, f"{web.url}/{path}/{token}", content=b"List-Unsubscribe=One-Click",
                                         headers=ONE_CLICK)
                assert response.status_code == 404, (path, method, token)
                assert response.text == generic.text
                assert token not in response.text
    assert _snapshot(workdir) == before


def test_confirm_shows_a_button_and_its_post_makes_the_pending_subscriber_active(workdir: Path, web: WebServer) -> None:
    bob = _add(workdir, "bob@example.nl", confirmed=False, language="en")
    page = httpx.get(f"{web.url}/c/{bob['token']}")
    assert page.status_code == 200 and "Confirm subscription" in page.text and 'lang="en"' in page.text
    assert subscriber(db_of(workdir), "bob@example.nl")["status"] == "pending"
    done = httpx.post(f"{web.url}/c/{bob['token']}", content=b"", headers=ONE_CLICK)
    assert done.status_code == 200 and "Subscription confirmed" in done.text
    db = db_of(workdir)
    assert subscriber(db, "bob@example.nl")["status"] == "active"
    assert events(db, bob["id"])[-1] == ("confirmed", "web")
    # An unsubscribed subscriber's old confirmation link does not bring them back.
    subscribers.unsubscribe(db, "bob@example.nl", actor="test")
    assert httpx.post(f"{web.url}/c/{bob['token']}", headers=ONE_CLICK).status_code == 404
    assert subscriber(db_of(workdir), "bob@example.nl")["status"] == "unsubscribed"


def test_preferences_change_cadence_and_language_and_refuse_unknown_values(workdir: Path, web: WebServer) -> None:
    ann = _add(workdir, "ann@example.nl")
    page = httpx.get(f"{web.url}/p/{ann['token']}")
    assert 'value="each" checked' in page.text and 'lang="nl"' in page.text
    saved = httpx.post(f"{web.url}/p/{ann['token']}", content=b"cadence=weekly&language=en", headers=ONE_CLICK)
    assert saved.status_code == 200
    assert "Your preferences are saved." in saved.text and 'value="weekly" checked' in saved.text
    db = db_of(workdir)
    row = subscriber(db, "ann@example.nl")
    assert (row["cadence"], row["language"]) == ("weekly", "en")
    assert events(db, ann["id"])[-1] == ("changed", "web")
    before = _snapshot(workdir)
    bad = httpx.post(f"{web.url}/p/{ann['token']}", content=b"cadence=hourly", headers=ONE_CLICK)
    assert bad.status_code == 400
    assert _snapshot(workdir) == before
    # The page's unsubscribe button posts to the one-click address.
    assert f'action="/u/{ann["token"]}"' in page.text


def test_every_email_footer_links_to_the_preferences_page(workdir: Path, server: Server, relay_env, invoke, web: WebServer) -> None:
    ann = _add(workdir, "ann@example.nl")
    write_article(workdir)
    assert invoke("send", "artikel.txt").exit_code == 0
    (message,) = server.handler.messages
    (link,) = links_in(message.data, "/p/")
    assert link == f"{web.url}/p/{ann['token']}"
    assert httpx.get(link).status_code == 200
    assert f"{web.url}/p/{ann['token']}" in message.data.decode("ascii", "replace").replace("=\r\n", "")


def _post_form(web: WebServer, address: str, **extra: str) -> httpx.Response:
    return httpx.post(f"{web.url}/subscribe", data={"email": address, "name": "", "website": "", **extra},
                      headers={"accept-language": "en"})


def test_the_form_answers_the_same_for_new_pending_active_and_suppressed_addresses(
    workdir: Path, server: Server, web: WebServer
) -> None:
    _add(workdir, "pending@example.nl", confirmed=False)
    _add(workdir, "active@example.nl")
    _add(workdir, "left@example.nl")
    db = db_of(workdir)
    subscribers.unsubscribe(db, "left@example.nl", actor="test")
    _add(workdir, "erased@example.nl")
    subscribers.erase(db, "erased@example.nl", actor="test")
    addresses = ["new@example.nl", "pending@example.nl", "active@example.nl", "left@example.nl", "erased@example.nl"]
    answers = {a: _post_form(web, a) for a in addresses}
    assert {r.status_code for r in answers.values()} == {200}
    assert len({r.text for r in answers.values()}) == 1
    assert len({tuple(sorted((k, v) for k, v in r.headers.items() if k != "date")) for r in answers.values()}) == 1
    assert "Check your email" in answers["new@example.nl"].text

    wait_for_messages(server, 4)
    time.sleep(0.5)
    assert sorted(m.rcpt for m in server.handler.messages) == sorted(
        ["new@example.nl", "pending@example.nl", "left@example.nl", "erased@example.nl"]
    )
    db = db_of(workdir)
    statuses = {a: subscriber(db, a)["status"] for a in addresses}
    # Nobody becomes active through the form: who left or was erased must confirm anew.
    assert statuses == {"new@example.nl": "pending", "pending@example.nl": "pending",
                        "active@example.nl": "active", "left@example.nl": "pending", "erased@example.nl": "pending"}


def test_the_form_sends_at_most_a_few_confirmations_per_address_a_day(workdir: Path, server: Server, web: WebServer) -> None:
    for _ in range(6):
        assert _post_form(web, "bomb@example.nl").status_code == 200
    wait_for_messages(server, 3)
    time.sleep(1.0)
    assert [m.rcpt for m in server.handler.messages] == ["bomb@example.nl"] * 3  # subscribe.per_address


def test_the_form_is_rate_limited_per_client_and_proxy_headers_count_only_from_proxies(
    workdir: Path, relay_env
) -> None:
    plain = start_web(workdir, env={"NEWSLETTER_SUBSCRIBE_PER_CLIENT": "3"})
    try:
        codes = [_post_form(plain, f"a{n}@example.nl", ).status_code for n in range(3)]
        # A client that is not a configured proxy cannot choose its address with X-Forwarded-For.
        spoofed = httpx.post(f"{plain.url}/subscribe", data={"email": "x@example.nl"},
                             headers={"x-forwarded-for": "203.0.113.9"})
        assert codes == [200, 200, 200] and spoofed.status_code == 429
        assert "Too many attempts" in _post_form(plain, "b@example.nl").text
    finally:
        plain.stop()
    proxied = start_web(workdir, env={"NEWSLETTER_SUBSCRIBE_PER_CLIENT": "3", "NEWSLETTER_WEB_PROXIES": "127.0.0.1"})
    try:
        for n in range(3):
            assert httpx.post(f"{proxied.url}/subscribe", data={"email": f"c{n}@example.nl"},
                              headers={"x-forwarded-for": "203.0.113.9"}).status_code == 200
        assert httpx.post(f"{proxied.url}/subscribe", data={"email": "d@example.nl"},
                          headers={"x-forwarded-for": "203.0.113.9"}).status_code == 429
        # Behind the proxy each reader has an address of their own.
        assert httpx.post(f"{proxied.url}/subscribe", data={"email": "e@example.nl"},
                          headers={"x-forwarded-for": "198.51.100.7"}).status_code == 200
    finally:
        proxied.stop()


def test_a_filled_honeypot_gets_the_same_answer_and_nothing_is_stored(workdir: Path, server: Server, web: WebServer) -> None:
    normal = _post_form(web, "person@example.nl")
    bot = _post_form(web, "bot@example.nl", website="http://spam.example")
    assert bot.status_code == 200 and bot.text == normal.text
    wait_for_messages(server, 1)
    time.sleep(0.5)
    assert subscribers.find(db_of(workdir), "bot@example.nl") is None
    assert [m.rcpt for m in server.handler.messages] == ["person@example.nl"]


def test_an_invalid_address_is_refused_with_the_form_again(workdir: Path, web: WebServer) -> None:
    response = _post_form(web, "not-an-address")
    assert response.status_code == 400 and "That is not an email address" in response.text
    assert 'name="email"' in response.text


def test_fifty_concurrent_one_click_posts_for_different_subscribers_are_all_recorded(
    workdir: Path, web: WebServer
) -> None:
    db = db_of(workdir)
    emails = add_subscribers(db, 50)
    tokens = [subscriber(db, e)["token"] for e in emails]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50)) as client:
            answers = await asyncio.gather(*(
                client.post(f"{web.url}/u/{t}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
                for t in tokens
            ))
        return [a.status_code for a in answers]

    assert asyncio.run(burst()) == [200] * 50
    db = db_of(workdir)
    assert subscribers.counts(db)["unsubscribed"] == 50
    (logged,) = db.execute("SELECT count(*) FROM events WHERE kind = 'unsubscribed' AND source = 'web'").fetchone()
    assert logged == 50


def test_an_unsubscribe_during_a_running_campaign_stops_that_subscribers_delivery(workdir: Path) -> None:
    relay = Server(RecordingHandler(delay=0.05)).start()
    try:
        db = db_of(workdir)
        emails = add_subscribers(db, 120)
        leaving = emails[-1]
        token = subscriber(db, leaving)["token"]
        write_article(workdir)
        env = {"NEWSLETTER_SMTP_URL": relay.url, "NEWSLETTER_SENDING_CONCURRENCY": "2"}
        site = start_web(workdir, env=env)
        try:
            sender = subprocess.Popen([sys.executable, "-m", "newsletter", "send", "artikel.txt"], cwd=workdir,
                                      env={**site_env(), **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            wait_for_messages(relay, 10, timeout=60)
            assert sender.poll() is None, "the campaign must still be running"
            answer = httpx.post(f"{site.url}/u/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
            assert answer.status_code == 200
            output, _ = sender.communicate(timeout=120)
            assert sender.returncode == 0, output
        finally:
            site.stop()
        received = [m.rcpt for m in relay.handler.messages]
        assert leaving not in received
        assert sorted(received) == sorted(emails[:-1])
        (status,) = db_of(workdir).execute(
            "SELECT d.status FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = ?",
            [leaving],
        ).fetchone()
        assert status == "skipped"
    finally:
        relay.stop()


def site_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}


def test_no_token_ever_appears_in_the_servers_output(workdir: Path, server: Server, relay_env) -> None:
    ann = _add(workdir, "ann@example.nl")
    bob = _add(workdir, "bob@example.nl", confirmed=False)
    site = start_web(workdir)
    unknown = secrets.token_urlsafe(18)
    for path in (f"/u/{ann['token']}", f"/p/{ann['token']}", f"/c/{bob['token']}", f"/u/{unknown}",
                 f"/p/{ann['token']}?x=1"):
        httpx.get(site.url + path)
    httpx.post(f"{site.url}/c/{bob['token']}", headers=ONE_CLICK)
    httpx.post(f"{site.url}/u/{ann['token']}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    _post_form(site, "carol@example.nl")
    wait_for_messages(server, 1)
    output = site.stop()
    tokens = [str(r[0]) for r in db_of(workdir).execute("SELECT token FROM subscribers")] + [unknown]
    assert '"POST /u/[token] HTTP/1.1" 200' in output
    assert [t for t in tokens if t in output] == []


def test_every_page_sends_the_security_headers(workdir: Path, web: WebServer) -> None:
    ann = _add(workdir, "ann@example.nl")
    for path in ("/archive", "/subscribe", f"/u/{ann['token']}", f"/p/{ann['token']}", "/nothing", "/archive/feed.xml",
                 "/healthz"):
        headers = httpx.get(web.url + path).headers
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["x-frame-options"] == "DENY", path
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp, path
    assert httpx.get(f"{web.url}/u/{ann['token']}").headers["cache-control"] == "no-store"
    # Nothing from elsewhere: the only resource a page loads is our stylesheet.
    page = httpx.get(f"{web.url}/subscribe").text
    assert re.findall(r'(?:src|href)="(?!/|#)([^"]+)"', page) == ["https://example.nl"]  # the masthead link


def test_the_form_speaks_the_browsers_language_then_the_publications(workdir: Path, web: WebServer) -> None:
    def lang(accept: str | None) -> str:
        headers = {"accept-language": accept} if accept else {}
        return re.search(r'<html lang="(\w+)"', httpx.get(f"{web.url}/subscribe", headers=headers).text).group(1)

    assert lang("en-GB,en;q=0.9") == "en"
    assert lang("de-DE, nl;q=0.8, en;q=0.5") == "nl"
    assert lang("fr") == "nl" and lang(None) == "nl"  # publication.language of the workdir
    assert "Aanmelden voor Testblad" in httpx.get(f"{web.url}/subscribe").text


def test_the_archive_lists_shows_and_feeds_what_was_sent_without_personal_links(
    workdir: Path, server: Server, relay_env, invoke, web: WebServer
) -> None:
    add_subscribers(db_of(workdir), 3)
    assert "Nothing has been sent yet." in httpx.get(f"{web.url}/archive", headers={"accept-language": "en"}).text
    write_article(workdir)
    assert invoke("send", "artikel.txt").exit_code == 0
    slug = "fietsenmaker-zwolle-schrijft-software"
    listing = httpx.get(f"{web.url}/archive")
    assert f'href="/archive/{slug}"' in listing.text and "Waarom de fietsenmaker" in listing.text

    shown = httpx.get(f"{web.url}/archive/{slug}")
    assert shown.status_code == 200 and "Waarom de fietsenmaker van Zwolle nu software schrijft" in shown.text
    tokens = [str(r[0]) for r in db_of(workdir).execute("SELECT token FROM subscribers")]
    assert "{nl:" not in shown.text and "/u/" not in shown.text and "/p/" not in shown.text
    assert [t for t in tokens if t in shown.text] == []
    assert "Hallo lezer," in shown.text  # the greeting a reader without a name gets
    assert "Bekijk deze e-mail in je browser" not in shown.text  # it is the browser
    assert "script-src" not in shown.headers["content-security-policy"]

    moved = httpx.get(f"{web.url}/a/{slug}")
    assert moved.status_code == 301 and moved.headers["location"] == f"/archive/{slug}"
    assert httpx.get(f"{web.url}/archive/no-such-article").status_code == 404

    feed = httpx.get(f"{web.url}/archive/feed.xml")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    atom = "{http://www.w3.org/2005/Atom}"
    entries = ET.fromstring(feed.content).findall(f"{atom}entry")
    assert [e.find(f"{atom}link").get("href") for e in entries] == [f"{web.url}/archive/{slug}"]


def test_a_digest_has_its_page_at_its_period_key(workdir: Path, server: Server, relay_env, invoke, web: WebServer) -> None:
    db = db_of(workdir)
    add_subscribers(db, 2, cadence="weekly")
    week_ago = datetime.now(UTC) - timedelta(days=7)
    long_ago = (week_ago - timedelta(days=7)).isoformat()
    db.execute("UPDATE subscribers SET created_at = ?, consent_at = ?, confirmed_at = ?", [long_ago] * 3)
    db.conn.commit()
    write_article(workdir)
    assert invoke("articles", "add", "artikel.txt").exit_code == 0
    mark_for_digest(db, "fietsenmaker-zwolle-schrijft-software", at=week_ago)
    year, week, _ = week_ago.astimezone(ZoneInfo("Europe/Amsterdam")).isocalendar()
    result = invoke("digest", "--period", "weekly", "--for", f"weekly:{year}-W{week:02d}")
    assert result.exit_code == 0, result.output
    assert len(server.handler.messages) == 2, result.stderr

    listing = httpx.get(f"{web.url}/archive").text
    assert f'href="/archive/digest-{year}-W{week:02d}"' in listing
    page = httpx.get(f"{web.url}/archive/digest-{year}-W{week:02d}")
    assert page.status_code == 200 and "Waarom de fietsenmaker" in page.text
    assert "{nl:" not in page.text and "/u/" not in page.text


@pytest.mark.parametrize("path", ["/healthz"])
def test_healthz_reports_that_the_database_answers(workdir: Path, web: WebServer, path: str) -> None:
    answer = httpx.get(web.url + path)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "web_url": web.url}


def test_serve_prints_the_url_it_serves_and_where_the_email_links_point(workdir: Path, relay_env) -> None:
    site = start_web(workdir, web_url="https://nieuws.example.nl")
    output = site.stop()
    assert f"Serving on {site.url}" in output
    assert "The links in emails point to https://nieuws.example.nl: https://nieuws.example.nl/u/TOKEN" in output


def test_pending_subscriptions_past_their_time_are_deleted_when_serve_starts(workdir: Path, relay_env) -> None:
    db = db_of(workdir)
    old = _add(workdir, "old@example.nl", confirmed=False)
    _add(workdir, "new@example.nl", confirmed=False)
    long_ago = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    db.execute("UPDATE subscribers SET consent_at = ?, created_at = ? WHERE email = 'old@example.nl'",
               [long_ago, long_ago])
    db.conn.commit()
    site = start_web(workdir)
    site.stop()
    db = db_of(workdir)
    assert subscribers.find(db, "old@example.nl") is None
    assert subscribers.find(db, "new@example.nl")["status"] == "pending"
    assert events(db, old["id"])[-1] == ("expired", "web")


def test_link_tokens_carry_at_least_128_random_bits(workdir: Path) -> None:
    tokens = {str(_add(workdir, f"t{n}@example.nl")["token"]) for n in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 >= 128


def test_unsubscribes_wait_out_a_write_lock_held_past_the_busy_timeout_and_none_fails(
    workdir: Path, web: WebServer
) -> None:
    db = db_of(workdir)
    tokens = [subscriber(db, e)["token"] for e in add_subscribers(db, 20)]
    holder = db_of(workdir)
    holder.conn.execute("BEGIN IMMEDIATE")  # another process's long write (longer than serve's 5 s busy timeout)
    holder.execute("UPDATE campaigns SET updated_at = updated_at")

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            sent = [asyncio.create_task(client.post(f"{web.url}/u/{t}", content=b"List-Unsubscribe=One-Click",
                                                    headers=ONE_CLICK)) for t in tokens]
            await asyncio.sleep(7)
            assert not any(task.done() for task in sent)  # they wait for the lock, none fails
            holder.conn.commit()
            return [(await task).status_code for task in sent]

    assert asyncio.run(burst()) == [200] * 20
    assert subscribers.counts(db_of(workdir))["unsubscribed"] == 20
    assert "database is locked" not in web.output()


def test_the_cli_loads_starlette_uvicorn_and_the_web_wing_only_for_serve() -> None:
    code = ("import sys, newsletter.cli.main; "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'newsletter.web') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.strip() == "[]", result.stderr


def test_the_root_leads_to_the_archive(workdir: Path, web: WebServer) -> None:
    answer = httpx.get(f"{web.url}/")
    assert answer.status_code == 302 and answer.headers["location"] == "/archive"
    assert httpx.get(f"{web.url}/static/web.css").headers["content-type"].startswith("text/css")


def test_the_archive_shows_the_digest_campaign_that_carried_the_most_articles(workdir: Path) -> None:
    db = db_of(workdir)
    stamp = datetime.now(UTC).isoformat()
    for campaign_id, key, slugs in ((1, "weekly:2026-W48", ["a"]), (2, "weekly:2026-W48/2", ["a", "b"]),
                                    (3, "weekly:2026-W49", ["c", "d", "e"])):
        rendered = json.dumps({"nl": {"subject": key, "html": f"<p>{key}</p>", "text": key, "language": "nl"}})
        db.execute("INSERT INTO campaigns (id, kind, subject, status, campaign_key, rendered, created_at, updated_at,"
                   " started_at) VALUES (?, 'digest', ?, 'done', ?, ?, ?, ?, ?)",
                   [campaign_id, key, key, rendered, stamp, stamp, stamp])
        db.conn.executemany("INSERT INTO digest_campaigns (campaign_id, period_key, article_slug) VALUES (?, ?, ?)",
                            [(campaign_id, key.split("/")[0], slug) for slug in slugs])
    db.conn.commit()
    shown = archived_campaign(db, kind="digest", key="weekly:2026-W48")
    assert shown is not None and shown.id == 2
    assert [e.key for e in archive_entries(db)] == ["weekly:2026-W49", "weekly:2026-W48"]


def test_newsletter_run_deletes_pending_subscriptions_past_their_time(workdir: Path, run_cli) -> None:
    db = db_of(workdir)
    old = _add(workdir, "old@example.nl", confirmed=False)
    _add(workdir, "new@example.nl", confirmed=False)
    db.execute("UPDATE subscribers SET consent_at = '2020-01-01T00:00:00+00:00' WHERE email = 'old@example.nl'")
    db.conn.commit()
    result = run_cli("run", cwd=workdir, env={"NEWSLETTER_SUBSCRIBE_PENDING_TTL": "86400"})
    assert result.returncode == 0, result.stderr
    assert "deleted 1 pending subscription never confirmed within subscribe.pending_ttl" in result.stderr
    db = db_of(workdir)
    assert subscribers.find(db, "old@example.nl") is None and subscribers.find(db, "new@example.nl") is not None
    assert events(db, old["id"])[-1] == ("expired", "cli")
