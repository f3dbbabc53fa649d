"""CSV files: a column named twice is refused by name, a UTF-16 file gets the option that
reads it, and an export cannot run formulas in a spreadsheet yet imports as it was."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def emails(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT email, name FROM subscribers ORDER BY id").fetchall()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("email,name,email", "'email' is column 1 ('email') and column 3 ('email')"),
        ("E-mail,naam,email,name", "'email' is column 1 ('E-mail') and column 3 ('email'); "
                                    "'name' is column 2 ('naam') and column 4 ('name')"),
    ],
)
def test_a_column_named_twice_is_refused_naming_the_columns(
    workdir: Path, run_cli: RunCli, header: str, expected: str
) -> None:
    (workdir / "leden.csv").write_text(f"{header}\nann@example.nl,Ann,bob@example.nl,Bob\n", encoding="utf-8")
    result = run_cli("subscribers", "import", "leden.csv", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: leden.csv: the header row names a column more than once: {expected}. Nothing was "
        "imported. Remove or rename the extra column, then import again.\n"
    )
    assert emails(workdir / "subscribers.db") == []


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_suggests_the_encoding_option_that_reads_it(workdir: Path, run_cli: RunCli, codec: str) -> None:
    (workdir / "leden.csv").write_bytes("email,name\nann@example.nl,Anneké\n".encode(codec))
    result = run_cli("subscribers", "import", "leden.csv", cwd=workdir)
    assert result.returncode == 1
    assert "leden.csv is UTF-16 text" in result.stderr
    assert "Import it with --encoding utf-16" in result.stderr
    assert emails(workdir / "subscribers.db") == []
    encoding = "utf-16" if codec == "utf-16" else codec
    result = run_cli("subscribers", "import", "leden.csv", "--encoding", encoding, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert emails(workdir / "subscribers.db") == [("ann@example.nl", "Anneké")]


def test_exported_cells_cannot_start_a_formula_and_round_trip_through_import(
    workdir: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    people = [
        ("ann@example.nl", '=HYPERLINK("https://evil.example","klik")'),
        ("-bob@example.nl", "+31 6 1234 5678"),
        ("cees@example.nl", "@SUM(A1:A9)"),
        ("dirk@example.nl", "-Dirk"),
        ("eva@example.nl", "Eva 'de' Vries"),
    ]
    with (workdir / "in.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name"])
        writer.writerows(people)
    assert run_cli("subscribers", "import", "in.csv", cwd=workdir).returncode == 0
    assert emails(workdir / "subscribers.db") == people

    assert run_cli("subscribers", "export", "-o", "out.csv", cwd=workdir).returncode == 0
    with (workdir / "out.csv").open(encoding="utf-8", newline="") as exported:
        rows = list(csv.reader(exported))
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
    assert [(r[0], r[1]) for r in rows[1:]] == [
        ("ann@example.nl", '\'=HYPERLINK("https://evil.example","klik")'),
        ("'-bob@example.nl", "'+31 6 1234 5678"),
        ("cees@example.nl", "'@SUM(A1:A9)"),
        ("dirk@example.nl", "'-Dirk"),
        ("eva@example.nl", "Eva 'de' Vries"),
    ]

    other = tmp_path / "other"
    assert run_cli("init", str(other), cwd=tmp_path).returncode == 0
    result = run_cli("subscribers", "import", str(workdir / "out.csv"), cwd=other)
    assert result.returncode == 0, result.stderr
    assert emails(other / "subscribers.db") == people
