"""Tests of `newsletter articles add|list|show`, in-process and one end to end."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import click
import pytest

from newsletter.cli.articles import articles

FIXTURES = Path(__file__).parent / "fixtures"
DUTCH = FIXTURES / "zuinige-chips.txt"
MARKDOWN = FIXTURES / "quiet-chips.md"
DUTCH_SLUG = "techblad-zuid-zuinige-chips-maken-hoortoestellen-slimmer"
MD_SLUG = "quiet-chips-week-on-one-battery"


def article_rows(workdir: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        return conn.execute("SELECT slug, sent_at FROM articles ORDER BY slug").fetchall()


def test_add_prints_the_slug_on_stdout_and_what_it_did_on_stderr(workdir: Path, invoke) -> None:
    result = invoke("articles", "add", str(DUTCH))
    assert result.exit_code == 0
    assert result.stdout == f"{DUTCH_SLUG}\n"
    assert result.stderr == f"added {DUTCH_SLUG}: Zuinige chips maken hoortoestellen slimmer\n"
    assert article_rows(workdir) == [(DUTCH_SLUG, None)]


def test_adding_the_same_file_twice_says_unchanged_and_keeps_one_row(workdir: Path, invoke) -> None:
    invoke("articles", "add", str(DUTCH))
    result = invoke("articles", "add", str(DUTCH))
    assert result.exit_code == 0
    assert "unchanged" in result.stderr
    assert article_rows(workdir) == [(DUTCH_SLUG, None)]


def test_quiet_add_prints_only_the_slug(workdir: Path, invoke) -> None:
    result = invoke("--quiet", "articles", "add", str(MARKDOWN))
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"{MD_SLUG}\n", "")


def test_changed_sent_article_needs_force(workdir: Path, invoke, tmp_path: Path) -> None:
    copy = tmp_path / "zuinige-chips.txt"
    shutil.copy(DUTCH, copy)
    invoke("articles", "add", str(copy))
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        conn.execute("UPDATE articles SET sent_at = '2026-11-26T10:00:00+00:00'")
    copy.write_text(copy.read_text(encoding="utf-8").replace("negentien", "twintig"), encoding="utf-8")

    refused = invoke("articles", "add", str(copy))
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"Error: {copy}: article '{DUTCH_SLUG}' was already sent")
    assert "--force" in refused.stderr
    assert "negentien" in invoke("articles", "show", DUTCH_SLUG).stdout

    forced = invoke("articles", "add", "--force", str(copy))
    assert forced.exit_code == 0
    assert f"updated {DUTCH_SLUG}" in forced.stderr
    assert "twintig" in invoke("articles", "show", DUTCH_SLUG).stdout


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "is empty"),
        (b"Blad\n\x00\x00", "is a binary file"),
        ("Blad\n\nCafé\n".encode("cp1252"), "is not UTF-8 text: byte 0xe9 at offset 9"),
        (b'---\ntitle: "Hoi\\r\\nBcc: x@example.nl"\n---\nTekst.\n', "contains a line break"),
        (b"---\ntitle: T\ndate: gisteren\n---\nTekst.\n", "date 'gisteren' is not a date"),
    ],
)
def test_bad_file_is_an_error_and_stores_nothing(
    workdir: Path, invoke, tmp_path: Path, data: bytes, expected: str
) -> None:
    path = tmp_path / "slecht.md"
    path.write_bytes(data)
    result = invoke("articles", "add", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: {path}")
    assert expected in result.stderr
    assert article_rows(workdir) == []


def test_encoding_option_reads_a_cp1252_file(workdir: Path, invoke, tmp_path: Path) -> None:
    path = tmp_path / "oud.txt"
    path.write_bytes("Blad\n\nCafé open\n\ncafe-open\n\nEntree € 5.\n".encode("cp1252"))
    assert invoke("articles", "add", str(path)).exit_code == 1
    result = invoke("articles", "add", "--encoding", "cp1252", str(path))
    assert result.exit_code == 0
    assert "Entree € 5." in invoke("articles", "show", "cafe-open").stdout


def test_list_prints_a_table_and_json(workdir: Path, invoke) -> None:
    invoke("articles", "add", str(DUTCH))
    invoke("articles", "add", str(MARKDOWN))
    table = invoke("articles", "list").stdout.splitlines()
    assert table[0].split() == ["slug", "title", "format", "published_at", "sent_at"]
    assert table[1].startswith(MD_SLUG) and "2026-11-20" in table[1]
    assert table[2].startswith(DUTCH_SLUG)

    rows = json.loads(invoke("articles", "list", "--json").stdout)
    assert [row["slug"] for row in rows] == [MD_SLUG, DUTCH_SLUG]
    assert rows[1]["title"] == "Zuinige chips maken hoortoestellen slimmer"
    assert rows[1]["sent_at"] is None


def test_list_of_nothing_prints_no_data_and_a_hint(workdir: Path, invoke) -> None:
    result = invoke("articles", "list")
    assert result.stdout == ""
    assert "articles add" in result.stderr
    assert json.loads(invoke("articles", "list", "--json").stdout) == []


def test_show_prints_title_slug_summary_body_and_signature(workdir: Path, invoke) -> None:
    invoke("articles", "add", str(DUTCH))
    out = invoke("articles", "show", DUTCH_SLUG).stdout
    assert out.startswith("Zuinige chips maken hoortoestellen slimmer\n")
    assert f"slug: {DUTCH_SLUG}\n" in out
    assert "summary: Een kleine chipontwerper" in out
    assert "\n\nEerst luisteren, dan rekenen\n\n" in out
    assert "“Stilte kost bij ons bijna niets.”" in out
    assert out.endswith("Anouk de Vries - Oprichter Stilchip\nJoris Peeters - CTO Stilchip\n")
    assert "Subscribe" not in out


def test_show_json_has_blocks_with_safe_html(workdir: Path, invoke) -> None:
    invoke("articles", "add", str(MARKDOWN))
    data = json.loads(invoke("articles", "show", MD_SLUG, "--json").stdout)
    assert data["title"] == "Quiet chips: a week on one battery"
    assert data["blocks"][1] == {"kind": "heading", "text": "How it works", "html": "<h2>How it works</h2>"}
    assert "&lt;script&gt;" in data["blocks"][-1]["html"]
    assert "source_text" not in data


def test_show_unknown_slug_is_an_error_with_a_hint(workdir: Path, invoke) -> None:
    result = invoke("articles", "show", "bestaat-niet")
    assert result.exit_code == 1
    assert result.stderr == "Error: no article with slug 'bestaat-niet'; see `newsletter articles list`\n"


def test_every_articles_command_and_option_has_help() -> None:
    assert articles.help
    for name, command in articles.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.name}"


def test_add_then_show_end_to_end_in_a_subprocess(workdir: Path, run_cli) -> None:
    added = run_cli("articles", "add", str(FIXTURES / "zuinige-chips-crlf-bom.txt"), cwd=workdir)
    assert added.returncode == 0, added.stderr
    assert added.stdout == f"{DUTCH_SLUG}\n"
    shown = run_cli("articles", "show", DUTCH_SLUG, cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Zuinige chips maken hoortoestellen slimmer\n")
    assert "€ 4,5 miljoen" in shown.stdout and "\r" not in shown.stdout
