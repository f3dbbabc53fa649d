"""DNS look-ups for `newsletter check` (dnspython): TXT, MX and address records.

The servers are check.nameservers when set (host or host:port, a name being resolved once
through the system), else the system's resolvers. Each answer is kept for the run, so SPF,
DMARC and MX ask for a name once. After one time-out every later look-up fails at once
with the same error: a resolver that does not answer would otherwise cost every check its
full time-out.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.rdata
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.TXT
import dns.resolver

from ..errors import LookupFailedError, LookupTimeoutError

DEFAULT_TIMEOUT = 5.0  # seconds per look-up, dnspython's own default lifetime


@dataclass(frozen=True)
class Answer:
    """The records found for a name and type; `exists` is False when the name does not (NXDOMAIN)."""

    records: tuple[str, ...]
    exists: bool = True


class Resolver:
    """Asks the configured DNS servers, remembering answers and the first time-out."""

    def __init__(self, *, nameservers: Sequence[tuple[str, int]] = (), timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.servers = ", ".join(f"{h}:{p}" for h, p in nameservers) or "the system's resolvers"
        self._answers: dict[tuple[str, str], Answer] = {}
        self._dead: LookupTimeoutError | None = None
        self._setup_error: LookupFailedError | None = None
        try:
            self._resolver = dns.resolver.Resolver(configure=not nameservers)
        except (dns.resolver.NoResolverConfiguration, OSError):
            self._resolver = dns.resolver.Resolver(configure=False)
            self._setup_error = LookupFailedError(
                "this machine has no DNS resolver configured (/etc/resolv.conf)"
            )
        if nameservers:
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(_address(host), port) for host, port in nameservers
            ]
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout

    def txt(self, name: str) -> Answer:
        """The TXT records of `name`, each record's strings joined (as SPF and DKIM read them)."""
        return self._query(name, "TXT")

    def mx(self, name: str) -> Answer:
        """The MX records of `name` as 'PREFERENCE EXCHANGE' ('0 .' is a null MX)."""
        return self._query(name, "MX")

    def address(self, name: str) -> Answer:
        """The A and AAAA records of `name` (an implicit MX when there is no MX)."""
        first = self._query(name, "A")
        if first.records or not first.exists:
            return first
        return self._query(name, "AAAA")

    def _query(self, name: str, rdtype: str) -> Answer:
        key = (name.lower().rstrip("."), rdtype)
        if key in self._answers:
            return self._answers[key]
        if self._setup_error is not None:
            raise self._setup_error
        if self._dead is not None:
            raise self._dead
        try:
            answer = self._resolver.resolve(key[0] + ".", rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            result = Answer((), exists=False)
        except dns.exception.Timeout:
            self._dead = LookupTimeoutError(
                f"the DNS server ({self.servers}) did not answer within {self.timeout:g} s"
            )
            raise self._dead from None
        except dns.resolver.NoNameservers as exc:
            raise LookupFailedError(f"the DNS server ({self.servers}) could not answer for {name}: {exc}") from None
        except dns.exception.DNSException as exc:
            raise LookupFailedError(f"cannot look up {rdtype} {name}: {exc}") from None
        else:
            result = Answer(tuple(_text(rdata, rdtype) for rdata in answer))
        self._answers[key] = result
        return result


def _text(rdata: dns.rdata.Rdata, rdtype: str) -> str:
    if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if isinstance(rdata, dns.rdtypes.ANY.MX.MX):
        return f"{rdata.preference} {rdata.exchange.to_text()}"
    return rdata.to_text()


def _address(host: str) -> str:
    """An IP address for a nameserver given by name (resolved once, by the system)."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    try:
        return str(socket.getaddrinfo(host, 53, proto=socket.IPPROTO_UDP)[0][4][0])
    except OSError as exc:
        raise LookupFailedError(f"check.nameservers: cannot find the address of {host!r}: {exc}") from exc
