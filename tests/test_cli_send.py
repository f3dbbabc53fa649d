"""`newsletter send/resume/retry/status`, in-process and as real subprocesses (kill -9, two senders)."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from send_helpers import add_subscribers, make_config, open_workdb, relay_env, server, write_article  # noqa: F401

from newsletter.db import open_db


def _db(workdir: Path):
    return open_workdb(make_config(workdir))


def test_send_sends_and_status_shows_the_counts(workdir, server, relay_env, invoke):
    emails = add_subscribers(_db(workdir), 12)
    write_article(workdir)
    result = invoke("send", "artikel.txt")
    assert result.exit_code == 0, result.output
    assert "Campaign 1: 'Waarom de fietsenmaker" in result.stderr
    assert "12 sent" in result.stderr and "Campaign done: 12 of 12 sent" in result.stderr
    assert sorted(m.rcpt for m in server.handler.messages) == emails

    table = invoke("status")
    assert table.exit_code == 0
    header, row = table.stdout.splitlines()
    assert header.split()[:6] == ["id", "kind", "status", "subject", "total", "sent"]
    assert row.split()[:3] == ["1", "article", "done"]

    data = json.loads(invoke("status", "1", "--json").stdout)
    assert data["sent"] == 12 and data["status"] == "done" and data["queued"] == 0


def test_plain_timestamped_lines_and_no_progress_bar_when_stderr_is_not_a_terminal(
    workdir, server, relay_env, invoke, monkeypatch
):
    monkeypatch.setattr("newsletter.cli.send.LOG_EVERY_S", 0)
    add_subscribers(_db(workdir), 3)
    write_article(workdir)
    result = invoke("send", "artikel.txt")
    assert "\r" not in result.stderr and "#" not in result.stderr
    assert re.search(r"^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ campaign 1: 3/3 done, 3 sent", result.stderr, re.M)


def test_a_progress_bar_with_count_rate_and_eta_on_a_terminal(workdir, server):
    db = _db(workdir)
    add_subscribers(db, 300)
    db.conn.close()
    write_article(workdir)
    controller, terminal = pty.openpty()  # stderr is a real terminal for this run
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update({"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_RATE": "300", "COLUMNS": "120"})
    proc = subprocess.Popen([sys.executable, "-m", "newsletter", "send", "artikel.txt"], cwd=workdir,
                            env=env, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    proc.wait(60)
    os.close(controller)
    text = output.decode("utf-8", "replace")
    assert proc.returncode == 0
    assert "campaign 1" in text and "300/300" in text and "/s" in text
    assert re.search(r"\d+/300", text.split("300/300")[0])  # it moved before it finished


def test_sending_the_same_article_again_is_refused_with_a_hint(workdir, server, relay_env, invoke):
    add_subscribers(_db(workdir), 2)
    write_article(workdir)
    assert invoke("send", "artikel.txt").exit_code == 0
    refused = invoke("send", "artikel.txt")
    assert refused.exit_code == 1
    assert "already sent as campaign 1" in refused.stderr and "--again" in refused.stderr
    again = invoke("send", "artikel.txt", "--again")
    assert again.exit_code == 0 and "Campaign 2" in again.stderr
    assert len(server.handler.messages) == 4


def test_dry_run_sends_nothing(workdir, server, relay_env, invoke):
    add_subscribers(_db(workdir), 7)
    write_article(workdir)
    result = invoke("send", "artikel.txt", "--dry-run")
    assert result.exit_code == 0
    assert "Recipients: 7" in result.stdout and "lezer000000@example.nl" in result.stdout
    assert "... and 2 more" in result.stdout
    assert server.handler.messages == []
    assert invoke("status").stdout == ""


def test_to_sends_one_test_copy_only(workdir, server, relay_env, invoke):
    add_subscribers(_db(workdir), 3)
    write_article(workdir)
    result = invoke("send", "artikel.txt", "--to", "redactie@example.nl")
    assert result.exit_code == 0 and "No campaign was touched" in result.stderr
    assert [m.rcpt for m in server.handler.messages] == ["redactie@example.nl"]


def test_failures_lists_the_reply_and_retry_sends_what_is_due(workdir, server, relay_env, invoke):
    emails = add_subscribers(_db(workdir), 4)
    write_article(workdir)
    replies = {emails[0]: "550 5.1.1 User unknown", emails[1]: "451 4.3.0 Try later"}
    server.handler.on_data = lambda rcpt, n: replies.get(rcpt)
    result = invoke("send", "artikel.txt")
    assert result.exit_code == 0  # a bounce and a deferral are outcomes, not a failed run
    assert "1 deferred; the next attempt is due at" in result.stderr
    assert "newsletter retry 1" in result.stderr

    failures = json.loads(invoke("status", "1", "--failures", "--json").stdout)
    assert [(f["email"], f["status"], f["code"], f["enhanced"]) for f in failures] == [
        (emails[0], "bounced", 550, "5.1.1"),
        (emails[1], "deferred", 451, "4.3.0"),
    ]
    waiting = json.loads(invoke("status", "1", "--json").stdout)
    assert waiting["status"] == "waiting" and waiting["next_retry_at"]
    refused = invoke("send", "artikel.txt")
    assert refused.exit_code == 1 and "`newsletter retry 1`" in refused.stderr
    server.handler.on_data = None
    retried = invoke("retry", "1", "--now")
    assert retried.exit_code == 0 and "this run 1 sent" in retried.stderr
    assert json.loads(invoke("status", "1", "--json").stdout)["status"] == "done"


def test_without_smtp_url_it_says_nothing_left_the_machine(workdir, invoke):
    add_subscribers(_db(workdir), 2)
    write_article(workdir)
    result = invoke("send", "artikel.txt")
    assert result.exit_code == 0
    assert "NOTHING LEFT THIS MACHINE" in result.stderr and str(workdir / "outbox") in result.stderr
    assert len(list((workdir / "outbox").glob("*.eml"))) == 2


# --- real processes ---------------------------------------------------------------------

def _spawn(workdir: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    full_env.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args], cwd=workdir, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("processes", [1, 2])
def test_send_resumes_after_kill_without_duplicates_beyond_the_in_flight_rows(workdir, server, processes):
    count = 3000
    db = _db(workdir)
    emails = add_subscribers(db, count)
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "8",
           "NEWSLETTER_SENDING_PROCESSES": str(processes)}
    server.handler.delay = 0.01  # every connection busy: eight messages always in flight
    first = _spawn(workdir, env, "send", "artikel.txt")
    _wait_for(lambda: len(server.handler.messages) >= 1000)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    received_at_kill = len(server.handler.messages)
    assert received_at_kill < count

    db = open_db(workdir / "subscribers.db")
    in_flight = {
        r[0]: r[1] for r in db.execute(
            "SELECT s.email, d.message_id FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.status = 'sending'"
        )
    }
    assert 1 <= len(in_flight) <= 8
    db.conn.close()

    server.handler.delay = 0
    second = _spawn(workdir, env, "send", "artikel.txt")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "Resuming campaign 1" in err and "Campaign done" in err

    received = server.handler.by_rcpt()
    assert sorted(received) == sorted(emails)  # everyone got it
    duplicates = {rcpt: copies for rcpt, copies in received.items() if len(copies) > 1}
    assert set(duplicates) <= set(in_flight)  # only rows in flight at the kill
    print(f"killed after {received_at_kill} received; {len(in_flight)} in flight, "
          f"{len(duplicates)} received twice")
    for rcpt, copies in duplicates.items():
        assert len(copies) == 2 and len({c.message_id for c in copies}) == 1
        assert copies[0].message_id == in_flight[rcpt]

    db = open_db(workdir / "subscribers.db")
    rows = db.execute(
        "SELECT s.email, d.status, d.message_id FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
    ).fetchall()
    assert len(rows) == count
    for email, status, message_id in rows:  # the database agrees with the server, row by row
        assert status == "sent"
        assert {c.message_id for c in received[email]} == {message_id}


def test_two_senders_at_once_one_sends_the_other_refuses(workdir, server):
    db = _db(workdir)
    emails = add_subscribers(db, 400)
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_RATE": "400"}
    a = _spawn(workdir, env, "send", "artikel.txt")
    b = _spawn(workdir, env, "send", "artikel.txt")
    results = [p.communicate(timeout=120) for p in (a, b)]
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 1], results
    refused = [err for p, (out, err) in zip((a, b), results, strict=True) if p.returncode == 1][0]
    assert "is being sent by process" in refused
    assert sorted(m.rcpt for m in server.handler.messages) == emails


def test_ctrl_c_finishes_in_flight_records_it_and_says_how_to_resume(workdir, server):
    db = _db(workdir)
    add_subscribers(db, 2500)  # enough for two sending processes: the stop reaches both
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_RATE": "300",
           "NEWSLETTER_SENDING_PROCESSES": "2"}
    proc = _spawn(workdir, env, "send", "artikel.txt")
    _wait_for(lambda: len(server.handler.messages) >= 100)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "interrupted" in err and "newsletter resume 1" in err
    db = open_db(workdir / "subscribers.db")
    counts = dict(db.execute("SELECT status, count(*) FROM delivery_rows GROUP BY status").fetchall())
    assert "sending" not in counts
    assert counts["sent"] == len(server.handler.messages)
    assert counts["sent"] + counts["queued"] == 2500
