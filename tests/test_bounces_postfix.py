"""End to end with a real Postfix: a campaign to known and unknown users goes through it,
Postfix bounces the unknown ones itself by email, its pipe runs `newsletter bounces
receive`, and every delivery ends with its true status and every bounced address is
suppressed for the next campaign."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from postfix_server import BOUNCE_DOMAIN, DOMAIN, Postfix, available, pipe_command
from send_helpers import add_subscribers, write_article

from newsletter.config import load_config
from newsletter.db import open_db
from newsletter.scaffold import init_directory

pytestmark = pytest.mark.skipif(bool(available()), reason=available() or "runs")

KNOWN, UNKNOWN = 3, 3


@pytest.fixture
def private_root() -> Iterator[Path]:
    # Not pytest's tmp_path: that is private to root, and the pipe runs as nobody.
    root = Path(tempfile.mkdtemp(prefix="newsletter-postfix-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _chown_tree(path: Path, user: str) -> None:
    shutil.chown(path, user)
    for item in path.rglob("*"):
        shutil.chown(item, user)


def _cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=site, env=env,
                          capture_output=True, text=True, timeout=180)


def test_postfix_bounces_come_back_through_the_pipe_and_suppress_the_unknown_users(private_root: Path) -> None:
    site = private_root / "site"
    config_file = site / "newsletter.toml"
    emails = [f"lezer{n:06d}@{DOMAIN}" for n in range(KNOWN + UNKNOWN)]
    known, unknown = emails[:KNOWN], emails[KNOWN:]
    postfix = Postfix(
        private_root / "postfix",
        users=[e.partition("@")[0] for e in known],
        command=pipe_command(private_root, config_file),
    )
    init_directory(site, values={
        "sender.address": "nieuws@example.nl", "publication.name": "Testblad", "smtp.url": postfix.url,
        "sender.envelope": f"bounces+{{token}}@{BOUNCE_DOMAIN}",
    })
    postfix.start()
    try:
        config = load_config(config_file, environ={})
        assert config.smtp_url == postfix.url and "{token}" in config.sender_envelope
        db = open_db(config.database)
        assert add_subscribers(db, KNOWN + UNKNOWN, domain=DOMAIN) == emails
        db.conn.close()
        article = write_article(site)
        # The pipe runs as nobody: the database (and the files SQLite makes beside it) are theirs.
        _chown_tree(site, "nobody")
        site.chmod(0o777)

        sent = _cli(site, "send", str(article))
        assert sent.returncode == 0, sent.stderr

        db = open_db(config.database)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            statuses = dict(db.execute(
                "SELECT s.email, d.status FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
            ))
            if all(statuses[e] == "bounced" for e in unknown) and postfix.queue_is_empty():
                break
            time.sleep(0.5)
        log = postfix.log()
        assert all(statuses[e] == "sent" for e in known), (statuses, log[-4000:])
        assert all(statuses[e] == "bounced" for e in unknown), (statuses, log[-4000:])
        # Every bounce went to the pipe, and the pipe took it (exit 0: relay=newsletter ... status=sent).
        assert log.count("relay=newsletter") == UNKNOWN and log.count("status=bounced") == UNKNOWN, log[-4000:]
        assert "status=deferred" not in log

        rows = {r["email"]: r for r in db.query(
            "SELECT s.email, s.status AS subscriber, d.enhanced_code, d.reply_text, d.id"
            " FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
        )}
        for email in unknown:
            assert rows[email]["subscriber"] == "bounced"
            assert rows[email]["enhanced_code"] == "5.1.1" and "unknown user" in rows[email]["reply_text"]
            kinds = [(k, d) for k, d in db.execute(
                "SELECT kind, json_extract(detail, '$.via') FROM events e JOIN subscribers s"
                " ON s.id = e.subscriber_id WHERE s.email = ? AND e.source = 'bounce'", [email]
            )]
            assert kinds == [("bounced", "verp")]
        for email in known:
            assert rows[email]["subscriber"] == "active"
            assert len(list((postfix.maildir(email.partition("@")[0]) / "new").iterdir())) == 1
        assert dict(db.execute("SELECT via, count(*) FROM inbound_messages GROUP BY via")) == {"pipe": UNKNOWN}
        # The campaign's stored counts moved with the rows.
        assert db.execute("SELECT sent, bounced FROM campaigns WHERE id = 1").fetchone() == (KNOWN, UNKNOWN)
        db.conn.close()

        # The next campaign goes to the known users only.
        again = _cli(site, "send", str(article), "--again")
        assert again.returncode == 0, again.stderr
        db = open_db(config.database)
        second = db.execute("SELECT max(id) FROM campaigns").fetchone()[0]
        mailed = [r[0] for r in db.execute(
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.campaign_id = ?"
            " ORDER BY s.email", [second]
        )]
        assert mailed == known
        report = _cli(site, "bounces", "report", "--json")
        assert report.returncode == 0 and '"hard": 3' in report.stdout
        db.conn.close()
    finally:
        postfix.stop()
