"""Helpers for the return-mailbox tests: a site that really sent a campaign (through the
aiosmtpd relay of smtp_server.py) and the fixture corpus with its placeholders filled in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from send_helpers import add_subscribers, make_config, open_workdb, write_article
from smtp_server import Server

from newsletter.delivery.campaigns import create_campaign, envelope_sender, make_owner, verp_token
from newsletter.delivery.pool import PoolOptions
from newsletter.delivery.run import run_campaign

CORPUS = Path(__file__).parent / "fixtures" / "bounces"
ENVELOPE = "bounces+{token}@example.nl"


class SentSite:
    """An initialised directory whose campaign went out to `count` subscribers at example.net."""

    def __init__(self, workdir: Path, server: Server, count: int = 4, **settings: Any) -> None:
        self.workdir = workdir
        self.config = make_config(
            workdir, **{"smtp.url": server.url, "sender.envelope": ENVELOPE, **settings}
        )
        self.db = open_workdb(self.config)
        self.emails = add_subscribers(self.db, count, domain="example.net")
        self.article = write_article(workdir)

    async def send(self, *, again: bool = False) -> int:
        campaign = create_campaign(self.config, self.db, self.article, owner=make_owner(), again=again)
        options = PoolOptions.from_config(self.config, concurrency=2)
        result = await run_campaign(self.config, self.db, campaign.id, owner=make_owner(), options=options)
        assert result.ok
        return campaign.id

    def delivery(self, campaign_id: int, email: str) -> dict[str, Any]:
        return next(self.db.query(
            "SELECT d.*, s.token, c.campaign_key FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
            " JOIN campaigns c ON c.id = d.campaign_id WHERE d.campaign_id = ? AND s.email = ?",
            [campaign_id, email],
        ))

    def fill(self, name: str, campaign_id: int, email: str) -> bytes:
        """The corpus message `name` as it would come back for this delivery."""
        row = self.delivery(campaign_id, email)
        values = {
            b"@@VERP@@": envelope_sender(self.config, verp_token(row["id"], row["campaign_key"])).encode(),
            b"@@MID@@": row["message_id"].encode(),
            b"@@RCPT@@": email.encode(),
            b"@@TOKEN@@": row["token"].encode(),
        }
        data = (CORPUS / name).read_bytes()
        for placeholder, value in values.items():
            data = data.replace(placeholder, value)
        return data

    def status(self, email: str) -> str:
        return self.db.execute("SELECT status FROM subscribers WHERE email = ?", [email]).fetchone()[0]

    def events(self, email: str, *, since: int = 0) -> list[tuple[str, dict[str, Any]]]:
        sid = self.db.execute("SELECT id FROM subscribers WHERE email = ?", [email]).fetchone()[0]
        return [
            (kind, json.loads(detail))
            for kind, detail in self.db.execute(
                "SELECT kind, detail FROM events WHERE subscriber_id = ? AND id > ? ORDER BY id", [sid, since]
            )
        ]

    def last_event_id(self) -> int:
        return self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
