"""Sending commands: `send` (or schedule it with --at), `resume`, `retry` and `cancel`.

Click only: parse, call delivery/campaigns.py and delivery/run.py, show progress (a bar
when stderr is a terminal, timestamped lines otherwise, so cron gets a clean log), print
the summary and map the outcome to an exit code: 0 when every delivery reached a final state or is
deferred by design, 1 when the run itself failed or was interrupted.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from ..delivery.campaigns import create_campaign, dry_run, make_owner
from ..delivery.ledger import cancel_campaign, retry_deferred_now
from ..delivery.pool import Pool, Progress, RunResult
from ..delivery.processes import ShardedRun
from ..delivery.records import STOPPED, UNFINISHED, get_campaign
from ..delivery.run import run_campaign
from ..delivery.single import send_test
from .common import App, apply_limits, echo_sample, limit_options, pass_app, say_captured, stderr_is_terminal
from .schedule import add_scheduled

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # what click.progressbar returns

LOG_EVERY_S = 10.0


@click.command()
@click.argument("article")
@click.option("--dry-run", is_flag=True, help="Show how many would get it, and to whom; send nothing.")
@click.option("--again", is_flag=True, help="Send an article that was sent before, as a new campaign.")
@click.option("--to", "to", metavar="ADDRESS", help="Send one test copy to ADDRESS only; no campaign.")
@limit_options
@click.option(
    "--at", metavar="TIME", default=None,
    help='Schedule it instead of sending now: a time in publication.time_zone such as '
         '"2026-12-01 09:00"; `newsletter run` sends it then.',
)
@pass_app
def send(
    app: App, article: str, dry_run: bool, again: bool, to: str | None,
    concurrency: int | None, rate: float | None, at: str | None,
) -> None:
    """Send ARTICLE (a file or a stored slug) to every active subscriber.

    The campaign and one delivery row per subscriber are written before the first
    connection; an interrupted campaign of the same article is resumed, not restarted.
    """
    if at is not None:
        clashing = [flag for flag, given in (("--dry-run", dry_run), ("--again", again), ("--to", to)) if given]
        if clashing:
            raise click.UsageError(f"--at schedules a send; it cannot be combined with {', '.join(clashing)}")
        add_scheduled(app, article, at)
        return
    apply_limits(app, concurrency, rate)
    config, db = app.config, app.db
    app.warn_placeholders()
    if dry_run:
        _dry_run(app, article)
        return
    if to:
        outcome, captured = asyncio.run(send_test(config, db, article, to=to))
        say_captured(app, captured, 1 if outcome.status == "sent" else 0)
        if outcome.status != "sent":
            raise click.ClickException(
                f"the test copy to {to} was not accepted: {outcome.code or ''} {outcome.text}".replace("  ", " ")
            )
        app.info(f"Sent a test copy to {to} ({outcome.text}). No campaign was touched.")
        return
    owner = make_owner()
    campaign = create_campaign(config, db, article, owner=owner, again=again)
    if campaign.status in UNFINISHED and (campaign.started_at or campaign.status == "creating"):
        # `creating` here is a campaign whose rows were being written when it was killed.
        app.info(f"Resuming campaign {campaign.id} ({campaign.subject}).")
    else:
        app.info(f"Campaign {campaign.id}: {campaign.subject!r} to {campaign.total} subscribers.")
    run_with_progress(app, campaign.id, owner=owner)


@click.command()
@click.argument("campaign_id", metavar="CAMPAIGN", type=int)
@limit_options
@pass_app
def resume(app: App, campaign_id: int, concurrency: int | None, rate: float | None) -> None:
    """Finish an interrupted CAMPAIGN (after Ctrl-C, a crash or a failed run)."""
    apply_limits(app, concurrency, rate)
    campaign = get_campaign(app.db, campaign_id)
    if campaign.status == "cancelled":
        raise click.ClickException(f"campaign {campaign_id} was cancelled; it cannot be resumed.")
    app.info(f"Resuming campaign {campaign.id} ({campaign.subject}).")
    run_with_progress(app, campaign_id, owner=make_owner())


@click.command()
@click.argument("campaign_id", metavar="CAMPAIGN", type=int)
@pass_app
def cancel(app: App, campaign_id: int) -> None:
    """Stop CAMPAIGN for good: what is queued or deferred is never sent.

    For a campaign that cannot be built (fix the article, cancel, then `send` it again:
    whoever already got it is skipped), or one that should not go out after all.
    """
    counts = cancel_campaign(app.db, campaign_id, owner=make_owner())
    campaign = get_campaign(app.db, campaign_id)
    again = f" `newsletter send {campaign.article_slug}` sends it to the others." if campaign.article_slug else ""
    app.info(
        f"Cancelled campaign {campaign_id} ({campaign.subject}): {counts['cancelled']} not sent, "
        f"{counts['sent']} had been sent.{again}"
    )


@click.command()
@click.argument("campaign_id", metavar="CAMPAIGN", type=int)
@click.option("--now", "right_now", is_flag=True, help="Retry every deferred delivery now, ignoring the backoff.")
@limit_options
@pass_app
def retry(app: App, campaign_id: int, right_now: bool, concurrency: int | None, rate: float | None) -> None:
    """Send the deliveries of CAMPAIGN that are due (deferred ones whose time has come).

    Safe to run from cron: it does nothing when nothing is due.
    """
    apply_limits(app, concurrency, rate)
    db = app.db
    campaign = get_campaign(db, campaign_id)
    if campaign.status in STOPPED:
        raise click.ClickException(
            f"campaign {campaign_id} is {campaign.status}: nothing of it is sent any more"
            + (f"; `newsletter cancel {campaign_id}` ends it." if campaign.status == "broken" else ".")
        )
    if right_now:
        retry_deferred_now(db, campaign_id)
    run_with_progress(app, campaign_id, owner=make_owner())


def _dry_run(app: App, article: str) -> None:
    report = dry_run(app.config, app.db, article)
    click.echo(f"Subject:    {report.subject}")
    click.echo(f"Recipients: {report.count}")
    echo_sample(report.sample, report.count)
    if report.previous:
        click.echo(f"Note: already sent as campaign {report.previous}; sending needs --again.")
    app.info("Dry run: nothing was written and nothing was sent.")


def run_with_progress(app: App, campaign_id: int, *, owner: str) -> None:
    """Send one campaign as every command does: a progress bar on a terminal, timestamped
    lines otherwise, Ctrl-C finishing what is in flight, then the summary.

    Used by send, resume and retry here, and by digest.
    """
    config, db = app.config, app.db
    reporter = _Reporter(app)

    def on_start(pool: Pool | ShardedRun) -> None:
        loop = asyncio.get_running_loop()

        def interrupted() -> None:
            app.info("\nStopping: finishing the messages in flight (Ctrl-C again to force)...")
            loop.remove_signal_handler(signal.SIGINT)
            pool.stop()

        loop.add_signal_handler(signal.SIGINT, interrupted)
        loop.add_signal_handler(signal.SIGTERM, pool.stop)

    try:
        result = asyncio.run(
            run_campaign(config, db, campaign_id, owner=owner, on_progress=reporter, on_start=on_start)
        )
    finally:
        reporter.close()
    _summary(app, result)


class _Reporter:
    """A progress bar on a terminal; a timestamped line every few seconds otherwise."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.bar: ProgressBar[int] | None = None
        self.shown = 0
        self.logged_at = time.monotonic()

    def __call__(self, progress: Progress) -> None:
        if self.app.quiet:
            return
        if stderr_is_terminal():
            if self.bar is None:
                self.bar = click.progressbar(
                    length=max(progress.due, 1), label=f"campaign {progress.campaign_id}",
                    show_eta=True, show_pos=True, file=sys.stderr,
                    item_show_func=lambda _: f"{progress.rate:.0f}/s",
                )
                self.bar.__enter__()
            self.bar.update(progress.done - self.shown, progress.done)
            self.shown = progress.done
        elif time.monotonic() - self.logged_at >= LOG_EVERY_S:
            self.logged_at = time.monotonic()
            self.app.info(_line(progress))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _line(progress: Progress) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    eta = f", ETA {progress.eta:.0f}s" if progress.eta is not None else ""
    return (
        f"{stamp} campaign {progress.campaign_id}: {progress.done}/{progress.due} done, "
        f"{progress.sent} sent, {progress.deferred} deferred, {progress.bounced} bounced, "
        f"{progress.failed} failed, {progress.skipped} skipped, {progress.rate:.0f}/s{eta}"
    )


def _summary(app: App, result: RunResult) -> None:
    p, c = result.progress, result.counts
    app.info(
        f"Campaign {result.campaign_id}: this run {p.sent} sent, {p.deferred} deferred, "
        f"{p.bounced} bounced, {p.failed} failed, {p.skipped} skipped in {p.elapsed:.1f}s "
        f"({p.rate:.0f}/s). Campaign {result.status}: {c['sent']} of "
        f"{sum(c.values())} sent."
    )
    if p.slowdowns:
        app.info(f"The relay asked to slow down {p.slowdowns} time(s); the pool went down to "
                 f"{p.lowest_concurrency} connection(s) and back to {p.concurrency}.")
    say_captured(app, result.captured_to, p.sent)
    if result.smtp_fallback:
        app.warn(f"sent with aiosmtplib's own code, without the speed-ups: {result.smtp_fallback}")
    if result.signing_fallback:
        app.warn(f"DKIM signing: {result.signing_fallback}")
    left = c["queued"] + c["sending"]
    if c["deferred"] and result.next_retry_at:
        app.info(
            f"{c['deferred']} deferred; the next attempt is due at "
            f"{result.next_retry_at[:19].replace('T', ' ')} UTC: run `newsletter retry "
            f"{result.campaign_id}` then (or from cron)."
        )
    if result.error:
        raise click.ClickException(
            f"{result.error}\n{left} not sent yet; fix that, then run "
            f"`newsletter resume {result.campaign_id}`."
        )
    if result.interrupted:
        raise click.ClickException(
            f"interrupted: {left} not sent yet. Run `newsletter resume {result.campaign_id}` "
            "to finish the campaign."
        )
