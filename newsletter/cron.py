"""`newsletter run`: everything that is due now, in one pass, made to be run by cron.

In order: delete the subscriptions left unconfirmed past subscribe.pending_ttl, poll the
feeds (new items become articles), read the return mailbox when
bounces.source is set (so a bounced address is not mailed again in this pass), send the scheduled sends that are due,
make and send the digests the schedule says are due, then resume unfinished campaigns and
retry deferred deliveries whose time has come, (with prune.older_than set) fold the delivery
rows of old finished campaigns into counts, and (with backup.dir set) keep one verified
backup of the database a day. Each step reports what it did through a
callback, one Action at a time, and never prints: the CLI turns each into one timestamped
line. A broken feed or a late send is a warning; only a run that could not do its job (the
engine failed, a digest could not be made) counts as a failure, so cron mail means something.

The caller holds the directory lock (lock.py), so two runs never overlap.
"""

from __future__ import annotations

import asyncio
import shlex
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from .audience import subscribers
from .backup import daily_backup
from .config import Config
from .delivery.campaigns import AlreadySentError, create_campaign, make_owner
from .delivery.ledger import CampaignBusyError
from .delivery.pool import RunResult
from .delivery.prune import prune
from .delivery.records import broken, latest_for, pending
from .delivery.run import run_campaign
from .digests import schedule
from .digests.plan import create_digest, due_digests, schedule_entries
from .errors import NewsletterError
from .feeds.poll import poll_all
from .periods import format_local


@dataclass(frozen=True)
class Action:
    """One thing a run did or noticed."""

    kind: str  # subscribers, feed, bounces, scheduled, digest, send, engine, prune, backup
    message: str
    level: str = "info"  # info, warning or error
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class RunSummary:
    """The counts of a run; `failures` > 0 means the run itself failed somewhere."""

    actions: int = 0
    warnings: int = 0
    failures: int = 0


Report = Callable[[Action], None]


def send_article(config: Config, db: Database, slug: str, *, owner: str) -> tuple[int, RunResult | None]:
    """Make (or resume) the article's campaign and send it; (campaign id, run result).

    The result is None when the article had been sent already (a run that died after its
    campaign was made and sent).
    """
    try:
        campaign = create_campaign(config, db, slug, owner=owner)
    except AlreadySentError:
        latest = latest_for(db, slug)
        assert latest is not None
        return latest["id"], None
    return campaign.id, run_one(config, db, campaign.id, owner=owner)


def run_one(config: Config, db: Database, campaign_id: int, *, owner: str) -> RunResult:
    """Send what is due in one campaign (without progress output: cron's log gets a line)."""
    return asyncio.run(run_campaign(config, db, campaign_id, owner=owner))


def pending_among(db: Database, campaign_ids: list[int], *, now_at: datetime | None = None) -> list[int]:
    """Those of `campaign_ids` that have work now (see campaigns.pending)."""
    wanted = set(campaign_ids)
    return [i for i in pending(db, now_at=now_at or datetime.now(UTC)) if i in wanted]


def run_due(
    config: Config,
    db: Database,
    *,
    report: Report,
    now_at: datetime | None = None,
    owner: str | None = None,
    poll: bool = True,
) -> RunSummary:
    """Do everything that is due at `now_at` (default: now); report each action."""
    current = (now_at or datetime.now(UTC)).astimezone(UTC)
    summary = RunSummary()
    zone = config.publication_time_zone
    late_limit = timedelta(seconds=config.schedule_late_limit)

    def say(kind: str, message: str, level: str = "info") -> None:
        summary.actions += 1
        summary.warnings += level == "warning"
        summary.failures += level == "error"
        report(Action(kind=kind, message=message, level=level))

    # Subscriptions never confirmed: their data goes after subscribe.pending_ttl.
    expired = subscribers.expire_pending(db, older_than=config.subscribe_pending_ttl)
    if expired:
        say("subscribers", f"deleted {_count(expired, 'pending subscription')} never confirmed within "
            f"subscribe.pending_ttl ({schedule.duration_text(timedelta(seconds=config.subscribe_pending_ttl))})")

    if poll:
        _poll_feeds(config, db, say=say)

    if config.bounces_source:
        _read_bounces(config, db, say=say)

    owner = owner or make_owner()

    # Scheduled sends
    ran: set[int] = set()  # campaigns this pass already ran: a failed one waits for the next
    claim = schedule.claim_due(db, late_limit=late_limit, now_at=current)
    for due, late in claim.skipped:
        say("scheduled", f"skipped scheduled send {due.id} ({due.article_slug}): it was due "
            f"{format_local(due.due_at, zone=zone)}, {schedule.duration_text(late)} ago, more than "
            f"schedule.late_limit ({schedule.duration_text(late_limit)}); send it by hand if it still matters",
            "warning")
    for due, late in claim.to_send:
        if late > schedule.LATE_WARNING:
            say("scheduled", f"scheduled send {due.id} ({due.article_slug}) is "
                f"{schedule.duration_text(late)} late (due {format_local(due.due_at, zone=zone)}); sending it now",
                "warning")
        try:
            campaign_id, result = send_article(config, db, due.article_slug, owner=owner)
        except NewsletterError as exc:
            if isinstance(exc, CampaignBusyError):
                say("scheduled", f"scheduled send {due.id}: its campaign is being sent by another process")
                continue
            schedule.mark_failed(db, due.id, note=str(exc))
            say("scheduled", f"scheduled send {due.id} ({due.article_slug}) failed: {exc}", "error")
            continue
        except Exception as exc:  # noqa: BLE001 - cron must report it and go on with the rest
            # Left `started`: the next run tries again, resuming whatever was made.
            say("scheduled", f"scheduled send {due.id} ({due.article_slug}) failed, will retry: "
                f"{type(exc).__name__}: {exc}", "error")
            continue
        schedule.mark_sent(db, due.id, campaign_id=campaign_id)
        ran.add(campaign_id)
        say("scheduled", f"sent scheduled {due.article_slug} as campaign {campaign_id}{_result_text(result)}",
            "error" if result is not None and result.error else "info")

    # Digests
    entries = schedule_entries(daily=config.schedule_daily, weekly=config.schedule_weekly)
    for digest in due_digests(db, entries, zone=zone, late_limit=late_limit, now_at=current):
        if digest.skip:
            say("digest", f"skipped the {digest.period.kind} digest for {digest.period.label}: it was due "
                f"{format_local(digest.occurrence, zone=zone)}, {schedule.duration_text(digest.late)} ago, more "
                f"than schedule.late_limit; its articles go out with the next digest (up to a week back), or send "
                f"it now with `newsletter digest --period {digest.period.kind} --for {digest.period.key} --late`", "warning")
            continue
        try:
            outcome = create_digest(config, db, digest.period)
        except Exception as exc:  # noqa: BLE001 - nothing was written; the next run tries again
            reason = str(exc) if isinstance(exc, NewsletterError) else f"{type(exc).__name__}: {exc}"
            say("digest", f"could not make the {digest.period.kind} digest for {digest.period.label}: {reason}", "error")
            continue
        if outcome.status == "empty":
            say("digest", f"{digest.period.kind} digest {digest.period.label}: nothing to send ({outcome.note})")
            continue
        if outcome.status == "skipped":  # another run skipped it a moment ago and said so
            continue
        late_text = f" ({schedule.duration_text(digest.late)} late)" if digest.late > schedule.LATE_WARNING else ""
        say("digest", f"{digest.period.kind} digest {digest.period.label}{late_text}: {_count(outcome.articles, 'article')} for "
            f"{_count(outcome.recipients, 'subscriber')} in campaign{'s' if len(outcome.campaigns) > 1 else ''} "
            f"{', '.join(map(str, outcome.campaigns))}", "warning" if late_text else "info")

    # Unfinished campaigns (new digests among them) and deferred retries
    for campaign_id in broken(db):
        say("send", f"campaign {campaign_id} cannot be built and is left alone: fix it, then "
            f"`newsletter cancel {campaign_id}` and send the article again", "warning")
    for campaign_id in pending(db, now_at=current):
        if campaign_id in ran:
            continue
        try:
            run = run_one(config, db, campaign_id, owner=owner)
        except Exception as exc:  # noqa: BLE001 - one campaign's trouble does not stop the others
            if isinstance(exc, CampaignBusyError):
                say("send", f"campaign {campaign_id} is being sent by another process; left to it")
                continue
            reason = str(exc) if isinstance(exc, NewsletterError) else f"{type(exc).__name__}: {exc}"
            say("send", f"campaign {campaign_id} failed: {reason}", "error")
            continue
        say("send", f"campaign {campaign_id}{_result_text(run)}", "error" if run.error else "info")

    if config.prune_older_than is not None:
        _prune(config, db, now_at=current, say=say)
    if config.backup_dir is not None:
        _daily_backup(config, db, today=current.astimezone(ZoneInfo(zone)).date(), say=say)
    return summary


def _prune(config: Config, db: Database, *, now_at: datetime, say: Callable[..., None]) -> None:
    assert config.prune_older_than is not None
    try:
        folds = prune(db, older_than_days=config.prune_older_than, now_at=now_at)
    except sqlite3.Error as exc:
        say("prune", f"folding old campaigns failed: {exc}", "error")
        return
    if folds:
        rows = sum(f.rows for f in folds)
        say("prune", f"folded {_count(rows, 'delivery row')} of campaign{'s' if len(folds) > 1 else ''} "
            f"{', '.join(str(f.campaign_id) for f in folds)} into counts (prune.older_than = "
            f"{config.prune_older_than} days)")


def _daily_backup(config: Config, db: Database, *, today: date, say: Callable[..., None]) -> None:
    assert config.backup_dir is not None
    try:
        daily = daily_backup(db, database=config.database, folder=config.backup_dir,
                             keep=config.backup_keep, today=today)
    except NewsletterError as exc:
        say("backup", f"the daily backup failed: {exc}", "error")
        return
    if daily.made:
        say("backup", f"backed up the database to {daily.made.path} ({daily.made.size / 1e6:.1f} MB, "
            f"{_count(daily.made.subscribers, 'subscriber')}, checked)")
    if daily.removed:
        say("backup", f"removed {_count(len(daily.removed), 'old backup')} (backup.keep = {config.backup_keep}): "
            f"{', '.join(p.name for p in daily.removed)}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _poll_feeds(config: Config, db: Database, *, say: Callable[..., None]) -> None:
    for result in poll_all(db, timeout=config.feeds_timeout, language=None):
        if result.error:
            say("feed", f"{result.address}: {result.error}", "warning")
            continue
        if result.warning:
            say("feed", f"{result.address}: {result.warning}", "warning")
        if result.new:
            say("feed", f"{result.address}: {len(result.new)} new article{'s' if len(result.new) != 1 else ''}"
                f" ({', '.join(result.new[:3])}{', ...' if len(result.new) > 3 else ''}),"
                f" {result.queued} for the digests")


def _read_bounces(config: Config, db: Database, *, say: Callable[..., None]) -> None:
    # Imported here, not at the top: the inbound wing (and flufl.bounce) would slow down
    # the start of every command, and only this step needs it.
    from .inbound.intake import process_source

    try:
        summary = process_source(config, db, config.bounces_source)
    except NewsletterError as exc:
        say("bounces", f"could not read {config.bounces_source}: {exc}", "error")
        return
    if summary.read == summary.duplicates:
        return  # nothing new (messages left for a person are read again, and skipped)
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.kinds.items())) or "nothing new"
    say("bounces", f"{summary.read} message(s) from {summary.source}: {kinds}; {summary.findings} finding(s)"
        f"{f', {len(summary.listed)} listed (`newsletter bounces report`)' if summary.listed else ''}",
        "warning" if summary.listed else "info")


def _result_text(result: RunResult | None) -> str:
    if result is None:
        return " (already sent)"
    shown = ", ".join(f"{n} {status}" for status, n in result.counts.items() if n)
    text = f": {result.status}" + (f" ({shown})" if shown else "")
    text += f"; error: {result.error}" if result.error else ""
    return text + (f"; DKIM signing: {result.signing_fallback}" if result.signing_fallback else "")


def command_prefix(*, executable: str | None = None) -> list[str]:
    """How to start this very install: its console script beside the interpreter, or
    `python -m newsletter` with the absolute interpreter path (cron has a bare PATH)."""
    python = Path(executable or sys.executable).absolute()
    script = python.parent / "newsletter"
    if script.is_file():
        return [str(script)]
    return [str(python), "-m", "newsletter"]


def crontab_lines(
    *,
    config_path: Path,
    every_minutes: int = 5,
    log_path: Path | None = None,
    db_path: Path | None = None,
    executable: str | None = None,
) -> list[str]:
    """The crontab lines for this install: `newsletter run` every few minutes.

    Everything goes to a log file; only when a run fails (exit 1) is the end of the log
    printed, and cron mails what a job prints: so cron mail means a real failure.
    """
    if not 1 <= every_minutes <= 59:
        raise NewsletterError(f"--every must be between 1 and 59 minutes, not {every_minutes}")
    config_path = config_path.absolute()
    directory = config_path.parent
    log = (log_path or directory / "newsletter-run.log").absolute()
    database = ["--db", str(db_path.absolute())] if db_path else []
    command = shlex.join([*command_prefix(executable=executable), "--config", str(config_path), *database, "run"])
    schedule_text = "*" if every_minutes == 1 else f"*/{every_minutes}"
    # cron turns an unescaped % into a line break.
    command = command.replace("%", "\\%")
    log_text = shlex.quote(str(log)).replace("%", "\\%")
    directory_text = shlex.quote(str(directory)).replace("%", "\\%")
    return [
        f"# newsletter: run what is due every {every_minutes} minute{'s' if every_minutes != 1 else ''}"
        " (digests, scheduled sends, retries, feeds).",
        "# The log keeps every line; cron mails only the end of it when a run fails.",
        f"{schedule_text} * * * * cd {directory_text} && {command} >> {log_text} 2>&1 || tail -n 20 {log_text}",
    ]


