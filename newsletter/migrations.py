"""Numbered schema migrations, applied in order every time the database is opened.

Each migration is a small function registered with MIGRATIONS; sqlite-utils records which
ones ran (table _sqlite_migrations) and runs each in its own transaction. A released
migration is never edited: change the schema by adding the next number.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from .migration_set import MigrationSet

if TYPE_CHECKING:
    from sqlite_utils import Database

MIGRATIONS = MigrationSet("newsletter")


def run_script(db: Database, script: str) -> None:
    """Run SQL statements one by one inside the migration's transaction.

    sqlite3's executescript() would COMMIT first and break the migration's atomicity.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement!r}")


@MIGRATIONS(name="0001_subscribers_and_events")
def m0001_subscribers_and_events(db: Database) -> None:
    run_script(
        db,
        """
        CREATE TABLE subscribers (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL COLLATE NOCASE UNIQUE,
            name TEXT NOT NULL DEFAULT '',
            language TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('nl', 'en')),
            status TEXT NOT NULL DEFAULT 'pending' CHECK (
                status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')
            ),
            cadence TEXT NOT NULL DEFAULT 'each' CHECK (cadence IN ('each', 'daily', 'weekly')),
            token TEXT NOT NULL UNIQUE,
            consent_at TEXT,
            consent_source TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            confirmed_at TEXT,
            unsubscribed_at TEXT
        );
        CREATE INDEX subscribers_status_cadence ON subscribers (status, cadence);

        -- Append-only: who did what to which subscriber, when and through what.
        -- No foreign key: an erased subscriber's events stay, and hold no personal data.
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            subscriber_id INTEGER,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            actor TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX events_subscriber ON events (subscriber_id);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        """
    )


@MIGRATIONS(name="0002_suppressions")
def m0002_suppressions(db: Database) -> None:
    # Erased addresses live on only as a one-way hash, so they are never mailed or
    # imported again by accident.
    run_script(
        db,
        """
        CREATE TABLE suppressions (
            email_hash TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """
    )


@MIGRATIONS(name="0003_articles")
def m0003_articles(db: Database) -> None:
    # source_text keeps the decoded file so a stored article is re-parsed, never kept in a
    # second representation that could drift from its source. sent_at is set by the sending
    # engine when a campaign of the article is created; after that a changed file needs --force.
    run_script(
        db,
        """
        CREATE TABLE articles (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            summary TEXT NOT NULL DEFAULT '',
            format TEXT NOT NULL CHECK (format IN ('text', 'markdown')),
            language TEXT,
            author TEXT,
            published_at TEXT,
            source_file TEXT NOT NULL,
            source_text TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            sent_at TEXT
        );
        """
    )


@MIGRATIONS(name="0004_campaigns_and_deliveries")
def m0004_campaigns_and_deliveries(db: Database) -> None:
    # A campaign keeps the rendered emails (JSON, one RenderedEmail per language) so a
    # resumed run after a crash rebuilds exactly the bytes the first run would have sent,
    # even if the article file or the templates changed in between.
    # The lease (owner, expiry) is how two processes never send the same campaign at once;
    # a holder that dies stops renewing it, so it cannot hold it forever.
    run_script(
        db,
        """
        CREATE TABLE campaigns (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('article', 'digest', 'test')),
            article_slug TEXT,
            subject TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'creating' CHECK (
                status IN ('creating', 'ready', 'sending', 'paused', 'waiting', 'done')
            ),
            campaign_key TEXT NOT NULL UNIQUE,
            rendered TEXT NOT NULL DEFAULT '{}',
            total INTEGER NOT NULL DEFAULT 0,
            sent INTEGER NOT NULL DEFAULT 0,
            deferred INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            bounced INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            last_run_at TEXT,
            finished_at TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX campaigns_article ON campaigns (article_slug, kind);

        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
            -- Erasing a subscriber erases their deliveries too: a reply text can quote
            -- the address.
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
            status TEXT NOT NULL DEFAULT 'queued' CHECK (
                status IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'bounced', 'skipped')
            ),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            first_attempt_at TEXT,
            last_attempt_at TEXT,
            reply_code INTEGER,
            enhanced_code TEXT,
            reply_text TEXT,
            message_id TEXT,
            queue_id TEXT,
            relay TEXT,
            sent_at TEXT,
            UNIQUE (campaign_id, subscriber_id)
        );
        -- The scheduler walks a campaign's due rows in id order: (campaign, status) keeps
        -- each status's rows in rowid order, so that walk is an index range scan.
        CREATE INDEX deliveries_campaign_status ON deliveries (campaign_id, status);
        CREATE INDEX deliveries_retry ON deliveries (status, next_attempt_at);
        CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id);
        """
    )


# 0005 refers to the tables of 0003 and 0004 by name only (no foreign keys): a digest
# campaign is an ordinary campaign, and its articles are listed in digest_campaigns.


@MIGRATIONS(name="0005_schedules_and_feeds")
def m0005_schedules_and_feeds(db: Database) -> None:
    # Feed items are keyed by the feed's address, not its row id, so removing a feed and
    # adding it again never turns its old items into new articles.
    # digest_queue is "marked for the digests": an article enters the digest of the period
    # that contains released_at (when `send` mailed it to `each` subscribers, or when a feed
    # poll brought it in), so an article is in exactly one daily and one weekly period.
    # digest_periods makes a digest idempotent: one row per period key, whatever happens.
    run_script(
        db,
        """
        CREATE TABLE feeds (
            id INTEGER PRIMARY KEY,
            address TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL DEFAULT '',
            added_at TEXT NOT NULL,
            last_polled_at TEXT,
            last_ok_at TEXT,
            last_error TEXT,
            etag TEXT,
            modified TEXT
        );

        CREATE TABLE feed_items (
            id INTEGER PRIMARY KEY,
            feed_address TEXT NOT NULL,
            item_key TEXT NOT NULL,
            article_slug TEXT NOT NULL,
            link TEXT NOT NULL DEFAULT '',
            published_at TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (feed_address, item_key)
        );

        CREATE TABLE digest_queue (
            article_slug TEXT PRIMARY KEY,
            released_at TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('send', 'feed', 'cli')),
            link TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX digest_queue_released ON digest_queue (released_at);

        CREATE TABLE digest_periods (
            period_key TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('daily', 'weekly')),
            start_at TEXT NOT NULL,
            end_at TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('creating', 'created', 'empty', 'skipped')),
            articles INTEGER NOT NULL DEFAULT 0,
            recipients INTEGER NOT NULL DEFAULT 0,
            campaigns TEXT NOT NULL DEFAULT '[]',
            note TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        -- Which articles each digest campaign carried, so a later digest knows what a
        -- subscriber already received through it.
        CREATE TABLE digest_campaigns (
            campaign_id INTEGER NOT NULL,
            period_key TEXT NOT NULL,
            article_slug TEXT NOT NULL,
            PRIMARY KEY (campaign_id, article_slug)
        );
        CREATE INDEX digest_campaigns_article ON digest_campaigns (article_slug);

        CREATE TABLE scheduled_sends (
            id INTEGER PRIMARY KEY,
            article_slug TEXT NOT NULL,
            due_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'scheduled' CHECK (
                status IN ('scheduled', 'started', 'sent', 'cancelled', 'skipped', 'failed')
            ),
            campaign_id INTEGER,
            note TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX scheduled_sends_due ON scheduled_sends (status, due_at);
        """
    )


@MIGRATIONS(name="0006_inbound_messages")
def m0006_inbound_messages(db: Database) -> None:
    # One row per message the return mailbox read, by fingerprint (the bounce's own
    # Message-ID, date, subject and body, not the headers each delivery path prepends), so
    # the same bounce arriving by pipe and from a mailbox counts once. No address and no
    # quoted text: `reason` says why a message was not used, in our words; `location` is
    # where it was found (a file name, an IMAP UID), so it can be looked at by hand.
    # Findings about subscribers are events (kinds bounced, soft_bounce, bounce, complained,
    # unsubscribed); soft bounces are counted from those events.
    run_script(
        db,
        """
        CREATE TABLE inbound_messages (
            id INTEGER PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE,
            received_at TEXT NOT NULL,
            via TEXT NOT NULL CHECK (via IN ('pipe', 'maildir', 'mbox', 'imap')),
            location TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL CHECK (
                kind IN ('bounce', 'complaint', 'unsubscribe', 'auto_reply', 'other', 'bad')
            ),
            findings INTEGER NOT NULL DEFAULT 0,
            matched INTEGER NOT NULL DEFAULT 0,
            reason TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX inbound_messages_kind ON inbound_messages (kind);
        CREATE INDEX events_kind ON events (kind, at);
        """
    )


@MIGRATIONS(name="0007_delivery_claims_and_cancel")
def m0007_delivery_claims_and_cancel(db: Database) -> None:
    # deliveries.claim names the run that marked a row `sending` (its lease owner): a run
    # writes an outcome only onto a row that is still `sending` and still its own, so a
    # sender that was frozen past its lease cannot overwrite what the next one recorded.
    # `cancelled` (a delivery or a whole campaign: `newsletter cancel`) and `broken` (a
    # campaign whose messages cannot be built) are new statuses. SQLite cannot alter a
    # CHECK constraint, so both tables are rebuilt; deliveries is moved aside first,
    # because dropping campaigns while a table refers to it would cascade-delete its rows.
    run_script(
        db,
        """
        CREATE TABLE campaigns_new (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('article', 'digest', 'test')),
            article_slug TEXT,
            subject TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'creating' CHECK (
                status IN ('creating', 'ready', 'sending', 'paused', 'waiting', 'done',
                           'broken', 'cancelled')
            ),
            campaign_key TEXT NOT NULL UNIQUE,
            rendered TEXT NOT NULL DEFAULT '{}',
            total INTEGER NOT NULL DEFAULT 0,
            sent INTEGER NOT NULL DEFAULT 0,
            deferred INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            bounced INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            last_run_at TEXT,
            finished_at TEXT,
            updated_at TEXT NOT NULL
        );
        INSERT INTO campaigns_new (id, kind, article_slug, subject, status, campaign_key, rendered,
            total, sent, deferred, failed, bounced, skipped, lease_owner, lease_expires_at,
            created_at, started_at, last_run_at, finished_at, updated_at)
        SELECT id, kind, article_slug, subject, status, campaign_key, rendered,
            total, sent, deferred, failed, bounced, skipped, lease_owner, lease_expires_at,
            created_at, started_at, last_run_at, finished_at, updated_at
        FROM campaigns;
        CREATE TABLE deliveries_old AS SELECT * FROM deliveries;
        DROP TABLE deliveries;
        DROP TABLE campaigns;
        ALTER TABLE campaigns_new RENAME TO campaigns;
        CREATE INDEX campaigns_article ON campaigns (article_slug, kind);

        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
            status TEXT NOT NULL DEFAULT 'queued' CHECK (
                status IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'bounced', 'skipped',
                           'cancelled')
            ),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            first_attempt_at TEXT,
            last_attempt_at TEXT,
            reply_code INTEGER,
            enhanced_code TEXT,
            reply_text TEXT,
            message_id TEXT,
            queue_id TEXT,
            relay TEXT,
            sent_at TEXT,
            claim TEXT,
            UNIQUE (campaign_id, subscriber_id)
        );
        INSERT INTO deliveries (id, campaign_id, subscriber_id, status, attempts, next_attempt_at,
            first_attempt_at, last_attempt_at, reply_code, enhanced_code, reply_text, message_id,
            queue_id, relay, sent_at)
        SELECT id, campaign_id, subscriber_id, status, attempts, next_attempt_at,
            first_attempt_at, last_attempt_at, reply_code, enhanced_code, reply_text, message_id,
            queue_id, relay, sent_at
        FROM deliveries_old ORDER BY id;
        DROP TABLE deliveries_old;
        CREATE INDEX deliveries_campaign_status ON deliveries (campaign_id, status);
        CREATE INDEX deliveries_retry ON deliveries (status, next_attempt_at);
        CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id);
        """
    )


@MIGRATIONS(name="0008_meta")
def m0008_meta(db: Database) -> None:
    # Facts about the database itself; `migrated_by` is the version of newsletter that last
    # applied a migration, so an older version can name the one that made a newer schema.
    run_script(
        db,
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """
    )


# Confirmation emails to every pending subscriber go through the sending pool as a campaign
# of their own kind, so the ledger's guarantees (batches, rate limit, resume, retries) apply.
# SQLite cannot alter a CHECK constraint, and rebuilding `campaigns` would cascade-delete
# every delivery (DROP TABLE deletes its rows first, foreign keys are on). Widening a CHECK
# changes no stored data, so this edits the schema text in place, the procedure SQLite's
# ALTER TABLE documentation gives for it (writable_schema, then a new schema_version).
_OLD_KINDS = "kind IN ('article', 'digest', 'test')"
_NEW_KINDS = "kind IN ('article', 'digest', 'test', 'confirmation')"


@MIGRATIONS(name="0009_confirmation_campaign_kind")
def m0009_confirmation_campaign_kind(db: Database) -> None:
    version = db.execute("PRAGMA schema_version").fetchone()[0]
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'campaigns'").fetchone()[0]
    if _OLD_KINDS not in sql:
        raise ValueError("migration 0009: the campaigns table is not the one 0007 made")
    db.execute("PRAGMA writable_schema = ON")
    try:
        db.execute(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'campaigns'",
            [sql.replace(_OLD_KINDS, _NEW_KINDS)],
        )
        db.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        db.execute("PRAGMA writable_schema = OFF")


# Compact delivery rows (issue 13): a sent row shrinks from about 290 bytes to under 100.
# - status is a small integer (delivery/codes.py holds the mapping; the numbers are spelled
#   out here because a released migration is frozen), times are integer milliseconds UTC.
# - A sent row keeps no reply text (its code, enhanced code and the relay's queue id say
#   it all), no sent_at or first_attempt_at when they equal last_attempt_at, and names
#   its relay by a small integer (delivery_relays).
# - The Message-ID is derived: campaigns.message_ids is the campaign's printf template
#   ('<label.digest.%d@domain>', filled with the subscriber id); deliveries.message_id is
#   '' when the row's ID is that one (no byte), NULL when it never carried one, and the
#   ID itself only when it differs (the sender's domain changed half-way).
# - Indexes: UNIQUE (subscriber_id, campaign_id) replaces both UNIQUE (campaign_id,
#   subscriber_id) and the subscriber index; (campaign_id, status) stays for the counts;
#   deliveries_retry holds only the rows still to try (next_attempt_at set: 0 for queued
#   and in-flight rows, the due time for deferred ones), so a finished row costs it nothing.
# - delivery_counts keeps the per-status counts of campaigns whose rows `prune` folded.
# deliveries is rebuilt (nothing refers to it); delivery_rows shows it as text again.
_STATUS_CODES = (
    ("queued", 0), ("sent", 1), ("sending", 2), ("deferred", 3),
    ("failed", 4), ("bounced", 5), ("skipped", 6), ("cancelled", 7),
)


def _ms(column: str) -> str:
    return f"CAST(round((julianday({column}) - 2440587.5) * 86400000) AS INTEGER)"


def _iso(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NOT NULL THEN strftime('%Y-%m-%dT%H:%M:%S', {column} / 1000, 'unixepoch')"
        f" || printf('.%06d+00:00', ({column} % 1000) * 1000) END"
    )


def _message_id_template(message_id: str, subscriber_id: int) -> str | None:
    head, sep, tail = message_id.rpartition(f".{subscriber_id}@")
    if not sep or "%" in head or "%" in tail:
        return None
    return f"{head}.%d@{tail}"


@MIGRATIONS(name="0010_compact_deliveries")
def m0010_compact_deliveries(db: Database) -> None:
    db.execute("ALTER TABLE campaigns ADD COLUMN message_ids TEXT")
    for (campaign_id,) in db.execute("SELECT id FROM campaigns").fetchall():
        # A sent row always has its ID: found through (campaign_id, status) at once.
        row = db.execute(
            "SELECT subscriber_id, message_id FROM deliveries WHERE campaign_id = ? AND status = 'sent'"
            " AND message_id IS NOT NULL LIMIT 1",
            [campaign_id],
        ).fetchone() or db.execute(
            "SELECT subscriber_id, message_id FROM deliveries WHERE campaign_id = ? AND message_id IS NOT NULL"
            " LIMIT 1",
            [campaign_id],
        ).fetchone()
        template = _message_id_template(row[1], row[0]) if row else None
        if template:
            db.execute("UPDATE campaigns SET message_ids = ? WHERE id = ?", [template, campaign_id])
    to_code = " ".join(f"WHEN '{name}' THEN {code}" for name, code in _STATUS_CODES)
    to_name = " ".join(f"WHEN {code} THEN '{name}'" for name, code in _STATUS_CODES)
    run_script(
        db,
        f"""
        CREATE TABLE delivery_relays (
            id INTEGER PRIMARY KEY,
            label TEXT NOT NULL UNIQUE
        );
        INSERT INTO delivery_relays (label)
            SELECT DISTINCT relay FROM deliveries WHERE relay IS NOT NULL AND relay != '' ORDER BY relay;

        CREATE TABLE delivery_counts (
            campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
            status INTEGER NOT NULL,
            count INTEGER NOT NULL,
            folded_at TEXT NOT NULL,
            PRIMARY KEY (campaign_id, status)
        ) WITHOUT ROWID;

        CREATE TABLE deliveries_new (
            id INTEGER PRIMARY KEY,
            campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
            status INTEGER NOT NULL DEFAULT 0 CHECK (status BETWEEN 0 AND 7),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER DEFAULT 0,
            first_attempt_at INTEGER,
            last_attempt_at INTEGER,
            reply_code INTEGER,
            enhanced_code TEXT,
            reply_text TEXT,
            message_id TEXT,
            queue_id TEXT,
            relay INTEGER,
            sent_at INTEGER,
            claim TEXT
        );
        INSERT INTO deliveries_new (id, campaign_id, subscriber_id, status, attempts, next_attempt_at,
            first_attempt_at, last_attempt_at, reply_code, enhanced_code, reply_text, message_id,
            queue_id, relay, sent_at, claim)
        SELECT d.id, d.campaign_id, d.subscriber_id, CASE d.status {to_code} END, d.attempts,
            CASE WHEN d.status IN ('queued', 'sending') THEN coalesce({_ms('d.next_attempt_at')}, 0)
                 WHEN d.status = 'deferred' THEN {_ms('d.next_attempt_at')} END,
            CASE WHEN d.status = 'sent' AND d.first_attempt_at = d.last_attempt_at THEN NULL
                 ELSE {_ms('d.first_attempt_at')} END,
            {_ms('d.last_attempt_at')}, d.reply_code, d.enhanced_code,
            CASE WHEN d.status = 'sent' THEN NULL ELSE d.reply_text END,
            CASE WHEN d.message_id = printf(c.message_ids, d.subscriber_id) THEN '' ELSE d.message_id END,
            d.queue_id, (SELECT r.id FROM delivery_relays AS r WHERE r.label = d.relay),
            CASE WHEN d.status = 'sent' AND d.sent_at = d.last_attempt_at THEN NULL
                 ELSE {_ms('d.sent_at')} END,
            d.claim
        FROM deliveries AS d JOIN campaigns AS c ON c.id = d.campaign_id ORDER BY d.id;
        DROP TABLE deliveries;
        ALTER TABLE deliveries_new RENAME TO deliveries;
        CREATE UNIQUE INDEX deliveries_subscriber ON deliveries (subscriber_id, campaign_id);
        CREATE INDEX deliveries_campaign_status ON deliveries (campaign_id, status);
        CREATE INDEX deliveries_retry ON deliveries (campaign_id) WHERE next_attempt_at IS NOT NULL;

        -- The rows as they read before 0010, for people (and tests) who look with sqlite3.
        CREATE VIEW delivery_rows AS
        SELECT d.id, d.campaign_id, d.subscriber_id, CASE d.status {to_name} END AS status,
            d.attempts,
            CASE WHEN d.status = 3 OR d.next_attempt_at > 0 THEN {_iso('d.next_attempt_at')} END
                AS next_attempt_at,
            {_iso('CASE WHEN d.status = 1 THEN coalesce(d.first_attempt_at, d.last_attempt_at) ELSE d.first_attempt_at END')}
                AS first_attempt_at,
            {_iso('d.last_attempt_at')} AS last_attempt_at,
            d.reply_code, d.enhanced_code, d.reply_text,
            CASE WHEN d.message_id = '' THEN printf(c.message_ids, d.subscriber_id) ELSE d.message_id END
                AS message_id,
            d.queue_id, r.label AS relay,
            {_iso('CASE WHEN d.status = 1 THEN coalesce(d.sent_at, d.last_attempt_at) ELSE d.sent_at END')}
                AS sent_at,
            d.claim
        FROM deliveries AS d JOIN campaigns AS c ON c.id = d.campaign_id
        LEFT JOIN delivery_relays AS r ON r.id = d.relay;
        """,
    )


# `status` lists every campaign; recounting each one's delivery rows (a covering-index scan
# of its rows, about 5 ms per 100,000) made it take seconds once a year of digests was
# stored. A finished campaign (done or cancelled) now keeps its counts in its row: finish
# and cancel write them, a bounce that arrives later moves them by one, and `status` reads
# them instead of its rows. This adds the one count the row lacked and recounts every
# finished campaign once, from its rows and the counts `prune` folded, so the stored counts
# of databases made before bounces moved them start out exact.
_COUNTED = ("sent", "deferred", "failed", "bounced", "skipped", "cancelled")


@MIGRATIONS(name="0011_finished_campaign_counts")
def m0011_finished_campaign_counts(db: Database) -> None:
    db.execute("ALTER TABLE campaigns ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0")
    recount = ", ".join(
        f"{name} = (SELECT count(*) FROM deliveries AS d WHERE d.campaign_id = campaigns.id"
        f" AND d.status = {code}) + coalesce((SELECT k.count FROM delivery_counts AS k"
        f" WHERE k.campaign_id = campaigns.id AND k.status = {code}), 0)"
        for name, code in _STATUS_CODES if name in _COUNTED
    )
    db.execute(f"UPDATE campaigns SET {recount} WHERE status IN ('done', 'cancelled')")
