"""`newsletter check`, setup: placeholders, the postal address, GET /healthz at web.url (a
real HTTPS server on 127.0.0.1) and rate and concurrency against providers' limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from check_helpers import ca  # noqa: F401 - a fixture
from health_server import HealthServer
from send_helpers import make_config
from smtp_server import free_port

from newsletter.config import load_config
from newsletter.preflight.setup import check_limits, check_placeholders, check_postal_address, check_web
from newsletter.scaffold import init_directory


def statuses(findings) -> list[tuple[str, str, str]]:
    return [(f.status, f.subject, f.message) for f in findings]


def test_the_placeholders_init_writes_are_found(tmp_path: Path) -> None:
    init_directory(tmp_path / "new", values={})
    config = load_config(tmp_path / "new" / "newsletter.toml", environ={})
    reserved = "(example.org is reserved for examples, so receivers refuse it or readers land nowhere)"
    assert statuses(check_placeholders(config)) == [
        ("fail", "sender.address", f"sender.address is still a placeholder: newsletter@example.org {reserved}"),
        ("fail", "publication.site_url", f"publication.site_url is still a placeholder: https://example.org {reserved}"),
        ("warn", "publication.list_id", "publication.list_id is still a placeholder: newsletter.example.org"),
        ("warn", "publication.name", "publication.name is still the default 'My Newsletter'"),
        ("warn", "sender.name", "sender.name is still the default 'My Newsletter'"),
    ]
    assert check_placeholders(config)[0].fix == "set sender.address in newsletter.toml to your own"


def test_an_envelope_at_a_test_domain_is_a_placeholder_and_own_values_are_ok(workdir: Path) -> None:
    config = make_config(workdir, **{"publication.list_id": "nieuws.example.nl",
                                     "sender.envelope": "bounces+{token}@mail.test"})
    assert statuses(check_placeholders(config)) == [
        ("fail", "sender.envelope", "sender.envelope is still a placeholder: bounces+{token}@mail.test (mail.test is "
                                    "reserved for examples, so receivers refuse it or readers land nowhere)"),
    ]
    own = make_config(workdir, **{"publication.list_id": "nieuws.example.nl"})
    assert statuses(check_placeholders(own)) == [
        ("ok", "placeholders", "sender nieuws@example.nl, site https://example.nl and list id nieuws.example.nl are "
                               "your own"),
    ]


def test_an_empty_postal_address_warns(workdir: Path) -> None:
    empty = check_postal_address(make_config(workdir))
    assert (empty.status, empty.fix) == ("warn", "set publication.postal_address to the address printed in the footer")
    given = check_postal_address(make_config(workdir, **{"publication.postal_address": "Markt 1, Zwolle"}))
    assert (given.status, given.message) == ("ok", "postal address in the footer: Markt 1, Zwolle")


@pytest.fixture
def trust(ca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the test CA for HTTPS, as an installed CA certificate would be."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


def test_web_url_answering_healthz_is_ok(workdir: Path, ca, trust) -> None:
    web = HealthServer(ca).start()
    try:
        found = check_web(make_config(workdir, **{"web.url": web.url}), timeout=5)
    finally:
        web.stop()
    assert (found.status, found.subject, found.message) == ("ok", "web.url", f"GET {web.url}/healthz answered 200")
    assert web.paths == ["/healthz"]


def test_web_url_answering_503_or_reporting_an_error_fails(workdir: Path, ca, trust) -> None:
    web = HealthServer(ca, status=503).start()
    try:
        down = check_web(make_config(workdir, **{"web.url": web.url}), timeout=5)
        web.status, web.report = 200, "error"
        sick = check_web(make_config(workdir, **{"web.url": web.url}), timeout=5)
    finally:
        web.stop()
    assert (down.status, down.message) == (
        "fail", f"GET {web.url}/healthz answered 503 Service Unavailable: the unsubscribe links of every email "
                f"point at {web.url}")
    assert down.fix == (f"run `newsletter serve` behind {web.url} (your reverse proxy), or set web.url to where "
                        "it runs")
    assert (sick.status, sick.message) == ("fail", f"GET {web.url}/healthz answered 200 but reports 'error'")


def test_web_url_where_nothing_listens_or_with_an_untrusted_certificate_fails(workdir: Path, ca) -> None:
    closed = f"https://localhost:{free_port()}"
    nothing = check_web(make_config(workdir, **{"web.url": closed}), timeout=5)
    assert nothing.status == "fail" and nothing.message.startswith(f"GET {closed}/healthz got no answer (")
    web = HealthServer(ca).start()  # the CA is not trusted in this test
    try:
        untrusted = check_web(make_config(workdir, **{"web.url": web.url}), timeout=5)
    finally:
        web.stop()
    assert untrusted.status == "fail" and "CERTIFICATE_VERIFY_FAILED" in untrusted.message


def test_plain_http_or_a_placeholder_web_address_fails_without_asking(workdir: Path) -> None:
    plain = check_web(make_config(workdir, **{"web.url": "http://localhost:9"}), timeout=5)
    assert (plain.status, plain.message) == (
        "fail", "the links in every email (unsubscribe, confirm) use http://localhost:9: one-click unsubscribe "
                "(RFC 8058) needs https://")
    placeholder = check_web(make_config(workdir, **{"publication.site_url": "https://example.org"}), timeout=5)
    assert (placeholder.status, placeholder.subject) == ("fail", "publication.site_url")
    assert placeholder.fix == "run `newsletter serve` and set web.url to its public https:// URL"


def test_a_known_provider_s_published_rate_and_connections_are_enforced(workdir: Path) -> None:
    office = {"smtp.url": "smtp://smtp.office365.com:587"}
    unlimited = check_limits(make_config(workdir, **office))
    source = "https://learn.microsoft.com/exchange/troubleshoot/send-emails/smtp-submission-improvements"
    assert statuses(unlimited) == [
        ("fail", "smtp.office365.com:587", "sending.rate is unlimited (0), but Microsoft 365 (Exchange Online) "
                                           f"accepts at most 0.5 a second; source: {source}"),
        ("fail", "smtp.office365.com:587", "sending.concurrency is 8, but Microsoft 365 (Exchange Online) allows "
                                           f"3 connections; source: {source}"),
    ]
    assert [f.fix for f in unlimited] == ["set sending.rate = 0.5", "set sending.concurrency = 3"]
    within = check_limits(make_config(workdir, **office, **{"sending.rate": 0.5, "sending.concurrency": 3}),
                          subscribers=900)
    assert statuses(within) == [
        ("ok", "smtp.office365.com:587", "within Microsoft 365 (Exchange Online)'s published limits, 10,000 a day; "
                                         f"source: {source}"),
    ]


def test_a_list_larger_than_a_provider_s_daily_limit_fails_and_sandbox_limits_only_warn(workdir: Path) -> None:
    gmail = check_limits(make_config(workdir, **{"smtp.url": "smtp://smtp.gmail.com:587"}), subscribers=2500)
    assert [(f.status, f.message.split(";")[0]) for f in gmail] == [
        ("fail", "2,500 active subscribers, but Google Workspace (Gmail SMTP) sends at most 2,000 a day"),
    ]
    ses = check_limits(make_config(workdir, **{"smtp.url": "smtp://email-smtp.eu-west-1.amazonaws.com:587",
                                               "sending.rate": 14}))
    assert [(f.status, f.message.split(";")[0]) for f in ses] == [
        ("warn", "sending.rate is 14 a second, but Amazon SES accepts at most 1 a second (sandbox limits"),
    ]


def test_an_unknown_relay_is_ok_with_its_settings_shown(workdir: Path) -> None:
    found = check_limits(make_config(workdir, **{"smtp.url": "smtp://relay.example.nl:587", "sending.rate": 20}))
    assert statuses(found) == [
        ("ok", "relay.example.nl:587", "relay.example.nl is not a provider with published limits known to this "
                                       "check; sending.rate: 20 a second, sending.concurrency: 8"),
    ]
