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
