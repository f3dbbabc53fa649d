"""The command line loads each command's modules only when it runs: `--help` never loads the engine."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.cli.main import COMMANDS, load_command

HEAVY = ("aiosmtplib", "premailer", "lxml", "newsletter.delivery")


def imported_modules(*args: str, cwd: Path | None = None) -> set[str]:
    """The modules `python -X importtime -m newsletter ARGS` imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "newsletter", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def _heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_help_imports_neither_the_engine_nor_premailer_lxml_or_aiosmtplib() -> None:
    modules = imported_modules("--help")
    assert "newsletter.cli.main" in modules  # the measurement sees our own modules
    assert _heavy(modules, HEAVY) == []


@pytest.mark.parametrize("command", [["status"], ["subscribers", "list"], ["subscribers", "count"]])
def test_status_and_subscriber_listings_do_not_load_the_sending_engine(workdir: Path, command: list[str]) -> None:
    modules = imported_modules(*command, cwd=workdir)
    assert _heavy(modules, ("aiosmtplib", "premailer", "lxml", "newsletter.delivery.pool")) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_listed_command_loads_and_its_stored_summary_is_its_help(name: str) -> None:
    target, summary = COMMANDS[name]
    command = load_command(target)
    assert command.name == name
    assert summary == inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " ")


def test_send_has_its_own_at_option() -> None:
    send = load_command(COMMANDS["send"][0])
    assert "at" in [param.name for param in send.params]
