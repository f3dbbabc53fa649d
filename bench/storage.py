"""Benchmark: bytes per delivery row and per subscriber row, before and after the compact rows.

Bytes per row = pages of the table plus its indexes (SQLite's dbstat) over its rows.
- Delivery rows, before: the 0009 schema (today's main) with sent rows as main's ledger
  wrote them (status text, ISO times, the reply text, the Message-ID, the relay's name),
  CAMPAIGNS campaigns of SUBSCRIBERS rows each, claimed and then answered in batches.
- The same database after migration 0010 converted it in place.
- After, as written: a fresh database whose campaigns go through the real Ledger (claim,
  then a 250 with a queue id), rows built by the real feed; no SMTP, only the writes.
- Subscriber rows: the real import of a CSV (tokens, events, checks) against a bare
  executemany of the same fields into a table without indexes.
Run: .venv/bin/python bench/storage.py [--quick] [SUBSCRIBERS]
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlite_utils import Database  # noqa: E402

from newsletter.audience import import_export  # noqa: E402
from newsletter.config import load_config  # noqa: E402
from newsletter.db import now, open_db  # noqa: E402
from newsletter.delivery.campaigns import create_campaign, make_owner  # noqa: E402
from newsletter.delivery.ledger import Ledger, Result, acquire_lease, finish_run  # noqa: E402
from newsletter.delivery.outcomes import classify_reply  # noqa: E402
from newsletter.delivery.queue import iter_batches  # noqa: E402
from newsletter.migrations import MIGRATIONS  # noqa: E402
from newsletter.scaffold import init_directory  # noqa: E402

CAMPAIGNS = 3
ARTICLE = "Testblad\n\nEen artikel voor de opslag-benchmark\n\nopslag-benchmark\n\nTekst met € en é.\n"


def per_row(db: Database | sqlite3.Connection, table: str) -> tuple[float, dict[str, float]]:
    conn = db.conn if isinstance(db, Database) else db
    rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    parts = dict(conn.execute(
        "SELECT name, sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master"
        " WHERE tbl_name = ? AND type IN ('table', 'index')) GROUP BY name", [table]
    ).fetchall())
    return sum(parts.values()) / rows, {name: size / rows for name, size in parts.items()}


def show(label: str, figure: tuple[float, dict[str, float]]) -> None:
    total, parts = figure
    detail = ", ".join(f"{name} {size:.0f}" for name, size in sorted(parts.items(), key=lambda p: -p[1]))
    print(f"{label:<44} {total:6.1f} bytes/row  ({detail})")


def before(directory: Path, subscribers: int) -> Path:
    """The 0009 schema, with sent rows as main's ledger wrote them."""
    path = directory / "before.db"
    db = Database(sqlite3.connect(path))
    db.execute("PRAGMA foreign_keys = ON")
    MIGRATIONS.apply(db, stop_before="0010_compact_deliveries")
    stamp = now()
    with db.conn:
        db.conn.executemany(
            "INSERT INTO subscribers (email, name, language, status, cadence, token, created_at, updated_at)"
            " VALUES (?, ?, 'nl', 'active', 'each', ?, ?, ?)",
            [(f"lezer{n:07d}@example.nl", f"Lezer {n}", secrets.token_urlsafe(16), stamp, stamp)
             for n in range(subscribers)],
        )
    for c in range(1, CAMPAIGNS + 1):
        key = secrets.token_hex(8)
        with db.conn:
            db.execute("INSERT INTO campaigns (id, kind, subject, status, campaign_key, created_at, updated_at)"
                       " VALUES (?, 'article', 'x', 'done', ?, ?, ?)", [c, key, stamp, stamp])
            db.execute("INSERT INTO deliveries (campaign_id, subscriber_id, status)"
                       " SELECT ?, id, 'queued' FROM subscribers ORDER BY id", [c])
        ids = db.execute("SELECT id, subscriber_id FROM deliveries WHERE campaign_id = ?", [c]).fetchall()
        for start in range(0, len(ids), 200):
            part = ids[start:start + 200]
            claimed, answered = now(), now(later_by=0.2)
            with db.conn:
                db.conn.executemany(
                    "UPDATE deliveries SET status = 'sending', message_id = ?, last_attempt_at = ?, claim = ?"
                    " WHERE id = ?",
                    [(f"<{key}.{key}.{sid}@example.nl>", claimed, "host:1234:abcdef01", i) for i, sid in part])
                db.conn.executemany(
                    "UPDATE deliveries SET status = 'sent', attempts = 1, reply_code = 250,"
                    " enhanced_code = '2.0.0', reply_text = ?, queue_id = ?, relay = 'smtp.example.nl:587',"
                    " sent_at = ?, last_attempt_at = ?, first_attempt_at = ?, next_attempt_at = NULL,"
                    " claim = NULL WHERE id = ?",
                    [(f"2.0.0 Ok: queued as 4Q{i:08X}", f"4Q{i:08X}", answered, answered, answered, i)
                     for i, _sid in part])
    db.conn.close()
    return path


def written(directory: Path, subscribers: int) -> Database:
    """A fresh database whose campaigns' rows go through the real feed and Ledger."""
    site = directory / "site"
    init_directory(site, values={"sender.address": "nieuws@example.nl"})
    config = load_config(site / "newsletter.toml", environ={})
    db = open_db(config.database)
    stamp = now()
    with db.conn:
        db.conn.executemany(
            "INSERT INTO subscribers (email, name, language, status, cadence, token, created_at, updated_at)"
            " VALUES (?, ?, 'nl', 'active', 'each', ?, ?, ?)",
            [(f"lezer{n:07d}@example.nl", f"Lezer {n}", secrets.token_urlsafe(16), stamp, stamp)
             for n in range(subscribers)],
        )
    (site / "artikel.txt").write_text(ARTICLE, encoding="utf-8")
    for c in range(CAMPAIGNS):
        campaign = create_campaign(config, db, site / "artikel.txt", owner=make_owner(), again=c > 0)
        owner = make_owner()
        acquire_lease(db, campaign.id, owner=owner, ttl=60)
        ledger = Ledger(db, campaign.id, owner=owner, ttl=60, min_backoff=300, max_backoff=3600, lifetime=432000)
        pending: list[Result] = []
        for batch in iter_batches(config, db, campaign.id, at=now()):
            claimed, _skipped = ledger.commit(pending, batch)
            pending = [
                Result(item, classify_reply(250, f"2.0.0 Ok: queued as 4Q{item.delivery_id:08X}"),
                       "smtp.example.nl:587")
                for item in claimed
            ]
        ledger.commit(pending, [])
        finish_run(db, campaign.id, owner=owner)
    return db


def subscriber_rows(directory: Path, subscribers: int) -> None:
    source = directory / "leden.csv"
    with source.open("w", encoding="utf-8") as out:
        out.write("email;name;lang;cadence\n")
        for n in range(subscribers):
            out.write(f"lezer{n:07d}@example.nl;Lezer {n} de Vries;nl;{'each' if n % 3 else 'weekly'}\n")
    db = open_db(directory / "import.db")
    import_export.import_file(db, source)
    show("subscribers, imported", per_row(db, "subscribers"))
    rows = db.execute("SELECT email, name, language, status, cadence, token, consent_at, consent_source,"
                      " created_at, updated_at, confirmed_at FROM subscribers").fetchall()
    bare = sqlite3.connect(directory / "bare.db")
    bare.execute("CREATE TABLE subscribers (id INTEGER PRIMARY KEY, email, name, language, status, cadence,"
                 " token, consent_at, consent_source, created_at, updated_at, confirmed_at)")
    with bare:
        bare.executemany("INSERT INTO subscribers (email, name, language, status, cadence, token, consent_at,"
                         " consent_source, created_at, updated_at, confirmed_at) VALUES"
                         " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    show("subscribers, bare insert (reference)", per_row(bare, "subscribers"))


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--quick"]
    subscribers = int(args[0]) if args else (5_000 if "--quick" in sys.argv else 50_000)
    print(f"{CAMPAIGNS} campaigns x {subscribers:,} subscribers; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = before(directory, subscribers)
        conn = sqlite3.connect(path)
        show("deliveries, before (0009, as main wrote them)", per_row(conn, "deliveries"))
        conn.close()
        start = time.perf_counter()
        migrated = open_db(path)
        took = time.perf_counter() - start
        show("deliveries, after migration 0010", per_row(migrated, "deliveries"))
        print(f"  (migration 0010 converted {CAMPAIGNS * subscribers:,} rows in place in {took:.1f} s)")
        migrated.conn.close()
        show("deliveries, after, written by the ledger", per_row(written(directory, subscribers), "deliveries"))
        subscriber_rows(directory, subscribers)


if __name__ == "__main__":
    main()
