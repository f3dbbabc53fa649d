"""Commands for cron: `run`, `cron`, `digest` and the `feeds` group.

Click only: parse, call cron.py, digests/ and feeds/, print. `run` prints
one timestamped line per action on stderr and nothing else (no progress bar, no colour), so
a cron log reads line by line; it exits 0 when another run holds the lock, and 1 only when
something it had to do failed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from ..cron import Action, crontab_lines, pending_among, run_due
from ..delivery.campaigns import make_owner
from ..digests.plan import create_digest, period_for_command, plan_digest
from ..errors import NewsletterError
from ..feeds import poll
from ..feeds.read import FeedError
from ..lock import LockBusyError, run_lock
from ..periods import zone_of
from .common import App, echo_rows, echo_sample, json_option, pass_app
from .send import run_with_progress


def _stamp(app: App) -> str:
    """Now, to the second, in the publication's zone with its offset (a cron log's clock)."""
    return datetime.now(UTC).astimezone(zone_of(app.config.publication_time_zone)).isoformat(timespec="seconds")


def _log_line(app: App, message: str, *, level: str = "info") -> None:
    """One timestamped line on stderr; info lines are silenced by --quiet."""
    if level == "info" and app.quiet:
        return
    prefix = {"info": "", "warning": "Warning: ", "error": "Error: "}[level]
    click.echo(f"{_stamp(app)} {prefix}{message}", err=True)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# ---------------------------------------------------------------------------------------
# run and cron


@click.command("run")
@click.option("--no-feeds", is_flag=True, help="Do not poll the feeds this time.")
@pass_app
def run_command(app: App, no_feeds: bool) -> None:
    """Do everything that is due now: feeds, scheduled sends, digests, retries.

    Made for cron (see `newsletter cron`): one timestamped line per action on stderr, exit
    0 at once when another run is still busy, exit 1 only when something failed.
    """
    config = app.config
    placeholder_warning = app.placeholder_warning()
    if placeholder_warning:
        _log_line(app, placeholder_warning, level="warning")
    try:
        with run_lock(config.root):
            db = app.db

            def report(action: Action) -> None:
                _log_line(app, f"{action.kind}: {action.message}", level=action.level)

            summary = run_due(config, db, report=report, poll=not no_feeds)
    except LockBusyError as exc:
        _log_line(app, str(exc))
        return
    if summary.actions == 0:
        _log_line(app, "run: nothing was due")
    if summary.failures:
        raise NewsletterError(
            f"{summary.failures} of {summary.actions} actions failed (see the lines above); "
            "`newsletter status` shows the campaigns"
        )


@click.command("cron")
@click.option("--every", "every_minutes", type=click.IntRange(1, 59), default=5, show_default=True,
              help="Minutes between runs.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Log file (default: newsletter-run.log beside newsletter.toml).")
@pass_app
def cron_command(app: App, every_minutes: int, log_path: Path | None) -> None:
    """Print the crontab lines that run `newsletter run` for this install.

    Add them with `crontab -e`. The lines use absolute paths (this Python's newsletter,
    this newsletter.toml), because cron runs with a bare PATH in the home directory.
    """
    config = app.config
    config_path = config.root / "newsletter.toml"
    if app.config_path:
        given = Path(app.config_path)
        config_path = given / "newsletter.toml" if given.is_dir() else given
    db_path = Path(app.db_path) if app.db_path else None
    for line in crontab_lines(config_path=config_path, every_minutes=every_minutes,
                              log_path=log_path, db_path=db_path):
        click.echo(line)
    daily, weekly = config.schedule_daily, config.schedule_weekly
    zone = config.publication_time_zone
    app.info(
        f"Digests ({zone}): daily {daily or 'off'}, weekly {weekly or 'off'} (schedule.daily, "
        "schedule.weekly in newsletter.toml); `newsletter run` sends them when due."
    )


# ---------------------------------------------------------------------------------------
# digest


@click.command("digest")
@click.option("--period", "kind", type=click.Choice(["daily", "weekly"]), required=True,
              help="Which digest: of the day or the ISO week that ended last.")
@click.option("--for", "key", metavar="KEY", help="Another period, e.g. daily:2026-11-26 or weekly:2026-W48.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent, to how many; write and send nothing.")
@click.option("--late", is_flag=True,
              help="Send a period that `run` skipped as too late (still once per period).")
@pass_app
def digest_command(app: App, kind: str, key: str | None, dry_run: bool, late: bool) -> None:
    """Make and send the daily or weekly digest of the period that just ended.

    Idempotent: a period gets one digest, so running it again sends nothing and says so.
    A digest whose sending was interrupted is finished by the next run.
    """
    config, db = app.config, app.db
    app.warn_placeholders()
    period = period_for_command(kind, zone=config.publication_time_zone, key=key)
    if dry_run:
        plan = plan_digest(db, period)
        app.info(f"{kind} digest {period.label} (dry run, nothing sent):")
        click.echo(f"articles: {len(plan.articles)}")
        for slug in plan.articles:
            click.echo(f"  {slug}")
        click.echo(f"recipients: {plan.recipients}")
        echo_sample(plan.sample, plan.recipients)
        if len(plan.groups) > 1:
            click.echo(f"campaigns: {len(plan.groups)} (subscribers who already had some articles get fewer)")
        return
    owner = make_owner()
    try:
        with run_lock(config.root, what="newsletter run or digest"):
            outcome = create_digest(config, db, period, late=late)
            if outcome.status == "skipped":
                app.info(f"{kind} digest {period.label} was skipped as too late ({outcome.note}); nothing "
                         f"was sent. Send it anyway with `newsletter digest --period {kind} --for "
                         f"{period.key} --late`.")
                return
            if outcome.status == "empty":
                app.info(f"{kind} digest {period.label}: nothing to send ({outcome.note}).")
                return
            if outcome.status == "exists":
                left = pending_among(db, outcome.campaigns)
                if not left:
                    app.info(f"{kind} digest {period.label} was made before ({outcome.note}) and has "
                             "nothing left to send; nothing was sent this time.")
                    return
                app.info(f"{kind} digest {period.label} was made before ({outcome.note}) but not "
                         f"finished; finishing campaign{'s' if len(left) > 1 else ''} {', '.join(map(str, left))}.")
            else:
                app.info(f"{kind} digest {period.label}: {_count(outcome.articles, 'article')} for "
                         f"{_count(outcome.recipients, 'subscriber')}, "
                         f"campaign{'s' if len(outcome.campaigns) > 1 else ''} {', '.join(map(str, outcome.campaigns))}.")
            for campaign_id in pending_among(db, outcome.campaigns):
                run_with_progress(app, campaign_id, owner=owner)
    except LockBusyError as exc:
        app.info(str(exc))


# ---------------------------------------------------------------------------------------
# feeds

FEED_COLUMNS = ["id", "title", "address", "items", "last_ok_at", "last_error"]


@click.group("feeds")
def feeds_group() -> None:
    """RSS and Atom feeds whose new items become articles (polled by `newsletter run`)."""


@feeds_group.command("add")
@click.argument("address", metavar="URL|FILE")
@click.option("--no-check", is_flag=True, help="Add it without fetching it first.")
@pass_app
def feeds_add(app: App, address: str, no_check: bool) -> None:
    """Add a feed by http(s) URL or local file; it is fetched once to check it."""
    feed = poll.add_feed(app.db, address, timeout=app.config.feeds_timeout, check=not no_check)
    if feed["outcome"] == "exists":
        app.info(f"{feed['address']} is already a feed (id {feed['id']}); nothing changed.")
        return
    title = f" ({feed['title']})" if feed["title"] else ""
    app.info(f"Added feed {feed['id']}: {feed['address']}{title}. `newsletter run` polls it.")


@feeds_group.command("list")
@json_option
@pass_app
def feeds_list(app: App, as_json: bool) -> None:
    """List the feeds with their item counts and the last poll's outcome."""
    echo_rows(app, poll.list_feeds(app.db), FEED_COLUMNS, as_json=as_json,
              empty="No feeds. `newsletter feeds add URL` adds one.")


@feeds_group.command("remove")
@click.argument("feed", metavar="ID|URL|FILE")
@pass_app
def feeds_remove(app: App, feed: str) -> None:
    """Stop polling a feed; its articles stay, and its old items never come back as new."""
    removed = poll.remove_feed(app.db, feed)
    app.info(f"Removed feed {removed['id']}: {removed['address']}.")


@feeds_group.command("poll")
@pass_app
def feeds_poll(app: App) -> None:
    """Poll every feed now (`newsletter run` does this too)."""
    failed = 0
    for result in poll.poll_all(app.db, timeout=app.config.feeds_timeout):
        if result.error:
            failed += 1
            app.warn(f"{result.address}: {result.error}")
            continue
        if result.warning:
            app.warn(f"{result.address}: {result.warning}")
        app.info(f"{result.address}: {len(result.new)} new, {result.seen} seen before")
    if failed:
        raise FeedError(f"{failed} feed{'s' if failed > 1 else ''} could not be read; see above")
