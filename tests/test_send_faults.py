"""Faults a real relay produces, against a real aiosmtpd server: international domains,
replies about our own session, greylisting, a relay outage or one that never answers, and
messages too large for memory."""

from __future__ import annotations

import asyncio
import email as email_parser
import email.policy as email_policy
import hashlib
import ssl
import time
from pathlib import Path

import idna
import pytest
import trustme
from send_helpers import Site, add_subscribers, make_config, make_site, server, statuses, write_article  # noqa: F401
from smtp_server import STALL, Server, authenticator

from newsletter.db import now
from newsletter.delivery.campaigns import create_campaign, make_owner
from newsletter.delivery.codes import to_ms
from newsletter.delivery.pool import Pool, PoolOptions
from newsletter.delivery.processes import ShardedRun
from newsletter.delivery.run import run_campaign
from newsletter.errors import ArticleError

# --- 2. international domains ------------------------------------------------------------


async def test_an_international_domain_gets_its_xn_form_in_the_envelope_and_the_to_header(server, make_site):
    site = make_site(server.url, 2)
    unicode_addresses = add_subscribers(site.db, 1, domain="bücher.de", start=50) + add_subscribers(
        site.db, 1, domain="straße.de", start=60
    )
    cid = site.campaign()
    result = await site.run(cid)
    assert result.ok and result.status == "done", result.error
    assert set(statuses(site.db, cid).values()) == {"sent"}

    received = server.handler.by_rcpt()
    for address in unicode_addresses:
        local, _, domain = address.partition("@")
        wire = f"{local}@{idna.encode(domain, uts46=True).decode()}"  # IDNA 2008
        assert wire.isascii() and "xn--" in wire
        assert len(received[wire]) == 1  # RCPT TO in its xn-- form, once
        message = email_parser.message_from_bytes(received[wire][0].data, policy=email_policy.default)
        (to,) = message["To"].addresses
        assert to.username == local
        assert idna.decode(to.domain) == domain  # the To header parses back to the same domain
    assert "lezer000060@xn--strae-oqa.de" in received  # straße stays straße (not strasse)


# --- 3. a reply about our sender or session stops the run ---------------------------------

SESSION_REPLIES = [
    ("530 5.7.0 Authentication required", "smtp.username"),
    ("530 5.7.0 Must issue a STARTTLS command first", "smtp.url"),
    ("554 5.7.1 <nieuws@example.nl>: Relay access denied", "smtp.url"),
    ("553 5.1.8 <nieuws@example.nl>: Sender address rejected: Domain not found", "sender.envelope"),
    ("550 5.1.7 Bad sender mailbox address syntax", "sender.envelope"),
    ("552 5.3.4 Message size exceeds fixed limit", "sending.max_message_mb"),
]


@pytest.mark.parametrize(("reply", "setting"), SESSION_REPLIES, ids=["auth", "starttls", "relay", "5.1.8", "5.1.7", "size"])
async def test_a_reply_about_our_session_at_mail_from_stops_the_run_and_resume_sends_each_once(
    server, make_site, reply, setting
):
    site = make_site(server.url, 30)
    server.handler.on_mail = lambda sender, n: reply
    cid = site.campaign()
    started = time.monotonic()
    failed = await site.run(cid)
    assert not failed.ok and setting in failed.error and reply.split()[0] in failed.error
    assert failed.status == "paused" and failed.counts["queued"] == 30
    assert failed.counts["failed"] == failed.counts["bounced"] == 0
    assert server.handler.messages == []
    assert all(site.subscriber_status(e) == "active" for e in site.emails)
    assert time.monotonic() - started < 10

    server.handler.on_mail = None  # the setting was fixed
    resumed = await site.run(cid)
    assert resumed.ok and resumed.status == "done"
    received = server.handler.by_rcpt()
    assert sorted(received) == sorted(site.emails)
    assert all(len(copies) == 1 for copies in received.values())


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_a_relay_that_wants_a_login_we_did_not_configure_stops_the_run_until_it_is_set(make_site, monkeypatch):
    srv = Server(authenticator=authenticator("nieuws", "geheim"), auth_required=True,
                 auth_require_tls=False).start()
    try:
        site = make_site(srv.url, 12)
        cid = site.campaign()
        failed = await site.run(cid)
        assert not failed.ok and "530" in failed.error and "smtp.username" in failed.error
        assert failed.counts["queued"] == 12 and srv.handler.messages == []

        monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "geheim")
        fixed = make_config(site.workdir, **{"smtp.url": srv.url, "smtp.username": "nieuws"})
        resumed = await site.run(cid, config=fixed)
        assert resumed.ok and resumed.status == "done"
        assert sorted(m.rcpt for m in srv.handler.messages) == sorted(site.emails)
    finally:
        srv.stop()


async def test_a_relay_that_wants_starttls_on_a_plain_url_stops_the_run_until_the_url_is_fixed(make_site, tmp_path):
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    srv = Server(scheme="smtp+plain", tls_context=context, require_starttls=True).start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        site = make_site(srv.url, 12)
        cid = site.campaign()
        failed = await site.run(cid)
        assert not failed.ok and "STARTTLS" in failed.error and "smtp://" in failed.error
        assert failed.counts["queued"] == 12 and srv.handler.messages == []

        fixed = make_config(site.workdir, **{"smtp.url": f"smtp://127.0.0.1:{srv.port}", "smtp.ca_file": str(ca_file)})
        resumed = await site.run(cid, config=fixed)
        assert resumed.ok and resumed.status == "done"
        assert sorted(m.rcpt for m in srv.handler.messages) == sorted(site.emails)
    finally:
        srv.stop()


# --- 5. greylisting defers one recipient, not the pool ------------------------------------

GREYLISTING = ("451 4.7.1 Please try again later", "450 4.2.0 Greylisted, see http://postgrey.schweikert.ch/",
               "452 4.2.2 Mailbox full")


def _greylisted(rcpt: str) -> str | None:
    """30 % of the addresses, picked by hash: the greylisting reply for that address."""
    digest = int(hashlib.sha256(rcpt.encode()).hexdigest(), 16)
    return GREYLISTING[digest % 3] if digest % 100 < 30 else None


def _greylist_first_attempt(tried: set[str]):
    def on_rcpt(rcpt: str, _n: int) -> str | None:
        reply = _greylisted(rcpt)
        if reply and rcpt not in tried:
            tried.add(rcpt)
            return reply
        return None

    return on_rcpt


async def test_greylisting_defers_those_recipients_only_at_full_speed_and_retry_sends_each_once(make_site):
    clean, grey = Server().start(), Server().start()
    try:
        site = make_site(clean.url, 2000)
        options = {"slowdown_pause": 2.0}  # the production pause: greylisting must not trigger it
        started = time.monotonic()
        reference = await site.run(site.campaign(), **options)
        fault_free = time.monotonic() - started
        assert reference.progress.sent == 2000

        tried: set[str] = set()
        grey.handler.on_rcpt = _greylist_first_attempt(tried)
        greyed = make_config(site.workdir, **{"smtp.url": grey.url})
        cid = site.campaign(again=True)
        started = time.monotonic()
        first = await asyncio.wait_for(site.run(cid, config=greyed, **options), timeout=max(60, 10 * fault_free))
        elapsed = time.monotonic() - started
        expected = {e for e in site.emails if _greylisted(e)}
        assert 450 < len(expected) < 750
        assert first.progress.deferred == len(expected) and first.progress.sent == 2000 - len(expected)
        assert first.progress.slowdowns == 0 and first.progress.lowest_concurrency == 4
        print(f"fault-free {fault_free:.2f}s, 30% greylisted {elapsed:.2f}s ({elapsed / fault_free:.2f}x)")
        assert elapsed < 2 * fault_free
        rows = statuses(site.db, cid)
        assert {e for e, s in rows.items() if s == "deferred"} == expected

        with site.db.conn:  # `retry --now`
            site.db.execute("UPDATE deliveries SET next_attempt_at = ? WHERE status = 3", [to_ms(now())])
        second = await site.run(cid, config=greyed)
        assert second.status == "done"
        received = grey.handler.by_rcpt()
        assert sorted(received) == sorted(site.emails)
        assert all(len(copies) == 1 for copies in received.values())
    finally:
        clean.stop()
        grey.stop()


async def test_the_pool_recovers_from_a_rate_signal_while_others_are_still_greylisted(server, make_site):
    site = make_site(server.url, 400)
    server.handler.on_rcpt = _greylist_first_attempt(set())
    server.handler.on_data = lambda rcpt, n: "421 4.7.28 Unusual rate of mail, slow down" if 20 <= n < 23 else None
    result = await site.run(site.campaign(), recover_after=5)
    assert result.progress.slowdowns >= 1 and result.progress.lowest_concurrency < 4
    assert result.progress.concurrency == 4  # grew back although greylisting went on
    assert result.progress.deferred > 80


# --- 6. connecting: an outage of a second, a relay that never answers ---------------------


async def test_a_relay_down_for_a_second_mid_run_does_not_abort_it(server, make_site):
    site = make_site(server.url, 600, **{"retry.min_backoff": 1})
    server.handler.delay = 0.005
    cid = site.campaign()
    run = asyncio.create_task(site.run(cid))
    while len(server.handler.messages) < 150:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(server.restart)
    result = await asyncio.wait_for(run, timeout=120)
    assert result.ok, result.error
    rows = statuses(site.db, cid)
    unknown = {e for e, s in rows.items() if s != "sent"}
    assert len(unknown) <= 4 and all(s == "deferred" for e, s in rows.items() if e in unknown)  # in flight at the stop

    await asyncio.sleep(1.1)
    retried = await site.run(cid)
    assert retried.status == "done"
    received = server.handler.by_rcpt()
    assert sorted(received) == sorted(site.emails)  # all delivered
    for rcpt, copies in received.items():  # twice only if in flight at the stop, same Message-ID
        assert len(copies) == 1 or (rcpt in unknown and len(copies) == 2
                                    and copies[0].message_id == copies[1].message_id)


async def test_a_relay_that_never_answers_data_in_time_fails_the_run(server, make_site):
    site = make_site(server.url, 40, **{"smtp.timeout": 0.3})
    server.handler.stall_seconds = 2
    server.handler.on_data = lambda rcpt, n: STALL
    cid = site.campaign()
    result = await site.run(cid)
    assert not result.ok and "did not answer in time" in result.error and "smtp.timeout" in result.error
    counts = result.counts
    assert counts["sent"] == 0 and counts["queued"] > 0 and counts["deferred"] <= 12
    assert result.status == "paused"


async def test_a_small_run_in_which_every_attempt_timed_out_is_a_failure(server, make_site):
    site = make_site(server.url, 3, **{"smtp.timeout": 0.3})
    server.handler.stall_seconds = 2
    server.handler.on_data = lambda rcpt, n: STALL
    result = await site.run(site.campaign())
    assert not result.ok and "did not answer in time" in result.error
    assert result.counts["deferred"] == 3


# --- 7. memory: the build buffer is bounded in bytes, a too large email is refused ---------


def _big_article(directory: Path, kilobytes: int) -> Path:
    paragraph = "Een lange alinea over fietsen, software en de werkplaats aan de gracht. " * 14
    body = "\n\n".join(paragraph.strip() for _ in range(max(1, kilobytes * 1024 // len(paragraph))))
    text = ("Testblad Nieuws\n\nEen heel lang artikel\n\neen-heel-lang-artikel\n\n" + body
            + "\n\nMarieke Dam - Redacteur Testblad\n")
    return write_article(directory, "lang.txt", text)


async def test_the_build_buffer_holds_at_most_its_size_in_bytes(server, make_site):
    site = make_site(server.url, 150, **{"sending.buffer_mb": 1})
    server.handler.delay = 0.01
    article = _big_article(site.workdir, 100)
    cid = create_campaign(site.config, site.db, article, owner=make_owner()).id
    pools: list[Pool] = []
    peak = 0

    def started(pool: Pool | ShardedRun) -> None:
        assert isinstance(pool, Pool)
        pools.append(pool)

    async def watch() -> None:
        nonlocal peak
        while True:
            if pools:
                peak = max(peak, pools[0].buffered_bytes)
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    options = PoolOptions.from_config(site.config, concurrency=4)
    result = await run_campaign(site.config, site.db, cid, owner=make_owner(), options=options, on_start=started)
    watcher.cancel()
    assert result.ok and result.progress.sent == 150
    size = len(server.handler.messages[0].data)
    assert size > 150_000
    assert 0 < peak <= 2**20 + 2**20 // 4 + size  # the limit, plus the batch that crossed it


async def test_an_article_whose_email_is_over_the_size_limit_is_refused_before_anything_is_queued(workdir, server):
    site = Site(workdir, server.url, 5, **{"sending.max_message_mb": 0.05})
    article = _big_article(workdir, 100)
    with pytest.raises(ArticleError, match=r"sending\.max_message_mb") as refused:
        create_campaign(site.config, site.db, article, owner=make_owner())
    assert "MB" in str(refused.value)
    assert site.db.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0
    assert site.db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
