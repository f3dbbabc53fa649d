"""Subject, From and To from user text: sent through a real aiosmtpd server and parsed back.

The rule under test (newsletter/headers.py): a header carries the text with whitespace at
the ends trimmed and inner runs of whitespace made one space; anything else arrives exactly,
or the value is refused (a line break or control character) with a HeaderValueError.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import re
import unicodedata
from datetime import datetime
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from send_helpers import ARTICLE, add_subscribers, make_config, open_workdb, relay_env, server  # noqa: F401
from smtp_server import Server

from newsletter.delivery.campaigns import create_campaign, make_owner
from newsletter.config import Config
from newsletter.errors import HeaderValueError
from newsletter.content.headers import address_header, header_text, unstructured_header
from newsletter.content.message import MessageBuilder, Recipient
from newsletter.content.render import RenderedEmail
from newsletter.delivery.pool import PoolOptions
from newsletter.delivery.run import run_campaign
from newsletter.delivery.single import send_confirmation

TOKEN = "q3Zk8mN2pX7vR4tY9wB1cD6fG0hJ5lS_-aEuIoPzAA"
AMS = ZoneInfo("Europe/Amsterdam")
ADJACENT_WORDS = re.compile(r"\?=\s+=\?")


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def raw_header(data: bytes, name: str) -> str:
    """The header's value as it is on the wire, unfolded (CRLF removed, nothing else)."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    match = re.search(rf"^{name}: (.*?)\r\n(?! )", head + "\r\n", re.M | re.S)
    assert match, name
    return match.group(1).replace("\r\n", "")


def display_name(data: bytes, name: str) -> str:
    """The display name of From or To as email.policy.default reads it.

    Where a run of non-ASCII words was too long for one encoded-word, two encoded-words
    are adjacent; RFC 2047 (6.2) says the space between them is not text, and Python up to
    3.13 keeps it in a display name (CPython gh-128110). There the RFC reading is used.
    """
    parsed = parse(data)[name].addresses[0].display_name
    raw = raw_header(data, name).rsplit(" <", 1)[0]
    if ADJACENT_WORDS.search(raw):
        return str(make_header(decode_header(raw)))
    return parsed


def header_lines(data: bytes, *names: str) -> list[bytes]:
    """The header section's lines; with names, only the lines (folded ones too) of those."""
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    if not names:
        return lines
    keep, wanted = [], tuple(f"{name}: ".encode() for name in names)
    for line in lines:
        if not line.startswith(b" "):
            taking = line.startswith(wanted)
        if taking:
            keep.append(line)
    return keep


def assert_wire_rules(data: bytes) -> None:
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(byte < 128 for byte in head)
    assert max(len(line) for line in header_lines(data, "Subject", "From", "To")) <= 78
    assert max(len(line) for line in header_lines(data)) <= 998
    unfolded = head.replace(b"\r\n ", b" ")
    for line in unfolded.split(b"\r\n"):
        if line.lower().startswith(b"list-"):
            assert b"=?" not in line


EXACTLY_78 = "De gemeente Groningen investeert in open chipontwerp voor jonge bedrijven, nu!"
EXACTLY_78_ACCENTS = "Één café in Groningen investeert in open chipontwerp voor jonge bedrijven, nu!"
assert len(EXACTLY_78) == len(EXACTLY_78_ACCENTS) == 78

CASES = [
    pytest.param("Café-cultuur", "Ann Jansen-Één", id="diacritics"),
    pytest.param("AI “slim” inzetten", "Joost “Jo” Ekker", id="curly-quotes"),
    pytest.param("€ 80 miljoen voor chips", "Marieke € Dam", id="euro"),
    pytest.param("Feest 🎉 in Zwolle", "🎉", id="emoji"),
    pytest.param("日本のチップ産業が復活する", "山田太郎", id="cjk"),
    pytest.param("الذكاء الاصطناعي في هولندا", "محمد بن سلمان", id="rtl"),
    pytest.param("Plain ASCII subject", "Jan de Vries", id="ascii"),
    pytest.param(EXACTLY_78, "J.R.R. Tolkien", id="exactly-78-ascii"),
    pytest.param(EXACTLY_78_ACCENTS, 'Bo "Co" \\ de Wit', id="exactly-78-accents"),
    pytest.param("Literal =?utf-8?q?nep?= and ?= too", "=?utf-8?q?Eve?=", id="literal-encoded-word"),
    pytest.param("  Café met spaties  ", "  Ann  Jansen  ", id="leading-trailing-spaces"),
    pytest.param(
        "Groningen zet in op open chipontwerp: “De slimste in een niche die ertoe doet” " * 2,
        "Ëlisabeth van der Meulen-Ó'Súilleabháin " * 3,
        id="long-latin",
    ),
    pytest.param("Чипы из Гронингена " * 6, "Александр Сергеевич Пушкин", id="long-cyrillic"),
    pytest.param("山田太郎" * 20, "山田太郎" * 12, id="long-cjk"),
]


def article_file(directory: Path, title: str) -> Path:
    path = directory / "artikel.md"
    # JSON is YAML: the title arrives exactly, spaces and quotes included.
    path.write_text(
        f"---\ntitle: {json.dumps(title, ensure_ascii=False)}\nslug: het-artikel\n---\nDe tekst, met € en é.\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("title, name", CASES)
async def test_subject_and_names_arrive_through_smtp_exactly_as_written(
    workdir: Path, server: Server, title: str, name: str
) -> None:
    config = make_config(workdir, **{"smtp.url": server.url, "sender.name": name})
    db = open_workdb(config)
    [address] = add_subscribers(db, 1)
    db.conn.execute("UPDATE subscribers SET name = ?", [name])
    db.conn.commit()
    campaign = create_campaign(config, db, article_file(workdir, title), owner=make_owner())
    options = PoolOptions.from_config(config, concurrency=1)
    result = await run_campaign(config, db, campaign.id, owner=make_owner(), options=options)

    assert result.ok, result
    [received] = server.handler.messages
    message = parse(received.data)
    assert message["Subject"] == " ".join(title.split())
    assert display_name(received.data, "From") == " ".join(name.split())
    assert display_name(received.data, "To") == " ".join(name.split())
    assert message["To"].addresses[0].addr_spec == address
    assert message["From"].addresses[0].addr_spec == "nieuws@example.nl"
    assert message.defects == []
    assert_wire_rules(received.data)
    if not title.strip().isascii() or "=?" in title:
        assert raw_header(received.data, "Subject").startswith("=?utf-8?")


async def test_a_confirmation_with_a_non_ascii_publication_name_arrives_encoded(workdir: Path, server: Server) -> None:
    config = make_config(workdir, **{"smtp.url": server.url, "publication.name": "Café “Noord” €"})
    db = open_workdb(config)
    add_subscribers(db, 1, status="pending")
    subscriber_id = db.execute("SELECT id FROM subscribers").fetchone()[0]
    outcome, _ = await send_confirmation(config, db, subscriber_id)

    [received] = server.handler.messages
    assert parse(received.data)["Subject"] == "Bevestig je aanmelding voor Café “Noord” €"
    assert raw_header(received.data, "Subject").startswith("=?utf-8?")
    assert_wire_rules(received.data)


def test_the_digest_subject_goes_through_the_same_header_code(
    workdir: Path, invoke: Any, server: Server, relay_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_PUBLICATION_NAME", "Tëstblad “Noord”")
    with time_machine.travel(datetime(2026, 11, 24, 10, 0, tzinfo=AMS), tick=True):
        assert invoke("subscribe", "week@example.nl", "--confirmed", "--cadence", "weekly").exit_code == 0
        assert invoke("send", str(article_file(workdir, "€ 80 miljoen"))).exit_code == 0
    with time_machine.travel(datetime(2026, 11, 30, 7, 5, tzinfo=AMS), tick=True):
        week = invoke("digest", "--period", "weekly")
    assert week.exit_code == 0, week.stderr
    [received] = [m for m in server.handler.messages if m.rcpt == "week@example.nl"]
    assert parse(received.data)["Subject"].startswith("Tëstblad “Noord”")
    assert raw_header(received.data, "Subject").startswith("=?utf-8?")
    assert_wire_rules(received.data)


# --- property tests: any Unicode text goes through, or is refused for a clear reason ---

def _refused(value: str) -> bool:
    return any(unicodedata.category(char) == "Cc" or char in "\u2028\u2029" for char in value)


TEXT = st.one_of(
    st.text(max_size=120),
    st.text(alphabet=st.sampled_from(list("aé “”€😀山ب =?_\"\\.,()<>@:;\u00a0\u3000x")), max_size=120),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=60, max_size=250),
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def config(workdir: Path) -> Config:
    return make_config(workdir, **{"web.url": "https://nieuws.example.nl"})


def _one(config: Config, subject: str) -> MessageBuilder:
    rendered = RenderedEmail(subject=subject, html="<p>x</p>\n", text="x\n", language="nl")
    return MessageBuilder(config, {"nl": rendered}, campaign_key="article:1")


@PROPERTY
@given(subject=TEXT)
@example(subject="AI “slim” inzetten")
@example(subject="x =?utf-8?q?y?= z")
@example(subject="Hoi\r\nBcc: eve@example.org")
@example(subject="a\x85b")
@example(subject="https://nieuws.example.nl/" + "a" * 90)
def test_any_subject_arrives_exactly_or_is_refused_as_a_line_break_or_control_character(config, subject) -> None:
    if _refused(subject):
        with pytest.raises(HeaderValueError, match=r"the subject contains a (line break|control character)"):
            _one(config, subject)
        return
    nameless = Recipient(subscriber_id=1, email="a@example.nl", name="", token=TOKEN, language="nl")
    data = _one(config, subject).build(nameless)
    assert parse(data)["Subject"] == " ".join(subject.split())
    assert max(len(line) for line in header_lines(data, "Subject")) <= 78
    assert all(byte < 128 for byte in data)


@PROPERTY
@given(name=TEXT)
@example(name="Ann Jansen-Één")
@example(name='<b>Bo & "Co"</b>')
@example(name="Ann\nBcc: eve@example.org")
@example(name="x" * 300)
def test_any_name_arrives_exactly_in_to_and_from_or_is_refused(config, name) -> None:
    recipient = Recipient(subscriber_id=1, email="a@example.nl", name=name, token=TOKEN, language="nl")
    sender = dataclasses.replace(config, sender_name=name)
    if _refused(name):
        with pytest.raises(HeaderValueError, match=r"the From name contains a (line break|control character)"):
            _one(sender, "Hoi")
        with pytest.raises(HeaderValueError, match=r"the To name contains a (line break|control character)"):
            _one(config, "Hoi").build(recipient)
        return
    data = _one(sender, "Hoi").build(recipient)
    expected = " ".join(name.split())
    if expected:
        assert display_name(data, "To") == display_name(data, "From") == expected
    else:
        assert parse(data)["To"] == "a@example.nl"
    assert parse(data)["To"].addresses[0].addr_spec == "a@example.nl"
    for line in header_lines(data, "From", "To"):
        # over 78 only for one ASCII word too long to fold (a name keeps it whole)
        assert len(line) <= 78 or (len(line) <= 998 and b" " not in line.split(b": ", 1)[-1].strip())
    assert all(byte < 128 for byte in data)


def test_header_text_is_the_one_rule_trim_the_ends_and_make_each_inner_run_one_space() -> None:
    assert header_text("  Café\u00a0\u00a0cultuur \u3000", what="x") == "Café cultuur"
    assert header_text("", what="x") == ""
    with pytest.raises(HeaderValueError, match="line break"):
        header_text("a\u2028b", what="x")
    with pytest.raises(HeaderValueError, match="control character"):
        header_text("a\x9bb", what="x")  # C1 CSI: terminal escapes in a header


def test_short_non_ascii_values_are_encoded_and_plain_ascii_is_left_as_it_is() -> None:
    assert unstructured_header("Subject", "Café-cultuur", what="s") == "Subject: =?utf-8?q?Caf=C3=A9-cultuur?=\r\n"
    assert unstructured_header("Subject", "Plain words", what="s") == "Subject: Plain words\r\n"
    assert address_header("To", "Ann", "ann@example.nl") == "To: Ann <ann@example.nl>\r\n"
    assert address_header("To", "A. Jansen", "ann@example.nl") == 'To: "A. Jansen" <ann@example.nl>\r\n'
    assert address_header("To", "Ann Jansen-Één", "ann@example.nl") == (
        "To: Ann =?utf-8?b?SmFuc2VuLcOJw6lu?= <ann@example.nl>\r\n"  # B: shorter than Q here
    )


# --- end to end: the CLI as a subprocess ---

def test_newsletter_send_of_a_dutch_title_reaches_every_subscriber_with_the_subject_intact(
    workdir: Path, server: Server, run_cli: Any
) -> None:
    db = open_workdb(make_config(workdir))
    emails = add_subscribers(db, 5)
    db.conn.close()
    (workdir / "artikel.txt").write_text(
        ARTICLE.replace("Waarom de fietsenmaker van Zwolle nu software schrijft", "AI “slim” inzetten"),
        encoding="utf-8",
    )
    result = run_cli("send", "artikel.txt", cwd=workdir, env={"NEWSLETTER_SMTP_URL": server.url})
    assert result.returncode == 0, result.stderr
    assert "5 of 5 sent" in result.stderr
    assert sorted(m.rcpt for m in server.handler.messages) == emails
    for received in server.handler.messages:
        assert parse(received.data)["Subject"] == "AI “slim” inzetten"
        assert raw_header(received.data, "Subject") == "=?utf-8?b?QUkg4oCcc2xpbeKAnSBpbnpldHRlbg==?="


def test_newsletter_preview_of_a_dutch_title_writes_the_message(workdir: Path, run_cli: Any) -> None:
    (workdir / "artikel.txt").write_text(
        ARTICLE.replace("Waarom de fietsenmaker van Zwolle nu software schrijft", "AI “slim” inzetten"),
        encoding="utf-8",
    )
    result = run_cli("preview", "artikel.txt", "--out", "preview", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    [eml] = (workdir / "preview").glob("*.eml")
    assert parse(eml.read_bytes())["Subject"] == "AI “slim” inzetten"
