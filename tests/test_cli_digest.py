"""Digests and scheduled sends through the real engine and a real aiosmtpd server.

The clock is controlled with time-machine for the in-process runs; the subprocess runs use
explicit periods (`digest --for`) or a schedule that is due at the real time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from click.testing import Result
from send_helpers import add_subscribers, make_config, open_workdb, relay_env, server  # noqa: F401
from smtp_server import Server
from sqlite_utils import Database

from newsletter.db import open_db

AMS = ZoneInfo("Europe/Amsterdam")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def article_text(slug: str, title: str) -> str:
    return f"---\ntitle: \"{title}\"\nslug: {slug}\nsummary: \"Over {title}.\"\n---\nDe tekst van {title}, met € en é.\n"


def db_of(workdir: Path) -> Database:
    return open_workdb(make_config(workdir))


def subscribe(invoke: Callable[..., Result], email: str, cadence: str) -> None:
    result = invoke("subscribe", email, "--confirmed", "--cadence", cadence)
    assert result.exit_code == 0, result.stderr


def publish(workdir: Path, invoke: Callable[..., Result], slug: str, title: str) -> None:
    (workdir / f"{slug}.md").write_text(article_text(slug, title), encoding="utf-8")
    result = invoke("send", f"{slug}.md")
    assert result.exit_code == 0, result.stderr


def carries(data: bytes, slug: str) -> bool:
    # The digest links each article's web view by slug; quoted-printable may wrap lines.
    flat = data.replace(b"=\r\n", b"").replace(b"=\n", b"")
    return slug.encode() in flat


def test_daily_and_weekly_digests_carry_the_period_once_and_a_second_run_sends_nothing(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result]
) -> None:
    with time_machine.travel(local("2026-11-23 08:00"), tick=True):
        for n in range(2):
            subscribe(invoke, f"elk{n}@example.nl", "each")
            subscribe(invoke, f"dag{n}@example.nl", "daily")
            subscribe(invoke, f"week{n}@example.nl", "weekly")
    with time_machine.travel(local("2026-11-24 10:00"), tick=True):
        publish(workdir, invoke, "fietsen", "Fietsen in de regen")
    assert sorted(m.rcpt for m in server.handler.messages) == ["elk0@example.nl", "elk1@example.nl"]
    before = len(server.handler.messages)

    with time_machine.travel(local("2026-11-25 07:05"), tick=True):
        first = invoke("digest", "--period", "daily")
        assert first.exit_code == 0, first.stderr
        assert "daily digest 2026-11-24: 1 article for 2 subscribers" in first.stderr
        second = invoke("digest", "--period", "daily")
        assert second.exit_code == 0
        assert "was made before" in second.stderr and "nothing was sent this time" in second.stderr
    daily = server.handler.messages[before:]
    assert sorted(m.rcpt for m in daily) == ["dag0@example.nl", "dag1@example.nl"]
    assert all(carries(m.data, "fietsen") for m in daily)

    with time_machine.travel(local("2026-11-26 07:05"), tick=True):
        empty = invoke("digest", "--period", "daily")
    assert empty.exit_code == 0
    assert "daily digest 2026-11-25: nothing to send (no articles in this period)" in empty.stderr

    before = len(server.handler.messages)
    with time_machine.travel(local("2026-11-30 07:05"), tick=True):
        weekly = invoke("digest", "--period", "weekly")
        assert weekly.exit_code == 0, weekly.stderr
        assert invoke("digest", "--period", "weekly").exit_code == 0
    sent = server.handler.messages[before:]
    assert sorted(m.rcpt for m in sent) == ["week0@example.nl", "week1@example.nl"]
    assert "Subject:" in sent[0].data.decode()


def test_a_cadence_change_or_a_join_mid_period_gets_neither_nothing_nor_double(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result]
) -> None:
    with time_machine.travel(local("2026-11-23 08:00"), tick=True):
        subscribe(invoke, "elk-naar-week@example.nl", "each")
        subscribe(invoke, "week-naar-dag@example.nl", "weekly")
        subscribe(invoke, "altijd-week@example.nl", "weekly")
        subscribe(invoke, "altijd-dag@example.nl", "daily")
        subscribe(invoke, "week-naar-elk@example.nl", "weekly")
    with time_machine.travel(local("2026-11-24 10:00"), tick=True):  # Tuesday
        publish(workdir, invoke, "dinsdag", "Dinsdag")
    with time_machine.travel(local("2026-11-25 07:05"), tick=True):
        assert invoke("digest", "--period", "daily").exit_code == 0  # Tuesday's, to altijd-dag
    with time_machine.travel(local("2026-11-25 12:00"), tick=True):  # Wednesday: switches
        assert invoke("subscribers", "set", "elk-naar-week@example.nl", "--cadence", "weekly").exit_code == 0
        assert invoke("subscribers", "set", "week-naar-dag@example.nl", "--cadence", "daily").exit_code == 0
        assert invoke("subscribers", "set", "week-naar-elk@example.nl", "--cadence", "each").exit_code == 0
    with time_machine.travel(local("2026-11-26 07:05"), tick=True):
        # Wednesday had no article: nothing to send to anyone.
        assert "nothing to send" in invoke("digest", "--period", "daily").stderr
    with time_machine.travel(local("2026-11-26 10:00"), tick=True):  # Thursday
        publish(workdir, invoke, "donderdag", "Donderdag")
        subscribe(invoke, "nieuw-dag@example.nl", "daily")
        subscribe(invoke, "nieuw-week@example.nl", "weekly")
    with time_machine.travel(local("2026-11-27 07:05"), tick=True):
        assert invoke("digest", "--period", "daily").exit_code == 0
    with time_machine.travel(local("2026-11-30 07:05"), tick=True):
        assert invoke("digest", "--period", "weekly").exit_code == 0

    got: dict[str, Counter[str]] = {}
    for message in server.handler.messages:
        for slug in ("dinsdag", "donderdag"):
            if carries(message.data, slug):
                got.setdefault(message.rcpt, Counter())[slug] += 1
    assert got == {
        "elk-naar-week@example.nl": Counter({"dinsdag": 1, "donderdag": 1}),  # each, then weekly
        "week-naar-dag@example.nl": Counter({"dinsdag": 1, "donderdag": 1}),  # caught up daily
        "altijd-week@example.nl": Counter({"dinsdag": 1, "donderdag": 1}),
        "altijd-dag@example.nl": Counter({"dinsdag": 1, "donderdag": 1}),
        "nieuw-dag@example.nl": Counter({"donderdag": 1}),
        "nieuw-week@example.nl": Counter({"dinsdag": 1, "donderdag": 1}),  # the week they joined
        # Tuesday's article comes with the weekly digest of the week they left, Thursday's
        # as an `each` mail.
        "week-naar-elk@example.nl": Counter({"dinsdag": 1, "donderdag": 1}),
    }
    per_rcpt = Counter(m.rcpt for m in server.handler.messages)
    assert per_rcpt["elk-naar-week@example.nl"] == 2  # the Tuesday article, then one weekly digest
    assert per_rcpt["altijd-week@example.nl"] == 1


def test_run_sends_a_scheduled_article_once_late_with_a_warning_and_skips_one_too_late(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result]
) -> None:
    with time_machine.travel(local("2026-11-23 08:00"), tick=True):
        subscribe(invoke, "lezer@example.nl", "each")
        for slug in ("op-tijd", "te-laat"):
            (workdir / f"{slug}.md").write_text(article_text(slug, slug), encoding="utf-8")
        assert invoke("send", "op-tijd.md", "--at", "2026-11-24 09:00").exit_code == 0
        assert invoke("send", "te-laat.md", "--at", "2026-11-23 12:00").exit_code == 0
    assert server.handler.messages == []
    # The machine was off until Tuesday 11:00: 2 hours late, and 23 hours late.
    with time_machine.travel(local("2026-11-24 11:00"), tick=True):
        result = invoke("run", "--no-feeds")
        assert result.exit_code == 0, result.stderr
        again = invoke("run", "--no-feeds")
    assert "Warning: scheduled: scheduled send 1 (op-tijd) is 2 h late" in result.stderr
    assert "Warning: scheduled: skipped scheduled send 2 (te-laat)" in result.stderr
    assert "sent scheduled op-tijd as campaign 1" in result.stderr
    assert "scheduled" not in again.stderr
    assert [m.rcpt for m in server.handler.messages] == ["lezer@example.nl"]
    statuses = {row["article_slug"]: row["status"] for row in
                db_of(workdir).query("SELECT article_slug, status FROM scheduled_sends")}
    assert statuses == {"op-tijd": "sent", "te-laat": "skipped"}


def test_a_scheduled_send_whose_relay_is_down_is_an_error_once_and_exits_1(
    workdir: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    from smtp_server import free_port

    monkeypatch.setenv("NEWSLETTER_SMTP_URL", f"smtp+plain://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NEWSLETTER_SENDING_CONCURRENCY", "1")
    with time_machine.travel(local("2026-11-23 08:00"), tick=True):
        subscribe(invoke, "lezer@example.nl", "each")
        (workdir / "stuk.md").write_text(article_text("stuk", "Stuk"), encoding="utf-8")
        assert invoke("send", "stuk.md", "--at", "2026-11-23 09:00").exit_code == 0
    with time_machine.travel(local("2026-11-23 09:01"), tick=True):
        result = invoke("run", "--no-feeds")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "Error: " in line]
    # One failure, one error line (not an info line, and not a second try in the same run).
    assert len(errors) == 2, result.stderr  # the scheduled send's line, then the summary
    assert "Error: scheduled: sent scheduled stuk as campaign 1: paused" in errors[0]
    assert "cannot connect" in errors[0]
    assert errors[1].startswith("Error: 1 of ") and "actions failed" in errors[1]


def _env(server: Server, **extra: str) -> dict[str, str]:
    return {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "2",
            "NEWSLETTER_RETRY_MIN_BACKOFF": "1", **extra}


def _queue_articles(workdir: Path, invoke: Callable[..., Result], released: datetime, *slugs: str) -> None:
    db = db_of(workdir)
    for slug in slugs:
        (workdir / f"{slug}.md").write_text(article_text(slug, slug.title()), encoding="utf-8")
        assert invoke("articles", "add", f"{slug}.md").exit_code == 0
        db.execute("INSERT INTO digest_queue (article_slug, released_at, source) VALUES (?, ?, 'cli')",
                   [slug, released.astimezone(UTC).isoformat()])
    db.conn.commit()


def test_a_killed_digest_is_finished_by_the_next_run_without_doubles(
    workdir: Path, server: Server, invoke: Callable[..., Result]
) -> None:
    # The subscribers join the day before the period (real time: subprocesses have no
    # time machine), so the period is theirs in full.
    with time_machine.travel(datetime.now(UTC) - timedelta(days=3)):
        emails = add_subscribers(db_of(workdir), 150, cadence="daily")
    day = datetime.now(AMS).date() - timedelta(days=1)
    key = f"daily:{day.isoformat()}"
    _queue_articles(workdir, invoke, datetime.combine(day, datetime.min.time(), AMS) + timedelta(hours=10),
                    "een", "twee")
    server.handler.delay = 0.02  # each message takes a moment, so the kill lands mid-way
    env = {**os.environ, **_env(server)}
    child = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "digest", "--period", "daily", "--for", key],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while len(server.handler.messages) < 30 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    at_kill = len(server.handler.messages)
    assert 0 < at_kill < 150, child.stderr.read() if child.stderr else ""
    server.handler.delay = 0
    resumed = subprocess.run(
        [sys.executable, "-m", "newsletter", "digest", "--period", "daily", "--for", key],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "was made before" in resumed.stderr and "but not finished; finishing campaign" in resumed.stderr
    by_rcpt: dict[str, list[str]] = {}
    for message in server.handler.messages:
        by_rcpt.setdefault(message.rcpt, []).append(message.message_id)
    assert sorted(by_rcpt) == emails
    for rcpt, ids in by_rcpt.items():
        # A duplicate can only be a message in flight at the kill, with the same Message-ID.
        assert len(set(ids)) == 1, (rcpt, ids)
    assert sum(len(ids) - 1 for ids in by_rcpt.values()) <= 2  # at most the concurrency
    db = open_db(workdir / "subscribers.db")
    assert db.execute("SELECT count(*) FROM campaigns WHERE kind = 'digest'").fetchone()[0] == 1
    assert db.execute("SELECT d.status, count(*) FROM delivery_rows d JOIN campaigns c ON c.id = d.campaign_id"
                      " WHERE c.kind = 'digest' GROUP BY d.status").fetchall() == [("sent", 150)]


def test_two_runs_at_the_same_moment_send_each_digest_to_each_subscriber_once(
    workdir: Path, server: Server, invoke: Callable[..., Result]
) -> None:
    with time_machine.travel(datetime.now(UTC) - timedelta(days=3)):
        emails = add_subscribers(db_of(workdir), 40, cadence="daily")
    today = datetime.now(AMS).date()
    yesterday_noon = datetime.combine(today - timedelta(days=1), datetime.min.time(), AMS) + timedelta(hours=12)
    _queue_articles(workdir, invoke, yesterday_noon, "gisteren")
    server.handler.delay = 0.05  # about a second of sending: the runs really overlap
    env = {**os.environ, **_env(server, NEWSLETTER_SCHEDULE_DAILY="00:00", NEWSLETTER_SCHEDULE_WEEKLY="",
                                 NEWSLETTER_SCHEDULE_LATE_LIMIT="90000")}
    runs = [subprocess.Popen([sys.executable, "-m", "newsletter", "run"], cwd=workdir, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in runs]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert sum("another newsletter run is still running" in err for _, err in outcomes) == 1, outcomes
    assert sum("daily digest" in err and "1 article for 40 subscribers" in err for _, err in outcomes) == 1
    assert sorted(m.rcpt for m in server.handler.messages) == emails
    third = subprocess.run([sys.executable, "-m", "newsletter", "run"], cwd=workdir, env=env,
                           capture_output=True, text=True, timeout=60)
    assert third.returncode == 0 and "nothing was due" in third.stderr
    assert len(server.handler.messages) == 40


def test_run_retries_a_deferred_digest_delivery_when_its_time_comes(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result]
) -> None:
    with time_machine.travel(local("2026-11-23 08:00"), tick=True):
        subscribe(invoke, "grijs@example.nl", "daily")
        subscribe(invoke, "wit@example.nl", "daily")
    with time_machine.travel(local("2026-11-24 10:00"), tick=True):
        publish(workdir, invoke, "dinsdag", "Dinsdag")
    tries: Counter[str] = Counter()

    def greylist(rcpt: str, _seen: int) -> str | None:
        tries[rcpt] += 1
        return "451 4.7.1 greylisted, try again later" if rcpt == "grijs@example.nl" and tries[rcpt] == 1 else None

    server.handler.on_data = greylist
    with time_machine.travel(local("2026-11-25 07:02"), tick=True):
        first = invoke("run", "--no-feeds")
    assert first.exit_code == 0, first.stderr
    assert "daily digest 2026-11-24: 1 article for 2 subscribers" in first.stderr
    assert [m.rcpt for m in server.handler.messages] == ["wit@example.nl"]
    with time_machine.travel(local("2026-11-25 07:30"), tick=True):
        second = invoke("run", "--no-feeds")
    assert second.exit_code == 0, second.stderr
    assert "send: campaign 2: done (2 sent)" in second.stderr
    assert sorted(m.rcpt for m in server.handler.messages) == ["grijs@example.nl", "wit@example.nl"]


def test_an_article_that_was_already_sent_cannot_be_scheduled(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result]
) -> None:
    subscribe(invoke, "lezer@example.nl", "each")
    publish(workdir, invoke, "al-weg", "Al weg")
    result = invoke("send", "al-weg.md", "--at", "2030-01-01 09:00")
    assert result.exit_code == 1
    assert "'al-weg' was already sent as campaign 1" in result.stderr
    assert invoke("schedule", "list").stdout == ""


def test_a_digest_over_the_size_limit_is_refused_with_advice_and_made_once_it_fits(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with time_machine.travel(local("2026-11-23 08:00"), tick=True):
        subscribe(invoke, "week@example.nl", "weekly")
    long_body = "\n\n".join(f"Alinea {n} over fietsen, café’s en € {n},- per maand." * 12 for n in range(20))
    with time_machine.travel(local("2026-11-24 10:00"), tick=True):
        for slug in ("lang-een", "lang-twee"):
            (workdir / f"{slug}.md").write_text(
                f"---\ntitle: \"Lang {slug}\"\nslug: {slug}\nsummary: \"Kort.\"\n---\n{long_body}\n",
                encoding="utf-8",
            )
            sent = invoke("send", f"{slug}.md")
            assert sent.exit_code == 0, sent.stderr
    # Two whole articles of about 13 KB of text each: far over 0.01 MB (10.5 KB).
    monkeypatch.setenv("NEWSLETTER_SCHEDULE_FULL_TEXT", "true")
    monkeypatch.setenv("NEWSLETTER_SENDING_MAX_MESSAGE_MB", "0.01")
    with time_machine.travel(local("2026-11-30 07:05"), tick=True):
        refused = invoke("digest", "--period", "weekly")
    assert refused.exit_code == 1
    assert "the weekly digest 2026-W48 (2026-11-23 to 2026-11-29) with 2 articles would be" in refused.stderr
    assert "schedule.full_text = false" in refused.stderr and "Nothing was queued" in refused.stderr
    db = db_of(workdir)
    assert db.execute("SELECT count(*) FROM campaigns WHERE kind = 'digest'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM digest_periods").fetchone()[0] == 0
    assert server.handler.messages == []

    # Links instead of whole articles fit: the same period is made and sent, once.
    monkeypatch.setenv("NEWSLETTER_SCHEDULE_FULL_TEXT", "false")
    with time_machine.travel(local("2026-11-30 07:10"), tick=True):
        made = invoke("digest", "--period", "weekly")
    assert made.exit_code == 0, made.stderr
    assert [m.rcpt for m in server.handler.messages] == ["week@example.nl"]
    assert carries(server.handler.messages[0].data, "lang-een") and carries(server.handler.messages[0].data, "lang-twee")
