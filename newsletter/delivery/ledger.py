"""The delivery ledger: the one writer of the `campaigns` and `deliveries` tables.

It creates campaign rows (articles and digests alike) and queues their deliveries, holds
the campaign lease, and makes every status write of a sending run. Callers decide what to
write (campaigns.py, digests/plan.py, the pool); the SQL that writes is all here.

The crash window is what makes a duplicate possible, so it is kept to what is in flight:
a row is marked `sending` in the same transaction that hands it to a connection, and its
outcome is written in the transaction right after the reply. The pool never has more rows
marked `sending` than connections allowed, so a kill -9 leaves at most that many rows with
an unknown outcome; each is retried with its stored Message-ID. The writes of many
replies and claims share one transaction, so SQLite is never the bottleneck.

Every write is fenced. A claim needs the lease and the row still in the state the feed
read; an outcome is written only onto a row that is still `sending` under this run's
claim (`deliveries.claim` = the lease owner). A sender frozen past its lease (SIGSTOP, a
suspended VM) whose rows were taken over and sent by the next one can therefore write
nothing over them, and `finish_run` touches the campaign only while its caller holds the
lease. An outcome landing on a row that nobody re-claimed is the row's true outcome, so it
is kept even after the lease was lost: dropping it would only make the row go out again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from sqlite_utils import Database

from ..audience.subscribers import suppress_bounced
from ..content.rendered import RenderedEmail, dump_rendered
from ..db import now, transaction
from ..errors import SendError
from . import codes
from .outcomes import BOUNCED, DEFERRED, FAILED, SENT, Outcome
from .records import STORED_COUNTS, CampaignNotFoundError, campaign_counts, holder_is_dead

OPEN_NAMES = ("queued", "sending", "deferred")
# The campaign row's counts, written by finish_run and cancel_campaign (`sent = ?, ...`).
_STORE_COUNTS = ", ".join(f"{name} = ?" for name in STORED_COUNTS)


class CampaignBusyError(SendError):
    """Another process holds the campaign's lease and is sending it."""


class LeaseLostError(SendError):
    """Another process took over the campaign while this one was sending it."""


class Item(NamedTuple):
    """One delivery ready to go: the row, the envelope and the final bytes."""

    delivery_id: int
    subscriber_id: int
    email: str
    envelope: str
    message_id: str
    data: bytes
    status: str  # the row's status before it was claimed
    attempts: int
    first_attempt_at: int | None  # ms since the epoch (delivery/codes.py)
    # message.py's promise that every line of data ends in CRLF: the pipelined path then
    # does not search it for other line ends again (False: it checks them).
    crlf_only: bool = False
    # With crlf_only: the offsets of the dots that start a line (MessageBuilder.build_for_smtp),
    # so dot-stuffing need not search the message; None: the sender searches.
    dots: tuple[int, ...] | None = None


class Result(NamedTuple):
    """What happened to a claimed item; outcome None means it was never attempted."""

    item: Item
    outcome: Outcome | None
    relay: str


def new_campaign(
    db: Database,
    *,
    kind: str,
    article_slug: str | None,
    subject: str,
    rendered: Mapping[str, RenderedEmail],
    status: str,
    campaign_key: str,
    at: str,
    total: int = 0,
    lease_owner: str | None = None,
    lease_ttl: float = 0.0,
) -> int:
    """Insert one campaign row, an article's or a digest's, in the caller's transaction.

    The rendered emails are stored with it (so a resumed run rebuilds the same bytes);
    `lease_owner` holds the campaign for `lease_ttl` seconds while its rows are written.
    """
    cursor = db.conn.execute(
        "INSERT INTO campaigns (kind, article_slug, subject, status, campaign_key, rendered, total,"
        " lease_owner, lease_expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            kind, article_slug, subject, status, campaign_key, dump_rendered(rendered), total,
            lease_owner, now(later_by=lease_ttl) if lease_owner else None, at, at,
        ],
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def queue_deliveries(db: Database, campaign_id: int, *, subscribers_sql: str, params: Sequence[object]) -> int:
    """Queue a delivery for each subscriber `subscribers_sql` selects (one column: the id,
    in the order the rows are to get theirs); already queued ones are left alone. In the
    caller's transaction; returns how many were queued."""
    cursor = db.conn.execute(
        "INSERT OR IGNORE INTO deliveries (campaign_id, subscriber_id, status, next_attempt_at)"
        f" SELECT ?, chosen.*, {codes.QUEUED}, 0 FROM ({subscribers_sql}) AS chosen",
        [campaign_id, *params],
    )
    return cursor.rowcount


def mark_ready(db: Database, campaign_id: int) -> None:
    """A campaign's rows are all written: it is `ready`, with its total; in the caller's transaction."""
    total = db.execute("SELECT count(*) FROM deliveries WHERE campaign_id = ?", [campaign_id]).fetchone()[0]
    db.conn.execute(
        "UPDATE campaigns SET status = 'ready', total = ?, updated_at = ? WHERE id = ?",
        [total, now(), campaign_id],
    )


def release_lease(db: Database, campaign_id: int, *, owner: str) -> None:
    """Let go of a campaign's lease (if `owner` still holds it), leaving its status as it is."""
    with db.conn:
        db.conn.execute(
            "UPDATE campaigns SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = ? AND lease_owner = ?",
            [campaign_id, owner],
        )


def mark_sending(db: Database, campaign_id: int, *, owner: str) -> None:
    """The campaign is being sent, by `owner` (only while it holds the lease)."""
    with db.conn:
        db.conn.execute(
            "UPDATE campaigns SET status = 'sending' WHERE id = ? AND lease_owner = ?",
            [campaign_id, owner],
        )


def retry_deferred_now(db: Database, campaign_id: int) -> None:
    """Make every deferred delivery of the campaign due now, ignoring its backoff."""
    with db.conn:
        db.conn.execute(
            "UPDATE deliveries SET next_attempt_at = ? WHERE campaign_id = ? AND status = ?",
            [codes.now_ms(), campaign_id, codes.DEFERRED],
        )


def fail_unbuildable(db: Database, delivery_id: int, reason: str) -> None:
    """A delivery whose message cannot be built fails alone, with its reason."""
    with transaction(db):
        db.execute(
            f"UPDATE deliveries SET status = {codes.FAILED}, reply_text = ?, last_attempt_at = ?,"
            " next_attempt_at = NULL"
            f" WHERE id = ? AND status IN ({codes.in_list('queued', 'sending', 'deferred')})",
            [f"cannot build the message: {reason}", codes.now_ms(), delivery_id],
        )


def unattempted(item: Item) -> Item:
    """The item as its row stands after a claim that was never attempted was handed back.

    A row left `sending` by a dead run goes back to `queued`: it is then an ordinary row.
    """
    return item._replace(status="queued") if item.status == "sending" else item


def acquire_lease(db: Database, campaign_id: int, *, owner: str, ttl: float) -> None:
    """Take the campaign's lease or raise CampaignBusyError naming who holds it.

    A lease is free when nobody holds it, when it expired (its holder stopped renewing),
    or when its holder was a process on this machine that is gone (kill -9).
    """
    stamp = now()
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(
            "SELECT lease_owner, lease_expires_at FROM campaigns WHERE id = ?", [campaign_id]
        ).fetchone()
        if row is None:
            raise SendError(f"there is no campaign {campaign_id}")
        holder, expires = row
        if holder and holder != owner and expires and expires > stamp and not holder_is_dead(holder):
            host, _, rest = holder.partition(":")
            raise CampaignBusyError(
                f"campaign {campaign_id} is being sent by process {rest.partition(':')[0]} on "
                f"{host} (lease until {expires[:19].replace('T', ' ')} UTC). Wait for it to "
                f"finish; if that process is gone, run `newsletter resume {campaign_id}` after "
                "the lease ends."
            )
        db.conn.execute(
            "UPDATE campaigns SET lease_owner = ?, lease_expires_at = ?, "
            "status = CASE WHEN status = 'creating' THEN 'creating' ELSE 'sending' END, "
            "started_at = coalesce(started_at, ?), last_run_at = ?, updated_at = ? WHERE id = ?",
            [owner, now(later_by=ttl), stamp, stamp, stamp, campaign_id],
        )
        db.conn.commit()
    except BaseException:
        db.conn.rollback()
        raise


def finish_run(
    db: Database, campaign_id: int, *, owner: str, broken: bool = False
) -> tuple[str, dict[str, int]]:
    """Store the counts, set the campaign's status from its rows, release the lease.

    Only the lease holder changes the campaign: a run that lost its lease returns the
    status as it stands. `broken`: its messages cannot be built, so the campaign waits
    for `newsletter cancel` instead of being resumed by every `newsletter run`.
    """
    counts = campaign_counts(db, campaign_id)
    if broken and (counts["queued"] or counts["sending"] or counts["deferred"]):
        status = "broken"
    elif counts["queued"] or counts["sending"]:
        status = "paused"
    elif counts["deferred"]:
        status = "waiting"
    else:
        status = "done"
    stamp = now()
    with db.conn:
        db.conn.execute(
            "UPDATE campaigns SET status = CASE WHEN status = 'creating' THEN 'creating' ELSE ? END,"
            f" {_STORE_COUNTS}, updated_at = ?,"
            " finished_at = CASE WHEN ? = 'done' THEN coalesce(finished_at, ?) END,"
            " lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = ? AND lease_owner = ?",
            [status, *(counts[name] for name in STORED_COUNTS), stamp, status, stamp, campaign_id, owner],
        )
    row = db.execute("SELECT status FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    return (row[0] if row else status), counts


def cancel_campaign(db: Database, campaign_id: int, *, owner: str) -> dict[str, int]:
    """Cancel a campaign: its queued, deferred and orphaned rows become `cancelled`.

    Takes the lease first (CampaignBusyError while a live process sends it), so nothing in
    flight is cancelled under a sender's feet and nothing cancelled is sent afterwards.
    Rows already sent stay sent; a new campaign of the article skips their subscribers.
    Returns the counts per status afterwards.
    """
    row = db.execute("SELECT status FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    if row is None:
        raise CampaignNotFoundError(f"there is no campaign {campaign_id}; `newsletter status` lists the campaigns")
    if row[0] in ("done", "cancelled"):
        raise SendError(f"campaign {campaign_id} is {row[0]}: there is nothing left to cancel")
    acquire_lease(db, campaign_id, owner=owner, ttl=60)
    stamp = now()
    with transaction(db):
        db.execute(
            f"UPDATE deliveries SET status = {codes.CANCELLED}, claim = NULL, next_attempt_at = NULL,"
            " reply_text = coalesce(reply_text || ' ', '') || '(cancelled)', last_attempt_at = ?"
            " WHERE campaign_id = ?"
            f" AND status IN ({codes.in_list('queued', 'sending', 'deferred')})",
            [codes.to_ms(stamp), campaign_id],
        )
        counts = campaign_counts(db, campaign_id)
        db.execute(
            f"UPDATE campaigns SET status = 'cancelled', {_STORE_COUNTS}, finished_at = ?, updated_at = ?,"
            " lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?",
            [*(counts[name] for name in STORED_COUNTS), stamp, stamp, campaign_id, owner],
        )
    return counts


class Ledger:
    """The status writes of one run of one campaign, under its lease."""

    def __init__(
        self,
        db: Database,
        campaign_id: int,
        *,
        owner: str,
        ttl: float,
        min_backoff: int,
        max_backoff: int,
        lifetime: int,
    ) -> None:
        self.db = db
        self.campaign_id = campaign_id
        self.owner = owner
        self.ttl = ttl
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.lifetime = lifetime
        self._renew_at = 0.0  # monotonic time of the next lease renewal
        # Delivery ids of the last commit's results that were deferred once too often and
        # written as failed (retry.lifetime), so the run's counters say failed too.
        self.expired: set[int] = set()
        # Who may still get this campaign's message: confirmations go to pending subscribers
        # (one who confirmed or left meanwhile is skipped), everything else to active ones.
        kind = db.execute("SELECT kind FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
        self.audience = "pending" if kind is not None and kind[0] == "confirmation" else "active"
        self.overtaken = 0  # outcomes not written: another run had claimed the row since
        # The campaign's Message-ID template (migration 0010): a row whose ID it gives stores ''.
        row = db.execute("SELECT message_ids FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
        self._message_ids: str | None = row[0] if row else None
        self._relays: dict[str, int | None] = {"": None}

    def commit(self, results: Sequence[Result], claims: Sequence[Item]) -> tuple[list[Item], list[Item]]:
        """Write `results` and claim `claims` in one transaction, renewing the lease.

        Returns (claimed, skipped): a claim is skipped, and never sent, when its subscriber
        is no longer active (unsubscribed, bounced or complained since the campaign began),
        or for a confirmation campaign no longer pending.
        Raises LeaseLostError, after writing the results, if the lease is no longer ours.
        """
        stamp = now()
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if time.monotonic() >= self._renew_at:
                renewed = conn.execute(
                    "UPDATE campaigns SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?",
                    [now(later_by=self.ttl), self.campaign_id, self.owner],
                ).rowcount
                self._renew_at = time.monotonic() + self.ttl / 6
            else:
                # Still ours? (Cheaper than rewriting the campaign row every transaction.)
                renewed = conn.execute(
                    "SELECT 1 FROM campaigns WHERE id = ? AND lease_owner = ?",
                    [self.campaign_id, self.owner],
                ).fetchone() is not None
            if results:
                self._write_results(results, stamp)
            claimed: list[Item] = []
            skipped: list[Item] = []
            if claims and renewed:
                claimed, skipped = self._claim(claims, stamp)
            conn.commit()
        except BaseException:
            conn.rollback()
            # What this transaction may have added (a relay's number, the campaign's
            # Message-ID template) is gone with it: look them up again next time.
            self._relays = {"": None}
            self._message_ids = None
            raise
        if not renewed:
            raise LeaseLostError(
                f"campaign {self.campaign_id} was taken over by another process; this run "
                "stopped. `newsletter status` shows where it stands."
            )
        return claimed, skipped

    def _stored_message_id(self, item: Item) -> str:
        """What the row stores for the item's Message-ID: '' when the campaign's template
        gives it (the first claim of a campaign sets the template), else the ID itself."""
        if self._message_ids is None:
            template = message_id_template(item.message_id, item.subscriber_id)
            if template is not None:
                self.db.conn.execute(
                    "UPDATE campaigns SET message_ids = ? WHERE id = ? AND message_ids IS NULL",
                    [template, self.campaign_id],
                )
                row = self.db.conn.execute(
                    "SELECT message_ids FROM campaigns WHERE id = ?", [self.campaign_id]
                ).fetchone()
                self._message_ids = row[0] if row else None
        if self._message_ids is not None and self._message_ids % item.subscriber_id == item.message_id:
            return ""
        return item.message_id

    def _relay_id(self, label: str) -> int | None:
        """The small integer a relay's label is stored as (delivery_relays)."""
        if label not in self._relays:
            conn = self.db.conn
            conn.execute("INSERT OR IGNORE INTO delivery_relays (label) VALUES (?)", [label])
            self._relays[label] = conn.execute(
                "SELECT id FROM delivery_relays WHERE label = ?", [label]
            ).fetchone()[0]
        return self._relays[label]

    def _claim(self, claims: Sequence[Item], stamp: str) -> tuple[list[Item], list[Item]]:
        conn = self.db.conn
        ms = codes.to_ms(stamp)
        ids = [item.subscriber_id for item in claims]
        # Everyone not found here is inactive, including a subscriber erased since the feed
        # read the row (the erasure deleted the delivery row too: nothing is left to mark).
        inactive: dict[int, str] = dict.fromkeys(ids, "erased")
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for sid, status in conn.execute(f"SELECT id, status FROM subscribers WHERE id IN ({marks})", part):
                if status == self.audience:
                    del inactive[sid]
                else:
                    inactive[sid] = status
        candidates = [i for i in claims if i.subscriber_id not in inactive]
        skipped = [i for i in claims if i.subscriber_id in inactive]
        if skipped:
            conn.executemany(
                f"UPDATE deliveries SET status = {codes.SKIPPED}, reply_text = ?, last_attempt_at = ?,"
                " next_attempt_at = NULL WHERE id = ? AND status = ?",
                [
                    (f"not sent: the subscriber is {inactive[i.subscriber_id]} now", ms, i.delivery_id,
                     codes.code(i.status))
                    for i in skipped
                ],
            )
        # Compare-and-set: a row that changed since the feed read it (an earlier holder's
        # late outcome landed on it, a cancel) is not claimed and not sent.
        # A deferred row keeps its first attempt's time; the claim overwrites last_attempt_at.
        claimed = [
            item for item in candidates
            if conn.execute(
                f"UPDATE deliveries SET status = {codes.SENDING}, message_id = ?, last_attempt_at = ?,"
                " claim = ? WHERE id = ? AND status = ?",
                [self._stored_message_id(item), ms, self.owner, item.delivery_id, codes.code(item.status)],
            ).rowcount
        ]
        return claimed, skipped

    def _write_results(self, results: Sequence[Result], stamp: str) -> None:
        conn = self.db.conn
        updates = []
        restores = []
        bounced = []
        self.expired = set()
        ms = codes.to_ms(stamp)
        assert ms is not None
        for item, outcome, relay in results:
            if outcome is None:
                # Never attempted (no connection): back to how it was, no attempt counted.
                restores.append((codes.code(unattempted(item).status), item.delivery_id, self.owner))
                continue
            status = outcome.status
            attempts = item.attempts + 1
            first = item.first_attempt_at if item.first_attempt_at is not None else ms
            next_at = None
            text: str | None = outcome.text
            if status == DEFERRED:
                age = (ms - first) / 1000
                if age >= self.lifetime:
                    status = FAILED
                    self.expired.add(item.delivery_id)
                    text = f"gave up after {attempts} attempts over {age / 3600:.0f} h: {text}"
                else:
                    delay = min(self.max_backoff, self.min_backoff * 2 ** (attempts - 1))
                    next_at = codes.now_ms(later_by=delay)
            if status == BOUNCED:
                bounced.append((item, outcome))
            stored_first: int | None = first
            if status == SENT:
                # A sent row needs no reply text (code, enhanced code and queue id say it),
                # and its sent_at is its last_attempt_at, as is its first attempt's time
                # when that was the only one: NULL, derived by the readers.
                text = None
                stored_first = None if first == ms else first
            updates.append(
                (
                    codes.code(status), attempts, outcome.code, outcome.enhanced, text, outcome.queue_id,
                    self._relay_id(relay), ms, stored_first, next_at,
                    item.delivery_id, self.owner,
                )
            )
        written: set[int] = set()
        for update in updates:
            # Fenced: only onto a row still `sending` under this run's claim.
            if conn.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, reply_code = ?, enhanced_code = ?,"
                " reply_text = ?, queue_id = ?, relay = ?, last_attempt_at = ?,"
                " first_attempt_at = ?, next_attempt_at = ?, claim = NULL"
                f" WHERE id = ? AND status = {codes.SENDING} AND claim = ?",
                update,
            ).rowcount:
                written.add(update[-2])
        if restores:
            conn.executemany(
                f"UPDATE deliveries SET status = ?, claim = NULL WHERE id = ? AND status = {codes.SENDING}"
                " AND claim = ?",
                restores,
            )
        self.overtaken += len(updates) - len(written)
        for item, outcome in bounced:
            if item.delivery_id not in written:
                continue
            # A hard bounce suppresses the address; the audience wing writes that (and its event).
            suppress_bounced(
                self.db, item.subscriber_id, campaign_id=self.campaign_id,
                code=outcome.code, enhanced=outcome.enhanced, at=stamp,
            )


def message_id_template(message_id: str, subscriber_id: int) -> str | None:
    """The campaign's printf template ('<label.digest.%d@domain>') that gives `message_id`
    for `subscriber_id` (content/message.make_message_id's form), or None."""
    head, sep, tail = message_id.rpartition(f".{subscriber_id}@")
    if not sep or "%" in head or "%" in tail:
        return None
    return f"{head}.%d@{tail}"


def record_bounce(
    db: Database, delivery_id: int, *, enhanced: str, text: str, code: int | None = None
) -> bool:
    """A delivery reported back as not delivered (a DSN or a bounce email): `bounced`, with
    the status code and diagnostic text kept on the row (erased with the subscriber), and
    the campaign's stored counts moved along. Returns whether the row changed.

    Only a row that left (sent) or is waiting to be retried (deferred) changes: one that is
    bounced already keeps its first reason, one in flight is the pool's to write.
    """
    stamp = now()
    with transaction(db):
        row = db.execute(
            "SELECT campaign_id, status FROM deliveries WHERE id = ?", [delivery_id]
        ).fetchone()
        if row is None or row[1] not in (codes.SENT, codes.DEFERRED):
            return False
        campaign_id, previous = row[0], codes.name(row[1])
        # The reply code becomes the bounce's: the relay's 250 is no longer the story. A
        # sent row's derived times (sent_at, first_attempt_at) are written out first,
        # since last_attempt_at becomes the bounce's.
        db.execute(
            f"UPDATE deliveries SET status = {codes.BOUNCED}, reply_code = ?,"
            " enhanced_code = ?, reply_text = ?, next_attempt_at = NULL, last_attempt_at = ?,"
            f" sent_at = CASE WHEN status = {codes.SENT} THEN coalesce(sent_at, last_attempt_at) ELSE sent_at END,"
            f" first_attempt_at = CASE WHEN status = {codes.SENT}"
            " THEN coalesce(first_attempt_at, last_attempt_at) ELSE first_attempt_at END"
            " WHERE id = ?",
            [code, enhanced or None, text[:2000], codes.to_ms(stamp), delivery_id],
        )
        # Moved by one, not recounted: a large campaign's bounces come in by the thousand.
        db.execute(
            f"UPDATE campaigns SET {previous} = max({previous} - 1, 0), bounced = bounced + 1,"
            " updated_at = ? WHERE id = ?",
            [stamp, campaign_id],
        )
    return True


def fold_campaign(db: Database, campaign_id: int, *, at: str) -> dict[str, int] | None:
    """Fold a finished campaign's delivery rows into per-status counts (delivery_counts)
    and delete the rows, in one transaction; returns the counts folded, or None when the
    campaign is not finished (done or cancelled, nothing queued, in flight or deferred).

    Subscribers, suppressions, events and the campaign row are left as they are: only the
    per-recipient record of who got this campaign goes.
    """
    with transaction(db):
        row = db.execute("SELECT status FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
        if row is None or row[0] not in ("done", "cancelled"):
            return None
        unfinished = db.execute(
            f"SELECT count(*) FROM deliveries WHERE campaign_id = ? AND status IN ({codes.in_list(*OPEN_NAMES)})",
            [campaign_id],
        ).fetchone()[0]
        if unfinished:
            return None
        folded = dict(db.execute(
            "SELECT status, count(*) FROM deliveries WHERE campaign_id = ? GROUP BY status", [campaign_id]
        ).fetchall())
        db.conn.executemany(
            "INSERT INTO delivery_counts (campaign_id, status, count, folded_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (campaign_id, status) DO UPDATE SET count = count + excluded.count,"
            " folded_at = excluded.folded_at",
            [(campaign_id, status, n, at) for status, n in folded.items()],
        )
        db.execute("DELETE FROM deliveries WHERE campaign_id = ?", [campaign_id])
    return {codes.name(status): n for status, n in folded.items()}
