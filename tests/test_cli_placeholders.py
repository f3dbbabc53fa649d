"""Placeholder defaults: init derives the List-Id from the site, and says what is left to
fill in; send, digest and run warn once per run (and still work) until it is filled in."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from send_helpers import add_subscribers, make_config, open_workdb, server, write_article  # noqa: F401
from smtp_server import Server

from newsletter.config import list_id_for

WARNING = "newsletter.toml is not filled in"
FILL_IN = "Fill these in in newsletter.toml before the first real send"


def _toml(directory: Path) -> dict[str, Any]:
    return tomllib.loads((directory / "newsletter.toml").read_text(encoding="utf-8"))


def _fill_in_section(stderr: str) -> str:
    return stderr.split(FILL_IN, 1)[1] if FILL_IN in stderr else ""


def test_init_derives_the_list_id_from_the_site_url_and_asks_only_for_the_postal_address(
    tmp_path: Path, run_cli: Any
) -> None:
    site = tmp_path / "nieuws"
    result = run_cli("init", str(site), "--site-url", "https://nieuws.example.nl", "--from", "nieuws@example.nl")
    assert result.returncode == 0, result.stderr
    assert _toml(site)["publication"]["list_id"] == "nieuws.example.nl"
    asked = _fill_in_section(result.stderr)
    assert "publication.postal_address" in asked
    for done in ("sender.address", "publication.site_url", "publication.list_id"):
        assert done not in asked


def test_init_without_options_names_every_placeholder_to_fill_in(tmp_path: Path, run_cli: Any) -> None:
    result = run_cli("init", str(tmp_path / "leeg"))
    assert result.returncode == 0, result.stderr
    asked = _fill_in_section(result.stderr)
    assert "sender.address (newsletter@example.org is a placeholder)" in asked
    assert "publication.site_url (https://example.org is a placeholder)" in asked
    assert "publication.list_id (newsletter.example.org is a placeholder)" in asked
    assert "publication.postal_address (empty" in asked


def test_the_list_id_of_a_site_is_its_host_without_www() -> None:
    assert list_id_for("https://www.tech2b.nl/nieuws/") == "tech2b.nl"
    assert list_id_for("https://nieuws.example.nl") == "nieuws.example.nl"
    assert list_id_for("https://bücher.example/") == "xn--bcher-kva.example"
    assert list_id_for("http://localhost:8080") is None


def test_send_digest_and_run_warn_once_per_run_until_the_placeholders_are_filled_in(
    tmp_path: Path, server: Server, run_cli: Any
) -> None:
    site = tmp_path / "blad"
    assert run_cli("init", str(site), "--language", "nl").returncode == 0
    db = open_workdb(make_config(site))
    emails = add_subscribers(db, 3)
    db.conn.close()
    write_article(site)
    env = {"NEWSLETTER_SMTP_URL": server.url}

    sent = run_cli("send", "artikel.txt", cwd=site, env=env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr.count(WARNING) == 1
    assert "sender.address (newsletter@example.org is a placeholder)" in sent.stderr
    assert "publication.postal_address (empty" in sent.stderr
    assert sorted(m.rcpt for m in server.handler.messages) == emails  # a warning, not a refusal
    for command in (["digest", "--period", "daily"], ["run", "--no-feeds"]):
        result = run_cli(*command, cwd=site, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count(WARNING) == 1, (command, result.stderr)

    text = (site / "newsletter.toml").read_text(encoding="utf-8")
    for old, new in (
        ('address = "newsletter@example.org"', 'address = "nieuws@blad.nl"'),
        ('site_url = "https://example.org"', 'site_url = "https://blad.nl"'),
        ('list_id = "newsletter.example.org"', 'list_id = "nieuws.blad.nl"'),
        ('postal_address = ""', 'postal_address = "Grote Markt 1, 9711 LV Groningen"'),
    ):
        assert old in text
        text = text.replace(old, new)
    (site / "newsletter.toml").write_text(text, encoding="utf-8")
    write_article(site, "tweede.txt", (site / "artikel.txt").read_text(encoding="utf-8")
                  .replace("fietsenmaker-zwolle-schrijft-software", "tweede-artikel"))
    for command in (["send", "tweede.txt"], ["digest", "--period", "daily"], ["run", "--no-feeds"]):
        result = run_cli(*command, cwd=site, env=env)
        assert result.returncode == 0, result.stderr
        assert WARNING not in result.stderr, (command, result.stderr)
    assert len(server.handler.messages) == 6
