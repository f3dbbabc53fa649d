"""`newsletter check`: the findings table (or --json) and exit code 1 when anything fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from ..audience.subscribers import counts
from ..content.parse import parse_file
from .common import App, echo_json, json_option, pass_app


@click.command()
@click.argument("article", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--encoding", help="Encoding of the article file when it is not UTF-8 (e.g. cp1252).")
@json_option
@pass_app
def check(app: App, article: Path | None, encoding: str | None, as_json: bool) -> None:
    """Will the mail reach the inbox? Check DNS (SPF, DKIM, DMARC, MX), the relays and the
    setup before the first send; with ARTICLE, also that email as it would be sent.

    Each finding is ok, warn or fail with what to do; the exit code is 1 when any fails.
    Nothing is sent and nothing is stored.
    """
    # Imported here, not at the top: dnspython and the Public Suffix List load only for `check`.
    from ..preflight.findings import OK
    from ..preflight.findings import counts as status_counts
    from ..preflight.run import run_checks

    config = app.config
    parsed = parse_file(article, encoding=encoding) if article else None
    active = counts(app.db)["active"] if config.database.exists() else None  # check creates no database
    app.info("Checking DNS, relays" + (f", setup and {article.name}" if article else " and setup") + " ...")
    findings = asyncio.run(run_checks(config, article=parsed, subscribers=active))
    if as_json:
        echo_json([finding.as_dict() for finding in findings])
    else:
        width = max(len(f.check) for f in findings)
        for finding in findings:
            click.echo(f"{finding.status:<4}  {finding.check:<{width}}  {finding.message}")
            if finding.status != OK:
                click.echo(f"{'':<4}  {'':<{width}}  fix: {finding.fix}")
    summary = status_counts(findings)
    app.info(", ".join(f"{number} {status}" for status, number in summary.items()))
    if summary["fail"]:
        n = summary["fail"]
        raise click.ClickException(f"{n} check{'s' if n != 1 else ''} failed: fix {'it' if n == 1 else 'them'} "
                                   "before the first send, then run `newsletter check` again")
