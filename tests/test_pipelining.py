"""Pipelined sending (RFC 2920) against Postfix's smtp-sink and an aiosmtpd that offers it.

smtp-sink advertises PIPELINING and can drop a session after a given command (-q); its -f
and -r refusals turn PIPELINING off, so the refusals inside a pipelined group are tested
against aiosmtpd with PIPELINING added to its EHLO reply (aiosmtpd reads commands line by
line, so it serves a pipelined client as it is). The aiosmtpd handler also looks at what
was already received when MAIL FROM is handled: RCPT TO and DATA there mean they came in
the same write.
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from send_helpers import make_site  # noqa: F401
from smtp_server import DROP, RecordingHandler, Server

from newsletter.content.message import Recipient, crlf_only, qp_encode
from newsletter.delivery import pipelining, smtp_speedups
from newsletter.delivery.campaigns import builder_for, get_campaign

SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
_DATE = re.compile(rb"^Date: [^\r\n]*\r?\n", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """Postfix's smtp-sink on 127.0.0.1, each message dumped to a file of its own."""

    def __init__(self, *options: str) -> None:
        self.port = _free_port()
        # smtp-sink runs as nobody when started by root: the dump folder must be its to write.
        self.dump = Path(tempfile.mkdtemp(prefix="sink-", dir="/tmp"))
        self.dump.chmod(0o777)
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [SINK, *user, "-d", f"{self.dump}/%Y%m%d%H%M%S.", *options, f"127.0.0.1:{self.port}", "64"]
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"smtp+plain://127.0.0.1:{self.port}"

    def messages(self) -> dict[str, bytes]:
        """Recipient -> the message as smtp-sink received it (its LF line ends)."""
        out = {}
        for path in self.dump.iterdir():
            raw = path.read_bytes()
            rcpt = re.search(rb"^X-Rcpt-Args: <([^>]+)>", raw, re.MULTILINE)
            assert rcpt, raw[:300]
            # smtp-sink writes X-* lines and its Received header (folded) before the message,
            # and one more LF after it.
            body = re.split(rb"\nReceived: [^\n]*(?:\n\t[^\n]*)*\n", raw, maxsplit=1)[1]
            assert body.endswith(b"\n")
            out[rcpt.group(1).decode()] = body[:-1]
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dump, ignore_errors=True)


@pytest.fixture
def sink() -> Iterator[Callable[..., Sink]]:
    started: list[Sink] = []

    def start(*options: str) -> Sink:
        started.append(Sink(*options))
        return started[-1]

    yield start
    for one in started:
        one.stop()


@dataclass
class PipeliningHandler(RecordingHandler):
    """RecordingHandler behind an EHLO that offers PIPELINING, counting pipelined groups."""

    groups: int = 0  # MAIL FROM commands that arrived together with their RCPT TO and DATA
    commands: int = 0  # MAIL FROM commands seen
    drop_rcpt: Callable[[str], bool] | None = None  # close the connection on this RCPT, no reply
    accept_refused: bool = False  # DATA gets 354 even when RCPT was refused (not conforming)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        pending = bytes(getattr(server._reader, "_buffer", b""))
        self.commands += 1
        if b"RCPT TO:" in pending and b"DATA\r\n" in pending:
            self.groups += 1
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.drop_rcpt is not None and self.drop_rcpt(address):
            server.transport.abort()  # MAIL FROM answered; RCPT and DATA never are
            return "250 never seen"
        reply = await super().handle_RCPT(server, session, envelope, address, options)
        if self.accept_refused and not reply.startswith("2"):
            envelope.rcpt_tos.append(address)  # so aiosmtpd answers the DATA with 354
        return reply


@pytest.fixture
def piped() -> Iterator[Server]:
    srv = Server(PipeliningHandler()).start()
    yield srv
    srv.stop()


def _built(site: Any, cid: int) -> dict[str, bytes]:
    """Recipient -> the builder's bytes for them (Date left out: it changes every second)."""
    builder = builder_for(site.config, get_campaign(site.db, cid))
    out = {}
    for sid, email, name, token, language in site.db.execute(
        "SELECT id, email, name, token, language FROM subscribers"
    ):
        recipient = Recipient(subscriber_id=sid, email=email, name=name, token=token, language=language)
        out[email] = _DATE.sub(b"", builder.build(recipient))
    return out


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each message that goes the pipelined way (the real exchange still runs)."""
    calls: list[str] = []
    real = pipelining.transaction

    async def counted(client: Any, **kwargs: Any) -> str:
        calls.append(kwargs["recipient"])
        return await real(client, **kwargs)

    monkeypatch.setattr(pipelining, "transaction", counted)
    return calls


async def test_smtp_sink_gets_every_message_pipelined_and_byte_for_byte(sink, make_site, monkeypatch):
    server = sink()
    calls = _spy(monkeypatch)
    site = make_site(server.url, 12)
    cid = site.campaign()
    result = await site.run(cid)

    assert result.ok and result.status == "done" and result.progress.sent == 12
    assert sorted(calls) == sorted(site.emails)
    received = server.messages()
    built = _built(site, cid)
    assert sorted(received) == sorted(site.emails)
    dotted = 0
    for email in site.emails:
        sent = built[email]
        assert crlf_only(sent)
        dotted += sent.count(b"\n.")
        # smtp-sink undoes the dot-stuffing and stores LF line ends
        assert _DATE.sub(b"", received[email]) == sent.replace(b"\r\n", b"\n")
        assert site.row(cid, email)["status"] == "sent"
    assert dotted, "the article should have lines that start with a dot, to test the stuffing"


async def test_bytes_not_made_by_the_builder_are_stuffed_and_given_crlf(sink):
    server = sink()
    pipelining.install()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=10)
    await client.connect()
    data = b"Subject: dots\r\n\r\n.first\r\nbare\nlf\r\n.\r\n..two\r\nlast"
    try:
        assert pipelining.usable(client)
        reply = await pipelining.transaction(
            client, envelope="a@example.nl", recipient="b@example.nl", data=data, size=None, timeout=10,
        )
        assert reply.startswith("2.0.0")
    finally:
        await client.quit()
    (received,) = server.messages().values()
    assert received == b"Subject: dots\n\n.first\nbare\nlf\n.\n..two\nlast\n"


def test_wire_data_is_what_aiosmtplib_sends_after_data():
    stock = smtp_speedups.originals()
    samples = [b"a\r\nb\r\n", b".a\nb", b"x\r\n.\r\n.\r\n", b"\r.\r\n..", b"", b"a\rb\n.c"]
    for data in samples:
        expected = stock["period"].sub(b"..", stock["normalize"](data)) + b".\r\n"
        assert pipelining.wire_data(data) == expected, data
        if crlf_only(data):
            assert pipelining.wire_data(data, crlf_only=True) == expected, data


def test_quoted_printable_has_crlf_line_ends_only_and_decodes_to_the_text():
    rng = random.Random(13)
    for _ in range(3000):
        lines = ["".join(rng.choice("ab .é=\t\r") for _ in range(rng.randint(0, 180))) for _ in range(rng.randint(1, 4))]
        text = "\r\n".join(lines) + "\r\n"
        encoded = qp_encode(text)
        assert crlf_only(encoded), encoded
        assert max(len(line) for line in encoded.split(b"\r\n")) <= 76
        assert binascii.a2b_qp(encoded) == text.encode("utf-8")


async def test_without_pipelining_advertised_or_wanted_the_plain_path_sends(sink, make_site, monkeypatch):
    calls = _spy(monkeypatch)
    plain = sink("-p")  # smtp-sink without PIPELINING in its EHLO reply
    site = make_site(plain.url, 5)
    result = await site.run(site.campaign())
    assert result.ok and result.progress.sent == 5 and calls == []
    assert len(plain.messages()) == 5

    offered = sink()
    config = dataclasses.replace(site.config, smtp_url=offered.url, smtp_pipelining=False)
    result = await site.run(site.campaign(again=True), config)
    assert result.ok and result.progress.sent == 5 and calls == []
    assert len(offered.messages()) == 5


async def test_a_drop_right_after_the_pipelined_commands_sends_nothing_and_loses_nobody(sink, make_site):
    # smtp-sink answers MAIL and RCPT, then closes the session on DATA without a reply:
    # the message never went out. The rows go back untouched (not deferred: nothing was
    # attempted), and the run stops on the relay's behaviour, as on a failed connect.
    dropping = sink("-q", "data")
    site = make_site(dropping.url, 6)
    cid = site.campaign()
    result = await site.run(cid, connect_attempts=3)

    assert not result.ok and result.progress.sent == 0 and result.progress.deferred == 0
    assert dropping.messages() == {}
    for email in site.emails:
        row = site.row(cid, email)
        assert (row["status"], row["attempts"]) == ("queued", 0)

    good = sink()
    config = dataclasses.replace(site.config, smtp_url=good.url)
    again = await site.run(cid, config)
    assert again.ok and again.status == "done" and again.progress.sent == 6
    assert sorted(good.messages()) == sorted(site.emails)


async def test_a_drop_after_the_message_went_out_is_an_unknown_outcome_retried(sink, make_site):
    dropping = sink("-q", ".")  # the message arrived; the final reply never comes
    site = make_site(dropping.url, 4, **{"retry.min_backoff": 1})
    cid = site.campaign()
    result = await site.run(cid)
    assert result.progress.sent == 0 and result.progress.deferred == 4
    for email in site.emails:
        row = site.row(cid, email)
        assert (row["status"], row["attempts"]) == ("deferred", 1)
        assert "outcome unknown" in row["reply_text"]


async def test_a_refused_rcpt_inside_a_pipelined_group_is_that_recipients_outcome(piped, make_site, monkeypatch):
    calls = _spy(monkeypatch)
    handler = piped.handler
    site = make_site(piped.url, 8)
    unknown, greylisted = site.emails[2], site.emails[5]
    replies = {unknown: "550 5.1.1 No such user", greylisted: "450 4.2.0 Greylisted, try later"}
    handler.on_rcpt = lambda rcpt, n: replies.get(rcpt)
    cid = site.campaign()
    result = await site.run(cid, concurrency=1)  # one connection: it must survive the refusals

    assert result.ok and result.progress.sent == 6 and calls
    assert handler.groups == handler.commands == 8 and result.progress.connections == 1
    assert sorted(handler.by_rcpt()) == sorted(set(site.emails) - {unknown, greylisted})
    row = site.row(cid, unknown)
    assert (row["status"], row["reply_code"]) == ("bounced", 550)
    assert site.subscriber_status(unknown) != "active"
    row = site.row(cid, greylisted)
    assert (row["status"], row["reply_code"], row["attempts"]) == ("deferred", 450, 1)


async def test_a_server_that_opens_data_after_a_refused_rcpt_gets_an_empty_message(piped, make_site):
    handler = piped.handler
    handler.accept_refused = True
    site = make_site(piped.url, 4)
    refused = site.emails[1]
    handler.on_rcpt = lambda rcpt, n: "550 5.1.1 No such user" if rcpt == refused else None
    cid = site.campaign()
    result = await site.run(cid, concurrency=1)

    assert result.ok and result.progress.sent == 3 and result.progress.connections == 1
    assert site.row(cid, refused)["status"] == "bounced"
    # What went to the refused address is the lone dot: an empty message, nothing of ours.
    assert [m.data for m in handler.by_rcpt()[refused]] == [b""]
    for email in set(site.emails) - {refused}:
        (message,) = handler.by_rcpt()[email]
        assert b"\r\nTo: " in message.data and site.row(cid, email)["status"] == "sent"


async def test_a_refused_mail_from_in_a_pipelined_group_stops_the_run(piped, make_site):
    handler = piped.handler
    handler.on_mail = lambda sender, n: "553 5.1.8 Sender address rejected: Domain not found"
    site = make_site(piped.url, 5)
    cid = site.campaign()
    result = await site.run(cid)

    assert not result.ok and handler.groups >= 1
    assert "refused our envelope sender" in (result.error or "")
    assert handler.messages == []
    for email in site.emails:
        assert site.row(cid, email)["status"] == "queued"
    assert all(site.subscriber_status(email) == "active" for email in site.emails)


async def test_4xx_and_5xx_final_replies_after_a_pipelined_group(piped, make_site):
    handler = piped.handler
    site = make_site(piped.url, 6)
    later, never = site.emails[0], site.emails[3]
    finals = {later: "451 4.3.0 Queue trouble, try later", never: "554 5.6.0 Message content rejected"}
    handler.on_data = lambda rcpt, n: finals.get(rcpt)
    cid = site.campaign()
    result = await site.run(cid, concurrency=2)

    assert result.ok and result.progress.sent == 4 and handler.groups == handler.commands == 6
    assert (site.row(cid, later)["status"], site.row(cid, later)["reply_code"]) == ("deferred", 451)
    assert (site.row(cid, never)["status"], site.row(cid, never)["reply_code"]) == ("failed", 554)
    assert site.subscriber_status(never) == "active"  # 5.6.0 is about the message, not the address


async def test_a_drop_after_mail_from_in_a_pipelined_group_retries_the_row_untouched(piped, make_site):
    handler = piped.handler
    site = make_site(piped.url, 6)
    unlucky = site.emails[2]
    dropped: list[str] = []

    def once(rcpt: str) -> bool:
        if rcpt == unlucky and not dropped:
            dropped.append(rcpt)
            return True
        return False

    handler.drop_rcpt = once
    cid = site.campaign()
    result = await site.run(cid)

    assert dropped == [unlucky]
    assert result.ok and result.status == "done" and result.progress.sent == 6
    assert result.progress.deferred == 0
    received = handler.by_rcpt()
    assert sorted(received) == sorted(site.emails)
    assert all(len(copies) == 1 for copies in received.values())
    row = site.row(cid, unlucky)
    assert (row["status"], row["attempts"]) == ("sent", 1)  # the dropped try never counted


async def test_a_message_lost_after_it_went_out_keeps_its_message_id_on_the_retry(piped, make_site):
    handler = piped.handler
    site = make_site(piped.url, 3, **{"retry.min_backoff": 1})
    unlucky = site.emails[1]
    handler.on_data = lambda rcpt, n: DROP if rcpt == unlucky and not handler.by_rcpt().get(rcpt) else None
    cid = site.campaign()
    await site.run(cid)
    assert site.row(cid, unlucky)["status"] == "deferred"
    await asyncio.sleep(1.1)
    handler.on_data = None
    result = await site.run(cid)
    assert result.ok and result.status == "done"
    first, second = handler.by_rcpt()[unlucky]
    assert first.message_id == second.message_id and first.message_id
    assert handler.groups == handler.commands


def test_a_signed_pipelined_campaign_killed_with_sigkill_resumes_without_loss(workdir, piped, tmp_path):
    import dkim

    from newsletter.content.dkim import generate_key_pair
    from newsletter.db import open_db
    from send_helpers import add_subscribers, open_workdb, write_article
    from send_helpers import make_config as send_config

    count, concurrency = 1500, 8
    pair = generate_key_pair(selector="nb2026", domain="example.nl", out_dir=tmp_path)
    db = open_workdb(send_config(workdir))
    emails = add_subscribers(db, count)
    db.conn.close()
    write_article(workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update({
        "NEWSLETTER_SMTP_URL": piped.url, "NEWSLETTER_SENDING_CONCURRENCY": str(concurrency),
        "NEWSLETTER_DKIM_SELECTOR": "nb2026", "NEWSLETTER_DKIM_DOMAIN": "example.nl",
        "NEWSLETTER_DKIM_KEY_FILE": str(pair.private_key_file),
    })
    handler = piped.handler
    handler.delay = 0.01  # every connection busy: messages always in flight
    first = subprocess.Popen([sys.executable, "-m", "newsletter", "send", "artikel.txt"], cwd=workdir,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(handler.messages) < 300:
        assert time.monotonic() < deadline and first.poll() is None, "the first run did not get going"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    received_at_kill = len(handler.messages)
    assert received_at_kill < count

    db = open_db(workdir / "subscribers.db")
    in_flight = {row[0] for row in db.execute(
        "SELECT s.email FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.status = 'sending'"
    )}
    db.conn.close()
    assert len(in_flight) <= concurrency

    handler.delay = 0
    second = subprocess.run([sys.executable, "-m", "newsletter", "send", "artikel.txt"], cwd=workdir,
                            env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "Resuming campaign 1" in second.stderr and "Campaign done" in second.stderr

    assert handler.groups == handler.commands >= count  # every message went pipelined
    received = handler.by_rcpt()
    assert sorted(received) == sorted(emails)  # nobody lost
    duplicates = {rcpt: copies for rcpt, copies in received.items() if len(copies) > 1}
    assert set(duplicates) <= in_flight  # only rows in flight at the kill went twice
    for copies in duplicates.values():
        assert len(copies) == 2 and len({c.message_id for c in copies}) == 1

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return pair.record_value.encode("ascii") if name.decode().rstrip(".") == pair.record_name else None

    for message in handler.messages[:: max(1, len(handler.messages) // 20)]:
        assert message.data.startswith(b"DKIM-Signature: ")
        assert dkim.verify(message.data, dnsfunc=lookup)  # stuffing and unstuffing kept every byte


@pytest.mark.parametrize("scheme", ["smtp", "smtps"], ids=["starttls", "implicit"])
async def test_pipelining_over_tls_delivers(make_site, tmp_path, monkeypatch, scheme):
    import ssl

    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    tls = {"tls_context": context, "require_starttls": True} if scheme == "smtp" else {"ssl_context": context}
    srv = Server(PipeliningHandler(), scheme=scheme, **tls).start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    calls = _spy(monkeypatch)
    try:
        site = make_site(srv.url, 6, **{"smtp.ca_file": str(ca_file)})
        cid = site.campaign()
        result = await site.run(cid, concurrency=2)
        assert result.ok and result.progress.sent == 6 and len(calls) == 6
        built = _built(site, cid)
        for message in srv.handler.messages:
            assert _DATE.sub(b"", message.data) == built[message.rcpt]
    finally:
        srv.stop()


@pytest.mark.parametrize("command", ["mail", "rcpt"])
async def test_a_421_and_hang_up_inside_a_pipelined_group_defers_and_slows_down(sink, make_site, command):
    closing = sink("-Q", command)  # smtp-sink: 421 to that command, then it closes the session
    site = make_site(closing.url, 4, **{"retry.min_backoff": 1})
    cid = site.campaign()
    result = await site.run(cid, concurrency=2)
    assert result.progress.sent == 0 and result.progress.slowdowns >= 1
    assert closing.messages() == {}
    for email in site.emails:
        row = site.row(cid, email)
        assert (row["status"], row["reply_code"]) == ("deferred", 421)


async def test_an_aiosmtplib_that_makes_its_protocol_elsewhere_gets_the_plain_path(sink, make_site, monkeypatch):
    import aiosmtplib.smtp as aiosmtplib_smtp
    from aiosmtplib.protocol import SMTPProtocol

    class Other(SMTPProtocol):
        pass

    # As if a new aiosmtplib created another protocol class: install() must notice, say
    # why, and leave every connection on aiosmtplib's own reading (the plain path).
    monkeypatch.setattr(aiosmtplib_smtp, "SMTPProtocol", Other)
    calls = _spy(monkeypatch)
    server = sink()
    site = make_site(server.url, 4)
    result = await site.run(site.campaign())
    assert result.ok and result.progress.sent == 4 and calls == []
    assert result.smtp_fallback is not None and "SMTPProtocol" in result.smtp_fallback
    assert aiosmtplib_smtp.SMTPProtocol is Other
    assert len(server.messages()) == 4
