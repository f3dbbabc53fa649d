"""`newsletter serve` as a real subprocess on 127.0.0.1 (a free port), for the web tests.

The server's stdout and stderr go to one file, so a test can check what it printed (its URL,
and that no token ever appears in it).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from smtp_server import Server, free_port
from sqlite_utils import Database

from newsletter.db import open_db


@dataclass
class WebServer:
    """A running `newsletter serve` and where its output goes."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.output()


def start_web(
    directory: Path, *, env: dict[str, str] | None = None, web_url: str | None = None, port: int | None = None
) -> WebServer:
    """Start `newsletter serve` in `directory` and wait until /healthz answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = dict(os.environ)  # the test's NEWSLETTER_* (relay_env) included
    full_env["NEWSLETTER_WEB_URL"] = web_url or full_env.get("NEWSLETTER_WEB_URL") or url
    full_env.update(env or {})
    log = directory / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=directory, env=full_env, stdout=out, stderr=subprocess.STDOUT,
        )
    server = WebServer(url=url, process=process, log=log)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise AssertionError(f"newsletter serve exited: {server.output()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"newsletter serve did not start: {server.output()}")
        time.sleep(0.1)


@pytest.fixture
def web(workdir: Path, relay_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[WebServer]:
    """`newsletter serve` over the workdir, sending its emails to the test's aiosmtpd relay;
    web.url points at it for the in-process CLI too."""
    port = free_port()
    monkeypatch.setenv("NEWSLETTER_WEB_URL", f"http://127.0.0.1:{port}")
    server = start_web(workdir, port=port)
    yield server
    server.stop()


def db_of(workdir: Path) -> Database:
    return open_db(workdir / "subscribers.db")


def subscriber(db: Database, email_address: str) -> dict[str, object]:
    row = db.execute(
        "SELECT id, status, cadence, language, token FROM subscribers WHERE email = ?", [email_address]
    ).fetchone()
    assert row is not None, email_address
    return dict(zip(("id", "status", "cadence", "language", "token"), row, strict=True))


def events(db: Database, subscriber_id: int) -> list[tuple[str, str]]:
    return [tuple(r) for r in db.execute(  # type: ignore[misc]
        "SELECT kind, source FROM events WHERE subscriber_id = ? ORDER BY id", [subscriber_id]
    )]


def html_part(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=email.policy.default)
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def links_in(data: bytes, path: str) -> list[str]:
    """The http(s) links of the message's HTML part whose path starts with `path` (/u/, /c/, /p/)."""
    return re.findall(r'href="(https?://[^"]*' + re.escape(path) + r'[^"]*)"', html_part(data))


def wait_for_messages(relay: Server, count: int, *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(relay.handler.messages) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(relay.handler.messages)} messages arrived, expected {count}")
        time.sleep(0.05)
