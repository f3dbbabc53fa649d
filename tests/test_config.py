"""Configuration: precedence, validation with errors that name key and source, secrets."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from newsletter.config import SETTINGS, Config, config_template, find_config_file, load_config
from newsletter.errors import ConfigError, NotInitialisedError


def write_config(directory: Path, body: str) -> Path:
    path = directory / "newsletter.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_every_setting_has_a_config_field_and_help() -> None:
    fields = {f.name for f in dataclasses.fields(Config)} - {"root", "sources"}
    assert fields == {s.field for s in SETTINGS}
    assert all(s.help for s in SETTINGS)


def test_the_written_template_is_valid_toml_with_a_comment_for_every_key(tmp_path: Path) -> None:
    text = config_template()
    parsed = tomllib.loads(text)
    assert parsed["sending"]["concurrency"] == 8
    for setting in SETTINGS:
        assert f"# {setting.help}" in text
    config = load_config(write_config(tmp_path, text), environ={})
    assert config.database == tmp_path / "subscribers.db"
    assert config.smtp_url == ""


def test_option_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[sending]\nconcurrency = 4\nrate = 10.0\n")
    env = {"NEWSLETTER_SENDING_CONCURRENCY": "6", "NEWSLETTER_SENDING_PER_CONNECTION": "50"}
    config = load_config(path, environ=env, overrides={"sending.concurrency": 2})
    assert config.sending_concurrency == 2
    assert config.sources["sending.concurrency"] == "command-line option"
    assert config.sending_per_connection == 50
    assert config.sources["sending.per_connection"] == "environment variable NEWSLETTER_SENDING_PER_CONNECTION"
    assert config.sending_rate == 10.0
    assert config.retry_min_backoff == 300
    assert load_config(path, environ=env).sending_concurrency == 6


def test_the_database_path_is_relative_to_the_config_file_unless_newsletter_db_names_one(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'database = "data/list.db"\n')
    assert load_config(path, environ={}).database == tmp_path / "data" / "list.db"
    other = tmp_path / "elsewhere.db"
    assert load_config(path, environ={"NEWSLETTER_DB": str(other)}).database == other


def test_unknown_key_is_refused_with_the_file_and_a_suggestion(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[smtp]\nur = 'smtp://relay'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert str(path) in message
    assert "'smtp.ur'" in message
    assert "did you mean 'smtp.url'" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[sending]\nconcurrency = 'eight'\n", "sending.concurrency (from {path}): must be a whole number, not 'eight'"),
        ("[sending]\nconcurrency = 2.5\n", "sending.concurrency (from {path}): must be a whole number, not 2.5"),
        ("[sending]\nconcurrency = 0\n", "sending.concurrency (from {path}): must be greater than 0, not 0"),
        ("[sender]\naddress = 'nobody'\n", "sender.address (from {path}): 'nobody' is not an email address"),
        ("[publication]\nlanguage = 'de'\n", "publication.language (from {path}): must be one of nl, en, not 'de'"),
        ("[publication]\ntime_zone = 'Mars/Olympus'\n", "'Mars/Olympus' is not a time zone name"),
        ("[smtp]\nurl = 'http://relay'\n", "smtp.url (from {path}): must look like smtp://host:587"),
        ("[smtp]\ntls_verify = 'maybe'\n", "smtp.tls_verify (from {path}): must be true or false"),
        ("[retry]\nmin_backoff = 5000\n", "retry.min_backoff (5000) is larger than retry.max_backoff (4000)"),
        ("[dkim]\nselector = 's1'\n", "dkim.selector and dkim.key_file go together"),
        ("concurrency = [\n", "not valid TOML"),
    ],
)
def test_invalid_values_name_the_key_and_where_they_came_from(tmp_path: Path, body: str, expected: str) -> None:
    path = write_config(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert expected.format(path=path) in str(info.value)


def test_invalid_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"NEWSLETTER_SENDING_RATE": "fast"})
    assert str(info.value) == (
        "sending.rate (from environment variable NEWSLETTER_SENDING_RATE): must be a number, not 'fast'"
    )


@pytest.mark.parametrize("breaker", ["\n", "\x85", "\u2028", "\x0b"])
def test_a_text_setting_with_any_line_break_is_refused(tmp_path: Path, breaker: str) -> None:
    path = write_config(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"NEWSLETTER_PUBLICATION_NAME": f"Blad{breaker}Bcc: eve@example.org"})
    assert str(info.value) == (
        "publication.name (from environment variable NEWSLETTER_PUBLICATION_NAME): "
        "must be one line (no line breaks)"
    )


@pytest.mark.parametrize(("variable", "key"), [("NEWSLETTER_DB", "database"), ("NEWSLETTER_TEMPLATES", "templates")])
def test_an_empty_database_or_templates_path_is_refused(tmp_path: Path, variable: str, key: str) -> None:
    path = write_config(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={variable: ""})
    assert str(info.value).startswith(f"{key} (from environment variable {variable}): must not be empty")


def test_a_password_in_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secrets are never read from newsletter.toml"):
        load_config(write_config(tmp_path, "[smtp]\npassword = 'hunter2'\n"), environ={})
    with pytest.raises(ConfigError, match="smtp.url contains a password"):
        load_config(write_config(tmp_path, "[smtp]\nurl = 'smtp://u:hunter2@relay:587'\n"), environ={})


def test_the_password_comes_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "smtp.secret"
    secret.write_text("s3cret\n", encoding="utf-8")
    config = load_config(write_config(tmp_path, "[smtp]\npassword_file = 'smtp.secret'\n"), environ={})
    assert config.smtp_password() == "s3cret"
    assert "s3cret" not in repr(config)
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "from-env")
    assert config.smtp_password() == "from-env"


def test_a_missing_password_file_is_a_clear_error(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "[smtp]\npassword_file = 'nope'\n"), environ={})
    with pytest.raises(ConfigError, match="smtp.password_file: cannot read"):
        config.smtp_password()


def test_no_config_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(NotInitialisedError) as info:
        find_config_file(cwd=tmp_path)
    assert "Run `newsletter init` here first" in str(info.value)
    with pytest.raises(NotInitialisedError, match="does not exist"):
        find_config_file(tmp_path / "missing.toml")


def test_the_readme_configuration_table_lists_every_setting() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [s.key for s in SETTINGS if f"| `{s.key}` | `{s.env}` |" not in readme]
    assert missing == []


def test_check_nameservers_take_hosts_and_ports_from_the_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    environ = {"NEWSLETTER_CHECK_NAMESERVERS": "127.0.0.1:5353, ns1.example.nl,[::1]:54, ::1"}
    config = load_config(path, environ=environ)
    assert config.check_nameservers == (("127.0.0.1", 5353), ("ns1.example.nl", 53), ("::1", 54), ("::1", 53))
    assert load_config(path, environ={}).check_nameservers == ()


@pytest.mark.parametrize("value", ["127.0.0.1:dns", "127.0.0.1:0", "[::1]x", "bad host:53"])
def test_a_malformed_check_nameserver_names_the_variable(tmp_path: Path, value: str) -> None:
    path = write_config(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"NEWSLETTER_CHECK_NAMESERVERS": value})
    assert "check.nameservers (from environment variable NEWSLETTER_CHECK_NAMESERVERS)" in str(info.value)
