"""Subscriber commands: subscribe, unsubscribe and the `subscribers` group."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..audience import subscribers
from ..config import LANGUAGES
from ..errors import NewsletterError, SendError
from ..files import open_private
from .common import App, apply_limits, echo_json, echo_rows, json_option, limit_options, pass_app, say_captured

LIST_COLUMNS = ["email", "name", "language", "cadence", "status", "created_at"]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A subscriber as shown to the operator: the secret token stays out of listings."""
    return {k: v for k, v in row.items() if k not in ("token",)}


@click.command()
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name, used in the greeting.")
@click.option("--lang", "language", type=click.Choice(LANGUAGES),
              help="Language of their emails (default: the publication's).")
@click.option("--cadence", type=click.Choice(subscribers.CADENCES), default="each", show_default=True,
              help="each: every article; daily or weekly: a digest.")
@click.option("--confirmed", is_flag=True,
              help="They already confirmed (skip double opt-in): active at once.")
@pass_app
def subscribe(app: App, email: str, name: str, language: str | None, cadence: str, confirmed: bool) -> None:
    """Add EMAIL as a subscriber (pending until confirmed, unless --confirmed)."""
    result = subscribers.subscribe(
        app.db, email, name=name, language=language or app.config.publication_language,
        cadence=cadence, confirmed=confirmed, source="cli",
    )
    who = result.subscriber["email"]
    status = result.subscriber["status"]
    if result.outcome == "exists":
        app.info(f"{who} is already subscribed ({status}); nothing changed.")
    elif result.outcome == "resubscribed":
        app.info(f"{who} subscribed again ({status}); the new opt-in is logged.")
    else:
        app.info(f"Subscribed {who} ({status}).")
    if status == "pending" and result.outcome != "exists":
        _send_confirmation(app, result.subscriber)


def _send_confirmation(app: App, subscriber: dict[str, Any]) -> None:
    # Imported here, not at the top: the sending engine (aiosmtplib, premailer, lxml) is most
    # of the start-up time of `subscribers list` and `count`, which never send anything.
    import asyncio

    from ..delivery.single import send_confirmation

    email = subscriber["email"]
    try:
        _, captured = asyncio.run(send_confirmation(app.config, app.db, subscriber["id"]))
    except SendError as exc:
        raise NewsletterError(f"{email} is stored as pending, but {exc}") from exc
    app.info(f"Sent the confirmation email to {email}; they get mail once they follow its link.")
    say_captured(app, captured, 1)


@click.command()
@click.argument("email")
@pass_app
def unsubscribe(app: App, email: str) -> None:
    """Unsubscribe EMAIL: they are never mailed again (unless they subscribe anew)."""
    outcome = subscribers.unsubscribe(app.db, email, source="cli")
    if outcome == "already":
        app.info(f"{email} was already unsubscribed; nothing changed.")
    else:
        app.info(f"Unsubscribed {email}.")


@click.group("subscribers")
def subscribers_group() -> None:
    """List, change, import, export and erase subscribers."""


@subscribers_group.command("list")
@click.option("--status", type=click.Choice(subscribers.STATUSES), help="Only subscribers with this status.")
@json_option
@pass_app
def list_(app: App, status: str | None, as_json: bool) -> None:
    """List subscribers (oldest first)."""
    # Streamed: the table's widths come from one query first, so a million rows take no
    # more memory than ten.
    widths = None if as_json else subscribers.widest(app.reader, LIST_COLUMNS, status=status)
    rows = (_public(r) for r in subscribers.iter_subscribers(app.reader, status=status))
    echo_rows(app, rows, LIST_COLUMNS, as_json=as_json, widths=widths,
              empty="No subscribers" + (f" with status {status}." if status else " yet."))


@subscribers_group.command()
@click.argument("email")
@json_option
@pass_app
def show(app: App, email: str, as_json: bool) -> None:
    """Show one subscriber with their history of events."""
    row = _public(subscribers.get(app.db, email))
    row["events"] = subscribers.events_for(app.db, row["id"])
    if as_json:
        echo_json(row)
        return
    for key, value in row.items():
        if key != "events":
            click.echo(f"{key}: {'' if value is None else value}")
    click.echo("events:")
    for event in row["events"]:
        click.echo(f"  {event['at']}  {event['kind']}  via {event['source']}  by {event['actor']}")


@subscribers_group.command()
@json_option
@pass_app
def count(app: App, as_json: bool) -> None:
    """Count subscribers per status."""
    counts = subscribers.counts(app.reader)
    if as_json:
        echo_json({**counts, "total": sum(counts.values())})
        return
    for status, number in counts.items():
        click.echo(f"{status:<13}{number:>10,}")
    click.echo(f"{'total':<13}{sum(counts.values()):>10,}")


@subscribers_group.command("set")
@click.argument("email")
@click.option("--name", help="New name.")
@click.option("--lang", "language", type=click.Choice(LANGUAGES), help="New language.")
@click.option("--cadence", type=click.Choice(subscribers.CADENCES), help="New cadence.")
@pass_app
def set_(app: App, email: str, name: str | None, language: str | None, cadence: str | None) -> None:
    """Change a subscriber's name, language or cadence."""
    if name is None and language is None and cadence is None:
        raise click.UsageError("give at least one of --name, --lang, --cadence")
    subscribers.update(app.db, email, name=name, language=language, cadence=cadence, source="cli")
    app.info(f"Updated {email}.")


@subscribers_group.command()
@click.argument("email")
@pass_app
def confirm(app: App, email: str) -> None:
    """Confirm a pending subscriber by hand (for example after a confirmation by phone)."""
    if subscribers.confirm(app.db, email, source="cli") == "already":
        app.info(f"{email} was already confirmed; nothing changed.")
    else:
        app.info(f"Confirmed {email}.")


@subscribers_group.command("resend-confirmation")
@click.argument("email", required=False)
@click.option("--all-pending", is_flag=True,
              help="Every pending subscriber, through the sending pool (batched, rate-limited, resumable).")
@click.option("--force", is_flag=True,
              help="With --all-pending: also those who had a confirmation email in the last 24 hours.")
@limit_options
@pass_app
def resend_confirmation(
    app: App, email: str | None, all_pending: bool, force: bool, concurrency: int | None, rate: float | None,
) -> None:
    """Send the double opt-in email again to a pending subscriber (or, with --all-pending,
    to every pending subscriber not mailed one in the last 24 hours)."""
    if all_pending == bool(email):
        raise click.UsageError("give one EMAIL, or --all-pending (not both)")
    if force and not all_pending:
        raise click.UsageError("--force goes with --all-pending")
    if (concurrency is not None or rate is not None) and not all_pending:
        raise click.UsageError("--rate and --concurrency go with --all-pending")
    if all_pending:
        apply_limits(app, concurrency, rate)
        _resend_all_pending(app, force=force)
        return
    subscriber = subscribers.get(app.db, email or "")
    if subscriber["status"] != "pending":
        raise NewsletterError(f"{subscriber['email']} is {subscriber['status']}, not pending: nothing to confirm")
    _send_confirmation(app, subscriber)


def _resend_all_pending(app: App, *, force: bool) -> None:
    # Imported here, not at the top: the sending engine is not needed by the other commands
    # of this group (see _send_confirmation).
    from ..delivery.campaigns import make_owner
    from ..delivery.confirmations import resend_all_pending
    from .send import run_with_progress

    made = resend_all_pending(app.config, app.db, force=force)
    recent = (f"; {made.recent} had one in the last 24 hours (--force sends to them too)"
              if made.recent and not force else "")
    if made.campaign_id is None:
        app.info(f"No confirmation emails to send: {made.pending} pending subscriber"
                 f"{'' if made.pending == 1 else 's'}{recent}.")
        return
    if made.resumed:
        app.info(f"Finishing confirmation campaign {made.campaign_id} ({made.queued} subscribers), "
                 "which was interrupted; run this again afterwards for anyone it left out.")
    else:
        app.info(f"Confirmation campaign {made.campaign_id}: {made.queued} of {made.pending} pending "
                 f"subscribers{recent}.")
    run_with_progress(app, made.campaign_id, owner=make_owner())


@subscribers_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--encoding", help="The file's encoding if it is not UTF-8 (e.g. cp1252, latin-1).")
@click.option("--status", "default_status", type=click.Choice(["active", "pending"]), default="active",
              show_default=True, help="Status of rows without a status column (they consented already?).")
@json_option
@pass_app
def import_(app: App, file: Path, encoding: str | None, default_status: str, as_json: bool) -> None:
    """Import subscribers from a CSV (or JSON) FILE with a header row naming at least 'email'.

    Optional columns: name, lang, cadence, status, consent_at, consent_source. Bad rows are
    reported with their line number and skipped; the good rows are imported.
    """
    # Imported here, not at the top: the importer's process pool (asyncio, multiprocessing)
    # would slow the start of every command of this group.
    from ..audience import import_export

    report = import_export.import_file(
        app.db, file, encoding=encoding, default_status=default_status,
        default_language=app.config.publication_language,
    )
    if as_json:
        echo_json(report.as_dict())
    else:
        for item in report.skipped:
            click.echo(f"skipped {item.reason}", err=True)
        if report.ignored_columns:
            app.info(f"ignored columns: {', '.join(report.ignored_columns)}")
    click.echo(report.summary(), err=True)


@subscribers_group.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="Output format; both can be imported again.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of stdout.")
@pass_app
def export(app: App, fmt: str, output: Path | None) -> None:
    """Export every subscriber (without their secret tokens)."""
    from ..audience import import_export  # not at the top: see import_

    if output is None:
        number = import_export.export(app.db, sys.stdout, fmt=fmt)
    else:
        try:
            with open_private(output) as out:  # 0600: addresses and consent records
                number = import_export.export(app.db, out, fmt=fmt)
        except OSError as exc:
            raise NewsletterError(f"cannot write {output}: {exc.strerror}") from exc
    app.info(f"Exported {number:,} subscribers" + (f" to {output}." if output else "."))


@subscribers_group.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def erase(app: App, email: str, yes: bool) -> None:
    """Erase EMAIL's personal data (right to erasure); the address stays suppressed by hash."""
    subscribers.get(app.db, email)
    if not yes:
        click.confirm(f"Erase everything about {email}? This cannot be undone", abort=True, err=True)
    subscribers.erase(app.db, email, source="cli")
    app.info(f"Erased {email}; only a one-way hash remains, so it is never imported again.")
