"""`bounces process imap://...` and `imaps://...` against a real Dovecot on 127.0.0.1: used
messages move to the folder `processed`, an unrecognised one stays (flagged, listed once),
a second run processes nothing, and a bounce that came by pipe first counts once."""

from __future__ import annotations

import imaplib
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from bounce_helpers import SentSite
from dovecot_server import Dovecot, available
from send_helpers import server  # noqa: F401

pytestmark = pytest.mark.skipif(bool(available()), reason=available() or "runs")


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    # Not pytest's tmp_path: that is private to root, and the mail belongs to nobody.
    root = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    imap = Dovecot(root).start()
    yield imap
    imap.stop()
    shutil.rmtree(root, ignore_errors=True)


def _folder(dovecot: Dovecot, name: str) -> list[bytes]:
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.tls_port, ssl_context=_context(dovecot))
    client.login(dovecot.user, dovecot.password)
    client.select(f'"{name}"', readonly=True)
    _, found = client.uid("SEARCH", "ALL")
    messages = []
    for uid in found[0].split():
        _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
        messages.append(next(item[1] for item in fetched if isinstance(item, tuple)))
    client.logout()
    return messages


def _context(dovecot: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(dovecot.ca_file))


@pytest.mark.parametrize("scheme", ["imap", "imaps"])
async def test_imap_folder_is_processed_once_and_a_second_run_processes_nothing(
    workdir: Path, server, dovecot: Dovecot, run_cli, scheme: str  # noqa: F811
) -> None:
    site = SentSite(workdir, server)
    cid = await site.send()
    path = workdir / "newsletter.toml"
    path.write_text(path.read_text().replace('envelope = ""', 'envelope = "bounces+{token}@example.nl"', 1))
    messages = {
        "postfix-user-unknown.eml": site.emails[0],
        "postfix-delayed.eml": site.emails[1],
        "mailto-unsubscribe.eml": site.emails[2],
        "no-structure.eml": site.emails[3],
    }
    filled = {name: site.fill(name, cid, email) for name, email in messages.items()}
    # The delayed DSN also reached the pipe before it reached the mailbox.
    piped = run_cli("bounces", "receive", cwd=workdir, input=filled["postfix-delayed.eml"].decode())
    assert piped.returncode == 0, piped.stderr
    client = imaplib.IMAP4("127.0.0.1", dovecot.port)
    client.login(dovecot.user, dovecot.password)
    for data in filled.values():
        assert client.append("INBOX", None, None, data.replace(b"\n", b"\r\n"))[0] == "OK"
    client.logout()

    port = dovecot.port if scheme == "imap" else dovecot.tls_port
    source = f"{scheme}://{dovecot.user}@127.0.0.1:{port}/INBOX"
    env = {"NEWSLETTER_BOUNCES_PASSWORD": dovecot.password, "SSL_CERT_FILE": str(dovecot.ca_file)}
    first = run_cli("bounces", "process", source, cwd=workdir, env=env)
    assert first.returncode == 0, first.stderr + dovecot.log()
    assert "4 message(s) read" in first.stderr and "1 seen before" in first.stderr, first.stderr
    assert dovecot.password not in first.stderr + first.stdout
    assert site.status(site.emails[0]) == "bounced"
    assert site.status(site.emails[2]) == "unsubscribed"
    assert [k for k, _ in site.events(site.emails[1])] == ["soft_bounce"]  # once, not twice
    assert len(_folder(dovecot, "processed")) == 3
    left = _folder(dovecot, "INBOX")
    assert len(left) == 1 and b"vraagje" in left[0]
    count = site.db.execute("SELECT count(*) FROM inbound_messages").fetchone()[0]
    assert count == 4

    second = run_cli("bounces", "process", source, cwd=workdir, env=env)
    assert second.returncode == 0, second.stderr
    assert "0 message(s) read" in second.stderr and "nothing new" in second.stderr
    assert site.db.execute("SELECT count(*) FROM inbound_messages").fetchone()[0] == count
    assert len(_folder(dovecot, "processed")) == 3 and len(_folder(dovecot, "INBOX")) == 1


def test_imap_without_the_password_says_which_variable_to_set(workdir: Path, dovecot: Dovecot, run_cli) -> None:
    result = run_cli("bounces", "process", f"imap://{dovecot.user}@127.0.0.1:{dovecot.port}/INBOX", cwd=workdir)
    assert result.returncode == 1 and "NEWSLETTER_BOUNCES_PASSWORD" in result.stderr


def test_imap_with_a_wrong_password_is_an_error_not_a_traceback(workdir: Path, dovecot: Dovecot, run_cli) -> None:
    result = run_cli("bounces", "process", f"imap://{dovecot.user}@127.0.0.1:{dovecot.port}/INBOX", cwd=workdir,
                     env={"NEWSLETTER_BOUNCES_PASSWORD": "wrong", "SSL_CERT_FILE": str(dovecot.ca_file)})
    assert result.returncode == 1 and "cannot log in" in result.stderr and "Traceback" not in result.stderr
