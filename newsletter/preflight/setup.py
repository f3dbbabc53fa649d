"""Setup findings: placeholders left from `init`, the postal address, the web endpoint
(GET /healthz of `newsletter serve` at web.url) and the sending rate and concurrency
against the published limits of a known provider (providers.py)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from ..config import SETTINGS_BY_KEY, Config, is_placeholder_domain
from ..delivery.relays import relays_from_config
from .findings import Finding, fail, ok, warn
from .providers import provider_for

CHECK = "setup"
HEALTH_PATH = "/healthz"


def check_placeholders(config: Config) -> list[Finding]:
    """Example values still in sender.address, sender.envelope, site_url, list_id and names."""
    findings = []
    for key, value, domain in (
        ("sender.address", config.sender_address, config.sender_address.rpartition("@")[2]),
        ("sender.envelope", config.sender_envelope, config.sender_envelope.rpartition("@")[2]),
        ("publication.site_url", config.publication_site_url, urlsplit(config.publication_site_url).hostname or ""),
    ):
        if value and is_placeholder_domain(domain):
            findings.append(fail(CHECK, key, f"{key} is still a placeholder: {value} ({domain} is reserved for "
                                 "examples, so receivers refuse it or readers land nowhere)",
                                 f"set {key} in newsletter.toml to your own"))
    list_id = config.publication_list_id
    if is_placeholder_domain(list_id):
        findings.append(warn(CHECK, "publication.list_id", f"publication.list_id is still a placeholder: {list_id}",
                             "set publication.list_id to a name under your own domain, e.g. nieuws.yourdomain.nl"))
    for key, value in (("publication.name", config.publication_name), ("sender.name", config.sender_name)):
        if value == SETTINGS_BY_KEY[key].default:
            findings.append(warn(CHECK, key, f"{key} is still the default {value!r}",
                                 f"set {key} to your publication's name"))
    if not findings:
        findings.append(ok(CHECK, "placeholders", f"sender {config.sender_address}, site "
                           f"{config.publication_site_url} and list id {list_id} are your own"))
    return findings


def check_postal_address(config: Config) -> Finding:
    if not config.publication_postal_address:
        return warn(CHECK, "publication.postal_address", "publication.postal_address is empty: many countries' "
                    "laws want a postal address in every commercial email (CAN-SPAM in the US, for one)",
                    "set publication.postal_address to the address printed in the footer")
    return ok(CHECK, "publication.postal_address", f"postal address in the footer: {config.publication_postal_address}")


def check_web(config: Config, *, timeout: float) -> Finding:
    """GET /healthz at the URL every email's links point to (web.url, or site_url)."""
    key = "web.url" if config.web_url else "publication.site_url"
    base = config.public_url
    url = base + HEALTH_PATH
    serve_fix = (f"run `newsletter serve` behind {base} (your reverse proxy), or set web.url to where it runs"
                 if config.web_url else "run `newsletter serve` and set web.url to its public https:// URL")
    host = urlsplit(base).hostname or ""
    if is_placeholder_domain(host) and host != "localhost":
        return fail(CHECK, key, f"the links in every email (unsubscribe, confirm) point at {base}, a placeholder",
                    serve_fix)
    if urlsplit(base).scheme != "https":
        return fail(CHECK, key, f"the links in every email (unsubscribe, confirm) use {base}: one-click "
                    "unsubscribe (RFC 8058) needs https://", "serve `newsletter serve` over HTTPS and set web.url "
                    "to its https:// URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ssl.create_default_context()) as response:
            status, body = response.status, response.read(4096)
    except urllib.error.HTTPError as exc:
        return fail(CHECK, key, f"GET {url} answered {exc.code} {exc.reason}: the unsubscribe links of every "
                    f"email point at {base}", serve_fix)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return fail(CHECK, key, f"GET {url} got no answer ({reason}): the unsubscribe links of every email "
                    f"point at {base}", serve_fix)
    try:
        reported = json.loads(body).get("status", "ok")
    except (ValueError, AttributeError):
        reported = "ok"  # not JSON: a 200 is all we ask of it
    if reported != "ok":
        return fail(CHECK, key, f"GET {url} answered {status} but reports {reported!r}", "see `newsletter serve`'s log")
    return ok(CHECK, key, f"GET {url} answered {status}")


def check_limits(config: Config, *, subscribers: int | None = None) -> list[Finding]:
    """Rate, concurrency and list size against each known provider relay's published limits."""
    findings = []
    for relay in relays_from_config(config):
        provider = provider_for(relay.host)
        subject = relay.label
        if provider is None:
            rate = f"{config.sending_rate:g} a second" if config.sending_rate else "no limit"
            findings.append(ok(CHECK, subject, f"{relay.host} is not a provider with published limits known to this "
                               f"check; sending.rate: {rate}, sending.concurrency: {config.sending_concurrency}"))
            continue
        over = fail if not provider.note else warn  # limits that vary by account only warn
        problems = []
        if provider.per_second and (not config.sending_rate or config.sending_rate > provider.per_second):
            rate = f"{config.sending_rate:g} a second" if config.sending_rate else "unlimited (0)"
            problems.append((f"sending.rate is {rate}, but {provider.name} accepts at most "
                             f"{provider.per_second:g} a second", f"set sending.rate = {provider.per_second:g}"))
        if provider.connections and config.sending_concurrency > provider.connections:
            problems.append((f"sending.concurrency is {config.sending_concurrency}, but {provider.name} allows "
                             f"{provider.connections} connections", f"set sending.concurrency = {provider.connections}"))
        if provider.per_day and subscribers is not None and subscribers > provider.per_day:
            problems.append((f"{subscribers:,} active subscribers, but {provider.name} sends at most "
                             f"{provider.per_day:,} a day", f"use a relay meant for bulk mail, or ask "
                             f"{provider.name} for a higher limit"))
        note = f" ({provider.note})" if provider.note else ""
        source = f"; source: {provider.source}"
        for message, fix in problems:
            findings.append(over(CHECK, subject, message + note + source, fix))
        if not problems:
            daily = f", {provider.per_day:,} a day" if provider.per_day else ""
            findings.append(ok(CHECK, subject, f"within {provider.name}'s published limits{daily}{note}{source}"))
    return findings


def setup_findings(config: Config, *, timeout: float, subscribers: int | None = None) -> list[Finding]:
    return [*check_placeholders(config), check_postal_address(config), check_web(config, timeout=timeout),
            *check_limits(config, subscribers=subscribers)]
