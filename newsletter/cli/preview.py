"""Commands around the email itself: `newsletter preview` and `newsletter dkim keygen`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from ..config import Config
from ..content.dkim import generate_key_pair
from ..content.parse import parse_file
from ..content.preview import GMAIL_CLIP_BYTES, preview_recipient, write_preview
from ..errors import NotInitialisedError
from .common import App, pass_app


@click.command()
@click.argument("article", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as", "as_email", metavar="EMAIL",
              help="Render it as this subscriber gets it (name, language, links); default: the sender address.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the .eml, .html and .txt files (default: ./preview).")
@click.option("--encoding", help="Encoding of the article file when it is not UTF-8 (e.g. cp1252).")
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in the web browser.")
@pass_app
def preview(app: App, article: Path, as_email: str | None, out_dir: Path | None,
            encoding: str | None, open_browser: bool) -> None:
    """Write the exact email a subscriber would get for ARTICLE, plus its HTML and text.

    Nothing is sent and nothing is stored.
    """
    config = app.config
    parsed = parse_file(article, encoding=encoding)
    recipient, known = preview_recipient(app.db, config, as_email)
    files = write_preview(parsed, config, recipient=recipient,
                          out_dir=out_dir or Path.cwd() / "preview", subscriber=known)
    if as_email and not known:
        app.warn(f"{recipient.email} is not a subscriber: previewing with an empty name and a dummy token")
    for path in (files.eml, files.html, files.text):
        click.echo(str(path))
    app.info(f"HTML part: {files.html_bytes / 1024:.1f} KB (Gmail clips above 102 KB)")
    if files.html_bytes > GMAIL_CLIP_BYTES:
        app.warn("the HTML is larger than 102 KB: Gmail will clip it and hide the unsubscribe link")
    if open_browser:
        click.launch(str(files.html))


@click.group()
def dkim() -> None:
    """DKIM keys: sign every message so receivers can verify it came from you."""


@dkim.command()
@click.option("--selector", help="Selector (s=) of the new key (default: dkim.selector, or nlYYYYMM).")
@click.option("--domain", help="Signing domain (d=) (default: dkim.domain, or the From address's domain).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the private key (default: ./dkim beside newsletter.toml).")
@pass_app
def keygen(app: App, selector: str | None, domain: str | None, out_dir: Path | None) -> None:
    """Make a 2048-bit RSA key pair and print the DNS TXT record to publish.

    The private key is written with mode 0600 and never overwritten.
    """
    config: Config | None
    try:
        config = app.config
    except NotInitialisedError:
        config = None  # keygen also works outside a newsletter directory, given --domain
    if config is not None:
        selector = selector or config.dkim_selector or None
        domain = domain or config.dkim_domain or config.sender_address.rpartition("@")[2]
        out_dir = out_dir or config.root / "dkim"
    if not domain:
        raise click.UsageError("give --domain (or run it in a newsletter directory)")
    selector = selector or f"nl{date.today():%Y%m}"
    pair = generate_key_pair(selector=selector, domain=domain.lower(), out_dir=out_dir or Path.cwd() / "dkim")
    click.echo(f"name:  {pair.record_name}")
    click.echo("type:  TXT")
    click.echo(f"value: {pair.record_value}")
    click.echo(f"zone:  {pair.zone_line()}")
    app.info(f"Wrote the private key to {pair.private_key_file} (mode 0600; keep it secret).")
    app.info("Publish the TXT record above, then set in newsletter.toml:")
    app.info(f'  [dkim]\n  selector = "{pair.selector}"\n  domain = "{pair.domain}"\n'
             f'  key_file = "{pair.private_key_file}"')
