"""The cron-facing commands: feeds, schedule, cron, and `run` with its lock and log lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from click.testing import Result
from feed_server import FeedServer

from newsletter.db import open_db

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d ")
RSS = (
    '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Blad</title>'
    "<link>https://blad.example.nl/</link><description>d</description>"
    "<item><title>Één bericht</title><guid>urn:1</guid><description>Tekst.</description></item>"
    "</channel></rss>"
)


@pytest.fixture
def slow_feed() -> Iterator[FeedServer]:
    server = FeedServer(delay=4.0)
    server.pages["/feed.xml"] = (200, RSS.encode("utf-8"))
    yield server
    server.close()


def test_feeds_add_list_and_remove(workdir: Path, invoke: Callable[..., Result]) -> None:
    (workdir / "feed.xml").write_text(RSS, encoding="utf-8")
    added = invoke("feeds", "add", "feed.xml")
    assert added.exit_code == 0, added.stderr
    assert "Added feed 1" in added.stderr and "(Blad)" in added.stderr
    assert "already a feed" in invoke("feeds", "add", str(workdir / "feed.xml")).stderr
    [listed] = json.loads(invoke("feeds", "list", "--json").stdout)
    assert listed["address"] == str(workdir / "feed.xml") and listed["items"] == 0
    polled = invoke("feeds", "poll")
    assert "1 new, 0 seen before" in polled.stderr
    assert json.loads(invoke("feeds", "list", "--json").stdout)[0]["items"] == 1
    assert "Removed feed 1" in invoke("feeds", "remove", "1").stderr
    assert json.loads(invoke("feeds", "list", "--json").stdout) == []


def test_adding_a_feed_that_is_not_a_feed_fails_with_the_reason(workdir: Path, invoke: Callable[..., Result]) -> None:
    (workdir / "page.html").write_text("<html><p>hallo</p></html>", encoding="utf-8")
    result = invoke("feeds", "add", "page.html")
    assert result.exit_code == 1
    assert "not an RSS or Atom feed" in result.stderr
    assert invoke("feeds", "list").stdout == ""


def test_schedule_add_list_and_cancel_in_local_time(workdir: Path, invoke: Callable[..., Result]) -> None:
    (workdir / "stuk.md").write_text("---\ntitle: Een stuk\nslug: een-stuk\n---\nTekst.\n", encoding="utf-8")
    with time_machine.travel(datetime(2026, 11, 26, 12, tzinfo=UTC), tick=False):
        added = invoke("schedule", "add", "stuk.md", "--at", "2026-12-01 09:00")
        assert added.exit_code == 0, added.stderr
        assert "Scheduled een-stuk for 2026-12-01 09:00 +01:00 (id 1)" in added.stderr
        skipped_hour = invoke("schedule", "add", "stuk.md", "--at", "2027-03-28 02:30")
        assert skipped_hour.exit_code == 1 and "does not exist in Europe/Amsterdam" in skipped_hour.stderr
    [row] = json.loads(invoke("schedule", "list", "--json").stdout)
    assert (row["id"], row["article_slug"], row["due_at"], row["due"]) == (
        1, "een-stuk", "2026-12-01T08:00:00.000000+00:00", "2026-12-01 09:00 +01:00")
    assert "Cancelled scheduled send 1" in invoke("schedule", "cancel", "1").stderr
    again = invoke("schedule", "cancel", "1")
    assert again.exit_code == 1 and "already cancelled" in again.stderr
    assert invoke("schedule", "list").stdout == ""
    assert "cancelled" in invoke("schedule", "list", "--all").stdout


def test_cron_prints_a_line_with_the_absolute_paths_of_this_install(workdir: Path, invoke: Callable[..., Result]) -> None:
    result = invoke("cron", "--every", "10")
    assert result.exit_code == 0
    [line] = [l for l in result.stdout.splitlines() if not l.startswith("#")]
    executable = Path(sys.executable).parent / "newsletter"
    program = str(executable) if executable.is_file() else f"{Path(sys.executable).absolute()} -m newsletter"
    assert line == (
        f"*/10 * * * * cd {workdir} && {program} --config {workdir}/newsletter.toml run"
        f" >> {workdir}/newsletter-run.log 2>&1 || tail -n 20 {workdir}/newsletter-run.log"
    )
    assert "daily 07:00, weekly monday 07:00" in result.stderr


def test_run_with_a_broken_feed_warns_in_timestamped_lines_and_exits_0(
    workdir: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    (workdir / "ok.xml").write_text(RSS, encoding="utf-8")
    (workdir / "broken.xml").write_text("<rss><channel><item>", encoding="utf-8")
    db = open_db(workdir / "subscribers.db")
    for name in ("broken.xml", "ok.xml"):
        db.execute("INSERT INTO feeds (address, added_at) VALUES (?, '2026-01-01')", [str(workdir / name)])
    db.conn.commit()
    result = run_cli("run", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines and all(STAMP.match(line) for line in lines), lines
    assert any("Warning: feed: " in l and "broken.xml" in l for l in lines)
    assert any("ok.xml: 1 new article" in l for l in lines)
    assert "\x1b[" not in result.stderr  # no colours, no progress bar


def test_two_runs_at_the_same_moment_one_works_the_other_leaves_at_once(
    workdir: Path, slow_feed: FeedServer
) -> None:
    db = open_db(workdir / "subscribers.db")
    db.execute("INSERT INTO feeds (address, added_at) VALUES (?, '2026-01-01')", [f"{slow_feed.url}/feed.xml"])
    db.conn.commit()
    started = [
        subprocess.Popen([sys.executable, "-m", "newsletter", "run"], cwd=workdir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in started]
    assert [code for code, _ in outcomes] == [0, 0]
    busy = [err for _, err in outcomes if "another newsletter run is still running" in err]
    assert len(busy) == 1, outcomes
    assert STAMP.match(busy[0]) and "this one does nothing" in busy[0]
    assert slow_feed.requests == ["/feed.xml"]
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 1
