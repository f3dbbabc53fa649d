"""Faults of real processes end to end, the CLI as a subprocess: a sender frozen past its
lease, a campaign that cannot be built, run-level failures and their exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import Result
from processes_helpers import spawn_env, wait_for
from send_helpers import add_subscribers, relay_env, server, write_article  # noqa: F401
from smtp_server import HOLD, STALL

from newsletter.db import open_db


def _db(workdir: Path):
    return open_db(workdir / "subscribers.db")


def _spawn(workdir: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args], cwd=workdir, env=spawn_env(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_a_sender_frozen_past_its_lease_writes_nothing_over_the_one_that_took_over(workdir, server):
    count = 400
    db = _db(workdir)
    emails = add_subscribers(db, count)
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "4",
           "NEWSLETTER_SENDING_LEASE": "2", "NEWSLETTER_RETRY_MIN_BACKOFF": "1"}
    server.handler.delay = 0.01
    holding = {"on": False}
    server.handler.on_data = lambda rcpt, n: HOLD if holding["on"] else None

    first = _spawn(workdir, env, "send", "artikel.txt")
    wait_for(lambda: len(server.handler.messages) >= 100)
    # The relay stops answering the first sender's messages (as it would for a process
    # that hangs); then the process freezes past its lease, like a suspended VM.
    holding["on"] = True
    wait_for(lambda: server.handler.held >= 1)
    time.sleep(0.3)  # every connection reaches its next message and is held there
    first.send_signal(signal.SIGSTOP)
    holding["on"] = False
    try:
        db = _db(workdir)
        in_flight = {r[0]: r[1] for r in db.execute(
            "SELECT s.email, d.message_id FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.status = 'sending'"
        )}
        db.conn.close()
        assert 1 <= len(in_flight) <= 4

        time.sleep(2.5)  # past the 2 s lease
        second = _spawn(workdir, env, "resume", "1")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert "Campaign done" in err
    finally:
        server.handler.release.set()  # the first sender's held messages now get their 451
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 1 and "taken over by another process" in err

    db = _db(workdir)
    rows = db.execute(
        "SELECT s.email, d.status, d.message_id FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
    ).fetchall()
    assert [r[1] for r in rows] == ["sent"] * count  # nothing overwritten by the late 451s
    assert db.execute("SELECT status, lease_owner FROM campaigns").fetchone() == ("done", None)
    db.conn.close()

    again = _spawn(workdir, env, "retry", "1", "--now")
    again.communicate(timeout=60)
    assert again.returncode == 0
    received = server.handler.by_rcpt()
    assert sorted(received) == sorted(emails)
    for email, status, message_id in rows:
        copies = received[email]
        assert len(copies) <= 2  # nobody three times
        assert len(copies) == 1 or email in in_flight  # twice only if in flight at the freeze
        assert {c.message_id for c in copies} == {message_id}


def test_a_campaign_that_cannot_be_built_is_cancelled_and_the_fixed_article_sent_to_the_rest(
    workdir, server, relay_env, invoke: Callable[..., Result]
):
    from send_helpers import make_config

    from newsletter.delivery.campaigns import create_campaign, make_owner

    db = _db(workdir)
    emails = add_subscribers(db, 20)
    article = write_article(workdir)
    campaign = create_campaign(make_config(workdir), db, article, owner=make_owner())
    # A campaign stored with a subject no header may hold (as one made before today's
    # checks): every message of it fails to build. Five had gone out before it broke.
    rendered = json.loads(db.execute("SELECT rendered FROM campaigns").fetchone()[0])
    for language in rendered.values():
        language["subject"] = "Kapot\nBcc: iedereen@example.org"
    with db.conn:
        db.execute("UPDATE campaigns SET rendered = ?", [json.dumps(rendered)])
        db.execute("UPDATE deliveries SET status = 1, next_attempt_at = NULL WHERE id <= 5")
    db.conn.close()

    broken = invoke("send", "artikel.txt")
    assert broken.exit_code == 1 and "building the messages failed" in broken.stderr
    assert "newsletter cancel" in broken.stderr
    assert json.loads(invoke("status", str(campaign.id), "--json").stdout)["status"] == "broken"

    for _ in range(2):  # cron does not fail on it every few minutes, but says so
        cron = invoke("run")
        assert cron.exit_code == 0, cron.stderr
        assert f"campaign {campaign.id} cannot be built" in cron.stderr
    again = invoke("send", "artikel.txt", "--again")
    assert again.exit_code == 1 and f"newsletter cancel {campaign.id}" in again.stderr
    assert server.handler.messages == []

    cancelled = invoke("cancel", str(campaign.id))
    assert cancelled.exit_code == 0 and "15 not sent, 5 had been sent" in cancelled.stderr
    status = json.loads(invoke("status", str(campaign.id), "--json").stdout)
    assert (status["status"], status["cancelled"], status["sent"], status["queued"]) == ("cancelled", 15, 5, 0)
    assert invoke("resume", str(campaign.id)).exit_code == 1
    assert invoke("retry", str(campaign.id)).exit_code == 1
    assert invoke("cancel", str(campaign.id)).exit_code == 1  # nothing left to cancel

    fixed = invoke("send", "artikel.txt")  # the fixed article: a new campaign for the rest
    assert fixed.exit_code == 0, fixed.stderr
    received = server.handler.by_rcpt()
    assert sorted(received) == sorted(emails[5:])  # the five who had it are skipped
    assert all(len(copies) == 1 for copies in received.values())
    assert invoke("run").exit_code == 0
    assert len(server.handler.messages) == 15


def test_send_exits_1_naming_the_setting_when_the_relay_wants_a_login(workdir, server, relay_env, invoke):
    db = _db(workdir)
    emails = add_subscribers(db, 10)
    db.conn.close()
    write_article(workdir)
    server.handler.on_mail = lambda sender, n: "530 5.7.0 Authentication required"
    failed = invoke("send", "artikel.txt")
    assert failed.exit_code == 1
    assert "530 5.7.0 Authentication required" in failed.stderr and "smtp.username" in failed.stderr
    assert "10 not sent yet" in failed.stderr and "newsletter resume 1" in failed.stderr

    server.handler.on_mail = None
    resumed = invoke("resume", "1")
    assert resumed.exit_code == 0, resumed.stderr
    assert sorted(m.rcpt for m in server.handler.messages) == sorted(emails)


def test_send_exits_1_when_the_relay_never_answers_data_in_time(workdir, server, relay_env, invoke, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SMTP_TIMEOUT", "0.3")
    db = _db(workdir)
    add_subscribers(db, 30)
    db.conn.close()
    write_article(workdir)
    server.handler.stall_seconds = 2
    server.handler.on_data = lambda rcpt, n: STALL
    failed = invoke("send", "artikel.txt")
    assert failed.exit_code == 1
    assert "did not answer in time" in failed.stderr and "smtp.timeout" in failed.stderr


def test_a_subscriber_at_an_international_domain_gets_the_campaign(workdir, server, relay_env, invoke):
    assert invoke("subscribe", "lezer@bücher.de", "--confirmed").exit_code == 0
    assert invoke("subscribe", "ann@example.nl", "--confirmed").exit_code == 0
    write_article(workdir)
    sent = invoke("send", "artikel.txt")
    assert sent.exit_code == 0, sent.stderr
    assert sorted(server.handler.by_rcpt()) == ["ann@example.nl", "lezer@xn--bcher-kva.de"]
    status = json.loads(invoke("status", "1", "--json").stdout)
    assert (status["status"], status["sent"], status["failed"]) == ("done", 2, 0)
