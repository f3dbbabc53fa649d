"""Message bytes, parsed back with Python's email package: structure, headers, encodings."""

from __future__ import annotations

import binascii
import dataclasses
import email
import email.policy
import re
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest
from render_fixtures import PARAGRAPHS, TITLE, make_config, seed_shaped_article

from newsletter.config import Config
from newsletter.content.message import (
    HeaderValueError,
    MessageBuilder,
    Recipient,
    make_message_id,
    qp_encode,
)
from newsletter.content.render import RenderedEmail, render_article, render_confirmation

TOKEN = "q3Zk8mN2pX7vR4tY9wB1cD6fG0hJ5lS_-aEuIoPzAA"
ANN = Recipient(subscriber_id=17, email="ann@example.nl", name="Ann Jansen-Één", token=TOKEN, language="nl")


@pytest.fixture
def config(workdir: Path) -> Config:
    return make_config(
        workdir,
        **{
            "publication.name": "Techblad Noord",
            "publication.list_id": "techblad.example.nl",
            "publication.postal_address": "Zernikeplein 11, 9747 AS Groningen",
            "publication.feedback_id": "article:nieuwsbrief:techblad:tb1",
            "web.url": "https://nieuws.example.nl",
        },
    )


@pytest.fixture
def rendered(config: Config) -> dict[str, RenderedEmail]:
    article = seed_shaped_article()
    return {lang: render_article(article, config, language=lang) for lang in ("nl", "en")}


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_the_message_is_multipart_alternative_with_text_first_and_html_last(config, rendered) -> None:
    data = MessageBuilder(config, rendered, campaign_key="article:1").build(ANN)
    message = parse(data)
    assert message.get_content_type() == "multipart/alternative"
    plain, html = list(message.iter_parts())
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    for part in (plain, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.defects == [] and plain.defects == [] and html.defects == []


def test_every_line_ends_in_crlf_and_stays_short(config, rendered) -> None:
    data = MessageBuilder(config, rendered, campaign_key="article:1").build(ANN)
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # quoted-printable's limit
    assert all(byte < 128 for byte in data)  # 7bit on the wire: no relay needs to re-encode


def test_headers_follow_the_bulk_sender_rules(config, rendered) -> None:
    data = MessageBuilder(config, rendered, campaign_key="article:1").build(ANN)
    message = parse(data)
    assert message["From"] == "Testblad <nieuws@example.nl>"  # sender.name of the workdir
    assert message["To"] == "Ann Jansen-Één <ann@example.nl>"
    assert message["Subject"] == TITLE
    assert message["Date"].datetime is not None
    assert re.fullmatch(r"<[^<>@\s]+@example\.nl>", message["Message-ID"])
    assert message["List-Id"] == "Techblad Noord <techblad.example.nl>"
    assert message["List-Unsubscribe"] == (
        f"<https://nieuws.example.nl/u/{TOKEN}>, <mailto:unsubscribe@example.nl?subject={TOKEN}>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Feedback-ID"] == "article:nieuwsbrief:techblad:tb1"
    assert message["Precedence"] == "bulk"
    names = [line.split(b":", 1)[0].lower() for line in header_lines(data) if not line[:1].isspace()]
    assert len(names) == len(set(names)), "no header may appear twice"
    raw_list_headers = [line for line in header_lines(data) if line.lower().startswith(b"list-")]
    assert len(raw_list_headers) == 3
    unfolded = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
    for line in unfolded.split(b"\r\n"):
        if line.lower().startswith(b"list-"):
            assert b"=?" not in line


def test_dutch_text_round_trips_in_subject_names_and_body(config, rendered) -> None:
    message = parse(MessageBuilder(config, rendered, campaign_key="article:1").build(ANN))
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hallo Ann Jansen-Één," in text and "Hallo Ann Jansen-Één," in html
    for paragraph in PARAGRAPHS:
        assert paragraph in text
    assert "€ 14,5 miljoen" in html and "“Een café vol ingenieurs" in html
    assert f'href="https://nieuws.example.nl/u/{TOKEN}"' in html
    assert f"https://nieuws.example.nl/u/{TOKEN}" in text
    assert "{nl:" not in text and "{nl:" not in html


def test_the_encoded_parts_equal_encoding_the_whole_personalised_text(config, rendered) -> None:
    builder = MessageBuilder(config, rendered, campaign_key="article:1")
    data = builder.build(ANN)
    text, html = builder.personalised(ANN)
    body = data.split(b"\r\n\r\n", 1)[1]
    assert qp_encode(text.replace("\n", "\r\n")) in body
    assert qp_encode(html.replace("\n", "\r\n")) in body
    decoded = binascii.a2b_qp(qp_encode(html.replace("\n", "\r\n"))).decode("utf-8")
    assert decoded.replace("\r\n", "\n") == html


def test_a_name_is_escaped_in_the_html_and_plain_in_the_text(config, rendered) -> None:
    bold = Recipient(subscriber_id=3, email="bo@example.nl", name='<b>Bo & "Co"</b>', token=TOKEN, language="nl")
    message = parse(MessageBuilder(config, rendered, campaign_key="article:1").build(bold))
    assert "Hallo &lt;b&gt;Bo &amp; &quot;Co&quot;&lt;/b&gt;," in message.get_body(("html",)).get_content()
    assert 'Hallo <b>Bo & "Co"</b>,' in message.get_body(("plain",)).get_content()
    assert message["To"].addresses[0].display_name == '<b>Bo & "Co"</b>'


def test_a_subscriber_without_a_name_is_greeted_as_reader(config, rendered) -> None:
    nameless = Recipient(subscriber_id=4, email="x@example.nl", name="", token=TOKEN, language="en")
    message = parse(MessageBuilder(config, rendered, campaign_key="article:1").build(nameless))
    assert message["To"] == "x@example.nl"
    assert "Hello reader," in message.get_body(("plain",)).get_content()


def test_an_unknown_language_falls_back_to_the_publication_language(config, rendered) -> None:
    german = Recipient(subscriber_id=5, email="g@example.de", name="Gerd", token=TOKEN, language="de")
    message = parse(MessageBuilder(config, rendered, campaign_key="article:1").build(german))
    assert "Uitschrijven" in message.get_body(("html",)).get_content()


def test_message_id_is_stable_across_rerenders_and_unique_per_subscriber_and_campaign(config) -> None:
    article = seed_shaped_article()
    first = MessageBuilder(config, {"nl": render_article(article, config, language="nl")}, campaign_key="article:1")
    again = MessageBuilder(config, {"nl": render_article(article, config, language="nl")}, campaign_key="article:1")
    assert first.message_id(ANN) == again.message_id(ANN)
    assert parse(first.build(ANN))["Message-ID"] == parse(again.build(ANN))["Message-ID"] == first.message_id(ANN)
    other = Recipient(subscriber_id=18, email="b@example.nl", name="", token=TOKEN, language="nl")
    assert first.message_id(other) != first.message_id(ANN)
    ids = {make_message_id(campaign_key=k, subscriber_id=1, domain="example.nl") for k in ("a:b", "a-b", "a b", "a:c")}
    assert len(ids) == 4
    assert make_message_id(campaign_key="digest:weekly:2026-W48", subscriber_id=1, domain="example.nl") == (
        make_message_id(campaign_key="digest:weekly:2026-W48", subscriber_id=1, domain="example.nl")
    )


def test_a_test_send_is_marked_and_has_its_own_message_id(config, rendered) -> None:
    real = MessageBuilder(config, rendered, campaign_key="article:1")
    test = MessageBuilder(config, rendered, campaign_key="article:1", test=True)
    message = parse(test.build(ANN))
    assert message["Subject"] == "[TEST] " + TITLE
    assert test.message_id(ANN) != real.message_id(ANN)
    assert message["List-Unsubscribe"].startswith(f"<https://nieuws.example.nl/u/{TOKEN}>")


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "Ann\r\nBcc: eve@example.org"),
        ("name", "Ann\nBcc: eve@example.org"),
        ("name", "Ann\x00"),
        ("name", "Ann\x85Bcc: eve@example.org"),
        ("email", "ann@example.nl\r\nBcc: eve@example.org"),
        ("email", "ann@example.nl>, <eve@example.org"),
        ("email", "not-an-address"),
        ("token", "abc\r\nX-Evil: 1"),
        ("token", "abc>, <https://evil.example"),
    ],
)
def test_header_injection_is_impossible(config, rendered, field, value) -> None:
    values = {"subscriber_id": 9, "email": "ann@example.nl", "name": "Ann", "token": TOKEN, "language": "nl"}
    values[field] = value
    with pytest.raises(HeaderValueError):
        MessageBuilder(config, rendered, campaign_key="article:1").build(Recipient(**values))


def test_a_subject_with_a_line_break_is_refused(config) -> None:
    bad = RenderedEmail(subject="Hoi\r\nBcc: eve@example.org", html="<p>x</p>\n", text="x\n", language="nl")
    with pytest.raises(HeaderValueError):
        MessageBuilder(config, {"nl": bad}, campaign_key="article:1")


@pytest.mark.parametrize("breaker", ["\x85", "\u2028", "\x1c"])
def test_a_subject_with_any_line_break_python_folds_on_is_refused(config, breaker) -> None:
    # policy.SMTP.fold splits on every str.splitlines() break, NEL (U+0085) included, so
    # a publication name with one would otherwise write a Bcc header of its own.
    bad = dataclasses.replace(config, publication_name=f"Blad{breaker}Bcc: eve@example.org")
    with pytest.raises(HeaderValueError, match="subject"):
        MessageBuilder(bad, {"nl": render_confirmation(bad, language="nl")}, campaign_key="confirm")


@pytest.mark.parametrize("long_name", ["Ëlisabeth van der Meulen-Ó'Súilleabháin " * 4, "Jan de Vries " * 100])
def test_a_long_name_is_folded_into_short_encoded_words(config, rendered, long_name) -> None:
    person = Recipient(subscriber_id=6, email="e@example.nl", name=long_name, token=TOKEN, language="nl")
    data = MessageBuilder(config, rendered, campaign_key="article:1").build(person)
    lines = header_lines(data)
    start = next(i for i, line in enumerate(lines) if line.startswith(b"To: "))
    end = next(i for i in range(start + 1, len(lines)) if lines[i][:1] != b" ")
    to_lines = lines[start:end]
    assert len(to_lines) > 2 and max(len(line) for line in to_lines) <= 78
    # RFC 2047 decoding ignores the folding space between encoded-words (Python's newer
    # address parser keeps it, a known CPython limitation, so decode with email.header).
    raw = b"".join(to_lines).decode("ascii")[len("To: ") :].rsplit(" <", 1)[0]
    assert str(make_header(decode_header(raw))) == " ".join(long_name.split())


def test_the_confirmation_message_links_to_the_confirm_url(config) -> None:
    builder = MessageBuilder(config, {"nl": render_confirmation(config, language="nl")}, campaign_key="confirm")
    message = parse(builder.build(ANN))
    assert message["Subject"] == "Bevestig je aanmelding voor Techblad Noord"
    assert f'href="https://nieuws.example.nl/c/{TOKEN}"' in message.get_body(("html",)).get_content()
    assert f"https://nieuws.example.nl/c/{TOKEN}" in message.get_body(("plain",)).get_content()


def test_without_feedback_id_no_such_header_is_written(workdir: Path, rendered) -> None:
    plain = make_config(workdir)
    message = parse(MessageBuilder(plain, rendered, campaign_key="article:1").build(ANN))
    assert message["Feedback-ID"] is None
    assert message["List-Id"] == "Testblad <newsletter.example.org>"


def test_placeholder_syntax_inside_an_article_is_not_personalised(config) -> None:
    from render_fixtures import script_article

    builder = MessageBuilder(config, {"nl": render_article(script_article(), config, language="nl")}, campaign_key="x")
    text, html = builder.personalised(ANN)
    assert ANN.email not in text.replace("To:", "") and "{\u2060nl:email}" in text
    assert "{\u2060nl:email}" in html


def test_list_id_stays_ascii_and_within_255_octets(workdir: Path, rendered) -> None:
    accented = make_config(workdir, **{"publication.name": "Één \"Blad\"", "publication.list_id": "blad.example.nl"})
    message = parse(MessageBuilder(accented, rendered, campaign_key="c").build(ANN))
    assert message["List-Id"] == "Een Blad <blad.example.nl>"
    comma = make_config(workdir, **{"publication.name": "Blad (Noord), editie", "publication.list_id": "blad.example.nl"})
    raw = MessageBuilder(comma, rendered, campaign_key="c").build(ANN)
    assert b'\r\nList-Id: "Blad (Noord), editie" <blad.example.nl>\r\n' in raw
    long_name = make_config(workdir, **{"publication.name": "Nieuws " * 50, "publication.list_id": "blad.example.nl"})
    assert parse(MessageBuilder(long_name, rendered, campaign_key="c").build(ANN))["List-Id"] == "<blad.example.nl>"


def test_a_non_ascii_feedback_id_is_refused(workdir: Path, rendered) -> None:
    bad = make_config(workdir, **{"publication.feedback_id": "a:b:c:Één"})
    with pytest.raises(HeaderValueError, match="feedback_id"):
        MessageBuilder(bad, rendered, campaign_key="c")
