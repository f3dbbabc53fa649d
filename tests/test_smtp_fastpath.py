"""The fast paths for aiosmtplib's DATA preparation give exactly the bytes the originals give."""

from __future__ import annotations

import pytest
from send_helpers import make_config
from smtp_server import Server

from newsletter.delivery import smtp_speedups
from newsletter.delivery.single import send_one

SAMPLES = [
    b"",
    b"Subject: x\r\n\r\nbody\r\n",
    b"Subject: x\r\n\r\nno final line end",
    b"Subject: x\n\nbare LF\n",
    b"Subject: x\r\n\r\nbare CR\rin the middle\r\n",
    b"Subject: x\r\n\r\n.starts with a dot\r\n",
    b".first line is a dot\r\n",
    b"Subject: x\r\n\r\nline\r\n..two dots\r\n.\r\nend\r\n",
    b"Subject: x\r\n\r\nmixed\r\n.dot\nLF\rCR\r\n",
    b"\r\n\r\n\r\n",
    b"\r",
    b"\n",
    b".",
    b"..",
    b"\n.\n.\n..\r\n.",
    b"a\r.b\r\n.c",
    b"<style>\r\n.header { color: red }\r\n.footer{}\r\n</style>\r\n",
]


@pytest.mark.parametrize("message", SAMPLES)
def test_the_fast_paths_return_what_aiosmtplib_would(message: bytes) -> None:
    originals = smtp_speedups.originals()
    normalize, period = originals["normalize"], originals["period"]
    assert smtp_speedups.normalize_message_line_endings(message) == normalize(message)
    normalized = normalize(message)
    assert smtp_speedups._PeriodPattern().sub(b"..", normalized) == period.sub(b"..", normalized)


ADDRESSES = [
    "lezer@example.nl",
    "Lezer <lezer@example.nl>",
    "bounces+AbC_123-x@example.nl",
    '"quoted local"@example.nl',
    "  spaced@example.nl  ",
    "no-at-sign",
    "",
    "a@b.nl> SIZE=1",
    "a b@c.nl",
    "<a@b.nl>\r\nRCPT TO:<c@d.nl>",
    "x@y.nl\r\nDATA",
]


def _outcome(function, address: str) -> str:
    try:
        return function(address)
    except ValueError:
        return "ValueError"
@pytest.mark.parametrize("address", ADDRESSES)
def test_remembered_address_parsing_gives_the_same_answers_and_errors(address: str) -> None:
    originals = smtp_speedups.originals()
    for _ in range(2):  # the second call comes from the cache
        for name in ("parse_address", "quote_address"):
            fast = getattr(smtp_speedups, name)
            assert _outcome(fast, address) == _outcome(originals[name], address)


def test_install_is_idempotent_and_used_by_aiosmtplib() -> None:
    import aiosmtplib.protocol as protocol
    import aiosmtplib.smtp as smtp

    smtp_speedups.install()
    smtp_speedups.install()
    assert protocol.normalize_message_line_endings is smtp_speedups.normalize_message_line_endings
    assert isinstance(protocol.PERIOD_REGEX, smtp_speedups._PeriodPattern)
    assert smtp.parse_address is smtp_speedups.parse_address
    assert smtp.quote_address is smtp_speedups.quote_address


async def test_lines_opening_with_a_dot_arrive_intact(workdir) -> None:
    server = Server().start()
    try:
        config = make_config(workdir, **{"smtp.url": server.url})
        data = b"Subject: dots\r\nMessage-ID: <d@example.nl>\r\n\r\n.one\r\n..two\r\nthree.\r\n"
        outcome, _ = await send_one(config, envelope="nieuws@example.nl", recipient="a@example.nl", data=data)
        assert outcome.status == "sent"
        assert server.handler.messages[0].data == data
    finally:
        server.stop()


async def test_a_pool_uses_aiosmtplibs_own_code_and_says_so_when_its_internals_changed(
    workdir, monkeypatch
) -> None:
    import re

    import aiosmtplib.protocol as protocol

    from newsletter.content.message import Recipient
    from newsletter.db import open_db
    from newsletter.delivery.campaigns import builder_for, create_campaign, get_campaign, make_owner
    from newsletter.delivery.pool import PoolOptions
    from newsletter.delivery.run import run_campaign

    # An aiosmtplib whose dot-stuffing pattern is not the one the fast path replaces.
    monkeypatch.setattr(protocol, "PERIOD_REGEX", re.compile(rb"^\.", re.MULTILINE))
    server = Server().start()
    try:
        config = make_config(workdir, **{"smtp.url": server.url})
        db = open_db(config.database)
        with db.conn:
            db.execute(
                "INSERT INTO subscribers (id, email, name, language, status, cadence, token, created_at,"
                " updated_at) VALUES (1, 'a@example.nl', 'Ann', 'nl', 'active', 'each', 'tok1', '', '')"
            )
        (workdir / "a.txt").write_text("Titel\n\n.Een regel die met een punt begint.\n", encoding="utf-8")
        owner = make_owner()
        campaign = create_campaign(config, db, workdir / "a.txt", owner=owner)
        options = PoolOptions.from_config(config, concurrency=1)
        result = await run_campaign(config, db, campaign.id, owner=owner, options=options)
        assert result.ok and result.counts["sent"] == 1
        assert result.smtp_fallback is not None and "PERIOD_REGEX" in result.smtp_fallback
        assert not isinstance(protocol.PERIOD_REGEX, smtp_speedups._PeriodPattern)
        assert protocol.normalize_message_line_endings is smtp_speedups.originals()["normalize"]
        assert protocol.normalize_message_line_endings is not smtp_speedups.normalize_message_line_endings
        recipient = Recipient(subscriber_id=1, email="a@example.nl", name="Ann", token="tok1", language="nl")
        expected = builder_for(config, get_campaign(db, campaign.id)).build(recipient)
        (message,) = server.handler.messages

        def undated(data: bytes) -> list[bytes]:  # the Date header is of the second it was built
            return [line for line in data.split(b"\r\n") if not line.startswith(b"Date: ")]

        assert b"\r\n." in expected  # a line that opens with a dot: stuffed by aiosmtplib's own code
        assert undated(message.data) == undated(expected)
    finally:
        server.stop()
    # With aiosmtplib as the fast paths expect, the next pool installs them again.
    monkeypatch.undo()
    assert smtp_speedups.install() is None
    assert isinstance(protocol.PERIOD_REGEX, smtp_speedups._PeriodPattern)
