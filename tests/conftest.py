"""Shared fixtures: a clean environment, an initialised newsletter directory, CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli.main import cli
from newsletter.scaffold import init_directory


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No NEWSLETTER_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An initialised newsletter directory, made the current directory."""
    directory = tmp_path / "site"
    init_directory(
        directory,
        values={
            "publication.name": "Testblad",
            "sender.name": "Testblad",
            "sender.address": "nieuws@example.nl",
            "publication.site_url": "https://example.nl",
            "publication.language": "nl",
        },
    )
    monkeypatch.chdir(directory)
    yield directory


@pytest.fixture
def invoke() -> Callable[..., Result]:
    """Run the CLI in-process (fast); stdout and stderr are kept apart."""

    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m newsletter` as a real subprocess (end-to-end paths)."""

    def run(*args: str, cwd: Path | None = None, input: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            cwd=cwd, input=input, env=full_env, capture_output=True, text=True, timeout=timeout,
        )

    return run
