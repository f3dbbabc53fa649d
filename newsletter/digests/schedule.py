"""Scheduled sends: an article to send at a given time, listed, cancelled, claimed when due.

`newsletter send ARTICLE --at TIME` stores a row here; `newsletter run` claims the rows that
are due and hands them to the sending engine. A row moves scheduled -> started -> sent (or
failed), or scheduled -> cancelled by hand, or scheduled -> skipped when it was due so long
ago (the machine was off) that sending it now would surprise more than it helps. A claimed
row stays `started` until the engine has made its campaign, so a run that dies in between
is finished by the next one; the engine's own campaign key keeps that from sending twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..content.store import load_article
from ..db import now, transaction
from ..errors import NewsletterError

STATUSES = ("scheduled", "started", "sent", "cancelled", "skipped", "failed")
OPEN = ("scheduled", "started")
# Cron runs every few minutes, so a send a few minutes past its time is on time; past this
# it went out late (the machine was off, or cron was not set up) and the run says so.
LATE_WARNING = timedelta(minutes=15)
_COLUMNS = ("id", "article_slug", "due_at", "status", "campaign_id", "note", "created_at", "updated_at")


class ScheduleError(NewsletterError):
    """A send cannot be scheduled or cancelled."""


@dataclass(frozen=True)
class ScheduledSend:
    """One row of scheduled_sends."""

    id: int
    article_slug: str
    due_at: datetime  # UTC
    status: str
    campaign_id: int | None
    note: str
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ScheduledSend:
        values = dict(zip(_COLUMNS, row, strict=True))
        values["due_at"] = datetime.fromisoformat(values["due_at"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS} | {"due_at": _iso(self.due_at)}


@dataclass(frozen=True)
class Claim:
    """What `claim_due` found: sends to make now (with how late), and sends skipped."""

    to_send: list[tuple[ScheduledSend, timedelta]]
    skipped: list[tuple[ScheduledSend, timedelta]]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _now(at: datetime | None) -> datetime:
    return (at or datetime.now(UTC)).astimezone(UTC)


def get_scheduled(db: Database, send_id: int) -> ScheduledSend:
    """The scheduled send `send_id`; ScheduleError when there is none."""
    row = db.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM scheduled_sends WHERE id = ?", [send_id]
    ).fetchone()
    if row is None:
        raise ScheduleError(
            f"no scheduled send {send_id}; `newsletter schedule list` shows them with their ids"
        )
    return ScheduledSend.from_row(row)


def schedule_send(
    db: Database, article_ref: str | Path, *, at: datetime, now_at: datetime | None = None
) -> ScheduledSend:
    """Store a send of an article (a file, parsed and stored now, or a stored slug) at `at`.

    The article is read now, so a broken file is refused at once rather than at send time.
    """
    current = _now(now_at)
    due = at.astimezone(UTC)
    if due <= current:
        raise ScheduleError(
            f"{_iso(due)[:16].replace('T', ' ')} UTC is not in the future; to send now, run "
            "`newsletter send` without --at"
        )
    article = load_article(db, article_ref)
    sent = db.execute(
        "SELECT id FROM campaigns WHERE kind = 'article' AND article_slug = ? ORDER BY id DESC LIMIT 1",
        [article.slug],
    ).fetchone()
    if sent is not None:
        raise ScheduleError(
            f"{article.slug!r} was already sent as campaign {sent[0]}; a scheduled send would "
            f"send nothing. `newsletter status {sent[0]}` shows how it went."
        )
    with transaction(db):
        clash = db.execute(
            "SELECT id, due_at FROM scheduled_sends WHERE article_slug = ? AND status IN ('scheduled', 'started')",
            [article.slug],
        ).fetchone()
        if clash is not None:
            raise ScheduleError(
                f"{article.slug!r} is already scheduled (id {clash[0]}, at {clash[1][:16].replace('T', ' ')} "
                f"UTC); cancel it first with `newsletter schedule cancel {clash[0]}`"
            )
        stamp = now()
        cursor = db.execute(
            "INSERT INTO scheduled_sends (article_slug, due_at, status, created_at, updated_at)"
            " VALUES (?, ?, 'scheduled', ?, ?)",
            [article.slug, _iso(due), stamp, stamp],
        )
        send_id = cursor.lastrowid
    assert send_id is not None
    return get_scheduled(db, send_id)


def list_scheduled(db: Database, *, include_done: bool = False) -> list[ScheduledSend]:
    """Scheduled sends, soonest first; only open ones (scheduled, started) by default."""
    where = "" if include_done else "WHERE status IN ('scheduled', 'started')"
    rows = db.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM scheduled_sends {where} ORDER BY due_at, id"
    ).fetchall()
    return [ScheduledSend.from_row(row) for row in rows]


def cancel(db: Database, send_id: int) -> ScheduledSend:
    """Cancel a send that has not started; ScheduleError says why one cannot be."""
    with transaction(db):
        send = get_scheduled(db, send_id)
        if send.status != "scheduled":
            hint = {
                "started": "it is being sent; `newsletter status` shows its campaign",
                "sent": f"it was sent as campaign {send.campaign_id}",
                "cancelled": "it was already cancelled",
                "skipped": "it was skipped because it was due too long ago",
                "failed": "its send failed; see its note in `newsletter schedule list --all`",
            }[send.status]
            raise ScheduleError(f"scheduled send {send_id} cannot be cancelled: {hint}")
        db.execute(
            "UPDATE scheduled_sends SET status = 'cancelled', updated_at = ? WHERE id = ?",
            [now(), send_id],
        )
    return get_scheduled(db, send_id)


def claim_due(db: Database, *, late_limit: timedelta, now_at: datetime | None = None) -> Claim:
    """Take the sends that are due: mark them started (or skipped when too late).

    Also returns sends left `started` by a run that died before it finished them: those
    are resumed whatever their age, because their campaign may already be half-sent.
    """
    current = _now(now_at)
    to_send: list[tuple[ScheduledSend, timedelta]] = []
    skipped: list[tuple[ScheduledSend, timedelta]] = []
    with transaction(db):
        rows = db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM scheduled_sends"
            " WHERE (status = 'scheduled' AND due_at <= ?) OR status = 'started' ORDER BY due_at, id",
            [_iso(current)],
        ).fetchall()
        for row in rows:
            send = ScheduledSend.from_row(row)
            late = current - send.due_at
            if send.status == "scheduled" and late > late_limit:
                note = (
                    f"skipped: due {_iso(send.due_at)[:16].replace('T', ' ')} UTC, "
                    f"{_duration(late)} late, more than schedule.late_limit ({_duration(late_limit)})"
                )
                db.execute(
                    "UPDATE scheduled_sends SET status = 'skipped', note = ?, updated_at = ? WHERE id = ?",
                    [note, now(), send.id],
                )
                skipped.append((get_scheduled(db, send.id), late))
                continue
            if send.status == "scheduled":
                db.execute(
                    "UPDATE scheduled_sends SET status = 'started', updated_at = ? WHERE id = ?",
                    [now(), send.id],
                )
            to_send.append((get_scheduled(db, send.id), late))
    return Claim(to_send=to_send, skipped=skipped)


def mark_sent(db: Database, send_id: int, *, campaign_id: int | None, note: str = "") -> None:
    """The engine made (and ran) the send's campaign."""
    with transaction(db):
        db.execute(
            "UPDATE scheduled_sends SET status = 'sent', campaign_id = ?, note = ?, updated_at = ?"
            " WHERE id = ?",
            [campaign_id, note, now(), send_id],
        )


def mark_failed(db: Database, send_id: int, *, note: str) -> None:
    """The send could not be made (the article is gone, it cannot be rendered...)."""
    with transaction(db):
        db.execute(
            "UPDATE scheduled_sends SET status = 'failed', note = ?, updated_at = ? WHERE id = ?",
            [note, now(), send_id],
        )


def _duration(delta: timedelta) -> str:
    """A short human duration: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


duration_text = _duration

__all__ = [
    "LATE_WARNING",
    "Claim",
    "ScheduleError",
    "ScheduledSend",
    "cancel",
    "claim_due",
    "duration_text",
    "get_scheduled",
    "list_scheduled",
    "mark_failed",
    "mark_sent",
    "schedule_send",
]
