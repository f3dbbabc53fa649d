"""The `schedule` group (list, add, cancel) and the scheduling `send --at` shares with it.

Click only: parse, call digests/schedule.py, print (times in publication.time_zone).
"""

from __future__ import annotations

from typing import Any

import click

from ..digests import schedule
from ..periods import format_local, parse_local_time
from .common import App, echo_rows, json_option, pass_app

SCHEDULE_COLUMNS = ["id", "article_slug", "due", "status", "campaign_id", "note"]


def _schedule_row(app: App, send: schedule.ScheduledSend) -> dict[str, Any]:
    row = send.as_dict()
    row["due"] = format_local(send.due_at, zone=app.config.publication_time_zone)
    return row


@click.group("schedule")
def schedule_group() -> None:
    """Scheduled sends: list them, add one, cancel one."""


@schedule_group.command("list")
@click.option("--all", "include_done", is_flag=True, help="Also sent, cancelled, skipped and failed ones.")
@json_option
@pass_app
def schedule_list(app: App, include_done: bool, as_json: bool) -> None:
    """List scheduled sends, soonest first (times in publication.time_zone)."""
    rows = [_schedule_row(app, s) for s in schedule.list_scheduled(app.db, include_done=include_done)]
    echo_rows(app, rows, SCHEDULE_COLUMNS, as_json=as_json,
              empty="Nothing is scheduled. `newsletter send ARTICLE --at \"2026-12-01 09:00\"` schedules a send.")


def add_scheduled(app: App, article: str, at: str) -> schedule.ScheduledSend:
    """Schedule ARTICLE at AT (local time); shared by `schedule add` and `send --at`."""
    zone = app.config.publication_time_zone
    moment = parse_local_time(at, zone=zone)
    send = schedule.schedule_send(app.db, article, at=moment)
    app.info(
        f"Scheduled {send.article_slug} for {format_local(send.due_at, zone=zone)} (id {send.id}). "
        "`newsletter run` from cron sends it then; see `newsletter cron`."
    )
    return send


@schedule_group.command("add")
@click.argument("article")
@click.option("--at", "at", required=True, metavar="TIME",
              help='When, in publication.time_zone: "2026-12-01 09:00" (or ISO 8601 with an offset).')
@pass_app
def schedule_add(app: App, article: str, at: str) -> None:
    """Schedule ARTICLE (a file or a stored slug) to be sent at a time (same as `send --at`)."""
    add_scheduled(app, article, at)


@schedule_group.command("cancel")
@click.argument("send_id", metavar="ID", type=int)
@pass_app
def schedule_cancel(app: App, send_id: int) -> None:
    """Cancel the scheduled send ID (see `newsletter schedule list`)."""
    send = schedule.cancel(app.db, send_id)
    app.info(f"Cancelled scheduled send {send.id} ({send.article_slug}).")
