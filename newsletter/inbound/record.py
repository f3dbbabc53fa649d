"""Record one returned message: tie it to its delivery, change the statuses, remember it.

The delivery is found by, in order: the VERP token in the address the bounce was sent to
(sender.envelope with {token}), our Message-ID in the returned headers or body, and last
the failed recipient's address (their latest delivery). Statuses change only through
the delivery ledger (delivery/ledger.record_bounce: the row, with its diagnostic text)
and the subscriber module (audience/subscribers.record_bounce / record_complaint /
unsubscribe_by_token: the status and one event per finding, with no address in it).

A message is recorded in one transaction together with its fingerprint, so it counts
once whichever way it came (pipe, Maildir, mbox, IMAP) and however often.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlite_utils import Database

from ..audience import subscribers
from ..config import Config
from ..db import now, transaction
from ..delivery.campaigns import DeliveryRef, MessageIds, delivery_for_token, latest_delivery_to, verp_pattern
from ..delivery.ledger import record_bounce
from .parse import Context, Failure, Parsed, parse_message

VIA = ("pipe", "maildir", "mbox", "imap")


@dataclass
class Handled:
    """What was done with one message."""

    kind: str
    duplicate: bool = False  # seen before (by fingerprint): nothing was done again
    reason: str = ""
    findings: list[str] = field(default_factory=list)  # one line per finding, no addresses
    matched: int = 0
    failures: int = 0

    @property
    def listed(self) -> bool:
        """Whether a person should look at it: not recognised, or about nobody we know."""
        return self.kind in ("other", "bad") or (self.failures > self.matched and not self.duplicate)


class Recorder:
    """Records messages into one database with one configuration."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config, self.db = config, db
        self._verp = verp_pattern(config)
        self._ids = MessageIds(db)
        self._domain = config.sender_address.rpartition("@")[2].lower()

    def parse(self, data: bytes, *, recipient: str = "", size: int | None = None) -> Parsed:
        return parse_message(data, context=Context(unsubscribe_domain=self._domain, recipient=recipient), size=size)

    def seen(self, fingerprint: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM inbound_messages WHERE fingerprint = ?", [fingerprint]
        ).fetchone() is not None

    def record(self, parsed: Parsed, *, via: str, location: str = "") -> Handled:
        """Apply and remember `parsed`, all or nothing; a message seen before changes nothing."""
        handled = Handled(kind=parsed.kind, reason=parsed.reason)
        with transaction(self.db):
            inserted = self.db.execute(
                "INSERT OR IGNORE INTO inbound_messages (fingerprint, received_at, via, location, kind)"
                " VALUES (?, ?, ?, ?, ?)",
                [parsed.fingerprint, now(), via, location[:500], parsed.kind],
            ).rowcount
            if not inserted:
                handled.duplicate = True
                return handled
            if parsed.kind == "bounce":
                self._bounce(parsed, handled)
            elif parsed.kind == "complaint":
                self._complaint(parsed, handled)
            elif parsed.kind == "unsubscribe":
                self._unsubscribe(parsed, handled)
            self.db.execute(
                "UPDATE inbound_messages SET kind = ?, findings = ?, matched = ?, reason = ? WHERE fingerprint = ?",
                [handled.kind, handled.failures, handled.matched, handled.reason[:500], parsed.fingerprint],
            )
        return handled

    # Finding the delivery

    def _by_verp(self, parsed: Parsed) -> tuple[DeliveryRef | None, int | None]:
        if self._verp is None:
            return None, None
        for address in [*parsed.delivered_to, *parsed.returned_senders]:
            match = self._verp.fullmatch(address)
            if not match:
                continue
            ref = delivery_for_token(self.db, match.group(1))
            if ref is not None:
                return ref, ref.subscriber_id
            # A confirmation email carries the subscriber's own token instead.
            subscriber = subscribers.get_by_token(self.db, match.group(1))
            if subscriber is not None:
                return None, subscriber["id"]
        return None, None

    def _by_message_id(self, parsed: Parsed) -> DeliveryRef | None:
        for message_id in parsed.returned_ids:
            ref = self._ids.delivery(message_id)
            if ref is not None:
                return ref
        return None

    def _by_address(self, address: str) -> tuple[DeliveryRef | None, int | None]:
        if not address:
            return None, None
        subscriber = subscribers.find(self.db, address)
        if subscriber is None:
            return None, None
        return latest_delivery_to(self.db, subscriber["id"]), subscriber["id"]

    # Recording

    def _bounce(self, parsed: Parsed, handled: Handled) -> None:
        ref, subscriber_id = self._by_verp(parsed)
        if ref is None and subscriber_id is None:
            ref = self._by_message_id(parsed)
            subscriber_id = ref.subscriber_id if ref else None
        if ref is not None or subscriber_id is not None:
            # One message, one recipient (we send one RCPT per message): the worst finding.
            worst = min(parsed.failures, key=lambda f: (f.action != "failed", f.severity != "hard"))
            handled.failures = 1
            self._one_bounce(worst, ref, subscriber_id, parsed, handled)
            return
        handled.failures = len(parsed.failures)
        for failure in parsed.failures:
            ref, subscriber_id = self._by_address(failure.recipient)
            if subscriber_id is None:
                status = failure.status or "no status"
                handled.findings.append(f"{failure.severity} bounce ({status}) about nobody we know")
                continue
            if ref is not None:
                ref = DeliveryRef(ref.delivery_id, ref.campaign_id, ref.subscriber_id, ref.status, "recipient")
            self._one_bounce(failure, ref, subscriber_id, parsed, handled)
        if handled.matched < handled.failures:
            handled.reason = (
                f"{handled.failures - handled.matched} of {handled.failures} failed recipients match no "
                "delivery (no VERP token, none of our Message-IDs, an address we do not have)"
            )

    def _one_bounce(
        self, failure: Failure, ref: DeliveryRef | None, subscriber_id: int | None, parsed: Parsed, handled: Handled
    ) -> None:
        assert subscriber_id is not None
        handled.matched += 1
        changed = False
        if ref is not None:
            prefix = "delayed: " if failure.action == "delayed" else ""
            changed = record_bounce(
                self.db, ref.delivery_id, enhanced=failure.status, code=failure.code,
                text=f"{prefix}{failure.diagnostic}",
            )
        detail = {
            "campaign": ref.campaign_id if ref else None,
            "delivery": ref.delivery_id if ref else None,
            "action": failure.action,
            "status": failure.status,
            "code": failure.code,
            "via": ref.via if ref else "verp",
            "detector": parsed.detector,
        }
        outcome = subscribers.record_bounce(
            self.db, subscriber_id, severity=failure.severity, detail=detail,
            soft_limit=self.config.bounces_soft_limit, soft_window_days=self.config.bounces_soft_window,
        )
        where = f"delivery {ref.delivery_id} of campaign {ref.campaign_id}" if ref else f"subscriber {subscriber_id}"
        handled.findings.append(
            f"{failure.severity} bounce ({failure.status or 'no status'}) for {where}"
            f"{'' if changed or ref is None else ' (delivery already marked)'}: subscriber {outcome}"
        )

    def _complaint(self, parsed: Parsed, handled: Handled) -> None:
        handled.failures = 1
        ref, subscriber_id = self._by_verp(parsed)
        if ref is None and subscriber_id is None:
            ref = self._by_message_id(parsed)
            subscriber_id = ref.subscriber_id if ref else None
        for address in parsed.complained_by:
            if subscriber_id is None:
                ref, subscriber_id = self._by_address(address)
        if subscriber_id is None:
            handled.reason = "a complaint about a message we cannot tie to a subscriber"
            return
        handled.matched = 1
        outcome = subscribers.record_complaint(
            self.db, subscriber_id,
            detail={"campaign": ref.campaign_id if ref else None, "delivery": ref.delivery_id if ref else None,
                    "feedback_type": parsed.feedback_type, "via": ref.via if ref else "verp"},
        )
        handled.findings.append(f"complaint ({parsed.feedback_type}) about subscriber {subscriber_id}: {outcome}")

    def _unsubscribe(self, parsed: Parsed, handled: Handled) -> None:
        handled.failures = 1
        for token in parsed.tokens:
            result = subscribers.unsubscribe_by_token(self.db, token, detail={"via": "mailto"})
            if result is not None:
                handled.matched = 1
                handled.findings.append(f"unsubscribe request from subscriber {result[0]}: {result[1]}")
                return
        handled.kind = "other"
        handled.reason = "an unsubscribe request whose token matches no subscriber"
