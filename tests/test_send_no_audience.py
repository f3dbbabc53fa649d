"""`send` to an audience of nobody says so and leaves the article unsent, so it can go out
once people subscribe; digest subscribers alone are an audience (the send releases it)."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from send_helpers import write_article

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def query(workdir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        return conn.execute(sql).fetchall()


def test_send_to_nobody_says_so_and_the_article_can_be_sent_later(workdir: Path, run_cli: RunCli) -> None:
    article = write_article(workdir)
    assert run_cli("subscribe", "ann@example.nl", cwd=workdir).returncode == 0  # pending, not active
    assert run_cli("subscribe", "bob@example.nl", "--confirmed", cwd=workdir).returncode == 0
    assert run_cli("unsubscribe", "bob@example.nl", cwd=workdir).returncode == 0

    result = run_cli("send", str(article), cwd=workdir)
    assert result.returncode == 1
    assert (  # at the start of a line: a warning about the setup may come first
        "\nError: nobody would get 'fietsenmaker-zwolle-schrijft-software': there is no active "
        "subscriber (1 pending confirmation)"
    ) in "\n" + result.stderr
    assert "the article is not marked as sent" in result.stderr
    assert query(workdir, "SELECT count(*) FROM campaigns") == [(0,)]
    assert query(workdir, "SELECT sent_at FROM articles") in ([], [(None,)])

    assert run_cli("subscribe", "cees@example.nl", "--confirmed", cwd=workdir).returncode == 0
    result = run_cli("send", str(article), cwd=workdir)  # no --again needed
    assert result.returncode == 0, result.stderr
    assert "1 of 1 sent" in result.stderr
    sent = [p for p in (workdir / "outbox").glob("*.eml") if not p.name.startswith("confirm")]
    assert len(sent) == 1 and b"cees@example.nl" in sent[0].read_bytes()


def test_digest_subscribers_alone_are_an_audience(workdir: Path, run_cli: RunCli) -> None:
    article = write_article(workdir)
    assert run_cli("subscribe", "dirk@example.nl", "--confirmed", "--cadence", "weekly", cwd=workdir).returncode == 0
    result = run_cli("send", str(article), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert query(workdir, "SELECT kind, total FROM campaigns") == [("article", 0)]
