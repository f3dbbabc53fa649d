"""Known email services' SMTP relays: their published sending limits and SPF include.

A small table kept by hand; each entry names the page its numbers come from (read in
December 2026). A provider's limits change: when one says otherwise, believe the provider.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    """One service: the relay host names it uses and what it publishes about them."""

    name: str
    hosts: tuple[str, ...]  # exact names, or suffixes starting with a dot
    per_second: float | None  # messages a second at most, None when not published
    connections: int | None  # simultaneous SMTP connections at most, None when not published
    per_day: int | None  # messages (or recipients) a day at most, None when per account
    spf: str  # the SPF mechanism that authorises its servers
    source: str
    note: str = ""

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == h or (h.startswith(".") and host.endswith(h)) for h in self.hosts)


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        name="Microsoft 365 (Exchange Online)",
        hosts=("smtp.office365.com",),
        per_second=0.5,  # 30 messages a minute
        connections=3,  # more are refused with 432 4.3.2
        per_day=10_000,  # recipients a day
        spf="include:spf.protection.outlook.com",
        source="https://learn.microsoft.com/exchange/troubleshoot/send-emails/smtp-submission-improvements",
    ),
    Provider(
        name="Google Workspace (Gmail SMTP)",
        hosts=("smtp.gmail.com",),
        per_second=None,
        connections=None,
        per_day=2_000,  # messages a day per user
        spf="include:_spf.google.com",
        source="https://support.google.com/a/answer/166852",
    ),
    Provider(
        name="Google Workspace SMTP relay",
        hosts=("smtp-relay.gmail.com",),
        per_second=None,
        connections=None,
        per_day=10_000,  # recipients a day per user
        spf="include:_spf.google.com",
        source="https://support.google.com/a/answer/2956491",
    ),
    Provider(
        name="Amazon SES",
        hosts=(".amazonaws.com",),
        per_second=1.0,  # in the sandbox; out of it, the account's own maximum send rate
        connections=None,
        per_day=200,  # in the sandbox
        spf="include:amazonses.com",
        source="https://docs.aws.amazon.com/ses/latest/dg/quotas.html",
        note="sandbox limits; out of the sandbox your account's own (aws sesv2 get-account)",
    ),
)


def provider_for(host: str) -> Provider | None:
    """The known provider whose relay `host` is, if any."""
    return next((p for p in PROVIDERS if p.matches(host)), None)


def spf_mechanism(host: str) -> str:
    """The SPF mechanism that authorises a relay: the provider's include, its name or address.

    A relay on this machine (or none) sends from the domain's own mail server: `mx`.
    """
    provider = provider_for(host)
    if provider is not None:
        return provider.spf
    if not host or host == "localhost":
        return "mx"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"a:{host}"
    if address.is_loopback or address.is_private:
        return "mx"
    return f"ip{address.version}:{address}"
