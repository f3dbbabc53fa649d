"""The `newsletter` command: the root group, its global options, and where each command lives.

Each command is loaded only when it runs or its help is shown (click's lazy-group pattern):
`newsletter --help` imports click and this module, never the sending engine, premailer,
lxml or aiosmtplib. The list of commands keeps each one's summary, so the overview is printed
without importing anything (tests/test_cli_lazy.py checks it matches the commands').
A new command is one entry in COMMANDS: name -> ("module:attribute", the first paragraph
of its help).
"""

from __future__ import annotations

import importlib

import click

from .. import __version__
from .common import App, NewsletterGroup

COMMANDS: dict[str, tuple[str, str]] = {
    "articles": (
        "newsletter.cli.articles:articles",
        "Add, list and show the articles you send (plain-text exports or Markdown).",
    ),
    "backup": (
        "newsletter.cli.backup:backup",
        "Copy the database to FILE (0600), consistently, even while a campaign sends.",
    ),
    "bounces": (
        "newsletter.cli.bounces:bounces_group",
        "Read the return mailbox: bounces, complaints, mailto unsubscribes, auto-replies.",
    ),
    "cancel": (
        "newsletter.cli.send:cancel",
        "Stop CAMPAIGN for good: what is queued or deferred is never sent.",
    ),
    "check": (
        "newsletter.cli.check:check",
        "Will the mail reach the inbox? Check DNS (SPF, DKIM, DMARC, MX), the relays and the setup "
        "before the first send; with ARTICLE, also that email as it would be sent.",
    ),
    "cron": (
        "newsletter.cli.cron:cron_command",
        "Print the crontab lines that run `newsletter run` for this install.",
    ),
    "digest": (
        "newsletter.cli.cron:digest_command",
        "Make and send the daily or weekly digest of the period that just ended.",
    ),
    "dkim": (
        "newsletter.cli.preview:dkim",
        "DKIM keys: sign every message so receivers can verify it came from you.",
    ),
    "feeds": (
        "newsletter.cli.cron:feeds_group",
        "RSS and Atom feeds whose new items become articles (polled by `newsletter run`).",
    ),
    "init": (
        "newsletter.cli.init:init",
        "Create newsletter.toml, the database and templates/ in DIRECTORY (default: here).",
    ),
    "preview": (
        "newsletter.cli.preview:preview",
        "Write the exact email a subscriber would get for ARTICLE, plus its HTML and text.",
    ),
    "prune": (
        "newsletter.cli.prune:prune_command",
        "Fold old campaigns' delivery rows into per-campaign counts, to keep the database small.",
    ),
    "resume": (
        "newsletter.cli.send:resume",
        "Finish an interrupted CAMPAIGN (after Ctrl-C, a crash or a failed run).",
    ),
    "retry": (
        "newsletter.cli.send:retry",
        "Send the deliveries of CAMPAIGN that are due (deferred ones whose time has come).",
    ),
    "run": (
        "newsletter.cli.cron:run_command",
        "Do everything that is due now: feeds, scheduled sends, digests, retries.",
    ),
    "schedule": (
        "newsletter.cli.schedule:schedule_group",
        "Scheduled sends: list them, add one, cancel one.",
    ),
    "send": (
        "newsletter.cli.send:send",
        "Send ARTICLE (a file or a stored slug) to every active subscriber.",
    ),
    "serve": (
        "newsletter.cli.serve:serve",
        "Answer the links in the emails: one-click unsubscribe, confirm, preferences, the "
        "subscribe form and the web archive, until Ctrl-C.",
    ),
    "status": (
        "newsletter.cli.status:status",
        "Per campaign: deliveries per status, rate, elapsed time and ETA.",
    ),
    "subscribe": (
        "newsletter.cli.subscribers:subscribe",
        "Add EMAIL as a subscriber (pending until confirmed, unless --confirmed).",
    ),
    "subscribers": (
        "newsletter.cli.subscribers:subscribers_group",
        "List, change, import, export and erase subscribers.",
    ),
    "unsubscribe": (
        "newsletter.cli.subscribers:unsubscribe",
        "Unsubscribe EMAIL: they are never mailed again (unless they subscribe anew).",
    ),
}


class LazyGroup(NewsletterGroup):
    """A group whose commands are imported from "module:attribute" when first needed."""

    def __init__(self, *args: object, lazy_commands: dict[str, tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            self.add_command(load_command(self.lazy_commands[cmd_name][0]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The overview of `newsletter --help`, from the stored short help: nothing imported."""
        names = [name for name in self.list_commands(ctx) if name in self.lazy_commands]
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)  # as click.Group does
        rows = [(name, click.Command(name, help=self.lazy_commands[name][1]).get_short_help_str(limit)) for name in names]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def load_command(target: str) -> click.Command:
    """The click command named by "package.module:attribute"."""
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


@click.group(
    name="newsletter", cls=LazyGroup, lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="newsletter")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=True, path_type=str),
    help="newsletter.toml to use (default: ./newsletter.toml; env NEWSLETTER_CONFIG).",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=str),
    help="SQLite database file (default: subscribers.db beside the config; env NEWSLETTER_DB).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only data and errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, db_path: str | None, quiet: bool) -> None:
    """Email a publisher's articles and digests to its subscribers.

    Start with `newsletter init` in an empty directory, then `newsletter subscribe`.
    """
    ctx.obj = App(config_path=config_path, db_path=db_path, quiet=quiet)
