"""Run every check of `newsletter check` and return the findings in a fixed order:
spf, dkim, dmarc, mx, relay, setup, then content when an article is given."""

from __future__ import annotations

import asyncio

from ..config import Config
from ..content.article import Article
from ..content.dkim import signing_domain
from ..content.preview import build_preview, preview_recipient
from ..delivery.relays import relays_from_config
from ..errors import NewsletterError
from .content import content_findings
from .dmarc import check_dmarc
from .domainkey import check_dkim
from .findings import Finding, fail
from .mx import check_mx
from .providers import spf_mechanism
from .relay import check_relays
from .resolver import DEFAULT_TIMEOUT, Resolver
from .setup import setup_findings
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


def article_findings(config: Config, article: Article) -> list[Finding]:
    """The content findings of `article` as the sender address would get it."""
    subject = article.slug or str(article.source)
    try:
        recipient, _ = preview_recipient(None, config, None)
        message = build_preview(article, config, recipient=recipient)
    except NewsletterError as exc:  # a template, header value or DKIM key that stops every send
        return [fail("content", subject, f"the email cannot be built: {exc}",
                     "fix what the message names, then run `newsletter preview` to see the email")]
    return content_findings(message, config, subject=subject)


async def run_checks(config: Config, *, article: Article | None = None, subscribers: int | None = None,
                     timeout: float = DEFAULT_TIMEOUT) -> list[Finding]:
    """Every finding. DNS, the web endpoint and SpamAssassin wait in threads while the relays
    are tried, so the run takes as long as its slowest part, not the sum of them."""
    resolver = Resolver(nameservers=config.check_nameservers, timeout=timeout)
    parts = [
        asyncio.to_thread(dns_findings, config, resolver=resolver),
        check_relays(config),
        asyncio.to_thread(setup_findings, config, timeout=timeout, subscribers=subscribers),
    ]
    if article is not None:
        parts.append(asyncio.to_thread(article_findings, config, article))
    results = await asyncio.gather(*parts)
    return [finding for part in results for finding in part]
