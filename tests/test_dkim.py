"""DKIM: keys made by keygen, signatures over the exact bytes, verified by dkimpy offline."""

from __future__ import annotations

import random
import re
import stat
from pathlib import Path

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from render_fixtures import make_config, seed_shaped_article

from newsletter.config import Config
from newsletter.content.dkim import (
    DkimError,
    DkimSigner,
    KeyPair,
    _relaxed_body,
    generate_key_pair,
    load_signer,
)
from newsletter.content.message import MessageBuilder, Recipient
from newsletter.content.render import RenderedEmail, render_article

TOKEN = "Zx9_8yW-7vU6tS5rQ4pO3nM2lK1jI0hG"
ANN = Recipient(subscriber_id=1, email="ann@example.nl", name="Ann Jansen-Één", token=TOKEN, language="nl")


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KeyPair]:
    # one 2048-bit key for the module: making one takes a noticeable fraction of a second
    directory = tmp_path_factory.mktemp("dkim")
    return directory, generate_key_pair(selector="nb2026", domain="example.nl", out_dir=directory)


def stub_dns(pair: KeyPair):
    """A DNS lookup that knows only the published record (no network in tests)."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        if name.decode().rstrip(".") == pair.record_name:
            return pair.record_value.encode("ascii")
        return None

    return lookup


def signed_config(workdir: Path, pair: KeyPair, **extra: str) -> Config:
    return make_config(
        workdir,
        **{
            "dkim.selector": pair.selector,
            "dkim.domain": pair.domain,
            "dkim.key_file": str(pair.private_key_file),
            "web.url": "https://nieuws.example.nl",
            **extra,
        },
    )


def test_keygen_writes_a_private_key_only_the_owner_can_read(key_dir) -> None:
    _, pair = key_dir
    mode = stat.S_IMODE(pair.private_key_file.stat().st_mode)
    assert mode == 0o600
    assert pair.private_key_file.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert pair.record_name == "nb2026._domainkey.example.nl"
    assert re.fullmatch(r"v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*", pair.record_value)
    assert len(pair.record_value) > 380  # a 2048-bit key
    zone = pair.zone_line()
    assert all(len(chunk) <= 255 for chunk in re.findall(r'"([^"]*)"', zone))


def test_keygen_never_overwrites_an_existing_key(key_dir) -> None:
    directory, pair = key_dir
    before = pair.private_key_file.read_bytes()
    with pytest.raises(DkimError, match="already exists"):
        generate_key_pair(selector=pair.selector, domain=pair.domain, out_dir=directory)
    assert pair.private_key_file.read_bytes() == before


def test_keygen_into_a_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(DkimError, match="cannot create the folder"):
        generate_key_pair(selector="s1", domain="example.nl", out_dir=tmp_path / "a-file" / "dkim", bits=1024)


def test_a_signed_message_verifies_against_the_published_key(workdir: Path, key_dir) -> None:
    _, pair = key_dir
    config = signed_config(workdir, pair, **{"publication.feedback_id": "a:b:c:tb"})
    rendered = {"nl": render_article(seed_shaped_article(), config, language="nl")}
    data = MessageBuilder(config, rendered, campaign_key="article:1").build(ANN)
    assert data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(data, dnsfunc=stub_dns(pair))
    signature = data.split(b"\r\n\r\n", 1)[0].split(b"\r\nFrom: ", 1)[0].replace(b"\r\n", b"")
    tags = dict(t.strip().split(b"=", 1) for t in signature.split(b":", 1)[1].split(b";") if b"=" in t)
    assert tags[b"d"] == b"example.nl" and tags[b"s"] == b"nb2026"
    signed = {h.strip().lower() for h in tags[b"h"].replace(b" ", b"").replace(b"\t", b"").split(b":")}
    assert signed >= {
        b"from", b"to", b"subject", b"date", b"message-id", b"list-id",
        b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id",
    }


def test_a_changed_byte_breaks_the_signature(workdir: Path, key_dir) -> None:
    _, pair = key_dir
    config = signed_config(workdir, pair)
    rendered = {"nl": render_article(seed_shaped_article(), config, language="nl")}
    data = MessageBuilder(config, rendered, campaign_key="article:1").build(ANN)
    assert dkim.verify(data, dnsfunc=stub_dns(pair))
    tampered = data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click")
    assert tampered != data
    assert not dkim.verify(tampered, dnsfunc=stub_dns(pair))
    body_changed = data.replace(b"Groningen wil", b"Groningen zal", 1)
    assert not dkim.verify(body_changed, dnsfunc=stub_dns(pair))


def test_the_signing_domain_defaults_to_the_from_domain(workdir: Path, key_dir) -> None:
    _, pair = key_dir
    config = make_config(workdir, **{"dkim.selector": "nb2026", "dkim.key_file": str(pair.private_key_file)})
    signer = load_signer(config)
    assert signer is not None and signer.domain == "example.nl"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("dkim.selector", "nb2026; d=evil.example", "selector (dkim.selector) must be letters"),
        ("dkim.selector", "nb 2026", "selector (dkim.selector) must be letters"),
        ("dkim.domain", "example.nl; s=x", "domain (dkim.domain) must be letters"),
    ],
)
def test_a_selector_or_domain_that_would_break_the_signature_tags_is_refused(
    workdir: Path, key_dir, setting: str, value: str, message: str
) -> None:
    _, pair = key_dir
    with pytest.raises(DkimError, match=re.escape(message)):
        load_signer(signed_config(workdir, pair, **{setting: value}))


def test_an_internationalised_signing_domain_is_signed_in_its_xn_form(workdir: Path, key_dir) -> None:
    _, pair = key_dir
    config = signed_config(workdir, pair, **{"dkim.domain": "bücher.example"})
    rendered = {"nl": render_article(seed_shaped_article(), config, language="nl")}
    data = MessageBuilder(config, rendered, campaign_key="article:1").build(ANN)
    assert b" d=xn--bcher-kva.example; s=nb2026;" in data.split(b"\r\n\r\n", 1)[0]


def test_an_unreadable_or_bad_key_is_reported_with_its_file(workdir: Path) -> None:
    bad = workdir / "bad.pem"
    bad.write_text("-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n")
    config = make_config(workdir, **{"dkim.selector": "s", "dkim.key_file": str(bad)})
    with pytest.raises(DkimError, match="bad.pem"):
        load_signer(config)
    missing = make_config(workdir, **{"dkim.selector": "s", "dkim.key_file": str(workdir / "none.pem")})
    with pytest.raises(DkimError, match="cannot read"):
        load_signer(missing)


def test_without_dkim_settings_nothing_is_signed(workdir: Path) -> None:
    config = make_config(workdir)
    assert load_signer(config) is None
    rendered = {"nl": render_article(seed_shaped_article(), config, language="nl")}
    assert not MessageBuilder(config, rendered, campaign_key="article:1").build(ANN).startswith(b"DKIM")


def test_the_key_is_read_once_per_builder(workdir: Path, tmp_path: Path, key_dir) -> None:
    _, pair = key_dir
    copy = tmp_path / "key.pem"
    copy.write_bytes(pair.private_key_file.read_bytes())
    config = signed_config(workdir, pair, **{"dkim.key_file": str(copy)})
    builder = MessageBuilder(config, {"nl": render_article(seed_shaped_article(), config, language="nl")}, campaign_key="k")
    copy.unlink()  # the builder must not need the file again
    assert dkim.verify(builder.build(ANN), dnsfunc=stub_dns(pair))


@pytest.mark.parametrize(
    "message",
    [
        b"From: a@example.nl\r\nTo: b@example.nl\r\nSubject:  spaced \t out  \r\n\r\nbody  with \t blanks \r\n\r\n\r\n",
        b"From: a@example.nl\r\nSubject: folded\r\n  over\r\n\tthree lines\r\nTo: b@example.nl\r\n\r\nno final newline",
        b"From: a@example.nl\r\nTo: b@example.nl\r\nSubject: empty body\r\n\r\n",
        b"FROM: a@example.nl\r\nto: b@example.nl\r\nSubject: x\r\nSubject: second\r\n\r\n\tindented\r\n \r\nend\r\n",
    ],
)
def test_dkimpy_verifies_our_signature_and_computes_the_same_body_hash(key_dir, message: bytes, monkeypatch) -> None:
    _, pair = key_dir
    signer = DkimSigner(selector=pair.selector, domain=pair.domain,
                        private_key_pem=pair.private_key_file.read_bytes())
    ours = signer.sign(message, include_headers=["From", "To", "Subject", "Date"], now=1_790_000_000)
    assert dkim.verify(ours + message, dnsfunc=stub_dns(pair))
    monkeypatch.setattr(dkim.time, "time", lambda: 1_790_000_000)
    theirs = dkim.sign(message, pair.selector.encode(), pair.domain.encode(),
                       pair.private_key_file.read_bytes(), canonicalize=(b"relaxed", b"relaxed"),
                       include_headers=[b"from", b"to", b"subject"])

    def tag(header: bytes, name: str) -> str:
        unfolded = re.sub(rb"\s+", b"", header.split(b":", 1)[1]).decode()
        return dict(part.split("=", 1) for part in unfolded.split(";") if part)[name]

    assert tag(ours, "bh") == tag(theirs, "bh")
    assert tag(ours, "h") == "from:to:subject"  # Date is absent, so not listed


@pytest.mark.parametrize(
    "title, name", [("AI “slim” inzetten", "Joost “Jo” Ekker"), ("日本のチップ産業が復活する" * 3, "Александр Сергеевич Пушкин")]
)
def test_a_signature_over_encoded_subject_from_and_to_verifies(workdir: Path, key_dir, title, name) -> None:
    _, pair = key_dir
    config = signed_config(workdir, pair, **{"sender.name": name})
    rendered = RenderedEmail(subject=title, html="<p>x</p>\n", text="x\n", language="nl")
    person = Recipient(subscriber_id=2, email="jo@example.nl", name=name, token=TOKEN, language="nl")
    data = MessageBuilder(config, {"nl": rendered}, campaign_key="article:9").build(person)
    assert b"Subject: =?utf-8?" in data and b"=?utf-8?" in data.split(b"\r\nTo: ", 1)[1].split(b"\r\n")[0]
    assert dkim.verify(data, dnsfunc=stub_dns(pair))


def _regex_relaxed_body(body: bytes) -> bytes:
    """The regex canonicalisation the signer used before it was rewritten for speed."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = re.sub(rb"[ \t]+", b" ", body)
    body = b"\r\n".join(line.rstrip(b" \t") for line in body.split(b"\r\n"))
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    return b"" if body == b"\r\n" else body


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"b", b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n", b"=20", b" \t "]), max_size=40))
def test_the_body_is_canonicalised_exactly_as_dkimpy_does_it(pieces: list[bytes]) -> None:
    # The canonicalisation is written for speed (bytes.replace, no regex over the body);
    # dkimpy's relaxed body canonicalisation judges every body that mail carries (SMTP
    # ends it with a line break), the regex it replaced every other one.
    from dkim.canonicalization import Relaxed

    body = b"".join(pieces)
    assert _relaxed_body(body) == _regex_relaxed_body(body)
    assert _relaxed_body(body + b"\r\n") == Relaxed.canonicalize_body(body + b"\r\n")


@pytest.mark.parametrize("name", ["Ann Jansen-Één", "Ann   Jansen  ", "  "])
def test_the_body_hash_from_the_builders_pieces_is_the_whole_bodys(workdir: Path, key_dir, name: str) -> None:
    # MessageBuilder canonicalises the static pieces once and each message's personal lines
    # apart; the hash must be the one of canonicalising the whole body.
    from newsletter.content.dkim import body_hash

    _, pair = key_dir
    config = signed_config(workdir, pair)
    text = "Beste {nl:name},\n\nregel  met\tblanco's   en een  spatie aan het eind \n\t\n\n{nl:unsubscribe_url}  \n"
    html = "<p>Beste {nl:name},</p>\n        <td>  inspringing\t</td>  \n<a href=\"{nl:unsubscribe_url}\">x</a>\n\n"
    rendered = RenderedEmail(subject="Blanco's", html=html, text=text, language="nl")
    builder = MessageBuilder(config, {"nl": rendered}, campaign_key="article:9")
    person = Recipient(subscriber_id=3, email="ann@example.nl", name=name, token=TOKEN, language="nl")
    data, hashed = builder.build_for_signing(person)
    assert hashed == body_hash([_relaxed_body(data.partition(b"\r\n\r\n")[2])])
    signed = builder.build(person)
    assert signed.endswith(data) and dkim.verify(signed, dnsfunc=stub_dns(pair))


def _random_head(rng: random.Random) -> bytes:
    """A header block made to hit the corners of relaxed canonicalisation: folds (also
    before the colon), tabs, runs of blanks, repeated fields, names in any case, stray CRs."""
    if rng.random() < 0.2:  # anything at all
        pieces = [b"From", b"To", b":", b" ", b"\t", b"\r\n", b"\r\n ", b"\r\n\t", b"x", b"\r", b""]
        return b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
    names = [b"From", b"from", b"TO", b"Subject", b"X-Other", b"Date", b"Subject "]
    values = [b" plain value", b"\ttab", b"  two  spaces ", b" folded\r\n  line", b" tab\r\n\tfold",
              b"", b" ", b" end \r\n ", b" =?utf-8?q?caf=C3=A9?=", b" a\rb"]
    lines = []
    for _ in range(rng.randint(1, 12)):
        name = rng.choice(names)
        if rng.random() < 0.1:
            name = rng.choice([b" ", b"\t", b""]) + name + rng.choice([b"\r\n ", b" ", b""])
        colon = b":" if rng.random() < 0.95 else b""
        lines.append(name + colon + b"".join(rng.choice(values) for _ in range(rng.randint(0, 3))))
    return b"\r\n".join(lines)


def test_header_canonicalisation_with_bytes_operations_matches_the_regex_form() -> None:
    from newsletter.content.dkim import _signed_fields, _signed_fields_slowly

    rng = random.Random(6376)
    include = ("From", "To", "Subject", "Date", "List-Id")
    for _ in range(20_000):
        head = _random_head(rng)
        assert _signed_fields(head, include) == _signed_fields_slowly(head, include), head
