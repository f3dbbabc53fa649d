"""CLI conventions: init, help on every command, errors outside a newsletter directory."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import Result

from newsletter import __version__
from newsletter.cli.main import cli


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
    return found


def test_every_command_and_option_has_help_text() -> None:
    missing = []
    for path, command in all_commands(cli):
        if not (command.help or command.short_help):
            missing.append(" ".join(path))
        for param in command.params:
            if isinstance(param, click.Option) and not param.help:
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert missing == []


def test_every_command_is_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    absent = [" ".join(p) for p, c in all_commands(cli) if f"newsletter {' '.join(p)}" not in readme]
    assert absent == []


def test_version_and_short_help(invoke: Callable[..., Result]) -> None:
    assert invoke("--version").stdout.strip() == f"newsletter, version {__version__}"
    assert "Usage: newsletter" in invoke("-h").stdout


def test_init_creates_config_database_and_templates_and_a_second_run_changes_nothing(
    tmp_path: Path, invoke: Callable[..., Result]
) -> None:
    target = tmp_path / "blad"
    first = invoke("init", str(target), "--publication", "Het Blad", "--from", "redactie@blad.nl")
    assert first.exit_code == 0
    config = tomllib.loads((target / "newsletter.toml").read_text(encoding="utf-8"))
    assert config["publication"]["name"] == "Het Blad"
    assert config["sender"]["address"] == "redactie@blad.nl"
    assert (target / "subscribers.db").is_file()
    packaged = Path(__file__).parent.parent / "templates"
    assert sorted(p.name for p in (target / "templates").iterdir()) == sorted(p.name for p in packaged.iterdir())
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*")}
    second = invoke("init", str(target))
    assert second.exit_code == 0
    assert "already initialised; nothing changed" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*")} == before


def test_init_refuses_a_bad_option_and_leaves_no_file(tmp_path: Path, invoke: Callable[..., Result]) -> None:
    result = invoke("init", str(tmp_path / "x"), "--from", "not-an-address")
    assert result.exit_code == 1
    assert "sender.address" in result.stderr
    assert not (tmp_path / "x" / "newsletter.toml").exists()


@pytest.mark.parametrize("args", [["subscribers", "list"], ["subscribe", "a@example.nl"], ["unsubscribe", "a@example.nl"]])
def test_commands_outside_a_newsletter_directory_say_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, invoke: Callable[..., Result], args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 1
    assert "Run `newsletter init` here first" in result.stderr
    assert not (tmp_path / "subscribers.db").exists()


def test_an_unknown_config_key_stops_every_command_with_the_file_named(
    workdir: Path, invoke: Callable[..., Result]
) -> None:
    config = workdir / "newsletter.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[extra]\ncolour = 'blue'\n", encoding="utf-8")
    result = invoke("subscribers", "list")
    assert result.exit_code == 1
    assert f"Error: {config}: unknown key 'extra.colour'" in result.stderr


def test_db_option_and_environment_choose_the_database(
    workdir: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("--db", "other.db", "subscribe", "a@example.nl")
    assert (workdir / "other.db").is_file()
    assert invoke("subscribers", "count", "--json").stdout.count('"total": 0') == 1
    monkeypatch.setenv("NEWSLETTER_DB", str(workdir / "other.db"))
    assert '"total": 1' in invoke("subscribers", "count", "--json").stdout


def test_the_installed_command_runs_end_to_end_as_a_subprocess(
    tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    assert run_cli("init", "site", cwd=tmp_path).returncode == 0
    site = tmp_path / "site"
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name\nann@example.nl,Ann\nbad@,Bad\n", encoding="utf-8")
    imported = run_cli("subscribers", "import", str(csv_file), cwd=site)
    assert imported.returncode == 0
    assert imported.stderr.splitlines()[-1] == "people.csv: 2 rows, 1 imported, 1 skipped (1 invalid)"
    listed = run_cli("subscribers", "list", cwd=site)
    assert listed.stdout.splitlines()[1].startswith("ann@example.nl  Ann")
    outside = run_cli("subscribers", "list", cwd=tmp_path)
    assert outside.returncode == 1 and outside.stderr.startswith("Error: no newsletter.toml in")


def test_a_misspelt_environment_variable_is_warned_about(
    workdir: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_URI", "smtp://relay.example.nl")
    result = invoke("subscribers", "count")
    assert result.exit_code == 0
    assert "Warning: ignoring NEWSLETTER_SMTP_URI: it matches no setting" in result.stderr


def test_a_bad_environment_value_stops_the_command_naming_the_variable(
    workdir: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SENDING_CONCURRENCY", "many")
    result = invoke("subscribers", "count")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: sending.concurrency (from environment variable NEWSLETTER_SENDING_CONCURRENCY): "
        "must be a whole number, not 'many'\n"
    )


def test_init_puts_the_database_where_db_says_and_records_it(
    tmp_path: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "blad"
    assert invoke("--db", str(tmp_path / "data.db"), "init", str(target)).exit_code == 0
    assert (tmp_path / "data.db").is_file() and not (target / "subscribers.db").exists()
    config = tomllib.loads((target / "newsletter.toml").read_text(encoding="utf-8"))
    assert config["database"] == str(tmp_path / "data.db")
    monkeypatch.setenv("NEWSLETTER_DB", str(tmp_path / "env.db"))
    assert invoke("init", str(tmp_path / "other")).exit_code == 0
    assert (tmp_path / "env.db").is_file() and not (tmp_path / "other" / "subscribers.db").exists()


def test_init_on_an_existing_directory_says_which_options_it_did_not_write(
    tmp_path: Path, invoke: Callable[..., Result]
) -> None:
    invoke("init", str(tmp_path / "blad"))
    before = (tmp_path / "blad" / "newsletter.toml").read_text(encoding="utf-8")
    result = invoke("init", str(tmp_path / "blad"), "--publication", "Ander Blad")
    assert result.exit_code == 0
    assert "these settings were not written: publication.name, sender.name" in result.stderr
    assert (tmp_path / "blad" / "newsletter.toml").read_text(encoding="utf-8") == before


def test_the_cli_starts_without_loading_the_return_mailbox() -> None:
    code = ("import sys, newsletter.cli.main; "
            "print(sorted(m for m in sys.modules if m.startswith(('newsletter.inbound', 'flufl'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
