"""Compact delivery rows (migration 0010) and `prune`: a database made by main's code keeps
every delivery's meaning; old campaigns fold into counts and still show them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from send_helpers import Site, make_site, server  # noqa: F401
from smtp_server import Server

from newsletter import migrations
from newsletter.db import open_db
from newsletter.delivery import codes
from newsletter.delivery.campaigns import MessageIds, delivery_for_token, verp_token
from newsletter.delivery.pool import PoolOptions
from newsletter.delivery.prune import prune
from newsletter.delivery.records import archive_entries, archived_campaign, campaign_counts, get_campaign
from newsletter.delivery.run import run_campaign

FIXTURE = Path(__file__).parent / "fixtures" / "main-1610f94.db"  # see make_main_1610f94_db.py
COLUMNS = ("id", "campaign_id", "subscriber_id", "status", "attempts", "reply_code", "enhanced_code",
           "message_id", "queue_id", "relay", "claim")
TIMES = ("next_attempt_at", "first_attempt_at", "last_attempt_at", "sent_at")


def _old_rows(path: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM deliveries ORDER BY id")]
    conn.close()
    return rows


def test_the_status_codes_of_the_migration_are_the_mapping_of_codes_py() -> None:
    assert dict(migrations._STATUS_CODES) == codes.CODES


def test_a_database_made_by_main_keeps_every_delivery_through_the_compact_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    old = _old_rows(path)
    old_counts: dict[int, dict[str, int]] = {}
    for row in old:
        per = old_counts.setdefault(int(row["campaign_id"]), {})  # type: ignore[call-overload]
        per[str(row["status"])] = per.get(str(row["status"]), 0) + 1
    assert {str(r["status"]) for r in old} >= {"sent", "bounced", "deferred", "failed", "skipped",
                                              "cancelled", "sending", "queued"}

    db = open_db(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.conn.row_factory = sqlite3.Row
    new = [dict(r) for r in db.conn.execute("SELECT * FROM delivery_rows ORDER BY id")]
    db.conn.row_factory = None
    assert len(new) == len(old)
    for before, after in zip(old, new, strict=True):
        assert {c: after[c] for c in COLUMNS} == {c: before[c] for c in COLUMNS}
        # A sent row drops its reply text: its code, enhanced code and queue id remain.
        assert after["reply_text"] == (None if before["status"] == "sent" else before["reply_text"])
        for column in TIMES:  # to the millisecond
            assert codes.to_ms(after[column]) == codes.to_ms(before[column]), (before["id"], column)  # type: ignore[arg-type]
    for campaign_id, counts in old_counts.items():
        assert {k: v for k, v in campaign_counts(db, campaign_id).items() if v} == counts

    # What ties a bounce to its delivery still does: the VERP token and the Message-ID.
    first = get_campaign(db, 1)
    assert delivery_for_token(db, verp_token(3, first.campaign_key)).status == "sent"  # type: ignore[union-attr]
    ref = MessageIds(db).delivery(str(old[2]["message_id"]))
    assert ref is not None and ref.delivery_id == 3
    # The stored Message-IDs are derived now: no text of their own in the row.
    assert db.execute("SELECT count(*) FROM deliveries WHERE message_id = ''").fetchone()[0] == 13


@pytest.mark.asyncio
async def test_rows_in_flight_in_a_database_made_by_main_go_out_again_with_the_same_message_id(
    workdir: Path, server: Server,  # noqa: F811
) -> None:
    database = workdir / "subscribers.db"
    shutil.copy(FIXTURE, database)
    in_flight = {r["subscriber_id"]: r["message_id"] for r in _old_rows(database) if r["status"] == "sending"}
    assert len(in_flight) == 2
    from send_helpers import make_config  # the workdir's settings, relaying to the test server

    config = make_config(workdir, **{"smtp.url": server.url})
    db = open_db(config.database)
    options = PoolOptions.from_config(config, concurrency=2, slowdown_pause=0.1)
    result = await run_campaign(config, db, 3, owner="test:1:x", options=options)
    assert result.status == "done"
    emails = dict(db.execute("SELECT id, email FROM subscribers"))
    received = server.handler.by_rcpt()
    for subscriber_id, message_id in in_flight.items():
        assert [m.message_id for m in received[emails[subscriber_id]]] == [message_id]
    rows = db.execute("SELECT status, message_id FROM delivery_rows WHERE campaign_id = 3").fetchall()
    assert {status for status, _ in rows} == {"sent"}


@pytest.mark.asyncio
async def test_a_sent_delivery_row_takes_at_most_100_bytes_with_its_indexes(make_site, server: Server) -> None:  # noqa: F811
    site: Site = make_site(server.url, 2000)
    cid = site.campaign()
    result = await site.run(cid, concurrency=8)
    assert result.status == "done"
    rows = site.db.execute("SELECT count(*) FROM deliveries WHERE status = ?", [codes.SENT]).fetchone()[0]
    assert rows == 2000
    size = site.db.execute(
        "SELECT sum(pgsize) FROM dbstat WHERE name IN"
        " (SELECT name FROM sqlite_master WHERE tbl_name = 'deliveries' AND type IN ('table', 'index'))"
    ).fetchone()[0]
    assert size / rows <= 100


def _migrated(tmp_path: Path) -> Path:
    path = tmp_path / "subscribers.db"
    shutil.copy(FIXTURE, path)
    open_db(path).conn.close()
    return path


def test_prune_folds_only_finished_campaigns_and_keeps_their_counts(tmp_path: Path) -> None:
    db = open_db(_migrated(tmp_path))
    before = {cid: campaign_counts(db, cid) for cid in (1, 2, 3)}
    archive = archive_entries(db)
    shown = archived_campaign(db, kind="article", key=archive[0].key)
    kept = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("events", "suppressions", "subscribers")}
    later = datetime.now(UTC) + timedelta(days=100)

    assert prune(db, older_than_days=90) == []  # nothing is that old yet
    planned = prune(db, older_than_days=90, dry_run=True, now_at=later)
    assert [f.campaign_id for f in planned] == [2]  # 1 waits for a deferred row, 3 is unfinished
    assert db.execute("SELECT count(*) FROM deliveries WHERE campaign_id = 2").fetchone()[0] == 10

    folded = prune(db, older_than_days=90, now_at=later)
    assert [(f.campaign_id, f.counts) for f in folded] == [(2, {"cancelled": 10})]
    assert db.execute("SELECT count(*) FROM deliveries WHERE campaign_id = 2").fetchone()[0] == 0
    assert {cid: campaign_counts(db, cid) for cid in (1, 2, 3)} == before
    assert archive_entries(db) == archive and archived_campaign(db, kind="article", key=archive[0].key) == shown
    assert {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in kept} == kept
    assert prune(db, older_than_days=90, now_at=later) == []  # folded once


def test_prune_on_the_command_line_says_what_it_folds_and_status_still_counts(workdir: Path, invoke) -> None:
    shutil.copy(FIXTURE, workdir / "subscribers.db")
    with sqlite3.connect(workdir / "subscribers.db") as conn:  # campaign 2 finished long ago
        conn.execute("UPDATE campaigns SET finished_at = '2025-01-01T00:00:00+00:00' WHERE id = 2")
    shown = json.loads(invoke("status", "2", "--json").stdout)

    refused = invoke("prune")
    assert refused.exit_code == 1 and "--older-than 90d" in refused.stderr
    too_short = invoke("prune", "--older-than", "3d")
    assert too_short.exit_code == 1 and "at least 30 days" in too_short.stderr

    dry = invoke("prune", "--older-than", "90d", "--dry-run")
    assert dry.exit_code == 0 and "Would fold campaign 2" in dry.stderr and "10 rows" in dry.stderr
    done = invoke("prune", "--older-than", "90d", "--json")
    assert [f["campaign"] for f in json.loads(done.stdout)] == [2]
    assert json.loads(invoke("status", "2", "--json").stdout) == shown
    assert "were folded into counts" in invoke("status", "2", "--failures").stderr
    assert "Nothing to fold" in invoke("prune", "--older-than", "90d").stderr


def test_run_folds_old_campaigns_when_prune_older_than_is_set(
    workdir: Path, invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(FIXTURE, workdir / "subscribers.db")
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        conn.execute("UPDATE campaigns SET finished_at = '2025-01-01T00:00:00+00:00' WHERE id = 2")
        conn.execute("UPDATE campaigns SET status = 'cancelled' WHERE id = 3")  # nothing else to send
    invoke("run")
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        assert conn.execute("SELECT count(*) FROM deliveries WHERE campaign_id = 2").fetchone()[0] == 10
    monkeypatch.setenv("NEWSLETTER_PRUNE_OLDER_THAN", "90d")
    ran = invoke("run")
    assert "folded 10 delivery rows of campaign 2" in ran.stderr + ran.stdout
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        assert conn.execute("SELECT count(*) FROM deliveries WHERE campaign_id = 2").fetchone()[0] == 0
