"""Values that would only fail at send time are refused when the configuration loads, and a
broken relay URL never shows its password."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.config import load_config
from newsletter.errors import ConfigError


def write_config(directory: Path, body: str) -> Path:
    path = directory / "newsletter.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[publication]\nlist_id = "mijn lijst.example.nl"\n', "publication.list_id"),
        ('[publication]\nlist_id = "nieuws"\n', "publication.list_id"),
        ('[publication]\nfeedback_id = "a b:c:d"\n', "publication.feedback_id"),
        ('[web]\nurl = "https://example.nl/<script>"\n', "web.url"),
        ('[publication]\nsite_url = "https://example.nl/a b"\n', "publication.site_url"),
        ("[smtp]\ntimeout = 0\n", "smtp.timeout"),
        ("[sending]\nconcurrency = 100000\n", "sending.concurrency"),
        ("[sending]\nrate = inf\n", "sending.rate"),
        ("[sending]\nrate = nan\n", "sending.rate"),
        ("[feeds]\ntimeout = inf\n", "feeds.timeout"),
        ("[retry]\nmax_backoff = 99999999999999\n", "retry.max_backoff"),
    ],
)
def test_a_value_that_would_fail_at_send_time_is_refused_at_load(tmp_path: Path, body: str, expected: str) -> None:
    path = write_config(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{expected} (from {path})")


def test_sane_values_still_load(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[publication]\nlist_id = "nieuws.example.nl"\nfeedback_id = "c1:nieuws:tech2b:TB"\n'
        '[web]\nurl = "https://example.nl/nieuwsbrief?x=1"\n'
        "[smtp]\ntimeout = 0.5\n[sending]\nconcurrency = 500\nrate = 0\n",
    )
    config = load_config(path, environ={})
    assert (config.publication_list_id, config.smtp_timeout, config.sending_concurrency) == (
        "nieuws.example.nl", 0.5, 500,
    )


@pytest.mark.parametrize(
    "variable",
    [
        "NEWSLETTER_SMTP_URL=smtp://ann:Geheim123@relay.example.nl:99999",
        "NEWSLETTER_SMTP_URL=http://ann:Geheim123@relay.example.nl:25",
        "NEWSLETTER_SMTP_RELAYS=smtp://ann:Geheim123@relay.example.nl:99999 1",
        "NEWSLETTER_SMTP_RELAYS=ftp://ann:Geheim123@relay.example.nl:25 1",
        "NEWSLETTER_SMTP_RELAYS=smtp://ann:Geheim123@relay.example.nl:25 heavy",
    ],
)
def test_an_invalid_relay_url_from_the_environment_never_prints_its_password(
    workdir: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]], variable: str
) -> None:
    name, _, value = variable.partition("=")
    env = {name: value}
    if name == "NEWSLETTER_SMTP_RELAYS":
        env["NEWSLETTER_SMTP_URL"] = "smtp://relay.example.nl:587"
    result = run_cli("status", cwd=workdir, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {'smtp.relays' if 'RELAYS' in name else 'smtp.url'}")
    assert "Geheim123" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("url", "smtp://ann:Geheim123@relay.example.nl:99999"),
        ("url", "gopher://ann:Geheim123@relay.example.nl:25"),
        ("relays", "smtps://ann:Geheim123@b.example.nl:x465 2"),
    ],
)
def test_a_password_in_a_broken_url_in_the_file_is_refused_as_a_password_first(
    workdir: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]], key: str, value: str
) -> None:
    config = workdir / "newsletter.toml"
    head, smtp, rest = config.read_text(encoding="utf-8").partition("[smtp]\n")
    rest = rest.replace('url = ""', 'url = "smtp://relay.example.nl:587"', 1)
    config.write_text(head + smtp + rest.replace(f'{key} = "', f'{key} = "{value}', 1), encoding="utf-8")
    result = run_cli("status", cwd=workdir)
    assert result.returncode == 1
    assert f"smtp.{key} contains a password; secrets are never read from newsletter.toml" in result.stderr
    assert "Geheim123" not in result.stderr + result.stdout
