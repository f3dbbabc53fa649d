"""Numbered schema migrations, applied in order every time the database is opened.

Each migration is a small function registered with MIGRATIONS; sqlite-utils records which
ones ran (table _sqlite_migrations) and runs each in its own transaction. A released
migration is never edited: change the schema by adding the next number.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database, Migrations

MIGRATIONS = Migrations("newsletter")


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
