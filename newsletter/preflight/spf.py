"""SPF (RFC 7208) of the envelope sender's domain: one record, parsable, ending in ~all or
-all, and within the limit of 10 DNS look-ups, counted through include: and redirect=."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import LookupFailedError, SpfSyntaxError
from .findings import Finding, fail, ok, warn
from .resolver import Resolver

LOOKUP_LIMIT = 10  # RFC 7208 4.6.4
CHECK = "spf"
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_COUNTED = {"include", "a", "mx", "ptr", "exists"}  # each costs a DNS look-up
_TERM = re.compile(r"^([+\-~?]?)([a-z0-9]+)(?:([:/])(.*))?$", re.IGNORECASE)
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.\-]*)=(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Term:
    qualifier: str  # "", "+", "-", "~", "?"
    name: str  # mechanism name, or modifier name for modifiers
    value: str
    modifier: bool = False


def is_spf(text: str) -> bool:
    """A TXT record that says it is SPF: 'v=spf1' alone or followed by a space."""
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


def parse(record: str) -> list[Term]:
    """The terms of an SPF record; raises SpfSyntaxError naming the first bad one."""
    terms = []
    for word in record.split()[1:]:
        modifier = _MODIFIER.match(word)
        if modifier and ":" not in modifier.group(1):
            terms.append(Term("", modifier.group(1).lower(), modifier.group(2), modifier=True))
            continue
        match = _TERM.match(word)
        if not match or match.group(2).lower() not in _MECHANISMS:
            raise SpfSyntaxError(f"{word!r} is not an SPF mechanism")
        name = match.group(2).lower()
        value = (match.group(4) or "") if match.group(3) == ":" else ""
        if (name in ("include", "exists", "ip4", "ip6") or match.group(3)) and not match.group(4):
            raise SpfSyntaxError(f"{word!r} needs a value after the colon")
        if name == "all" and match.group(3):
            raise SpfSyntaxError(f"{word!r}: 'all' takes no value")
        terms.append(Term(match.group(1), name, value))
    return terms


@dataclass
class _Walk:
    resolver: Resolver
    lookups: int = 0


def _count(walk: _Walk, terms: list[Term], depth: int) -> Term | None:
    """Add this record's look-ups (and its includes' and redirect's) to the walk; returns the
    `all` term that ends the evaluation, or None."""
    ending = next((t for t in terms if not t.modifier and t.name == "all"), None)
    for term in terms:
        if walk.lookups > LOOKUP_LIMIT:
            return ending
        if term.modifier and term.name == "redirect" and ending is None:
            walk.lookups += 1
            ending = _follow(walk, term, depth)
        elif not term.modifier and term.name in _COUNTED:
            walk.lookups += 1
            if term.name == "include":
                _follow(walk, term, depth)
    return ending


def _follow(walk: _Walk, term: Term, depth: int) -> Term | None:
    target = term.value
    if "%" in target or depth > LOOKUP_LIMIT:  # a macro cannot be expanded here; a loop ends here
        return None
    found = [t for t in walk.resolver.txt(target).records if is_spf(t)]
    label = f"include:{target}" if term.name == "include" else f"redirect={target}"
    if len(found) != 1:
        raise SpfSyntaxError(f"{label} has {'no' if not found else len(found)} SPF record{'s' if found else ''}")
    try:
        terms = parse(found[0])
    except SpfSyntaxError as exc:
        raise SpfSyntaxError(f"{label}: {exc}") from None
    return _count(walk, terms, depth + 1)


def check_spf(resolver: Resolver, *, domain: str, mechanism: str) -> Finding:
    """The SPF finding for the envelope sender's `domain`; `mechanism` authorises the relay
    in the record suggested when there is none."""
    suggestion = f'publish TXT {domain} "v=spf1 {mechanism} ~all"'
    try:
        found = [t for t in resolver.txt(domain).records if is_spf(t)]
        if not found:
            return fail(CHECK, domain, f"no SPF record for {domain} (the envelope sender's domain)", suggestion)
        if len(found) > 1:
            return fail(
                CHECK, domain,
                f"{domain} has {len(found)} SPF records; receivers treat that as an error (permerror)",
                "merge them into one TXT record that starts with v=spf1 and remove the others",
            )
        record = found[0]
        walk = _Walk(resolver)
        try:
            ending = _count(walk, parse(record), 0)
        except SpfSyntaxError as exc:
            return fail(CHECK, domain, f"the SPF record of {domain} does not parse: {exc}",
                        f"correct the TXT record of {domain}, e.g. \"v=spf1 {mechanism} ~all\"")
    except LookupFailedError as exc:
        return warn(CHECK, domain, f"cannot check SPF of {domain}: {exc}",
                    "run `newsletter check` again, or set check.nameservers to a resolver that answers")
    if walk.lookups > LOOKUP_LIMIT:
        return fail(
            CHECK, domain,
            f"the SPF record of {domain} needs {walk.lookups} DNS look-ups; the limit is {LOOKUP_LIMIT} (permerror)",
            "replace include: entries with the ip4:/ip6: ranges they list, or drop the ones you do not send through",
        )
    summary = f"{record} ({walk.lookups} of {LOOKUP_LIMIT} DNS look-ups)"
    if ending is None or ending.qualifier in ("?",):
        return warn(CHECK, domain, f"{summary} does not end in ~all or -all, so mail from other servers is neutral",
                    f"end the TXT record of {domain} with ~all (or -all)")
    if ending.qualifier in ("", "+"):
        return fail(CHECK, domain, f"{summary} ends in +all: it lets any server send as {domain}",
                    f"replace +all with ~all (or -all) in the TXT record of {domain}")
    return ok(CHECK, domain, summary)
