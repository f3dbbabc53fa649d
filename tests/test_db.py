"""The database: WAL, busy timeout, and migrations that upgrade in place and keep rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from newsletter.db import DatabaseError, open_db
from newsletter.migrations import MIGRATIONS


def test_a_blank_database_reaches_the_expected_schema(tmp_path: Path) -> None:
    db = open_db(tmp_path / "x.db")
    assert {"subscribers", "events", "suppressions", "_sqlite_migrations"} <= set(db.table_names())
    assert [c.name for c in db["subscribers"].columns] == [
        "id", "email", "name", "language", "status", "cadence", "token", "consent_at",
        "consent_source", "created_at", "updated_at", "confirmed_at", "unsubscribed_at",
    ]
    applied = [m.name for m in MIGRATIONS.applied(db)]
    assert applied == [m.name for m in MIGRATIONS._migrations]
    assert MIGRATIONS.pending(db) == []


def test_the_database_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    db = open_db(tmp_path / "x.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_opening_twice_applies_nothing_more(tmp_path: Path) -> None:
    open_db(tmp_path / "x.db").conn.close()
    db = open_db(tmp_path / "x.db")
    rows = db.execute("SELECT name, applied_at FROM _sqlite_migrations").fetchall()
    db.conn.close()
    again = open_db(tmp_path / "x.db")
    assert again.execute("SELECT name, applied_at FROM _sqlite_migrations").fetchall() == rows


def test_an_old_database_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Database(sqlite3.connect(path))
    first, second = MIGRATIONS._migrations[0].name, MIGRATIONS._migrations[1].name
    MIGRATIONS.apply(old, stop_before=second)
    assert [m.name for m in MIGRATIONS.applied(old)] == [first]
    assert "suppressions" not in old.table_names()
    old.execute(
        "INSERT INTO subscribers (email, status, token, created_at, updated_at) "
        "VALUES ('kept@example.nl', 'active', 'tok', '2025-01-01', '2025-01-01')"
    )
    old.conn.commit()
    old.conn.close()

    db = open_db(path)
    assert MIGRATIONS.pending(db) == []
    assert "suppressions" in db.table_names()
    assert db.execute("SELECT email, status FROM subscribers").fetchall() == [("kept@example.nl", "active")]


def test_events_are_append_only(tmp_path: Path) -> None:
    db = open_db(tmp_path / "x.db")
    db.execute("INSERT INTO events (at, kind, source) VALUES ('t', 'subscribed', 'cli')")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE events SET kind = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM events")


def test_a_file_that_is_not_a_database_is_a_clear_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="is not a usable newsletter database"):
        open_db(path)
    assert path.read_bytes() == before


def test_a_database_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="does not exist"):
        open_db(tmp_path / "no" / "such" / "x.db")


def test_the_claims_migration_keeps_every_campaign_and_delivery_row(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Database(sqlite3.connect(path))
    old.execute("PRAGMA foreign_keys = ON")
    MIGRATIONS.apply(old, stop_before="0007_delivery_claims_and_cancel")
    old.execute(
        "INSERT INTO subscribers (id, email, status, token, created_at, updated_at) "
        "VALUES (1, 'a@example.nl', 'active', 't1', '2025-01-01', '2025-01-01'),"
        " (2, 'b@example.nl', 'active', 't2', '2025-01-01', '2025-01-01')"
    )
    old.execute(
        "INSERT INTO campaigns (id, kind, article_slug, subject, status, campaign_key, total, sent,"
        " created_at, updated_at) VALUES (7, 'article', 'stuk', 'Een stuk', 'waiting', 'k7', 2, 1,"
        " '2025-01-01', '2025-01-02')"
    )
    old.execute(
        "INSERT INTO deliveries (id, campaign_id, subscriber_id, status, attempts, message_id, reply_code)"
        " VALUES (11, 7, 1, 'sent', 1, '<m1@example.nl>', 250), (12, 7, 2, 'deferred', 2, '<m2@example.nl>', 451)"
    )
    old.conn.commit()
    old.conn.close()

    db = open_db(path)
    assert MIGRATIONS.pending(db) == []
    assert db.execute("SELECT id, status, sent, total, campaign_key FROM campaigns").fetchall() == [
        (7, "waiting", 1, 2, "k7")]
    assert db.execute(
        "SELECT id, campaign_id, subscriber_id, status, attempts, message_id, reply_code, claim FROM delivery_rows"
    ).fetchall() == [(11, 7, 1, "sent", 1, "<m1@example.nl>", 250, None),
                     (12, 7, 2, "deferred", 2, "<m2@example.nl>", 451, None)]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.execute("UPDATE campaigns SET status = 'cancelled'")  # the new statuses are allowed
    db.execute("UPDATE deliveries SET status = 7 WHERE id = 12")
    db.execute("DELETE FROM campaigns")  # and deleting a campaign still cascades to its rows
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
