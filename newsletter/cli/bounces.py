"""`newsletter bounces receive|process|report`: the return mailbox on the command line.

The inbound wing (and flufl.bounce) is imported inside the commands, only when one of them
runs, so every other command starts as fast as before.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import TYPE_CHECKING

import click

from ..errors import NewsletterError
from .common import App, echo_json, echo_table, json_option, pass_app

if TYPE_CHECKING:
    from ..inbound.record import Handled

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again later


@click.group("bounces")
def bounces_group() -> None:
    """Read the return mailbox: bounces, complaints, mailto unsubscribes, auto-replies."""


@bounces_group.command("receive")
@click.option(
    "--recipient",
    metavar="ADDRESS",
    default="",
    help="The envelope recipient (Postfix pipe: ${recipient}); else read from the headers.",
)
@pass_app
def receive_command(app: App, recipient: str) -> None:
    """Record one message read from standard input (for Postfix's pipe or an alias).

    Exit 0 once it is recorded (a message that is not recognised is kept in
    bounces-unrecognised/ and listed); exit 75 (EX_TEMPFAIL) when the database is busy or
    anything else failed, so the MTA keeps the message and tries again.
    """
    from ..inbound.intake import read_limited, receive  # only when this command runs

    try:
        data, size = read_limited(sys.stdin.buffer)
        handled, kept = receive(app.config, app.db, data, size=size, recipient=recipient)
    except (NewsletterError, sqlite3.Error, OSError) as exc:
        click.echo(f"Error: {exc}; the mail system will try again", err=True)
        sys.exit(EX_TEMPFAIL)
    except Exception as exc:  # noqa: BLE001 - never exit 0 (message lost) or 1 (bounced back)
        click.echo(f"Error: {type(exc).__name__}: {exc}; the mail system will try again", err=True)
        sys.exit(EX_TEMPFAIL)
    _say(app, handled, kept or "standard input")


@bounces_group.command("process")
@click.argument("source", required=False)
@pass_app
def process_command(app: App, source: str | None) -> None:
    """Read every new message of SOURCE once: a Maildir, an mbox file, or
    imap://user@host/folder or imaps://... (password in NEWSLETTER_BOUNCES_PASSWORD).
    Default: bounces.source.

    Used messages move to the folder `processed` (NAME.processed beside an mbox file);
    messages that were not recognised stay and are listed once.
    """
    from ..inbound.intake import process_source  # only when this command runs

    chosen = source or app.config.bounces_source
    if not chosen:
        raise click.UsageError("give a SOURCE, or set bounces.source in newsletter.toml")

    def progress(location: str, handled: Handled) -> None:
        if not handled.duplicate:
            _say(app, handled, location)

    summary = process_source(app.config, app.db, chosen, progress=progress)
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.kinds.items())) or "nothing new"
    app.info(
        f"{summary.read} message(s) read from {summary.source}: {kinds}"
        f"{f', {summary.duplicates} seen before' if summary.duplicates else ''}; "
        f"{summary.findings} finding(s) recorded, {len(summary.listed)} listed for a person to look at"
    )


@bounces_group.command("report")
@click.argument("campaign_id", metavar="CAMPAIGN", type=int, required=False)
@json_option
@pass_app
def report_command(app: App, campaign_id: int | None, as_json: bool) -> None:
    """Bounces per campaign and per receiving domain: hard, soft, policy, complaints,
    mailto unsubscribes, suppressed subscribers, top reasons, and the messages not used."""
    from ..inbound.report import build_report  # only when this command runs

    data = build_report(app.db, campaign=campaign_id).as_dict()
    if as_json:
        echo_json(data)
        return
    columns = ["hard", "soft", "policy", "complaints", "unsubscribes", "suppressed"]
    if not data["campaigns"]:
        app.info("Nothing has come back yet.")
    else:
        click.echo("Per campaign")
        echo_table([{**r, "campaign": r["campaign"] or "-"} for r in data["campaigns"]], ["campaign", *columns])
        click.echo("\nPer receiving domain")
        echo_table(data["domains"], ["domain", *columns])
    if data["top_reasons"]:
        click.echo("\nTop reasons")
        echo_table(data["top_reasons"], ["status", "count", "meaning"])
    suppressed = data["suppressed_subscribers"]
    click.echo(
        f"\nSuppressed subscribers now: {suppressed.get('bounced', 0)} bounced, "
        f"{suppressed.get('complained', 0)} complained"
    )
    messages = ", ".join(f"{n} {kind}" for kind, n in data["messages"].items()) or "none"
    click.echo(f"Messages read: {messages}")
    if data["listed"]:
        click.echo("\nNot used (look at these by hand)")
        echo_table(data["listed"], ["received_at", "via", "location", "kind", "reason"])


def _say(app: App, handled: Handled, where: str) -> None:
    if handled.duplicate:
        app.info(f"{where}: seen before; nothing changed")
        return
    text = "; ".join(handled.findings) or handled.reason or handled.kind.replace("_", " ")
    app.info(f"{where}: {handled.kind.replace('_', ' ')}: {text}")


COMMANDS = (bounces_group,)
