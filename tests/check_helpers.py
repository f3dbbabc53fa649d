"""What the `newsletter check` tests share: the right zone for example.nl, TLS contexts
from a trustme CA, and `right_setup`, a fully right setup to run the CLI against (import
the fixtures `ca`, `keys` and `right_setup` into a test module)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from dns_server import DnsServer, Record
from health_server import HealthServer
from smtp_server import Server, authenticator

from newsletter.content.dkim import KeyPair, generate_key_pair

SPF = "v=spf1 a:relay.example.nl include:_spf.mailhost.nl ~all"
DMARC = "v=DMARC1; p=none; rua=mailto:dmarc@example.nl"


def right_zone(key: KeyPair) -> list[Record]:
    """example.nl with SPF (2 look-ups), the DKIM key, DMARC and an MX."""
    return [
        ("example.nl", "TXT", SPF),
        ("example.nl", "TXT", "google-site-verification=abc"),  # not SPF: ignored
        ("example.nl", "MX", "10 mx.example.nl."),
        ("_spf.mailhost.nl", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
        (key.record_name, "TXT", key.record_value),
        ("_dmarc.example.nl", "TXT", DMARC),
    ]


def without(records: list[Record], name: str, rtype: str) -> list[Record]:
    return [r for r in records if not (r[0] == name and r[1] == rtype)]


def server_context(ca: trustme.CA, **cert: object) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", **cert).configure_cert(context)  # type: ignore[arg-type]
    return context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, KeyPair]:
    """The configured DKIM key, and another one (what a mismatched record publishes)."""
    folder = tmp_path_factory.mktemp("dkim")
    return (generate_key_pair(selector="nl202612", domain="example.nl", out_dir=folder),
            generate_key_pair(selector="old", domain="example.nl", out_dir=folder))


@dataclass
class RightSetup:
    env: dict[str, str]  # the NEWSLETTER_* variables (and SSL_CERT_FILE) of a right setup
    dns: DnsServer
    relay: Server
    web: HealthServer


@pytest.fixture
def right_setup(workdir: Path, ca: trustme.CA, keys: tuple[KeyPair, KeyPair], tmp_path: Path) -> Iterator[RightSetup]:
    """DNS with the right zone, a STARTTLS relay with AUTH and a trusted certificate, and
    /healthz answering over HTTPS at web.url: every finding ok."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    dns = DnsServer(right_zone(keys[0])).start()
    relay = Server(scheme="smtp", tls_context=server_context(ca), require_starttls=True,
                   authenticator=authenticator("nieuws", "geheim"), auth_required=True).start()
    web = HealthServer(ca).start()
    env = {
        "NEWSLETTER_CHECK_NAMESERVERS": dns.address,
        "NEWSLETTER_SMTP_URL": relay.url,
        "NEWSLETTER_SMTP_CA_FILE": str(ca_file),
        "NEWSLETTER_SMTP_USERNAME": "nieuws",
        "NEWSLETTER_SMTP_PASSWORD": "geheim",
        "NEWSLETTER_WEB_URL": web.url,
        "NEWSLETTER_PUBLICATION_LIST_ID": "nieuws.example.nl",
        "NEWSLETTER_PUBLICATION_POSTAL_ADDRESS": "Thorbeckegracht 1, 8011 VL Zwolle",
        "NEWSLETTER_DKIM_SELECTOR": "nl202612",
        "NEWSLETTER_DKIM_KEY_FILE": str(keys[0].private_key_file),
        "SSL_CERT_FILE": str(ca_file),  # the CA the web endpoint's certificate comes from
    }
    yield RightSetup(env=env, dns=dns, relay=relay, web=web)
    for server in (dns, relay, web):
        server.stop()
