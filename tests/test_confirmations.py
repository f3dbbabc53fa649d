"""`subscribers resend-confirmation --all-pending`: a confirmation campaign through the pool,
against a real aiosmtpd server, with exact counts."""

from __future__ import annotations

import email
import email.policy
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from click.testing import Result
from send_helpers import make_config, open_workdb, relay_env, server  # noqa: F401
from smtp_server import Server
from sqlite_utils import Database

from newsletter.delivery.confirmations import resend_all_pending
from newsletter.db import open_db
from newsletter.migrations import MIGRATIONS
from newsletter.audience.subscribers import confirm

SUBJECT = "Bevestig je aanmelding voor Testblad"


def _import_pending(workdir: Path, invoke: Callable[..., Result], count: int) -> list[str]:
    emails = [f"wacht{n}@example.nl" for n in range(count)]
    rows = "\n".join(f"{address},Lezer {n}" for n, address in enumerate(emails))
    (workdir / "leden.csv").write_text(f"email,name\n{rows}\n", encoding="utf-8")
    result = invoke("subscribers", "import", "leden.csv", "--status", "pending")
    assert result.exit_code == 0, result.stderr
    return emails


def _confirmations(server: Server) -> Counter[str]:
    got: Counter[str] = Counter()
    for received in server.handler.messages:
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        assert message["Subject"] == SUBJECT
        body = message.get_body(("plain",)).get_content()
        assert re.search(r"https://example\.nl/c/[A-Za-z0-9_-]+", body)
        got[received.rcpt] += 1
    return got


def test_all_pending_mails_each_pending_subscriber_once_and_not_again_within_24_hours(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result]
) -> None:
    pending = _import_pending(workdir, invoke, 7)
    assert invoke("subscribe", "actief@example.nl", "--confirmed").exit_code == 0
    assert invoke("subscribe", "net-aangemeld@example.nl").exit_code == 0  # got its email just now
    assert _confirmations(server) == {"net-aangemeld@example.nl": 1}
    server.handler.messages.clear()

    first = invoke("subscribers", "resend-confirmation", "--all-pending")
    assert first.exit_code == 0, first.stderr
    assert "Confirmation campaign 1: 7 of 8 pending subscribers; 1 had one in the last 24 hours" in first.stderr
    assert "Campaign done: 7 of 7 sent" in first.stderr
    assert _confirmations(server) == dict.fromkeys(pending, 1)

    again = invoke("subscribers", "resend-confirmation", "--all-pending")
    assert again.exit_code == 0, again.stderr
    assert "No confirmation emails to send: 8 pending subscribers; 8 had one in the last 24 hours" in again.stderr
    assert len(server.handler.messages) == 7

    forced = invoke("subscribers", "resend-confirmation", "--all-pending", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert _confirmations(server) == {**dict.fromkeys(pending, 2), "net-aangemeld@example.nl": 1}

    with time_machine.travel(datetime.now(UTC) + timedelta(hours=25)):
        later = invoke("subscribers", "resend-confirmation", "--all-pending")
    assert later.exit_code == 0, later.stderr
    assert _confirmations(server) == {**dict.fromkeys(pending, 3), "net-aangemeld@example.nl": 2}
    kinds = open_workdb(make_config(workdir)).execute("SELECT kind, count(*) FROM campaigns GROUP BY kind").fetchall()
    assert kinds == [("confirmation", 3)]


def test_an_interrupted_confirmation_campaign_is_finished_not_doubled_and_skips_who_confirmed(
    workdir: Path, server: Server, relay_env: dict[str, str], invoke: Callable[..., Result]
) -> None:
    pending = _import_pending(workdir, invoke, 5)
    config = make_config(workdir)
    db = open_workdb(config)
    made = resend_all_pending(config, db)  # made, then the machine went down before sending
    assert (made.queued, made.resumed) == (5, False)
    confirm(db, pending[0])  # followed the link of an older email meanwhile
    db.conn.close()

    result = invoke("subscribers", "resend-confirmation", "--all-pending")
    assert result.exit_code == 0, result.stderr
    assert f"Finishing confirmation campaign {made.campaign_id} (5 subscribers)" in result.stderr
    assert "4 sent" in result.stderr and "1 skipped" in result.stderr
    assert _confirmations(server) == dict.fromkeys(pending[1:], 1)
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        assert conn.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 1
        assert conn.execute(
            "SELECT reply_text FROM delivery_rows WHERE status = 'skipped'"
        ).fetchone()[0] == "not sent: the subscriber is active now"


def test_all_pending_sends_within_the_pools_concurrency_limit(
    workdir: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    one_at_a_time = Server(max_sessions=1).start()  # a second session at once is greeted with 421
    try:
        monkeypatch.setenv("NEWSLETTER_SMTP_URL", one_at_a_time.url)
        monkeypatch.setenv("NEWSLETTER_SENDING_CONCURRENCY", "4")
        pending = _import_pending(workdir, invoke, 6)
        result = invoke("subscribers", "resend-confirmation", "--all-pending", "--concurrency", "1", "--rate", "50")
        assert result.exit_code == 0, result.stderr
        assert _confirmations(one_at_a_time) == dict.fromkeys(pending, 1)
        assert one_at_a_time.controller.refused == 0  # --concurrency 1 beat sending.concurrency 4
    finally:
        one_at_a_time.stop()


def test_email_and_all_pending_together_is_a_usage_error(workdir: Path, invoke: Callable[..., Result]) -> None:
    result = invoke("subscribers", "resend-confirmation", "a@example.nl", "--all-pending")
    assert result.exit_code == 2 and "not both" in result.output
    assert invoke("subscribers", "resend-confirmation", "--force", "a@example.nl").exit_code == 2
    assert invoke("subscribers", "resend-confirmation", "--rate", "5", "a@example.nl").exit_code == 2


def test_the_confirmation_kind_migration_keeps_every_campaign_and_delivery(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Database(sqlite3.connect(path))
    old.conn.execute("PRAGMA foreign_keys = ON")
    MIGRATIONS.apply(old, stop_before="0009_confirmation_campaign_kind")
    old.execute("INSERT INTO subscribers (email, status, token, created_at, updated_at)"
                " VALUES ('kept@example.nl', 'active', 'tok', '2025-01-01', '2025-01-01')")
    old.execute("INSERT INTO campaigns (kind, subject, campaign_key, status, created_at, updated_at)"
                " VALUES ('article', 'Oud', 'k1', 'done', '2025-01-01', '2025-01-01')")
    old.execute("INSERT INTO deliveries (campaign_id, subscriber_id, status) VALUES (1, 1, 'sent')")
    old.conn.commit()
    old.conn.close()

    db = open_db(path)
    assert MIGRATIONS.pending(db) == []
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT campaign_id, subscriber_id, status FROM delivery_rows").fetchall() == [(1, 1, "sent")]
    db.execute("INSERT INTO campaigns (kind, subject, campaign_key, created_at, updated_at)"
               " VALUES ('confirmation', 'Bevestig', 'k2', 'x', 'x')")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO campaigns (kind, subject, campaign_key, created_at, updated_at)"
                   " VALUES ('anything', 'x', 'k3', 'x', 'x')")
