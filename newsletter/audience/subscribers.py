"""Subscribers: add, confirm, unsubscribe, change, list, import, export and erase.

Every change writes an event (what, when, through what: cli, import, web, bounce; and who).
Events never hold an address or a name, so erasing a subscriber leaves no personal data
behind but the one-way hash that keeps the address suppressed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..config import LANGUAGES
from ..db import Reads, now, transaction
from ..errors import InvalidEmailError, NewsletterError, SubscriberNotFoundError
from ..text import forbidden_char
from .events import for_subscriber, highest_subscriber_id, log_event, log_many

if TYPE_CHECKING:
    from sqlite_utils import Database

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
# Addresses in these states are never mailed again, and never re-activated by an import.
SUPPRESSED = ("unsubscribed", "bounced", "complained")
CADENCES = ("each", "daily", "weekly")
SOURCES = ("cli", "import", "web", "bounce", "send", "mail")
# What a returned message found (inbound/): the severities of a bounce.
BOUNCE_SEVERITIES = ("hard", "soft", "policy")
TOKEN_BYTES = 18  # 144 bits, 24 URL-safe characters: short enough for List-Unsubscribe
COLUMNS = (
    "id, email, name, language, status, cadence, token, consent_at, consent_source, "
    "created_at, updated_at, confirmed_at, unsubscribed_at"
)


def normalize_email(text: str) -> str:
    """The address as stored (domain lower-cased, IDNA-normalised); InvalidEmailError if invalid.

    Syntax only: no DNS look-up, so imports stay fast and work offline. Non-ASCII before
    the @ needs SMTPUTF8 end to end, which neither the sender nor most receivers offer, so
    such an address is refused here rather than failing at every send; a non-ASCII domain
    is fine (it is sent in its xn-- form).
    """
    # Imported here, not at the top: `subscribers list` and `count` never check an address,
    # and email-validator's patterns take a large part of a command's start-up time.
    from email_validator import EmailNotValidError, validate_email

    candidate = (text or "").strip()
    if not candidate:
        raise InvalidEmailError("the email address is empty")
    try:
        return validate_email(candidate, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as exc:
        raise InvalidEmailError(f"{candidate!r} is not an email address: {exc}") from None


def email_hash(email: str) -> str:
    """A one-way hash of a normalised address, the same whatever its case."""
    import hashlib  # here and below, not at the top: OpenSSL's load is felt in `subscribers list` (CLI start)

    return hashlib.sha256(f"newsletter-suppression:{email.casefold()}".encode()).hexdigest()


def new_token() -> str:
    """A random secret for a subscriber's links (unsubscribe, confirm, web view)."""
    import secrets  # not at the top: see email_hash

    return secrets.token_urlsafe(TOKEN_BYTES)


def current_actor() -> str:
    """Who is acting, for the event log: the operating-system user."""
    import getpass  # not at the top: see email_hash

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    value = (value or "").strip().lower()
    if value not in choices:
        raise NewsletterError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return value


def check_name(name: str) -> str:
    """A subscriber's name as stored: stripped, one line, no control characters, at most 200."""
    name = (name or "").strip()
    # The name goes into the To header, where message.py refuses the same characters
    # (text.py): one such name would stop every send.
    if forbidden_char(name) is not None:
        raise NewsletterError("a name must be one line of text without control characters")
    if len(name) > 200:
        raise NewsletterError("a name must be at most 200 characters")
    return name


def _row_to_dict(cursor_row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    if cursor_row is None:
        return None
    return dict(zip([c.strip() for c in COLUMNS.split(",")], cursor_row, strict=True))


def find(db: Database, email: str) -> dict[str, Any] | None:
    """The subscriber with this address (any case, a domain in Unicode or xn-- form), or None."""
    try:
        # Stored addresses are normalised; COLLATE NOCASE alone folds only ASCII letters.
        address = normalize_email(email)
    except InvalidEmailError:
        address = email.strip()
    row = db.execute(f"SELECT {COLUMNS} FROM subscribers WHERE email = ?", [address]).fetchone()
    return _row_to_dict(row)


def get(db: Database, email: str) -> dict[str, Any]:
    """The subscriber with this address; SubscriberNotFoundError if there is none."""
    found = find(db, email)
    if found is None:
        raise SubscriberNotFoundError(
            f"no subscriber {email.strip()!r}; `newsletter subscribers list` shows who there is"
        )
    return found


def next_id(db: Database) -> int:
    """The id for a new subscriber: never one an erased subscriber had.

    The table has no AUTOINCREMENT, so SQLite would hand out an erased subscriber's id
    again, and the events log (which keeps erased subscribers' events by id) would then
    show their history as the newcomer's.
    """
    (highest,) = db.execute("SELECT coalesce(max(id), 0) FROM subscribers").fetchone()
    return max(highest, highest_subscriber_id(db)) + 1


def get_by_token(db: Database, token: str) -> dict[str, Any] | None:
    """The subscriber whose links carry this token, or None."""
    row = db.execute(f"SELECT {COLUMNS} FROM subscribers WHERE token = ?", [token]).fetchone()
    return _row_to_dict(row)


@dataclass(frozen=True)
class SubscribeResult:
    """outcome: created, exists (nothing changed) or resubscribed (explicit new opt-in)."""

    outcome: str
    subscriber: dict[str, Any]


def subscribe(
    db: Database,
    email: str,
    *,
    name: str = "",
    language: str = "en",
    cadence: str = "each",
    confirmed: bool = False,
    source: str = "cli",
    actor: str | None = None,
) -> SubscribeResult:
    """Add a subscriber: pending (double opt-in) unless confirmed.

    An address already pending or active is left as it is. An address that unsubscribed,
    bounced, complained or was erased comes back only through this explicit call, and the
    new opt-in is logged.
    """
    address = normalize_email(email)
    name = check_name(name)
    language = _check_choice(language, LANGUAGES, "language")
    cadence = _check_choice(cadence, CADENCES, "cadence")
    actor = current_actor() if actor is None else actor
    status = "active" if confirmed else "pending"
    stamp = now()
    with transaction(db):
        existing = find(db, address)
        if existing and existing["status"] not in SUPPRESSED:
            return SubscribeResult("exists", existing)
        if existing:
            db.execute(
                "UPDATE subscribers SET status = ?, name = COALESCE(NULLIF(?, ''), name), "
                "language = ?, cadence = ?, consent_at = ?, consent_source = ?, updated_at = ?, "
                "confirmed_at = ?, unsubscribed_at = NULL WHERE id = ?",
                [status, name, language, cadence, stamp, source, stamp,
                 stamp if confirmed else None, existing["id"]],
            )
            log_event(db, kind="resubscribed", source=source, subscriber_id=existing["id"],
                      actor=actor, detail={"previous_status": existing["status"], "status": status},
                      at=stamp)
            return SubscribeResult("resubscribed", get(db, address))
        erased = db.execute(
            "DELETE FROM suppressions WHERE email_hash = ? RETURNING reason", [email_hash(address)]
        ).fetchone()
        new_id = next_id(db)
        db.execute(
            "INSERT INTO subscribers (id, email, name, language, status, cadence, token, consent_at, "
            "consent_source, created_at, updated_at, confirmed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [new_id, address, name, language, status, cadence, new_token(), stamp, source, stamp, stamp,
             stamp if confirmed else None],
        )
        detail: dict[str, Any] = {"status": status, "cadence": cadence}
        if erased:
            detail["previously"] = erased[0]
        log_event(db, kind="subscribed", source=source, subscriber_id=new_id,
                  actor=actor, detail=detail, at=stamp)
        return SubscribeResult("resubscribed" if erased else "created", get(db, address))


def confirm(db: Database, email: str, *, source: str = "cli", actor: str | None = None) -> str:
    """Confirm a pending subscriber. Returns confirmed or already (nothing changed)."""
    with transaction(db):
        subscriber = get(db, email)
        if subscriber["status"] == "active":
            return "already"
        if subscriber["status"] != "pending":
            raise NewsletterError(
                f"{subscriber['email']} is {subscriber['status']}, not pending; "
                "subscribe them again with `newsletter subscribe` if they opted in anew"
            )
        stamp = now()
        db.execute(
            "UPDATE subscribers SET status = 'active', confirmed_at = ?, updated_at = ? WHERE id = ?",
            [stamp, stamp, subscriber["id"]],
        )
        log_event(db, kind="confirmed", source=source, subscriber_id=subscriber["id"],
                  actor=current_actor() if actor is None else actor, at=stamp)
    return "confirmed"


def set_status(
    db: Database,
    email: str,
    status: str,
    *,
    source: str,
    actor: str | None = None,
    detail: dict[str, Any] | None = None,
) -> str:
    """Move a subscriber to `status` (unsubscribed, bounced, complained, ...), logged.

    Returns the previous status; a call that changes nothing writes nothing.
    """
    status = _check_choice(status, STATUSES, "status")
    with transaction(db):
        subscriber = get(db, email)
        previous = subscriber["status"]
        if previous == status:
            return previous
        stamp = now()
        db.execute(
            "UPDATE subscribers SET status = ?, updated_at = ?, "
            "unsubscribed_at = CASE WHEN ? IN ('unsubscribed', 'bounced', 'complained') "
            "THEN ? ELSE unsubscribed_at END WHERE id = ?",
            [status, stamp, status, stamp, subscriber["id"]],
        )
        log_event(db, kind=status, source=source, subscriber_id=subscriber["id"],
                  actor=current_actor() if actor is None else actor,
                  detail={"previous_status": previous, **(detail or {})}, at=stamp)
    return previous


def suppress_bounced(
    db: Database,
    subscriber_id: int,
    *,
    campaign_id: int,
    code: int | None,
    enhanced: str | None,
    at: str | None = None,
) -> bool:
    """A hard bounce: suppress the subscriber for good (STANDARDS.md: 5.1.x, 5.2.1), logged.

    The same change as set_status(..., "bounced"), by id, inside the caller's transaction
    (the ledger's, which writes the delivery's outcome with it). The event holds the SMTP
    and enhanced codes only: the reply text may quote the address, and events outlive
    erasure (the text stays on the delivery row, which erasure deletes). Returns False
    when the subscriber was not active or pending (nothing is written).
    """
    stamp = at or now()
    status = _status_by_id(db, subscriber_id)
    if status not in ("active", "pending"):
        return False
    _move(db, subscriber_id, "bounced", stamp=stamp)  # as record_bounce does for a returned one
    log_event(db, kind="bounced", source="send", subscriber_id=subscriber_id, at=stamp,
              detail={"previous_status": status, "campaign": campaign_id, "code": code, "enhanced": enhanced})
    return True


# One imported subscriber as add_imported inserts it (without its id): email, name,
# language, status, cadence, token, consent_at, consent_source, created_at, updated_at,
# confirmed_at, unsubscribed_at.
ImportedRow = tuple[str, str, str, str, str, str, str, str, str, str, str | None, str | None]


def imported_row(
    *, email: str, name: str, language: str, status: str, cadence: str, consent_at: str,
    consent_source: str, at: str,
) -> ImportedRow:
    """The row of one checked, new subscriber of an import (address normalised, choices
    valid), with a fresh token; an import's worker processes build these."""
    return (email, name, language, status, cadence, new_token(), consent_at, consent_source, at, at,
            at if status == "active" else None, at if status in SUPPRESSED else None)


def add_imported(
    db: Database, rows: Sequence[ImportedRow], *, first_id: int, details: Sequence[str], actor: str, at: str,
    all_or_none: bool = False,
) -> bool:
    """Insert an import's new subscribers with ids from `first_id` on, and their
    `subscribed` events (`details`: JSON each).

    The caller (an import) holds the transaction, took `first_id` from next_id, and has
    made sure none of them is suppressed; that none exists it has made sure of too, or it
    asks `all_or_none`: then an address the database holds already makes this call write
    nothing and answer False (the caller looks the addresses up and tries again). That
    costs the usual import, which has no such address, nothing: the unique index answers
    while inserting, where a lookup first would search it once more a row, and a savepoint
    around the rows would copy every page they touch.
    """
    last = first_id + len(rows)
    inserted = db.conn.executemany(
        "INSERT INTO subscribers (id, email, name, language, status, cadence, token, consent_at, "
        "consent_source, created_at, updated_at, confirmed_at, unsubscribed_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)" + (" ON CONFLICT DO NOTHING" if all_or_none else ""),
        [(first_id + i, *row) for i, row in enumerate(rows)],
    ).rowcount
    if inserted != len(rows):
        # Only an address (or token) already there leaves a row out; the ids are this
        # import's own, so nothing else has them.
        db.conn.execute("DELETE FROM subscribers WHERE id >= ? AND id < ?", [first_id, last])
        return False
    log_many(db, ((at, first_id + i, "subscribed", "import", actor, detail)
                  for i, detail in enumerate(details)))
    return True


def _status_by_id(db: Database, subscriber_id: int) -> str | None:
    row = db.execute("SELECT status FROM subscribers WHERE id = ?", [subscriber_id]).fetchone()
    return row[0] if row else None


def _move(db: Database, subscriber_id: int, status: str, *, stamp: str) -> None:
    db.execute(
        "UPDATE subscribers SET status = ?, updated_at = ?, unsubscribed_at = ? WHERE id = ?",
        [status, stamp, stamp, subscriber_id],
    )


def record_bounce(
    db: Database,
    subscriber_id: int,
    *,
    severity: str,
    detail: dict[str, Any],
    soft_limit: int,
    soft_window_days: int,
    source: str = "bounce",
) -> str:
    """One returned bounce about a subscriber, as one event. Returns what it did:
    suppressed (now `bounced`), counted (a soft bounce below the limit) or noted.

    A hard bounce suppresses an active or pending subscriber at once; soft bounces do when
    `soft_limit` of them (this one included) fall within `soft_window_days`; a policy bounce
    (5.7.x: the sender's problem, STANDARDS.md) never does. `detail` must hold no address
    and no reply text: events outlive erasure.
    """
    severity = _check_choice(severity, BOUNCE_SEVERITIES, "severity")
    stamp = now()
    with transaction(db):
        status = _status_by_id(db, subscriber_id)
        if status is None:
            return "noted"
        info = {"severity": severity, **detail}
        mailable = status in ("active", "pending")
        if severity == "soft" and mailable:
            since = (datetime.now(UTC) - timedelta(days=soft_window_days)).isoformat(timespec="microseconds")
            (earlier,) = db.execute(
                "SELECT count(*) FROM events WHERE subscriber_id = ? AND kind = 'soft_bounce' AND at >= ?",
                [subscriber_id, since],
            ).fetchone()
            info["soft_bounces"] = earlier + 1
            if earlier + 1 < soft_limit:
                log_event(db, kind="soft_bounce", source=source, subscriber_id=subscriber_id,
                          detail=info, at=stamp)
                return "counted"
        if severity != "policy" and mailable:
            _move(db, subscriber_id, "bounced", stamp=stamp)
            log_event(db, kind="bounced", source=source, subscriber_id=subscriber_id,
                      detail={"previous_status": status, **info}, at=stamp)
            return "suppressed"
        log_event(db, kind="bounce", source=source, subscriber_id=subscriber_id,
                  detail={"subscriber_status": status, **info}, at=stamp)
        return "noted"


def record_complaint(db: Database, subscriber_id: int, *, detail: dict[str, Any], source: str = "bounce") -> str:
    """A spam complaint (ARF feedback report): the subscriber becomes `complained` and is
    never mailed again. Returns suppressed, or noted when they were complained already."""
    stamp = now()
    with transaction(db):
        status = _status_by_id(db, subscriber_id)
        if status is None:
            return "noted"
        if status == "complained":
            log_event(db, kind="complaint", source=source, subscriber_id=subscriber_id, detail=detail, at=stamp)
            return "noted"
        _move(db, subscriber_id, "complained", stamp=stamp)
        log_event(db, kind="complained", source=source, subscriber_id=subscriber_id,
                  detail={"previous_status": status, **detail}, at=stamp)
        return "suppressed"


def unsubscribe_by_token(db: Database, token: str, *, source: str = "mail", detail: dict[str, Any] | None = None) -> tuple[int, str] | None:
    """Unsubscribe the subscriber whose link token this is (a mailto: List-Unsubscribe
    request). Returns (subscriber id, unsubscribed or already), or None for no such token."""
    stamp = now()
    with transaction(db):
        row = db.execute("SELECT id, status FROM subscribers WHERE token = ?", [token]).fetchone()
        if row is None:
            return None
        subscriber_id, status = row
        if status in SUPPRESSED:
            return subscriber_id, "already"
        _move(db, subscriber_id, "unsubscribed", stamp=stamp)
        log_event(db, kind="unsubscribed", source=source, subscriber_id=subscriber_id,
                  detail={"previous_status": status, **(detail or {})}, at=stamp)
        return subscriber_id, "unsubscribed"


def unsubscribe(db: Database, email: str, *, source: str = "cli", actor: str | None = None) -> str:
    """Unsubscribe an address. Returns unsubscribed, or already when it was."""
    previous = set_status(db, email, "unsubscribed", source=source, actor=actor)
    return "already" if previous == "unsubscribed" else "unsubscribed"


def update(
    db: Database,
    email: str,
    *,
    name: str | None = None,
    language: str | None = None,
    cadence: str | None = None,
    source: str = "cli",
    actor: str | None = None,
) -> dict[str, Any]:
    """Change a subscriber's name, language or cadence; logged. Returns the updated row."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = check_name(name)
    if language is not None:
        changes["language"] = _check_choice(language, LANGUAGES, "language")
    if cadence is not None:
        changes["cadence"] = _check_choice(cadence, CADENCES, "cadence")
    with transaction(db):
        subscriber = get(db, email)
        changed = {k: v for k, v in changes.items() if subscriber[k] != v}
        if not changed:
            return subscriber
        stamp = now()
        assignments = ", ".join(f"{k} = ?" for k in changed)
        db.execute(
            f"UPDATE subscribers SET {assignments}, updated_at = ? WHERE id = ?",
            [*changed.values(), stamp, subscriber["id"]],
        )
        # The name is personal data: log that it changed, not what it became.
        detail = {k: ("(changed)" if k == "name" else v) for k, v in changed.items()}
        log_event(db, kind="changed", source=source, subscriber_id=subscriber["id"],
                  actor=current_actor() if actor is None else actor, detail=detail, at=stamp)
        return get(db, email)


def erase(db: Database, email: str, *, source: str = "cli", actor: str | None = None) -> None:
    """Delete a subscriber's personal data (GDPR art. 17), keeping a hash that suppresses the address."""
    with transaction(db):
        subscriber = get(db, email)
        stamp = now()
        db.execute("DELETE FROM subscribers WHERE id = ?", [subscriber["id"]])
        db.execute(
            "INSERT OR REPLACE INTO suppressions (email_hash, reason, created_at) VALUES (?, 'erased', ?)",
            [email_hash(subscriber["email"]), stamp],
        )
        log_event(db, kind="erased", source=source, subscriber_id=subscriber["id"],
                  actor=current_actor() if actor is None else actor, at=stamp)


def is_suppressed_hash(db: Database, email: str) -> bool:
    """Whether this address was erased (only its hash remains)."""
    return db.execute(
        "SELECT 1 FROM suppressions WHERE email_hash = ?", [email_hash(email)]
    ).fetchone() is not None


def iter_subscribers(db: Reads, *, status: str | None = None) -> Iterator[dict[str, Any]]:
    """Subscribers in id order, streamed (never the whole list in memory)."""
    where, params = "", []
    if status:
        where, params = "WHERE status = ?", [_check_choice(status, STATUSES, "status")]
    for row in db.execute(f"SELECT {COLUMNS} FROM subscribers {where} ORDER BY id", params):
        yield _row_to_dict(row)  # type: ignore[misc]


def widest(db: Reads, columns: Sequence[str], *, status: str | None = None) -> dict[str, int]:
    """The length of each column's longest value over the subscribers iter_subscribers gives
    (0 where there is none): a listing's widths, measured without holding its rows."""
    known = {c.strip() for c in COLUMNS.split(",")}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(f"not a subscriber column: {', '.join(unknown)}")
    where, params = "", []
    if status:
        where, params = "WHERE status = ?", [_check_choice(status, STATUSES, "status")]
    lengths = ", ".join(f"coalesce(max(length({c})), 0)" for c in columns)
    row = db.execute(f"SELECT {lengths} FROM subscribers {where}", params).fetchone()
    return dict(zip(columns, row, strict=True))


def counts(db: Reads) -> dict[str, int]:
    """The number of subscribers per status (every status present, zeros included)."""
    result = dict.fromkeys(STATUSES, 0)
    for status, number in db.execute("SELECT status, count(*) FROM subscribers GROUP BY status"):
        result[status] = number
    return result


def events_for(db: Database, subscriber_id: int) -> list[dict[str, Any]]:
    """A subscriber's history of events, oldest first."""
    return for_subscriber(db, subscriber_id)


# ---- Through the subscriber's own links (`newsletter serve`; unsubscribe_by_token is above) ----
# Each is one short write transaction, so a web burst never holds the lock for long. An
# unknown token gives None: the web answers 404 and says nothing about why.


def confirm_by_token(db: Database, token: str, *, source: str = "web", actor: str = "") -> str | None:
    """Confirm the pending subscriber with this token: confirmed, already, or None.

    None also for a subscriber who left (unsubscribed, bounced, complained): an old
    confirmation link never brings them back; they subscribe again instead.
    """
    with transaction(db):
        subscriber = get_by_token(db, token)
        if subscriber is None or subscriber["status"] in SUPPRESSED:
            return None
        return confirm(db, subscriber["email"], source=source, actor=actor)


def update_by_token(
    db: Database,
    token: str,
    *,
    language: str | None = None,
    cadence: str | None = None,
    source: str = "web",
    actor: str = "",
) -> dict[str, Any] | None:
    """Change the language or cadence of the subscriber with this token; None if unknown."""
    with transaction(db):
        subscriber = get_by_token(db, token)
        if subscriber is None:
            return None
        return update(db, subscriber["email"], language=language, cadence=cadence, source=source, actor=actor)


@dataclass(frozen=True)
class FormSubscription:
    """What a subscribe form did: send_to is the subscriber to mail a confirmation to, or None."""

    outcome: str  # created, resubscribed, exists, or limited (no more confirmations today)
    send_to: int | None


def subscribe_from_form(
    db: Database,
    email: str,
    *,
    name: str = "",
    language: str = "en",
    per_day: int = 3,
    source: str = "web",
) -> FormSubscription:
    """Subscribe through a public form: pending until confirmed, whatever the address was.

    An address that left or was erased becomes pending again and must confirm anew; an
    active one is left alone (no email: it is subscribed). At most `per_day` confirmation
    emails go to one address in 24 hours, counted by the `confirmation_requested` events
    written here, so a form cannot be used to flood someone's inbox.
    """
    with transaction(db):
        existing = find(db, email)
        if existing is not None and existing["status"] == "active":
            return FormSubscription("exists", None)
        result = subscribe(db, email, name=name, language=language, source=source, actor="")
        subscriber = result.subscriber
        (recent,) = db.execute(
            "SELECT count(*) FROM events WHERE subscriber_id = ? AND kind = 'confirmation_requested'"
            " AND at > ?",
            [subscriber["id"], now(later_by=-86400)],
        ).fetchone()
        if recent >= per_day:
            return FormSubscription("limited", None)
        log_event(db, kind="confirmation_requested", source=source, subscriber_id=subscriber["id"])
        return FormSubscription(result.outcome, subscriber["id"])


def expire_pending(db: Database, *, older_than: float, source: str = "cli") -> int:
    """Delete subscribers pending (never confirmed) for more than `older_than` seconds.

    Their data goes, as after an erasure; an address that had left before (it came back
    pending through a form and never confirmed) keeps a suppression hash, so an import does
    not make it active. Returns how many were deleted.
    """
    cutoff = now(later_by=-older_than)
    with transaction(db):
        rows = db.execute(
            "SELECT id, email FROM subscribers WHERE status = 'pending'"
            " AND coalesce(consent_at, created_at) < ?",
            [cutoff],
        ).fetchall()
        stamp = now()
        for subscriber_id, address in rows:
            left_before = db.execute(
                "SELECT 1 FROM events WHERE subscriber_id = ? AND (kind = 'resubscribed'"
                " OR (kind = 'subscribed' AND json_extract(detail, '$.previously') IS NOT NULL)) LIMIT 1",
                [subscriber_id],
            ).fetchone()
            db.execute("DELETE FROM subscribers WHERE id = ?", [subscriber_id])
            if left_before:
                db.execute(
                    "INSERT OR REPLACE INTO suppressions (email_hash, reason, created_at) VALUES (?, 'expired', ?)",
                    [email_hash(address), stamp],
                )
            log_event(db, kind="expired", source=source, subscriber_id=subscriber_id,
                      detail={"pending_for_more_than_s": int(older_than)}, at=stamp)
    return len(rows)
