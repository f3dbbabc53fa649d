"""`status` tells a campaign whose sender was killed from one that is sending; the run's
summary counts deferrals that outlived retry.lifetime as failed; a campaign killed while its
rows were written is resumed as such; `status 0` is an error."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from send_helpers import (  # noqa: F401
    add_subscribers,
    make_config,
    open_workdb,
    server,
    write_article,
)
from smtp_server import Server

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def spawn(workdir: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    full_env.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args], cwd=workdir, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def scalar(workdir: Path, sql: str) -> object:
    conn = sqlite3.connect(workdir / "subscribers.db", timeout=30)
    try:
        row = conn.execute(sql).fetchone()
    except sqlite3.OperationalError:
        return None  # the schema is not there yet
    finally:
        conn.close()
    return row[0] if row else None


def test_status_shows_interrupted_after_a_kill_and_send_resumes(
    workdir: Path, server: Server, run_cli: RunCli  # noqa: F811
) -> None:
    db = open_workdb(make_config(workdir))
    emails = add_subscribers(db, 200)
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "2"}
    server.handler.delay = 0.1  # ten seconds of sending at least
    first = spawn(workdir, env, "send", "artikel.txt")
    wait_for(lambda: len(server.handler.messages) >= 10)
    sending = json.loads(run_cli("status", "1", "--json", cwd=workdir, env=env).stdout)
    assert sending["status"] == "sending" and sending["eta"] is not None
    first.send_signal(signal.SIGKILL)
    first.wait(10)

    shown = json.loads(run_cli("status", "1", "--json", cwd=workdir, env=env).stdout)
    assert shown["status"] == "interrupted"
    assert shown["eta"] is None
    time.sleep(1.1)
    again = json.loads(run_cli("status", "1", "--json", cwd=workdir, env=env).stdout)
    assert again["elapsed"] == shown["elapsed"]  # a dead run's clock does not run on
    table = run_cli("status", cwd=workdir, env=env).stdout
    assert "interrupted" in table.splitlines()[1]

    server.handler.delay = 0
    second = spawn(workdir, env, "send", "artikel.txt")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "Resuming campaign 1" in err
    assert sorted(server.handler.by_rcpt()) == sorted(emails)
    done = json.loads(run_cli("status", "1", "--json", cwd=workdir, env=env).stdout)
    assert done["status"] == "done" and done["sent"] == 200


def test_status_0_is_an_error(workdir: Path, run_cli: RunCli) -> None:
    result = run_cli("status", "0", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: there is no campaign 0")


def test_the_summary_counts_deferrals_past_their_lifetime_as_failed(
    workdir: Path, server: Server, run_cli: RunCli  # noqa: F811
) -> None:
    db = open_workdb(make_config(workdir))
    add_subscribers(db, 3)
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_RETRY_MIN_BACKOFF": "1",
           "NEWSLETTER_RETRY_MAX_BACKOFF": "1", "NEWSLETTER_RETRY_LIFETIME": "1"}
    server.handler.on_data = lambda rcpt, seen: "451 4.3.0 Try again later"
    first = run_cli("send", "artikel.txt", cwd=workdir, env=env)
    assert "this run 0 sent, 3 deferred, 0 bounced, 0 failed" in first.stderr
    time.sleep(1.2)
    second = run_cli("retry", "1", "--now", cwd=workdir, env=env)
    assert "this run 0 sent, 0 deferred, 0 bounced, 3 failed" in second.stderr, second.stderr
    assert "Campaign done: 0 of 3 sent" in second.stderr


def test_a_campaign_killed_while_its_rows_were_written_says_resuming(workdir: Path, run_cli: RunCli) -> None:
    count = 100_000  # ten chunks of delivery rows
    db = open_workdb(make_config(workdir))
    add_subscribers(db, count)
    db.conn.close()
    write_article(workdir)
    first = spawn(workdir, {}, "send", "artikel.txt")
    # Kill the sender as soon as its first rows are in (of ten chunks).
    wait_for(lambda: bool(scalar(workdir, "SELECT count(*) FROM deliveries")))
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert scalar(workdir, "SELECT status FROM campaigns WHERE id = 1") == "creating"
    written = scalar(workdir, "SELECT count(*) FROM deliveries")
    assert isinstance(written, int) and 0 < written < count
    shown = json.loads(run_cli("status", "1", "--json", cwd=workdir).stdout)
    assert shown["status"] == "interrupted"

    second = spawn(workdir, {}, "send", "artikel.txt")
    assert second.stderr is not None
    first_lines = [second.stderr.readline()]
    while first_lines[-1].startswith("Warning: "):  # a warning about the setup may come first
        first_lines.append(second.stderr.readline())
    assert first_lines[-1].startswith("Resuming campaign 1 "), first_lines
    # Once every row is written and sending began, stop it: the rows are what matters here.
    wait_for(lambda: scalar(workdir, "SELECT total FROM campaigns WHERE id = 1") == count)
    second.send_signal(signal.SIGTERM)
    second.communicate(timeout=120)
    assert scalar(workdir, "SELECT count(DISTINCT subscriber_id) FROM deliveries WHERE campaign_id = 1") == count
    assert scalar(workdir, "SELECT count(*) FROM deliveries") == count
