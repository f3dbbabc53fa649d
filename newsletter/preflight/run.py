"""Run every check of `newsletter check` and return the findings in a fixed order:
spf, dkim, dmarc, mx, relay, setup, then content when an article is given."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..config import Config
from ..relays import relays_from_config
from ..signing import signing_domain
from .dmarc import check_dmarc
from .domainkey import check_dkim
from .findings import Finding
from .mx import check_mx
from .providers import spf_mechanism
from .resolver import DEFAULT_TIMEOUT, Resolver
from .spf import check_spf


def _domain(address: str) -> str:
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def from_domain(config: Config) -> str:
    return _domain(config.sender_address)


def envelope_domain(config: Config) -> str:
    """The domain of the envelope sender (bounce address); {token} sits in the local part."""
    return _domain(config.sender_envelope or config.sender_address)


def dns_findings(config: Config, *, resolver: Resolver) -> list[Finding]:
    """SPF, DKIM, DMARC and MX findings for the configured sender."""
    relays = relays_from_config(config)
    sender, bounce = from_domain(config), envelope_domain(config)
    findings = [check_spf(resolver, domain=bounce, mechanism=spf_mechanism(relays[0].host if relays else ""))]
    findings.append(check_dkim(resolver, config))
    dkim_domain = signing_domain(config) if config.dkim_selector else None
    findings += check_dmarc(resolver, from_domain=sender, dkim_domain=dkim_domain, envelope_domain=bounce)
    findings += check_mx(resolver, from_domain=sender, bounce_domain=bounce)
    return findings


async def run_checks(config: Config, *, article: Path | None = None, encoding: str | None = None,
                     timeout: float = DEFAULT_TIMEOUT) -> list[Finding]:
    """Every finding; the DNS look-ups run in a thread while the relays are tried."""
    resolver = Resolver(nameservers=config.check_nameservers, timeout=timeout)
    dns_task = asyncio.to_thread(dns_findings, config, resolver=resolver)
    (dns,) = await asyncio.gather(dns_task)
    return dns
