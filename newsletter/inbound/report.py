"""`bounces report`: what came back, per campaign and per receiving domain.

Read-only. The findings are the events record.py had written (kinds bounced, soft_bounce,
bounce, complained, complaint, unsubscribed), which hold codes and ids, never addresses;
the receiving domain comes from the subscriber row, so an erased subscriber's findings
count under "(erased)". The messages that were not used are listed from inbound_messages.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

# RFC 3463's words for the common codes, so a top reason never quotes a receiver's text
# (which may hold an address).
STATUS_TEXT = {
    "5.1.1": "mailbox does not exist",
    "5.1.2": "domain does not exist",
    "5.1.3": "bad address syntax",
    "5.1.6": "mailbox has moved",
    "5.1.10": "recipient address has null MX",
    "5.2.1": "mailbox disabled",
    "5.2.2": "mailbox full",
    "4.2.2": "mailbox full",
    "5.2.3": "message too large",
    "5.4.4": "unable to route",
    "4.4.1": "no answer from host",
    "4.4.7": "delivery time expired",
    "5.4.7": "delivery time expired",
    "5.7.1": "refused by policy",
    "5.7.26": "failed authentication (DMARC/SPF/DKIM)",
    "4.7.1": "refused for now by policy",
    "4.7.28": "rate limited",
}

_FINDING_KINDS = ("bounced", "soft_bounce", "bounce", "complained", "complaint", "unsubscribed")


@dataclass
class Row:
    """The counts of one campaign or one domain."""

    hard: int = 0
    soft: int = 0
    policy: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    suppressed: int = 0

    def add(self, kind: str, severity: str) -> None:
        if kind in ("complained", "complaint"):
            self.complaints += 1
        elif kind == "unsubscribed":
            self.unsubscribes += 1
        elif severity in ("hard", "soft", "policy"):
            setattr(self, severity, getattr(self, severity) + 1)
        if kind in ("bounced", "complained", "unsubscribed"):
            self.suppressed += 1


@dataclass
class Report:
    """The whole report; as_dict() is what --json prints."""

    campaign: int | None
    campaigns: dict[int | None, Row] = field(default_factory=dict)
    domains: dict[str, Row] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    messages: dict[str, int] = field(default_factory=dict)
    listed: list[dict[str, Any]] = field(default_factory=list)
    suppressed_now: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "campaigns": [{"campaign": c, **vars(r)} for c, r in sorted(self.campaigns.items(), key=_order)],
            "domains": [{"domain": d, **vars(r)} for d, r in sorted(self.domains.items())],
            "top_reasons": [
                {"status": status, "meaning": STATUS_TEXT.get(status, ""), "count": n}
                for status, n in self.reasons.most_common(10)
            ],
            "messages": self.messages,
            "suppressed_subscribers": self.suppressed_now,
            "listed": self.listed,
        }


def _order(item: tuple[int | None, Row]) -> int:
    return -1 if item[0] is None else item[0]


def build_report(db: Database, *, campaign: int | None = None) -> Report:
    """The report over everything, or over one campaign's findings."""
    report = Report(campaign=campaign)
    marks = ", ".join("?" * len(_FINDING_KINDS))
    where = f"e.kind IN ({marks}) AND e.source IN ('bounce', 'mail')"
    params: list[Any] = list(_FINDING_KINDS)
    if campaign is not None:
        where += " AND json_extract(e.detail, '$.campaign') = ?"
        params.append(campaign)
    rows = db.execute(
        "SELECT e.kind, e.detail, s.email FROM events AS e LEFT JOIN subscribers AS s ON s.id = e.subscriber_id"
        f" WHERE {where} ORDER BY e.id",
        params,
    )
    campaigns: dict[int | None, Row] = defaultdict(Row)
    domains: dict[str, Row] = defaultdict(Row)
    for kind, detail_text, address in rows:
        detail = json.loads(detail_text)
        severity = detail.get("severity", "")
        campaigns[detail.get("campaign")].add(kind, severity)
        domain = address.rpartition("@")[2].lower() if address else "(erased)"
        domains[domain].add(kind, severity)
        if severity and detail.get("status"):
            report.reasons[detail["status"]] += 1
    report.campaigns, report.domains = dict(campaigns), dict(domains)
    report.suppressed_now = {
        status: n for status, n in db.execute(
            "SELECT status, count(*) FROM subscribers WHERE status IN ('bounced', 'complained') GROUP BY status"
        )
    }
    report.messages = dict(db.execute("SELECT kind, count(*) FROM inbound_messages GROUP BY kind ORDER BY kind"))
    report.listed = [
        {"received_at": at, "via": via, "location": location, "kind": kind, "reason": reason}
        for at, via, location, kind, reason in db.execute(
            "SELECT received_at, via, location, kind, reason FROM inbound_messages"
            " WHERE kind IN ('other', 'bad') OR matched < findings ORDER BY id DESC LIMIT 100"
        )
    ]
    return report
