"""`newsletter check`, DNS: SPF, DKIM, DMARC and MX against a real DNS server on 127.0.0.1
serving a right zone and zones with one fault each."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from check_helpers import DMARC, SPF, keys, right_zone, without  # noqa: F401 - a fixture
from dns_server import DnsServer, Record, SilentDnsServer
from send_helpers import make_config

from newsletter.content.dkim import KeyPair, generate_key_pair
from newsletter.preflight import dmarc
from newsletter.preflight.findings import Finding
from newsletter.preflight.resolver import Resolver
from newsletter.preflight.run import dns_findings


@pytest.fixture
def check(workdir: Path, keys: tuple[KeyPair, KeyPair]) -> Iterator[Any]:
    """check(records, **settings): the DNS findings of the workdir's config against a server
    serving `records` (the right zone when None), DKIM configured with the first key."""
    servers: list[DnsServer] = []

    def run(records: list[Record] | None = None, **settings: str) -> list[Finding]:
        server = DnsServer(right_zone(keys[0]) if records is None else records).start()
        servers.append(server)
        values = {"check.nameservers": server.address, "dkim.selector": "nl202612",
                  "dkim.key_file": str(keys[0].private_key_file), **settings}
        config = make_config(workdir, **values)
        return dns_findings(config, resolver=Resolver(nameservers=config.check_nameservers, timeout=2))

    yield run
    for server in servers:
        server.stop()


def by_check(findings: list[Finding]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for finding in findings:
        out.setdefault(finding.check, []).append((finding.status, finding.message))
    return out


def test_a_right_zone_gives_only_ok_findings(check, keys) -> None:
    findings = check()
    assert [(f.check, f.status, f.subject, f.message, f.fix) for f in findings] == [
        ("spf", "ok", "example.nl", f"{SPF} (2 of 10 DNS look-ups)", "nothing to do"),
        ("dkim", "ok", "nl202612._domainkey.example.nl",
         "nl202612._domainkey.example.nl publishes the public key of dkim.key_file (2048-bit RSA)", "nothing to do"),
        ("dmarc", "ok", "_dmarc.example.nl", f"_dmarc.example.nl: {DMARC}", "nothing to do"),
        ("dmarc", "ok", "From example.nl",
         "DKIM d=example.nl is aligned, envelope domain example.nl is aligned with From example.nl", "nothing to do"),
        ("mx", "ok", "example.nl",
         "example.nl receives replies and mailto: unsubscribes and bounces: MX 10 mx.example.nl.", "nothing to do"),
    ]


def test_no_spf_record_fails_with_the_record_to_publish(check, keys) -> None:
    spf = check(without(right_zone(keys[0]), "example.nl", "TXT"))[0]
    assert (spf.status, spf.message) == ("fail", "no SPF record for example.nl (the envelope sender's domain)")
    assert spf.fix == 'publish TXT example.nl "v=spf1 mx ~all"'


def test_the_suggested_spf_record_names_the_relay(check, keys) -> None:
    records = without(right_zone(keys[0]), "example.nl", "TXT")
    assert check(records, **{"smtp.url": "smtp://smtp.office365.com:587"})[0].fix == (
        'publish TXT example.nl "v=spf1 include:spf.protection.outlook.com ~all"')
    assert check(records, **{"smtp.url": "smtp://relay.example.nl:587"})[0].fix == (
        'publish TXT example.nl "v=spf1 a:relay.example.nl ~all"')


def test_two_spf_records_fail(check, keys) -> None:
    spf = check(right_zone(keys[0]) + [("example.nl", "TXT", "v=spf1 mx -all")])[0]
    assert (spf.status, spf.message) == (
        "fail", "example.nl has 2 SPF records; receivers treat that as an error (permerror)")
    assert spf.fix == "merge them into one TXT record that starts with v=spf1 and remove the others"


def lookup_zone(key: KeyPair, *, extra: str) -> list[Record]:
    """SPF that costs 10 look-ups, plus `extra` mechanisms in the second include."""
    return without(right_zone(key), "example.nl", "TXT") + [
        ("example.nl", "TXT", "v=spf1 a mx include:_spf1.mailhost.nl include:_spf2.mailhost.nl ~all"),  # 4
        ("_spf1.mailhost.nl", "TXT", "v=spf1 a:a1.mailhost.nl a:a2.mailhost.nl ptr -all"),  # 3
        ("_spf2.mailhost.nl", "TXT", f"v=spf1 exists:x.mailhost.nl redirect=_spf3.mailhost.nl {extra}"),  # 2
        ("_spf3.mailhost.nl", "TXT", "v=spf1 mx:m.mailhost.nl ip4:192.0.2.1 -all"),  # 1
    ]


def test_ten_spf_look_ups_pass_and_eleven_fail(check, keys) -> None:
    ten = check(lookup_zone(keys[0], extra=""))[0]
    assert ten.status == "ok" and ten.message.endswith("(10 of 10 DNS look-ups)")
    eleven = check(lookup_zone(keys[0], extra="a:a3.mailhost.nl"))[0]
    assert (eleven.status, eleven.message) == (
        "fail", "the SPF record of example.nl needs 11 DNS look-ups; the limit is 10 (permerror)")
    assert "ip4:/ip6:" in eleven.fix


@pytest.mark.parametrize(("record", "status", "message"), [
    ("v=spf1 mx", "warn", "v=spf1 mx (1 of 10 DNS look-ups) does not end in ~all or -all, so mail from other "
                          "servers is neutral"),
    ("v=spf1 mx ?all", "warn", "v=spf1 mx ?all (1 of 10 DNS look-ups) does not end in ~all or -all, so mail "
                               "from other servers is neutral"),
    ("v=spf1 mx +all", "fail", "v=spf1 mx +all (1 of 10 DNS look-ups) ends in +all: it lets any server send "
                               "as example.nl"),
    ("v=spf1 mx -all", "ok", "v=spf1 mx -all (1 of 10 DNS look-ups)"),
    ("v=spf1 mx: ~all", "fail", "the SPF record of example.nl does not parse: 'mx:' needs a value after the colon"),
    ("v=spf1 include ~all", "fail", "the SPF record of example.nl does not parse: 'include' needs a value after "
                                    "the colon"),
    ("v=spf1 mx include:_none.mailhost.nl ~all", "fail", "the SPF record of example.nl does not parse: "
                                                         "include:_none.mailhost.nl has no SPF record"),
])
def test_the_spf_record_ends_in_tilde_or_minus_all_and_parses(check, keys, record, status, message) -> None:
    spf = check(without(right_zone(keys[0]), "example.nl", "TXT") + [("example.nl", "TXT", record)])[0]
    assert (spf.status, spf.message) == (status, message)


def test_a_published_dkim_key_that_is_not_ours_fails_with_the_right_record(check, keys) -> None:
    records = without(right_zone(keys[0]), keys[0].record_name, "TXT")
    records.append((keys[0].record_name, "TXT", keys[1].record_value))
    dkim = check(records)[1]
    assert (dkim.check, dkim.status) == ("dkim", "fail")
    assert dkim.message == (
        "the key published at nl202612._domainkey.example.nl is not the public half of dkim.key_file "
        f"({keys[0].private_key_file}); receivers will reject the signature")
    assert dkim.fix == f'replace the record with: TXT nl202612._domainkey.example.nl "{keys[0].record_value}"'


def test_no_dkim_record_fails_and_no_dkim_setting_warns_with_keygen(check, keys) -> None:
    missing = check(without(right_zone(keys[0]), keys[0].record_name, "TXT"))[1]
    assert (missing.status, missing.message) == (
        "fail", "no DKIM key is published at nl202612._domainkey.example.nl, so receivers cannot verify the signature")
    assert missing.fix == f'publish TXT nl202612._domainkey.example.nl "{keys[0].record_value}"'
    unset = check(**{"dkim.selector": "", "dkim.key_file": ""})[1]
    assert (unset.status, unset.subject) == ("warn", "example.nl")
    assert "`newsletter dkim keygen`" in unset.fix


def test_no_dmarc_record_fails_with_the_record_to_publish(check, keys) -> None:
    findings = check(without(right_zone(keys[0]), "_dmarc.example.nl", "TXT"))
    dmarc = by_check(findings)["dmarc"]
    assert dmarc[0] == ("fail", "no DMARC record at _dmarc.example.nl; Gmail, Yahoo and Outlook.com reject or "
                                "spam-folder bulk mail without one")
    assert findings[2].fix == 'publish TXT _dmarc.example.nl "v=DMARC1; p=none"'
    assert dmarc[1][0] == "ok"  # alignment is a matter of the configuration


def test_dmarc_of_a_subdomain_sender_is_found_at_the_organisational_domain(check, keys) -> None:
    records = right_zone(keys[0]) + [("news.example.nl", "TXT", SPF), ("news.example.nl", "MX", "10 mx.example.nl.")]
    findings = check(records, **{"sender.address": "nieuws@news.example.nl", "dkim.domain": "example.nl"})
    assert by_check(findings)["dmarc"] == [
        ("ok", f"_dmarc.example.nl: {DMARC}"),
        ("ok", "DKIM d=example.nl is aligned, envelope domain news.example.nl is aligned with From news.example.nl"),
    ]


@pytest.mark.parametrize(("record", "problem"), [
    ("v=DMARC1; p=monitor", "p= must be one of none, quarantine, reject, not 'monitor'"),
    ("v=DMARC1; rua=mailto:d@example.nl", "p= must be one of none, quarantine, reject, not '(missing)'"),
    ("v=DMARC1; p=none; adkim=x", "adkim= must be r or s, not 'x'"),
    ("v=DMARC1; p=none; pct=150", "pct= must be a whole number from 0 to 100, not '150'"),
])
def test_an_invalid_dmarc_record_fails_naming_the_tag(check, keys, record, problem) -> None:
    records = without(right_zone(keys[0]), "_dmarc.example.nl", "TXT") + [("_dmarc.example.nl", "TXT", record)]
    assert by_check(check(records))["dmarc"][0] == (
        "fail", f"the DMARC record at _dmarc.example.nl is not valid: {problem}")


def test_a_misaligned_dkim_domain_warns_and_with_the_envelope_misaligned_too_fails(check, keys, tmp_path) -> None:
    other = generate_key_pair(selector="nl202612", domain="mailer.nl", out_dir=tmp_path)
    records = right_zone(keys[0]) + [(other.record_name, "TXT", other.record_value),
                                     ("mailer.nl", "TXT", SPF), ("mailer.nl", "MX", "10 mx.mailer.nl.")]
    settings = {"dkim.domain": "mailer.nl", "dkim.key_file": str(other.private_key_file)}
    findings = check(records, **settings)
    assert by_check(findings)["dkim"][0][0] == "ok"
    alignment = findings[3]
    assert (alignment.status, alignment.message) == (
        "warn", "DKIM d=mailer.nl is not aligned, envelope domain example.nl is aligned with From example.nl: "
                "DMARC passes on SPF alone, which forwarding breaks")
    assert alignment.fix.startswith("set dkim.domain to example.nl")

    both = check(records, **settings, **{"sender.envelope": "bounces+{token}@mailer.nl"})[3]
    assert (both.status, both.message) == (
        "fail", "DKIM d=mailer.nl is not aligned, envelope domain mailer.nl is not aligned with From example.nl: "
                "DMARC fails for every message")
    assert both.fix == ("set dkim.domain to example.nl (and publish its key), or sender.envelope to an address "
                        "at example.nl")


def test_no_mx_fails_and_an_address_only_warns(check, keys) -> None:
    no_mx = without(right_zone(keys[0]), "example.nl", "MX")
    mx = check(no_mx)[-1]
    assert (mx.status, mx.message) == (
        "fail", "example.nl has no MX record and no address, so replies and mailto: unsubscribes and bounces are lost")
    assert mx.fix == ('publish MX example.nl "10 <your mail server>." so that replies and mailto: unsubscribes '
                      'and bounces reach you')
    implicit = check(no_mx + [("example.nl", "A", "192.0.2.7")])[-1]
    assert (implicit.status, implicit.message) == (
        "warn", "example.nl has no MX record; mail for it goes to 192.0.2.7 (implicit MX)")


def test_the_bounce_domain_gets_its_own_mx_finding(check, keys) -> None:
    findings = check(right_zone(keys[0]) + [("bounce.example.nl", "TXT", "v=spf1 mx -all")],
                     **{"sender.envelope": "b+{token}@bounce.example.nl"})
    assert by_check(findings)["mx"] == [
        ("ok", "example.nl receives replies and mailto: unsubscribes: MX 10 mx.example.nl."),
        ("fail", "bounce.example.nl has no MX record and no address, so bounces are lost"),
    ]
    null = check(right_zone(keys[0]) + [("bounce.example.nl", "TXT", "v=spf1 mx -all"),
                                        ("bounce.example.nl", "MX", "0 .")],
                 **{"sender.envelope": "b+{token}@bounce.example.nl"})
    assert by_check(null)["mx"][1] == (
        "fail", "bounce.example.nl publishes a null MX (RFC 7505): it accepts no mail, so bounces are lost")


def test_a_dns_server_that_never_answers_gives_warnings_not_a_crash(workdir, keys) -> None:
    silent = SilentDnsServer()
    try:
        config = make_config(workdir, **{"check.nameservers": silent.address, "dkim.selector": "nl202612",
                                         "dkim.key_file": str(keys[0].private_key_file)})
        findings = dns_findings(config, resolver=Resolver(nameservers=config.check_nameservers, timeout=0.5))
    finally:
        silent.stop()
    late = f"the DNS server ({silent.address}) did not answer within 0.5 s"
    assert [(f.check, f.status, f.message) for f in findings] == [
        ("spf", "warn", f"cannot check SPF of example.nl: {late}"),
        ("dkim", "warn", f"cannot check the DKIM key at nl202612._domainkey.example.nl: {late}"),
        ("dmarc", "warn", f"cannot check DMARC of example.nl: {late}"),
        ("dmarc", "ok", "DKIM d=example.nl is aligned, envelope domain example.nl is aligned with From example.nl"),
        ("mx", "warn", f"cannot check the MX of example.nl: {late}"),
    ]
    assert all("check.nameservers" in f.fix for f in findings if f.status == "warn")


def test_the_public_suffix_list_comes_from_the_package_without_any_network(monkeypatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Public Suffix List must not be fetched")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    dmarc._psl.cache_clear()
    assert dmarc.organisational_domain("nieuws.example.nl") == "example.nl"
    assert dmarc.organisational_domain("a.b.example.co.uk") == "example.co.uk"
    assert dmarc.organisational_domain("blog.user.github.io") == "user.github.io"  # a private suffix
