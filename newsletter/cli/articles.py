"""The `articles` commands: add an article file, list the stored articles, show one.

Click only: parse the arguments, call newsletter.articles, print. Data goes to stdout,
messages to stderr; ArticleError becomes `Error: ...` with exit code 1 at the root group.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from ..content.article import Article
from ..content.parse import parse_file
from ..content.store import add_article, get_article, list_articles
from .common import App, echo_json, echo_rows, json_option, pass_app

TABLE_COLUMNS = ["slug", "title", "format", "published_at", "sent_at"]


@click.group()
def articles() -> None:
    """Add, list and show the articles you send (plain-text exports or Markdown)."""


@articles.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--encoding",
    metavar="NAME",
    help="The file's text encoding if it is not UTF-8, e.g. cp1252 or latin-1.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a stored article even if it was already sent.",
)
@pass_app
def add(app: App, file: Path, encoding: str | None, force: bool) -> None:
    """Read FILE and store it by its slug; prints the slug.

    Adding the same file again changes nothing; a changed file replaces the stored
    version unless that article was already sent (then --force is needed).
    """
    article = parse_file(file, encoding=encoding)
    result = add_article(app.db, article, force=force)
    click.echo(article.slug)
    app.info(result.message)


@articles.command("list")
@json_option
@pass_app
def list_command(app: App, as_json: bool) -> None:
    """List the stored articles, newest first."""
    echo_rows(app, list_articles(app.db), TABLE_COLUMNS, as_json=as_json,
              empty="No articles yet; add one with `newsletter articles add FILE`.")


@articles.command("show")
@click.argument("slug")
@json_option
@pass_app
def show(app: App, slug: str, as_json: bool) -> None:
    """Show the stored article SLUG: title, slug, summary and the body as text."""
    article = get_article(app.db, slug)
    if as_json:
        data = asdict(article)
        del data["source_text"]  # the blocks carry the content; the raw file is noise here
        echo_json(data)
        return
    click.echo(article_as_text(article))


def article_as_text(article: Article) -> str:
    """The article as a person reads it in a terminal."""
    lines = [article.title, "=" * min(len(article.title), 72), f"slug: {article.slug}"]
    for label, value in (
        ("publication", article.publication),
        ("author", article.author),
        ("date", article.published),
        ("language", article.language),
        ("summary", article.summary),
    ):
        if value:
            lines.append(f"{label}: {value}")
    body = [block.text for block in article.blocks]
    if article.signature:
        body.append("\n".join(article.signature))
    return "\n".join(lines) + "\n\n" + "\n\n".join(body)
