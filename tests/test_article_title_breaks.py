"""A title with a line break in it (as a header-injection attempt would put one) is refused
with its line numbers; no other line is taken as the title, and nothing is sent."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

BODY = "Een alinea met genoeg tekst om een alinea te zijn, en met een punt aan het eind.\n"


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        # publication, the title broken over two lines, the slug: the publication was the title
        (f"Testblad Nieuws\n\nWaarom de fietsenmaker\nBcc: iedereen@example.nl\n\nfietsenmaker\n\n{BODY}", "3 to 4"),
        (f"Testblad Nieuws\nWaarom de fietsenmaker\nvan Zwolle software schrijft\nfiets-zwolle\n\n{BODY}", "2 to 3"),
        (f"Waarom de fietsenmaker\nBcc: iedereen@example.nl\n\nwaarom-de-fietsenmaker\n\n{BODY}", "1 to 2"),
        # no slug line: the publication line above a two-line title
        (f"Testblad\n\nWaarom de fietsenmaker\nBcc: iedereen@example.nl\n\n{BODY}", "3 to 4"),
    ],
)
def test_a_title_spanning_two_lines_is_refused_with_its_line_numbers_and_nothing_is_sent(
    workdir: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]], text: str, lines: str
) -> None:
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        conn.execute(
            "INSERT INTO subscribers (email, status, token, created_at, updated_at)"
            " VALUES ('ann@example.nl', 'active', 't1', '2026-01-01', '2026-01-01')"
        )
    (workdir / "artikel.txt").write_text(text, encoding="utf-8")
    result = run_cli("send", "artikel.txt", cwd=workdir)
    assert result.returncode == 1
    assert (
        f"Error: artikel.txt: the title spans lines {lines} (a line break inside the title); "
        "put the title on one line"
    ) in result.stderr
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        assert conn.execute("SELECT count(*) FROM campaigns").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM articles").fetchone() == (0,)
    assert not (workdir / "outbox").exists() or not list((workdir / "outbox").iterdir())
