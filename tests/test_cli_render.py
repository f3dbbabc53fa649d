"""`newsletter preview` and `newsletter dkim keygen` from the command line, and preview's core."""

from __future__ import annotations

import email
import email.policy
import stat
from datetime import date
from pathlib import Path

import dkim as dkimpy
from render_fixtures import PARAGRAPHS, SIGNATURE, TITLE, make_config, seed_shaped_article

from newsletter.content.preview import preview_recipient, write_preview
from newsletter.db import now, open_db

TOKEN = "c0nf1rm3d_T0k3n-abcdefghijklmnopqrstuv"


def add_subscriber(directory: Path, email_address: str, name: str, language: str) -> None:
    db = open_db(directory / "subscribers.db")
    stamp = now()
    db["subscribers"].insert(
        {"email": email_address, "name": name, "language": language, "status": "active",
         "token": TOKEN, "created_at": stamp, "updated_at": stamp}
    )
    db.conn.commit()
    db.conn.close()


def test_preview_writes_the_subscribers_exact_message_and_its_parts(workdir: Path) -> None:
    add_subscriber(workdir, "ann@example.nl", "Ann", "en")
    config = make_config(workdir)
    db = open_db(config.database)
    recipient, known = preview_recipient(db, config, "ANN@example.nl")
    assert known and recipient.name == "Ann" and recipient.token == TOKEN and recipient.language == "en"
    files = write_preview(seed_shaped_article(), config, recipient=recipient, out_dir=workdir / "preview", subscriber=known)
    message = email.message_from_bytes(files.eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "Ann <ann@example.nl>"
    assert message["Subject"] == TITLE
    html = files.html.read_text(encoding="utf-8")
    text = files.text.read_text(encoding="utf-8")
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == html
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert "Hello Ann," in text and f"/u/{TOKEN}" in html
    assert files.html_bytes == len(html.encode("utf-8"))


def test_preview_finds_a_subscriber_with_an_international_domain_as_typed(workdir: Path) -> None:
    add_subscriber(workdir, "bo@bücher.nl", "Bo", "en")
    config = make_config(workdir)
    for typed in ("bo@bücher.nl", "Bo@BÜCHER.nl", "bo@xn--bcher-kva.nl"):
        recipient, known = preview_recipient(open_db(config.database), config, typed)
        assert known and recipient.name == "Bo" and recipient.token == TOKEN


def test_preview_as_an_invalid_address_says_it_is_not_an_email_address(workdir: Path, invoke) -> None:
    article = workdir / "artikel.txt"
    article.write_text(SEED_SHAPED_FILE, encoding="utf-8")
    result = invoke("preview", str(article), "--as", "ann@")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 'ann@' is not an email address")


def test_preview_for_an_unknown_address_uses_a_stand_in(workdir: Path) -> None:
    config = make_config(workdir)
    recipient, known = preview_recipient(open_db(config.database), config, None)
    assert not known
    assert recipient.email == "nieuws@example.nl" and recipient.token == "preview" and recipient.language == "nl"


def test_dkim_keygen_prints_the_record_and_keeps_the_key_private(workdir: Path, invoke) -> None:
    result = invoke("dkim", "keygen")
    assert result.exit_code == 0, result.output
    selector = f"nl{date.today():%Y%m}"
    assert f"name:  {selector}._domainkey.example.nl\n" in result.stdout
    assert "value: v=DKIM1; k=rsa; p=" in result.stdout
    key = workdir / "dkim" / f"{selector}.example.nl.private.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    assert 'key_file = "' in result.stderr
    again = invoke("dkim", "keygen")
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_dkim_keygen_outside_a_newsletter_directory_needs_a_domain(tmp_path: Path, monkeypatch, invoke) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("dkim", "keygen").exit_code == 2
    result = invoke("dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--out", str(tmp_path / "k"))
    assert result.exit_code == 0
    assert "name:  s1._domainkey.example.com" in result.stdout
    assert (tmp_path / "k" / "s1.example.com.private.pem").exists()


def test_a_key_from_keygen_signs_previews_that_verify(workdir: Path, invoke) -> None:
    result = invoke("dkim", "keygen", "--selector", "sel1")
    record = next(line[len("value: "):] for line in result.stdout.splitlines() if line.startswith("value: "))
    config = make_config(workdir, **{"dkim.selector": "sel1", "dkim.key_file": str(workdir / "dkim" / "sel1.example.nl.private.pem")})
    recipient, _ = preview_recipient(None, config, "bo@example.nl")
    files = write_preview(seed_shaped_article(), config, recipient=recipient, out_dir=workdir / "p")
    data = files.eml.read_bytes()

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record.encode() if name.decode().rstrip(".") == "sel1._domainkey.example.nl" else None

    assert data.startswith(b"DKIM-Signature:") and dkimpy.verify(data, dnsfunc=lookup)


SEED_SHAPED_FILE = "\n\n".join(
    ["Techblad Noord", TITLE, "noordelijk-halfgeleider-netwerk-zet-in-op-open-chipontwerp", *PARAGRAPHS, *SIGNATURE, " ", "Subscribe by email"]
) + "\n"


def test_preview_command_writes_files_for_an_article_file(workdir: Path, invoke) -> None:
    article = workdir / "artikel.txt"
    article.write_text(SEED_SHAPED_FILE, encoding="utf-8")
    result = invoke("preview", str(article), "--out", str(workdir / "out"))
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.stdout.splitlines()]
    assert [p.suffix for p in written] == [".eml", ".html", ".txt"]
    message = email.message_from_bytes(written[0].read_bytes(), policy=email.policy.default)
    assert message["Subject"] == TITLE
    text = written[2].read_text(encoding="utf-8")
    assert PARAGRAPHS[0] in text and "Subscribe by email" not in text
