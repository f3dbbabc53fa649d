"""DKIM signing off the event loop's core (delivery/signing.py): the same bytes as signing in
build(), every signature verified by dkimpy, and the ledger's guarantees through a kill -9
of a real `newsletter send` that signs in its own signer processes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import dkim
import pytest
import time_machine
from processes_helpers import alive, children_of, spawn_env, wait_for
from send_helpers import add_subscribers, make_config, server, write_article  # noqa: F401
from smtp_server import Server

from newsletter.config import Config
from newsletter.content.dkim import DkimSigner, KeyPair, generate_key_pair, load_signer
from newsletter.content.message import SIGNED_HEADERS, Recipient
from newsletter.cron import _result_text
from newsletter.db import now, open_db
from newsletter.delivery import signing
from newsletter.delivery.campaigns import builder_for, create_campaign, get_campaign, make_owner
from newsletter.delivery.ledger import Item
from newsletter.delivery.pool import PoolOptions
from newsletter.delivery.queue import iter_batches
from newsletter.delivery.run import run_campaign
from newsletter.delivery.signing import BatchSigner, SignerProcess, signed_feed

SELECTOR = "nb2026"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    # one 2048-bit key for the module: making one takes a noticeable fraction of a second
    return generate_key_pair(selector=SELECTOR, domain="example.nl", out_dir=tmp_path_factory.mktemp("dkim"))


def dns(pair: KeyPair):
    """A DNS lookup that knows only the published record (no network in tests)."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return pair.record_value.encode("ascii") if name.decode().rstrip(".") == pair.record_name else None

    return lookup


def dkim_settings(pair: KeyPair) -> dict[str, str]:
    return {"dkim.selector": pair.selector, "dkim.domain": pair.domain, "dkim.key_file": str(pair.private_key_file)}


def dkim_env(pair: KeyPair) -> dict[str, str]:
    return {"NEWSLETTER_DKIM_SELECTOR": pair.selector, "NEWSLETTER_DKIM_DOMAIN": pair.domain,
            "NEWSLETTER_DKIM_KEY_FILE": str(pair.private_key_file)}


def signed_campaign(workdir: Path, pair: KeyPair, count: int) -> tuple[Config, int]:
    config = make_config(workdir, **dkim_settings(pair))
    db = open_db(config.database)
    add_subscribers(db, count)
    campaign = create_campaign(config, db, write_article(workdir), owner=make_owner())
    db.conn.close()
    return config, campaign.id


async def collect(feed) -> list[Item]:
    return [item for items in [batch async for batch in feed] for item in items]


@pytest.mark.parametrize("mode", ["process", "thread", "inline"])
def test_the_signed_bytes_are_the_ones_build_signs_in_the_loop(workdir: Path, key: KeyPair, mode: str) -> None:
    config, campaign_id = signed_campaign(workdir, key, 130)  # three batches, the last one short
    db = open_db(config.database)
    at = now()
    # The clock stands still, so the Date header and t= are the same in both paths; the
    # signer process gets t= from this one, so its signatures must be the same bytes.
    with time_machine.travel(1_790_000_000, tick=False):
        in_loop = [item for items in iter_batches(config, db, campaign_id, at=at, batch=50) for item in items]
        off_loop = asyncio.run(collect(signed_feed(config, db, campaign_id, at=at, mode=mode, workers=2)))
    db.conn.close()
    assert len(in_loop) == 130
    assert off_loop == in_loop  # the same rows in the same order, byte for byte
    assert all(item.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;") for item in off_loop)
    # And the signature over the whole message, as sign() canonicalises it (the way build()
    # signed before the body hash came from the builder's pieces), is the same header.
    signer = load_signer(config)
    assert signer is not None
    for item in off_loop:
        header, _, message = item.data.partition(b"\r\nFrom: ")
        whole = signer.sign(b"From: " + message, include_headers=SIGNED_HEADERS, now=1_790_000_000)
        assert whole == header + b"\r\n"
    for item in off_loop[::13]:
        assert dkim.verify(item.data, dnsfunc=dns(key))


def test_a_feed_without_a_dkim_key_yields_the_unsigned_messages(workdir: Path) -> None:
    config = make_config(workdir)
    db = open_db(config.database)
    add_subscribers(db, 20)
    campaign = create_campaign(config, db, write_article(workdir), owner=make_owner())
    at = now()
    with time_machine.travel(1_790_000_000, tick=False):
        plain = [item for items in iter_batches(config, db, campaign.id, at=at, batch=50) for item in items]
        fed = asyncio.run(collect(signed_feed(config, db, campaign.id, at=at, mode="process")))
    db.conn.close()
    assert fed == plain and not any(item.data.startswith(b"DKIM") for item in fed)


def test_sending_signing_must_be_one_of_the_modes(workdir: Path) -> None:
    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sending\.signing.*process, thread, inline"):
        make_config(workdir, **{"sending.signing": "gpu"})
    assert make_config(workdir, **{"sending.signing": "Thread"}).sending_signing == "thread"
    assert make_config(workdir).sending_signing == "process"


def _spawn(workdir: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args], cwd=workdir, env=spawn_env(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _signers(pid: int) -> set[int]:
    """The signer processes of a sending process (delivery/signer_worker.py)."""
    found = set()
    for child in children_of(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"newsletter.delivery.signer_worker" in cmdline:
            found.add(child)
    return found


def _deliveries(workdir: Path) -> list[tuple[str, str, str]]:
    db = open_db(workdir / "subscribers.db")
    rows = db.execute(
        "SELECT s.email, d.status, d.message_id FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
    ).fetchall()
    db.conn.close()
    return rows


def test_kill_9_of_a_signed_campaign_then_resume_sends_everyone_once_signed(
    workdir: Path, server: Server, key: KeyPair  # noqa: F811
) -> None:
    count = 500
    db = open_db(workdir / "subscribers.db")
    emails = add_subscribers(db, count)
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "4",
           "NEWSLETTER_SENDING_SIGNING": "process", "NEWSLETTER_SENDING_SIGNERS": "2", **dkim_env(key)}
    server.handler.delay = 0.02  # messages are really in flight when the kill comes

    first = _spawn(workdir, env, "send", "artikel.txt")
    signers: set[int] = set()

    def signing_off_the_loop() -> bool:
        signers.update(_signers(first.pid))
        return len(server.handler.messages) >= 150 and bool(signers)

    wait_for(signing_off_the_loop)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # Signers die with the sender they sign for (and never send anything themselves).
    wait_for(lambda: not any(alive(pid) for pid in signers), timeout=10)
    in_flight = {email: mid for email, status, mid in _deliveries(workdir) if status == "sending"}
    assert len(in_flight) <= 4  # the crash window: at most the concurrency
    received_before = len(server.handler.messages)
    assert received_before < count

    resumed = _spawn(workdir, env, "resume", "1")
    _, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err

    rows = _deliveries(workdir)
    assert [status for _, status, _ in rows] == ["sent"] * count
    received = server.handler.by_rcpt()
    assert sorted(received) == sorted(emails)  # everyone got it
    twice = {email for email, copies in received.items() if len(copies) > 1}
    assert twice <= set(in_flight)  # twice only if in flight at the kill
    assert all(len(copies) <= 2 for copies in received.values())
    for email, _, message_id in rows:
        assert {copy.message_id for copy in received[email]} == {message_id}
    lookup = dns(key)
    for message in server.handler.messages:
        assert dkim.verify(message.data, dnsfunc=lookup), message.rcpt
        assert re.search(rb"^DKIM-Signature: .*\bs=nb2026;", message.data, re.MULTILINE | re.DOTALL)


def test_a_signer_killed_mid_campaign_leaves_the_rest_signed_in_the_loop(
    workdir: Path, server: Server, key: KeyPair  # noqa: F811
) -> None:
    # More than the pool holds built and signed ahead (600 waiting for a connection, 4
    # batches of 50 signed or being signed) after the 60 that arrive first: the rest must
    # be signed after the kill.
    count = 1500
    db = open_db(workdir / "subscribers.db")
    emails = add_subscribers(db, count)
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "4",
           "NEWSLETTER_SENDING_SIGNING": "process", "NEWSLETTER_SENDING_SIGNERS": "1", **dkim_env(key)}
    server.handler.delay = 0.01
    sender = _spawn(workdir, env, "send", "artikel.txt")
    signers: set[int] = set()

    def signing() -> bool:
        signers.update(_signers(sender.pid))
        return len(server.handler.messages) >= 60 and bool(signers)

    wait_for(signing)
    for pid in signers:  # the kernel's OOM killer, say: not the campaign's fault
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, err = sender.communicate(timeout=180)
    assert sender.returncode == 0, err
    assert ("DKIM signing: the signer process stopped during the run; the rest was signed in the sending"
            " process, more slowly") in err
    assert [status for _, status, _ in _deliveries(workdir)] == ["sent"] * count
    received = server.handler.by_rcpt()
    assert sorted(received) == sorted(emails) and all(len(c) == 1 for c in received.values())
    lookup = dns(key)
    assert all(dkim.verify(m.data, dnsfunc=lookup) for m in server.handler.messages)


@pytest.mark.parametrize("started", [0, 1])
def test_signers_that_cannot_start_leave_the_campaign_signed_not_broken(
    workdir: Path, server: Server, key: KeyPair, monkeypatch: pytest.MonkeyPatch, started: int  # noqa: F811
) -> None:
    # The process table is full (fork's EAGAIN) after `started` signers: as root here, no
    # limit can make it so, so the start of a signer process is made to fail as fork fails.
    real_popen = subprocess.Popen
    calls = []

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        calls.append(args)
        if len(calls) > started:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(signing.subprocess, "Popen", popen)
    config = make_config(workdir, **dkim_settings(key), **{"smtp.url": server.url, "sending.signing": "process",
                                                           "sending.signers": 2})
    db = open_db(config.database)
    emails = add_subscribers(db, 120)
    campaign = create_campaign(config, db, write_article(workdir), owner=make_owner())
    options = PoolOptions.from_config(config, concurrency=4)
    result = asyncio.run(run_campaign(config, db, campaign.id, owner=make_owner(), options=options))

    assert result.ok and result.status == "done", result.error
    assert len(calls) == started + 1
    assert result.signing_fallback == (
        "only 1 of 2 signer processes could be started ([Errno 11] Resource temporarily unavailable)" if started
        else "no signer process could be started ([Errno 11] Resource temporarily unavailable); every message"
        " was signed in the sending process, more slowly")
    assert sorted(server.handler.by_rcpt()) == sorted(emails)
    lookup = dns(key)
    assert all(dkim.verify(m.data, dnsfunc=lookup) for m in server.handler.messages)
    # What `newsletter run` (cron) logs of the run says it too.
    assert _result_text(result).endswith(f"; DKIM signing: {result.signing_fallback}")


def test_a_sharded_signed_campaign_signs_in_each_shards_own_signer(
    workdir: Path, server: Server, key: KeyPair  # noqa: F811
) -> None:
    from newsletter.delivery.processes import SHARD_MIN_DUE

    count = SHARD_MIN_DUE + 100
    db = open_db(workdir / "subscribers.db")
    emails = add_subscribers(db, count)
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "4",
           "NEWSLETTER_SENDING_PROCESSES": "2", "NEWSLETTER_SENDING_SIGNERS": "1", **dkim_env(key)}
    sender = _spawn(workdir, env, "send", "artikel.txt")
    signers: set[int] = set()

    def shards_sign() -> bool:
        for shard in children_of(sender.pid):
            signers.update(_signers(shard))
        return len(signers) >= 2 or sender.poll() is not None

    wait_for(shards_sign, timeout=120)
    assert len(signers) >= 2  # one signer under each of the two shards
    # One shard's signer dies while its shard has 1,050 messages to send and holds at most
    # 800 built ahead: that shard signs the rest itself, and the run says so.
    with contextlib.suppress(ProcessLookupError):
        os.kill(min(signers), signal.SIGKILL)
    _, err = sender.communicate(timeout=300)
    assert sender.returncode == 0, err
    assert ("DKIM signing: the signer process stopped during the run; the rest was signed in the sending"
            " process, more slowly") in err
    received = server.handler.by_rcpt()
    assert sorted(received) == sorted(emails) and all(len(c) == 1 for c in received.values())
    lookup = dns(key)
    assert all(m.data.startswith(b"DKIM-Signature: ") for m in server.handler.messages)
    assert all(dkim.verify(m.data, dnsfunc=lookup) for m in server.handler.messages[::20])


def _signer_and_heads(workdir: Path, pair: KeyPair, count: int) -> tuple[DkimSigner, list[bytes], list[str], tuple[str, ...]]:
    """The campaign's signer and its first `count` messages as header blocks and bh=."""
    config, campaign_id = signed_campaign(workdir, pair, count)
    db = open_db(config.database)
    builder = builder_for(config, get_campaign(db, campaign_id))
    heads: list[bytes] = []
    hashes: list[str] = []
    for sid in range(1, count + 1):
        data, hashed = builder.build_for_signing(
            Recipient(subscriber_id=sid, email=f"r{sid}@example.nl", name=f"Lezer {sid}", token=f"tok{sid:08d}", language="nl")
        )
        assert hashed is not None
        heads.append(data[:data.index(b"\r\n\r\n")])
        hashes.append(hashed)
    db.conn.close()
    assert builder.signer is not None
    return builder.signer, heads, hashes, builder.signed_headers


def test_a_batch_larger_than_the_socket_buffer_comes_back_signed_byte_for_byte(workdir: Path, key: KeyPair) -> None:
    signer, heads, hashes, include = _signer_and_heads(workdir, key, 40)
    heads, hashes = heads * 60, hashes * 60  # 2,400 header blocks: well over a megabyte each way

    async def sign() -> list[bytes]:
        process = SignerProcess(signer, include_headers=include)
        try:
            while not process.ready:
                await asyncio.sleep(0.01)
            first = process.submit(heads, hashes, now=1_790_000_000)
            second = process.submit(heads[:3], hashes[:3], now=1_790_000_001)  # answered in order
            return [*await first, *await second]
        finally:
            process.close()

    got = asyncio.run(sign())
    expected = [signer.sign_head(h, body_hash=b, include_headers=include, now=1_790_000_000) for h, b in zip(heads, hashes, strict=True)]
    expected += [signer.sign_head(h, body_hash=b, include_headers=include, now=1_790_000_001)
                 for h, b in zip(heads[:3], hashes[:3], strict=True)]
    assert got == expected


def test_a_signer_process_that_dies_before_it_is_ready_leaves_the_batches_signed_inline(
    workdir: Path, key: KeyPair
) -> None:
    signer, heads, hashes, include = _signer_and_heads(workdir, key, 10)

    async def sign() -> tuple[list[bytes], int, bool]:
        signing = BatchSigner(signer, include_headers=include, mode="process", workers=1)
        process = signing._processes[0]
        process._process.kill()
        while process.alive:  # the loop sees the socket close
            await asyncio.sleep(0.01)
        future = signing.submit(heads, hashes, now=1_790_000_000)
        signatures = await signing.signed(future, heads, hashes, now=1_790_000_000)
        signing.close()
        return signatures, signing.inline_batches, process._process.poll() is not None

    signatures, inline, reaped = asyncio.run(sign())
    assert signatures == [signer.sign_head(h, body_hash=b, include_headers=include, now=1_790_000_000)
                          for h, b in zip(heads, hashes, strict=True)]
    assert inline == 1 and reaped


def test_process_signing_runs_no_thread_in_the_sending_process(workdir: Path, key: KeyPair) -> None:
    import threading

    config, campaign_id = signed_campaign(workdir, key, 300)
    db = open_db(config.database)
    before = threading.active_count()
    seen: set[int] = set()

    async def run() -> int:
        count = 0
        signing_off_the_loop = False
        async for items in signed_feed(config, db, campaign_id, at=now(), mode="process", workers=1):
            seen.add(threading.active_count())
            count += len(items)
            signing_off_the_loop = signing_off_the_loop or bool(_signers(os.getpid()))
        assert signing_off_the_loop
        return count

    assert asyncio.run(run()) == 300
    db.conn.close()
    assert seen == {before}
