"""The fast paths for aiosmtplib's DATA preparation give exactly the bytes the originals give."""

from __future__ import annotations

import pytest
from send_helpers import make_config
from smtp_server import Server

from newsletter.delivery import smtp_speedups as smtp_fastpath
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
    originals = smtp_fastpath.originals()
    normalize, period = originals["normalize"], originals["period"]
    assert smtp_fastpath.normalize_message_line_endings(message) == normalize(message)
    normalized = normalize(message)
    assert smtp_fastpath._PeriodPattern().sub(b"..", normalized) == period.sub(b"..", normalized)


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
    originals = smtp_fastpath.originals()
    for _ in range(2):  # the second call comes from the cache
        for name in ("parse_address", "quote_address"):
            fast = getattr(smtp_fastpath, name)
            assert _outcome(fast, address) == _outcome(originals[name], address)


def test_install_is_idempotent_and_used_by_aiosmtplib() -> None:
    import aiosmtplib.protocol as protocol
    import aiosmtplib.smtp as smtp

    smtp_fastpath.install()
    smtp_fastpath.install()
    assert protocol.normalize_message_line_endings is smtp_fastpath.normalize_message_line_endings
    assert isinstance(protocol.PERIOD_REGEX, smtp_fastpath._PeriodPattern)
    assert smtp.parse_address is smtp_fastpath.parse_address
    assert smtp.quote_address is smtp_fastpath.quote_address


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
