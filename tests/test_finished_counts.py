"""A finished campaign keeps its counts in its row (migration 0011), and `status` shows them
from there: what finish, cancel and a later bounce store must equal a count of the rows."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from send_helpers import make_site, server  # noqa: F401
from smtp_server import Server
from sqlite_utils import Database

from newsletter.db import open_db
from newsletter.delivery import codes
from newsletter.delivery.campaigns import make_owner
from newsletter.delivery.ledger import cancel_campaign, record_bounce
from newsletter.delivery.records import FINISHED, campaign_counts, get_campaign, list_campaigns, shown_counts

FIXTURE = Path(__file__).parent / "fixtures" / "main-1610f94.db"  # see make_main_1610f94_db.py


def _stored(db: Database, campaign_id: int) -> dict[str, int]:
    return {k: v for k, v in get_campaign(db, campaign_id).stored_counts.items() if v}


def _counted(db: Database, campaign_id: int) -> dict[str, int]:
    return {k: v for k, v in campaign_counts(db, campaign_id).items() if v}


@pytest.mark.asyncio
async def test_what_finish_cancel_and_a_later_bounce_store_is_what_the_rows_count(
    make_site, server: Server  # noqa: F811
) -> None:
    site = make_site(server.url, count=8)
    refused = site.emails[2]
    server.handler.on_rcpt = lambda address, n: "550 5.1.1 no such user" if address == refused else None
    first = site.campaign()
    result = await site.run(first)
    assert result.status == "done"
    assert _stored(site.db, first) == _counted(site.db, first) == {"sent": 7, "bounced": 1}

    # A DSN that comes back days later moves the stored counts with the row.
    sent_row = site.db.execute(
        f"SELECT id FROM deliveries WHERE campaign_id = ? AND status = {codes.SENT} LIMIT 1", [first]
    ).fetchone()[0]
    assert record_bounce(site.db, sent_row, enhanced="5.2.2", code=552, text="552 5.2.2 mailbox full")
    assert _stored(site.db, first) == _counted(site.db, first) == {"sent": 6, "bounced": 2}

    # Cancelled before anything went out: every row is cancelled, and the row says so.
    second = site.campaign(again=True)
    cancel_campaign(site.db, second, owner=make_owner())
    assert _stored(site.db, second) == _counted(site.db, second) == {"cancelled": 7}  # not the one that bounced hard

    # `status` lists them without their rendered emails and with the same counts.
    listed = {c.id: c for c in list_campaigns(site.db)}
    assert listed[first].rendered_json is None
    with pytest.raises(ValueError, match="get_campaign loads them"):
        listed[first].rendered  # noqa: B018
    assert get_campaign(site.db, first).rendered  # the full row still decodes them
    for cid in (first, second):
        assert shown_counts(site.db, listed[cid]) == campaign_counts(site.db, cid)


def test_status_shows_a_finished_campaign_from_its_row_and_an_unfinished_one_from_its_rows(
    workdir: Path, invoke
) -> None:
    shutil.copy(FIXTURE, workdir / "subscribers.db")
    assert invoke("status", "--json").exit_code == 0  # migrates the copy
    before = {c["id"]: c for c in json.loads(invoke("status", "--json").stdout)}
    assert before[2]["status"] == "cancelled" and before[2]["cancelled"] == 10
    assert before[1]["status"] == "waiting" and before[1]["deferred"] == 1 and before[1]["next_retry_at"]
    # The delivery rows of both go (as a subscriber's erasure takes theirs): the finished
    # campaign still shows what happened to it; the waiting one shows what is left.
    with sqlite3.connect(workdir / "subscribers.db") as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM deliveries WHERE campaign_id IN (1, 2)")
    after = {c["id"]: c for c in json.loads(invoke("status", "--json").stdout)}
    assert after[2] == before[2]
    assert after[1]["deferred"] == 0 and after[1]["sent"] == 0 and after[1]["next_retry_at"] is None


def test_the_migration_recounts_the_stored_counts_of_finished_campaigns_only(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    with sqlite3.connect(path) as conn:  # stale counts, as a bounce before issue 12 left them
        conn.execute("UPDATE campaigns SET sent = 99, failed = 98, bounced = 0")
        stored_before = dict(conn.execute("SELECT id, status FROM campaigns").fetchall())
    assert set(stored_before.values()) >= {"cancelled", "waiting"}

    db = open_db(path)
    for campaign_id, status in stored_before.items():
        row = next(db.query("SELECT * FROM campaigns WHERE id = ?", [campaign_id]))
        if status in FINISHED:
            assert _stored(db, campaign_id) == _counted(db, campaign_id)
        else:  # an unfinished campaign's row is finish_run's to write
            assert (row["sent"], row["failed"], row["cancelled"]) == (99, 98, 0)
