"""`newsletter check`, relays: real aiosmtpd servers on 127.0.0.1, plain, STARTTLS and
implicit TLS (trustme certificates, trusted and not), with AUTH accepted and refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from aiosmtpd.smtp import __ident__ as SMTP_IDENT
from check_helpers import ca, server_context  # noqa: F401 - a fixture
from send_helpers import make_config
from smtp_server import Server, authenticator, free_port

from newsletter.preflight.findings import Finding
from newsletter.preflight.relay import UNTRUSTED_FIX, check_relays


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def start() -> Iterator[object]:
    servers: list[Server] = []

    def run(**kwargs: object) -> Server:
        kwargs.setdefault("server_hostname", "relay.example.nl")  # the greeting's name, whatever this machine's
        server = Server(**kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield run
    for server in servers:
        server.stop()


async def findings_for(workdir: Path, **settings: str) -> list[tuple[str, str]]:
    found: list[Finding] = await check_relays(make_config(workdir, **settings))
    assert {f.check for f in found} == {"relay"}
    return [(f.status, f.message) for f in found]


def greeting(label: str) -> tuple[str, str]:
    return ("ok", f"{label} greets: 220 relay.example.nl {SMTP_IDENT}")


EXTENSIONS = "offers SIZE 33554432, 8BITMIME; not PIPELINING (not needed: messages are quoted-printable, one at a time)"


async def test_a_plain_relay_on_this_machine_is_ok(workdir, start) -> None:
    srv = start()
    label = f"127.0.0.1:{srv.port}"
    assert await findings_for(workdir, **{"smtp.url": srv.url}) == [
        greeting(label),
        ("ok", f"no TLS to {label}: a relay on this machine"),
        ("ok", f"{label} {EXTENSIONS}"),
    ]
    assert srv.handler.messages == [] and srv.handler.attempts == 0  # nothing was sent


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_starttls_with_a_trusted_certificate_and_an_accepted_login(workdir, start, ca, ca_file, monkeypatch):
    srv = start(scheme="smtp", tls_context=server_context(ca), require_starttls=True,
                authenticator=authenticator("nieuws", "geheim"), auth_required=True)
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "geheim")
    label = f"127.0.0.1:{srv.port}"
    found = await findings_for(workdir, **{"smtp.url": srv.url, "smtp.ca_file": ca_file, "smtp.username": "nieuws"})
    assert found[0] == greeting(label)
    assert found[1] == ("ok", f"TLSv1.3 (STARTTLS) to {label}, certificate trusted until 3000-01-01")
    assert found[2] == ("ok", f"{label} offers SIZE 33554432, 8BITMIME, AUTH LOGIN PLAIN; not PIPELINING "
                              "(not needed: messages are quoted-printable, one at a time)")
    assert found[3] == ("ok", f"{label} accepted the login of 'nieuws'")
    assert srv.handler.attempts == 0


async def test_a_refused_login_fails_naming_the_settings(workdir, start, ca, ca_file, monkeypatch) -> None:
    srv = start(scheme="smtp", tls_context=server_context(ca), require_starttls=True,
                authenticator=authenticator("nieuws", "geheim"), auth_required=True)
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "fout")
    config = make_config(workdir, **{"smtp.url": srv.url, "smtp.ca_file": ca_file, "smtp.username": "nieuws"})
    auth = (await check_relays(config))[-1]
    assert (auth.status, auth.message) == (
        "fail", f"127.0.0.1:{srv.port} refused the login of 'nieuws': 535 5.7.8 Authentication credentials invalid")
    assert auth.fix == "check smtp.username and NEWSLETTER_SMTP_PASSWORD (or smtp.password_file)"
    assert "fout" not in auth.message + auth.fix


async def test_a_username_without_a_password_fails(workdir, start, ca, ca_file) -> None:
    srv = start(scheme="smtp", tls_context=server_context(ca), authenticator=authenticator("nieuws", "geheim"))
    config = make_config(workdir, **{"smtp.url": srv.url, "smtp.ca_file": ca_file, "smtp.username": "nieuws"})
    auth = (await check_relays(config))[-1]
    assert (auth.status, auth.message) == ("fail", "smtp.username is 'nieuws' but no password is set")


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
async def test_an_untrusted_certificate_fails_naming_smtp_ca_file(workdir, start, ca, scheme) -> None:
    tls = {"tls_context": server_context(ca)} if scheme == "smtp" else {"ssl_context": server_context(ca)}
    srv = start(scheme=scheme, **tls)
    found = await check_relays(make_config(workdir, **{"smtp.url": srv.url}))
    last = found[-1]
    assert (last.status, last.message) == (
        "fail", f"the TLS certificate of 127.0.0.1:{srv.port} is not trusted (unable to get local issuer certificate)")
    assert last.fix == UNTRUSTED_FIX and "smtp.ca_file" in last.fix
    assert len(found) == (2 if scheme == "smtp" else 1)  # STARTTLS: the plain greeting came first


async def test_implicit_tls_with_a_trusted_certificate_is_ok(workdir, start, ca, ca_file) -> None:
    srv = start(scheme="smtps", ssl_context=server_context(ca))
    found = await findings_for(workdir, **{"smtp.url": srv.url, "smtp.ca_file": ca_file})
    assert [s for s, _ in found] == ["ok", "ok", "ok"]
    assert found[1][1].startswith(f"TLSv1.3 (TLS) to 127.0.0.1:{srv.port}, certificate trusted until")


async def test_a_certificate_that_expires_within_two_weeks_warns(workdir, start, ca, ca_file) -> None:
    expires = datetime.now(UTC) + timedelta(days=5, hours=12)
    srv = start(scheme="smtps", ssl_context=server_context(ca, not_after=expires))
    tls = (await check_relays(make_config(workdir, **{"smtp.url": srv.url, "smtp.ca_file": ca_file})))[1]
    assert (tls.status, tls.message) == (
        "warn", f"TLSv1.3 (TLS) to 127.0.0.1:{srv.port}, certificate trusted until {expires:%Y-%m-%d}: it expires "
                "in 5 days")
    assert tls.fix == "have the relay's certificate renewed"


async def test_verification_switched_off_is_ok_only_on_this_machine(workdir, start, ca) -> None:
    srv = start(scheme="smtp", tls_context=server_context(ca))
    found = await findings_for(workdir, **{"smtp.url": srv.url, "smtp.tls_verify": "false"})
    assert found[1] == ("ok", f"TLSv1.3 (STARTTLS) to 127.0.0.1:{srv.port}, certificate not verified "
                              "(smtp.tls_verify = false)")


async def test_smtp_to_a_relay_without_starttls_fails(workdir, start) -> None:
    srv = start()
    url = srv.url.replace("smtp+plain://", "smtp://")
    found = await findings_for(workdir, **{"smtp.url": url})
    assert found[-1] == ("fail", f"127.0.0.1:{srv.port} does not offer STARTTLS, so smtp:// cannot protect the "
                                 "connection")


async def test_an_unreachable_relay_fails_and_every_relay_is_tried(workdir, start) -> None:
    srv = start()
    closed = free_port()
    found = await check_relays(make_config(workdir, **{"smtp.url": f"smtp+plain://127.0.0.1:{closed}",
                                                      "smtp.relays": f"{srv.url} 2"}))
    assert (found[0].status, found[0].subject) == ("fail", f"127.0.0.1:{closed}")
    assert found[0].message.startswith(f"cannot connect to 127.0.0.1:{closed}: ")
    assert "smtp.url" in found[0].fix
    assert [(f.status, f.subject) for f in found[1:]] == [("ok", f"127.0.0.1:{srv.port}")] * 3


async def test_no_relay_warns_that_nothing_leaves_the_machine(workdir) -> None:
    assert await findings_for(workdir) == [
        ("warn", "no relay is configured: messages go to the built-in capture server (outbox/) and nothing "
                 "leaves this machine"),
    ]
