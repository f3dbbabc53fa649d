"""Operator gaps: a dry run writes nothing, a skipped digest can be sent late on purpose,
and a new install's first run has nothing to say about the periods before it."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from click.testing import Result
from send_helpers import add_subscribers, make_config, open_workdb, relay_env, server, write_article  # noqa: F401
from smtp_server import Server

from newsletter.scaffold import init_directory

AMS = ZoneInfo("Europe/Amsterdam")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def dump(path: Path) -> list[str]:
    """Every table's schema and rows, as SQL text (the WAL included: it is a real read)."""
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_send_dry_run_writes_nothing_at_all_to_the_database(workdir: Path, run_cli: Any) -> None:
    db = open_workdb(make_config(workdir))
    add_subscribers(db, 4)
    db.conn.close()
    write_article(workdir)
    before = dump(workdir / "subscribers.db")

    result = run_cli("send", "artikel.txt", "--dry-run", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Recipients: 4" in result.stdout
    assert "Dry run: nothing was written and nothing was sent." in result.stderr
    assert dump(workdir / "subscribers.db") == before
    listed = run_cli("articles", "list", cwd=workdir)
    assert "fietsenmaker" not in listed.stdout


def _article(workdir: Path, slug: str) -> Path:
    path = workdir / f"{slug}.md"
    path.write_text(f"---\ntitle: \"{slug}\"\nslug: {slug}\n---\nDe tekst van {slug}.\n", encoding="utf-8")
    return path


def test_digest_late_sends_a_period_run_skipped_as_too_late_and_still_only_once(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result]
) -> None:
    with time_machine.travel(local("2026-11-23 08:00"), tick=True):
        for n in range(3):
            assert invoke("subscribe", f"dag{n}@example.nl", "--confirmed", "--cadence", "daily").exit_code == 0
    with time_machine.travel(local("2026-11-24 10:00"), tick=True):
        assert invoke("send", str(_article(workdir, "dinsdag"))).exit_code == 0
    assert server.handler.messages == []  # nobody takes every article
    # The machine was off until Wednesday 23:00: Tuesday's digest (due 07:00) is 16 h late.
    with time_machine.travel(local("2026-11-25 23:00"), tick=True):
        run = invoke("run", "--no-feeds")
        assert run.exit_code == 0, run.stderr
        assert "skipped the daily digest for 2026-11-24" in run.stderr
        assert "newsletter digest --period daily --for daily:2026-11-24 --late" in run.stderr
        assert server.handler.messages == []

        plain = invoke("digest", "--period", "daily", "--for", "daily:2026-11-24")
        assert plain.exit_code == 0, plain.stderr
        assert "was skipped as too late" in plain.stderr and "--late" in plain.stderr
        assert server.handler.messages == []

        late = invoke("digest", "--period", "daily", "--for", "daily:2026-11-24", "--late")
        assert late.exit_code == 0, late.stderr
        assert "daily digest 2026-11-24: 1 article for 3 subscribers" in late.stderr
        assert sorted(m.rcpt for m in server.handler.messages) == [f"dag{n}@example.nl" for n in range(3)]

        again = invoke("digest", "--period", "daily", "--for", "daily:2026-11-24", "--late")
        assert again.exit_code == 0, again.stderr
        assert "nothing was sent this time" in again.stderr
    # The next day's digest does not bring Tuesday's article a second time.
    with time_machine.travel(local("2026-11-26 07:05"), tick=True):
        assert invoke("run", "--no-feeds").exit_code == 0
    assert Counter(m.rcpt for m in server.handler.messages) == {f"dag{n}@example.nl": 1 for n in range(3)}


def test_the_first_run_of_a_new_install_warns_about_no_period_from_before_it(
    tmp_path: Path, run_cli: Any
) -> None:
    site = tmp_path / "nieuw"
    made = run_cli("init", str(site), "--site-url", "https://nieuws.example.nl", "--from", "n@example.nl")
    assert made.returncode == 0, made.stderr
    # Every schedule occurrence in the past is past this limit: on the old code, both the
    # daily and the weekly digest of the periods before the install were "skipped".
    result = run_cli("run", "--no-feeds", cwd=site, env={"NEWSLETTER_SCHEDULE_LATE_LIMIT": "1"})
    assert result.returncode == 0, result.stderr
    assert "skipped" not in result.stderr
    assert "run: nothing was due" in result.stderr
    with sqlite3.connect(site / "subscribers.db") as conn:
        assert conn.execute("SELECT count(*) FROM digest_periods").fetchone()[0] == 0


def test_a_period_after_the_install_that_run_missed_is_still_reported(
    tmp_path: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    with time_machine.travel(local("2026-11-23 10:00"), tick=True):  # a Monday
        init_directory(tmp_path / "blad", values={"sender.address": "n@example.nl"})
    monkeypatch.chdir(tmp_path / "blad")
    with time_machine.travel(local("2026-11-25 23:00"), tick=True):
        result = invoke("run", "--no-feeds")
    assert result.exit_code == 0, result.stderr
    # Tuesday began after the install: its digest was missed, and that is said.
    assert "skipped the daily digest for 2026-11-24" in result.stderr
    # The week before the Monday of the install is not this install's business.
    assert "weekly" not in result.stderr
