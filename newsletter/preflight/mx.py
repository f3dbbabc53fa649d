"""MX: the From domain (replies, mailto: unsubscribes) and the bounce domain can receive mail."""

from __future__ import annotations

from ..errors import LookupFailedError
from .findings import Finding, fail, ok, warn
from .resolver import Resolver

CHECK = "mx"


def check_mx(resolver: Resolver, *, from_domain: str, bounce_domain: str) -> list[Finding]:
    """One finding per distinct domain, saying what its mail is for."""
    purposes: dict[str, list[str]] = {}
    purposes.setdefault(from_domain, []).append("replies and mailto: unsubscribes")
    purposes.setdefault(bounce_domain, []).append("bounces")
    return [_check_one(resolver, domain, " and ".join(uses)) for domain, uses in purposes.items()]


def _check_one(resolver: Resolver, domain: str, uses: str) -> Finding:
    publish = f'publish MX {domain} "10 <your mail server>." so that {uses} reach you'
    try:
        answer = resolver.mx(domain)
        if not answer.exists:
            return fail(CHECK, domain, f"{domain} does not exist in DNS, so {uses} are lost",
                        f"use a domain you own in sender.address and sender.envelope, or register {domain}")
        hosts = sorted(answer.records, key=lambda r: int(r.split()[0]))
        if len(hosts) == 1 and hosts[0].split()[1] == ".":
            return fail(CHECK, domain, f"{domain} publishes a null MX (RFC 7505): it accepts no mail, so {uses} are lost",
                        publish.replace("publish", "replace it with", 1))
        if hosts:
            return ok(CHECK, domain, f"{domain} receives {uses}: MX {', '.join(hosts)}")
        implicit = resolver.address(domain).records
    except LookupFailedError as exc:
        return warn(CHECK, domain, f"cannot check the MX of {domain}: {exc}",
                    "run `newsletter check` again, or set check.nameservers to a resolver that answers")
    if implicit:
        return warn(CHECK, domain, f"{domain} has no MX record; mail for it goes to {implicit[0]} (implicit MX)",
                    publish)
    return fail(CHECK, domain, f"{domain} has no MX record and no address, so {uses} are lost", publish)
