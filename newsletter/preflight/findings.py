"""A Finding: one line of `newsletter check` output, with its status and what to do."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

OK = "ok"
WARN = "warn"
FAIL = "fail"
STATUSES = (OK, WARN, FAIL)
NOTHING_TO_DO = "nothing to do"


@dataclass(frozen=True)
class Finding:
    """What one check found about one subject (a domain, a relay, a setting, the message).

    `check` is spf, dkim, dmarc, mx, relay, setup or content; `fix` is one line saying what
    to do (the exact DNS record to publish where one is missing).
    """

    check: str
    status: str
    subject: str
    message: str
    fix: str = NOTHING_TO_DO

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")
        if "\n" in self.message or "\n" in self.fix:
            raise ValueError("a finding's message and fix are one line each")

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def ok(check: str, subject: str, message: str) -> Finding:
    return Finding(check, OK, subject, message)


def warn(check: str, subject: str, message: str, fix: str) -> Finding:
    return Finding(check, WARN, subject, message, fix)


def fail(check: str, subject: str, message: str, fix: str) -> Finding:
    return Finding(check, FAIL, subject, message, fix)


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings have each status, in the order ok, warn, fail."""
    out = dict.fromkeys(STATUSES, 0)
    for finding in findings:
        out[finding.status] += 1
    return out
