"""`newsletter init`: create a newsletter directory (newsletter.toml, the database, templates/).

Click only: parse, call scaffold.py, print.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..scaffold import init_directory
from .common import App


@click.command()
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
