"""A real DNS server on 127.0.0.1 for the check tests (dnslib), over UDP and TCP on one port.

It serves exactly the records it is given: a name it does not know is NXDOMAIN, a known
name without the asked type is an empty answer. SilentDnsServer is a UDP socket that reads
nothing and answers nothing: a resolver that has gone away.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from dnslib import MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

Record = tuple[str, str, str]  # (name, type, value): ("example.nl", "TXT", "v=spf1 -all")


def _rdata(rtype: str, value: str) -> Any:
    if rtype == "TXT":
        raw = value.encode("utf-8")  # strings of at most 255 octets, as a zone file splits them
        return TXT([raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""])
    if rtype == "MX":
        preference, _, exchange = value.partition(" ")
        return MX(exchange, int(preference))
    if rtype == "A":
        return A(value)
    raise ValueError(f"unsupported record type {rtype}")


class _Zone(BaseResolver):  # type: ignore[misc]
    def __init__(self, records: list[Record]) -> None:
        self.records = [(DNSLabel(name), rtype, _rdata(rtype, value)) for name, rtype, value in records]
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname, qtype = request.q.qname, QTYPE[request.q.qtype]
        self.queries.append((str(qname).rstrip("."), qtype))
        known = False
        for name, rtype, rdata in self.records:
            if name == qname:
                known = True
                if rtype == qtype:
                    reply.add_answer(RR(qname, getattr(QTYPE, rtype), rdata=rdata, ttl=60))
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DnsServer:
    """Serves `records` on 127.0.0.1:port (UDP, and TCP for answers too long for UDP)."""

    def __init__(self, records: list[Record]) -> None:
        self.zone = _Zone(records)
        quiet = DNSLogger(logf=lambda _line: None)
        for _attempt in range(20):
            # A port free for UDP may be taken for TCP (other tests on this machine): try another.
            self.port = _free_port()
            self._servers: list[DNSServer] = []
            try:
                for tcp in (False, True):
                    self._servers.append(DNSServer(self.zone, address="127.0.0.1", port=self.port, tcp=tcp,
                                                   logger=quiet))
            except OSError:
                for server in self._servers:
                    server.server.server_close()
                continue
            return
        raise OSError("no port on 127.0.0.1 was free for both UDP and TCP")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DnsServer:
        for server in self._servers:
            # serve_forever polls for shutdown every 0.5 s by default: stop() would wait that long
            thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
            thread.start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.server.shutdown()
            server.server.server_close()


class SilentDnsServer:
    """A UDP port on 127.0.0.1 where nothing ever answers."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._sock.close()
