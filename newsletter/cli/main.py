"""The `newsletter` command: the root group, global options and `init`.

Command groups live in their own cli_*.py modules and are added here; this module only
parses, calls the core and prints.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import __version__
from ..scaffold import init_directory
from .common import App, NewsletterGroup


@click.group(name="newsletter", cls=NewsletterGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--publication", help="Publication name (publication.name).")
@click.option("--from", "sender", help="From address (sender.address).")
@click.option("--site-url", help="The publication's website (publication.site_url).")
@click.option("--language", type=click.Choice(["nl", "en"]), help="Default language.")
@click.pass_obj
def init(
    app: App,
    directory: Path,
    publication: str | None,
    sender: str | None,
    site_url: str | None,
    language: str | None,
) -> None:
    """Create newsletter.toml, the database and templates/ in DIRECTORY (default: here).

    Existing files are never overwritten: running it again changes nothing.
    """
    values = {
        "database": str(Path(app.db_path).resolve()) if app.db_path else None,
        "publication.name": publication,
        "sender.name": publication,
        "sender.address": sender,
        "publication.site_url": site_url,
        "publication.language": language,
    }
    result = init_directory(directory.resolve(), values=values, list_id_from_site=True)
    if result.ignored:
        app.warn(
            f"{result.directory / 'newsletter.toml'} already exists, so these settings were not "
            f"written: {', '.join(result.ignored)}. Edit the file to change them."
        )
    if result.created:
        for name in result.created:
            app.info(f"created {name}")
        app.info(f"Initialised {result.directory}. Edit newsletter.toml, then `newsletter subscribe`.")
    else:
        app.info(f"{result.directory} is already initialised; nothing changed.")
    if result.to_fill_in:
        app.info("Fill these in in newsletter.toml before the first real send (subscribers see them):")
        for item in result.to_fill_in:
            app.info(f"  {item}")


def _register() -> None:
    from .articles import articles
    from .subscribers import subscribe, subscribers_group, unsubscribe

    for command in (subscribe, unsubscribe, subscribers_group, articles):
        cli.add_command(command)

    from .preview import dkim, preview

    for command in (preview, dkim):
        cli.add_command(command)

    from .send import cancel, resume, retry, send, status

    for command in (send, resume, retry, cancel, status):
        cli.add_command(command)

    from .bounces import bounces_group

    cli.add_command(bounces_group)

    from .check import check

    cli.add_command(check)

    from .cron import register as register_schedule

    register_schedule(cli)  # last: it adds --at to `send`


_register()
