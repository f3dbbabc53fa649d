"""Helpers for the sending tests: subscribers in bulk, a seed-shaped article, a config, and
the fixtures of a real SMTP relay (import `server` and `relay_env` into a test module)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smtp_server import Server
from sqlite_utils import Database

from newsletter.config import Config, load_config
from newsletter.db import now, open_db
from newsletter.delivery.campaigns import create_campaign, make_owner
from newsletter.delivery.pool import PoolOptions, RunResult
from newsletter.delivery.run import run_campaign

ARTICLE = """Testblad Nieuws

Waarom de fietsenmaker van Zwolle nu software schrijft

fietsenmaker-zwolle-schrijft-software

Toen Joost Ekker in 2019 zijn werkplaats aan de Thorbeckegracht overnam, had hij één doel: \
meer fietsen repareren in minder tijd. “Het papieren klantenboek was op”, zegt hij. Vijf jaar \
later verkoopt hij zijn planningssoftware aan tweeënveertig collega’s, voor € 29 per maand.

Van schroevendraaier naar server

De eerste versie draaide op een oude laptop achter de toonbank. "Als de stroom uitviel, was \
de agenda weg", lacht Ekker. Tegenwoordig staat alles in de cloud en krijgen klanten een sms \
zodra hun fiets klaar is.

Zijn advies aan andere ondernemers is nuchter: begin klein, praat met je klanten en schrijf \
pas code als het probleem écht pijn doet.

Joost Ekker - Eigenaar Fietswerk Zwolle

Marieke Dam - Redacteur Testblad

Subscribe by email
"""


def write_article(directory: Path, name: str = "artikel.txt", text: str = ARTICLE) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def add_subscribers(
    db: Database, count: int, *, domain: str = "example.nl", status: str = "active",
    cadence: str = "each", start: int = 0, language: str = "nl",
) -> list[str]:
    """Insert `count` subscribers quickly; returns their addresses."""
    stamp = now()
    emails = [f"lezer{n:06d}@{domain}" for n in range(start, start + count)]
    with db.conn:
        db.conn.executemany(
            "INSERT INTO subscribers (email, name, language, status, cadence, token, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (email, f"Lezer {n}", language, status, cadence, secrets.token_urlsafe(16), stamp, stamp)
                for n, email in enumerate(emails, start)
            ],
        )
    return emails


def make_config(workdir: Path, **settings: Any) -> Config:
    """The workdir's config with dotted-key overrides (e.g. {"smtp.url": ...})."""
    return load_config(workdir / "newsletter.toml", overrides=settings, environ={})


def open_workdb(config: Config) -> Database:
    return open_db(config.database)


def statuses(db: Database, campaign_id: int) -> dict[str, str]:
    """email -> delivery status of a campaign."""
    return {
        email: status
        for email, status in db.execute(
            "SELECT s.email, d.status FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.campaign_id = ?",
            [campaign_id],
        )
    }


@pytest.fixture
def server() -> Iterator[Server]:
    """A real aiosmtpd relay on 127.0.0.1 for the test."""
    srv = Server().start()
    yield srv
    srv.stop()


@pytest.fixture
def relay_env(server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """NEWSLETTER_* variables that point the CLI (in-process or a subprocess) at `server`."""
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "4",
           "NEWSLETTER_RETRY_MIN_BACKOFF": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


class Site:
    """An initialised directory with subscribers and an article, sending to `url`."""

    def __init__(self, workdir: Path, url: str, count: int, **settings: Any) -> None:
        self.workdir = workdir
        self.config = make_config(workdir, **{"smtp.url": url, **settings})
        self.db = open_workdb(self.config)
        self.emails = add_subscribers(self.db, count)
        self.article = write_article(workdir)

    def campaign(self, *, again: bool = False) -> int:
        return create_campaign(self.config, self.db, self.article, owner=make_owner(), again=again).id

    async def run(self, campaign_id: int, config: Config | None = None, **options: Any) -> RunResult:
        config = config or self.config
        defaults = {"concurrency": 4, "slowdown_pause": 0.1}
        opts = PoolOptions.from_config(config, **{**defaults, **options})
        return await run_campaign(config, self.db, campaign_id, owner=make_owner(), options=opts)

    def row(self, campaign_id: int, email: str) -> dict[str, Any]:
        return next(
            self.db.query(
                "SELECT d.* FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
                " WHERE d.campaign_id = ? AND s.email = ?",
                [campaign_id, email],
            )
        )

    def subscriber_status(self, email: str) -> str:
        return self.db.execute("SELECT status FROM subscribers WHERE email = ?", [email]).fetchone()[0]


@pytest.fixture
def make_site(workdir: Path) -> Any:
    def make(url: str, count: int = 20, **settings: Any) -> Site:
        return Site(workdir, url, count, **settings)

    return make
