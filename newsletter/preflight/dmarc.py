"""DMARC (RFC 7489): a valid record at _dmarc of the From domain or of its organisational
domain, and a DKIM d= domain or envelope domain aligned with the From domain.

The organisational domain comes from the Public Suffix List shipped inside the
publicsuffixlist package (no download at run time): example.nl for news.example.nl,
example.co.uk for a.example.co.uk.
"""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList

from ..errors import LookupFailedError
from .domainkey import tags
from .findings import Finding, fail, ok, warn
from .resolver import Resolver

CHECK = "dmarc"
POLICIES = ("none", "quarantine", "reject")
MINIMAL_RECORD = "v=DMARC1; p=none"  # enough for Gmail's and Yahoo's bulk-sender rules


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """The registered domain under its public suffix (the domain itself when it is one)."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(domain: str, from_domain: str, *, mode: str = "r") -> bool:
    """DMARC identifier alignment: the same organisational domain (relaxed) or name (strict)."""
    if mode == "s":
        return domain.lower() == from_domain.lower()
    return organisational_domain(domain) == organisational_domain(from_domain)


def _invalid(record: dict[str, str]) -> str | None:
    """What makes a parsed record invalid, or None."""
    if record.get("v") != "DMARC1":
        return "it does not start with v=DMARC1"
    if record.get("p", "").lower() not in POLICIES:
        return f"p= must be one of {', '.join(POLICIES)}, not {record.get('p', '(missing)')!r}"
    if "sp" in record and record["sp"].lower() not in POLICIES:
        return f"sp= must be one of {', '.join(POLICIES)}, not {record['sp']!r}"
    for tag in ("adkim", "aspf"):
        if tag in record and record[tag].lower() not in ("r", "s"):
            return f"{tag}= must be r or s, not {record[tag]!r}"
    if "pct" in record and not (record["pct"].isdigit() and 0 <= int(record["pct"]) <= 100):
        return f"pct= must be a whole number from 0 to 100, not {record['pct']!r}"
    return None


def find_record(resolver: Resolver, from_domain: str) -> tuple[str, list[str]]:
    """Where the DMARC policy of `from_domain` is published and the records found there."""
    name = f"_dmarc.{from_domain}"
    records = [r for r in resolver.txt(name).records if r.replace(" ", "").lower().startswith("v=dmarc1")]
    org = organisational_domain(from_domain)
    if not records and org != from_domain:
        name = f"_dmarc.{org}"
        records = [r for r in resolver.txt(name).records if r.replace(" ", "").lower().startswith("v=dmarc1")]
    return name, records


def check_dmarc(
    resolver: Resolver, *, from_domain: str, dkim_domain: str | None, envelope_domain: str,
) -> list[Finding]:
    """The DMARC record finding and the alignment finding (DKIM d= and envelope vs From)."""
    org = organisational_domain(from_domain)
    record: dict[str, str] = {}
    try:
        name, records = find_record(resolver, from_domain)
    except LookupFailedError as exc:
        findings = [warn(CHECK, f"_dmarc.{from_domain}", f"cannot check DMARC of {from_domain}: {exc}",
                         "run `newsletter check` again, or set check.nameservers to a resolver that answers")]
    else:
        if not records:
            where = f"_dmarc.{from_domain}" + (f" or _dmarc.{org}" if org != from_domain else "")
            findings = [fail(CHECK, f"_dmarc.{org}", f"no DMARC record at {where}; Gmail, Yahoo and Outlook.com "
                             "reject or spam-folder bulk mail without one", f'publish TXT _dmarc.{org} "{MINIMAL_RECORD}"')]
        elif len(records) > 1:
            findings = [fail(CHECK, name, f"{name} has {len(records)} DMARC records, so receivers apply none",
                             f'keep only one TXT record at {name}, e.g. "{MINIMAL_RECORD}"')]
        else:
            record = tags(records[0])
            problem = _invalid(record)
            if problem:
                findings = [fail(CHECK, name, f"the DMARC record at {name} is not valid: {problem}",
                                 f'replace it with a valid record, e.g. TXT {name} "{MINIMAL_RECORD}"')]
                record = {}
            else:
                findings = [ok(CHECK, name, f"{name}: {records[0]}")]
    findings.append(_alignment(record, from_domain=from_domain, dkim_domain=dkim_domain,
                               envelope_domain=envelope_domain))
    return findings


def _alignment(record: dict[str, str], *, from_domain: str, dkim_domain: str | None, envelope_domain: str) -> Finding:
    adkim, aspf = record.get("adkim", "r").lower(), record.get("aspf", "r").lower()
    spf_ok = aligned(envelope_domain, from_domain, mode=aspf)
    dkim_ok = dkim_domain is not None and aligned(dkim_domain, from_domain, mode=adkim)
    subject = f"From {from_domain}"
    parts = []
    if dkim_domain is not None:
        parts.append(f"DKIM d={dkim_domain} is {'' if dkim_ok else 'not '}aligned")
    parts.append(f"envelope domain {envelope_domain} is {'' if spf_ok else 'not '}aligned")
    summary = ", ".join(parts) + f" with From {from_domain}"
    if not spf_ok and not dkim_ok:
        return fail(CHECK, subject, f"{summary}: DMARC fails for every message",
                    f"set dkim.domain to {from_domain} (and publish its key), or sender.envelope "
                    f"to an address at {from_domain}")
    if dkim_domain is not None and not dkim_ok:
        return warn(CHECK, subject, f"{summary}: DMARC passes on SPF alone, which forwarding breaks",
                    f"set dkim.domain to {from_domain}, make a key with `newsletter dkim keygen` and publish it")
    return ok(CHECK, subject, summary)
