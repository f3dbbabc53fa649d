"""What every command shares: the application context, error mapping and output helpers.

Click stays at this edge: core modules raise NewsletterError, and NewsletterGroup turns
each into `Error: <message>` with exit code 1. Data goes to stdout, messages to stderr.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import NewsletterError
from ..storage import storage_problem

if TYPE_CHECKING:
    from sqlite_utils import Database

    from ..config import Config
    from ..db import Reads

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """Lazily loaded configuration and database for one command run."""

    config_path: str | None = None
    db_path: str | None = None
    quiet: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    _placeholders_said: bool = field(default=False, repr=False)

    @cached_property
    def config(self) -> Config:
        # Imported here, not at the top: config.py (email-validator) and db.py (sqlite-utils)
        # are about 100 ms of the 150 ms `newsletter --help` took, and help needs neither.
        from ..config import find_config_file, load_config, unknown_environment

        for name in unknown_environment():
            self.warn(f"ignoring {name}: it matches no setting (see the README's configuration table)")
        path = find_config_file(self.config_path)
        overrides = dict(self.overrides)
        if self.db_path:
            overrides["database"] = str(Path(self.db_path).resolve())
        return load_config(path, overrides=overrides)

    @cached_property
    def db(self) -> Database:
        from ..db import open_db  # not at the top: see `config` above

        # Outside `init` a missing file is a mistyped path, not a new list.
        return open_db(self.config.database, create=False, source=self.config.sources["database"])

    @cached_property
    def reader(self) -> Reads:
        """The database for a command that only reads: plain sqlite3 when it is up to date,
        so `status` and the subscriber listings start without sqlite-utils."""
        if "db" in self.__dict__:
            return self.db
        from ..db import open_reader  # not at the top: see `config` above

        return open_reader(self.config.database, source=self.config.sources["database"])

    def info(self, message: str) -> None:
        """A progress or summary line on stderr, unless --quiet."""
        if not self.quiet:
            click.echo(message, err=True)

    def warn(self, message: str) -> None:
        click.echo(f"Warning: {message}", err=True)

    def placeholder_warning(self) -> str | None:
        """The warning for settings still on a placeholder, the first time it is asked in a
        run (send, digest and run say it once, and still go on)."""
        if self._placeholders_said:
            return None
        self._placeholders_said = True
        from ..config import placeholders  # not at the top: see `config` above

        found = placeholders(self.config)
        if not found:
            return None
        return (f"newsletter.toml is not filled in: {'; '.join(found)}. "
                "Subscribers see these; set them before a real send.")

    def warn_placeholders(self) -> None:
        """Warn (once per run) about settings still on a placeholder."""
        message = self.placeholder_warning()
        if message:
            self.warn(message)


pass_app = click.make_pass_decorator(App)


def limit_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--rate and --concurrency, for every command that sends through the pool."""
    func = click.option(
        "--rate", type=float, help="Messages per second at most, 0 for no limit (sending.rate)."
    )(func)
    return click.option(
        "--concurrency", type=click.IntRange(1, 500), help="SMTP connections at once (sending.concurrency)."
    )(func)


def apply_limits(app: App, concurrency: int | None, rate: float | None) -> None:
    """Make --rate and --concurrency override sending.rate and sending.concurrency."""
    if concurrency is not None:
        app.overrides["sending.concurrency"] = concurrency
    if rate is not None:
        app.overrides["sending.rate"] = rate


class NewsletterGroup(click.Group):
    """A click group that reports the project's errors as `Error: ...` with exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            raise click.ClickException(str(exc)) from exc
        except (sqlite3.OperationalError, OSError) as exc:
            # A full disk or a read-only database, folder or mount.
            problem = storage_problem(exc, _database_of(ctx))
            if problem:
                raise click.ClickException(problem) from exc
            # Another process held the write lock longer than the busy timeout.
            if not isinstance(exc, sqlite3.OperationalError) or ("locked" not in str(exc) and "busy" not in str(exc)):
                raise
            raise click.ClickException(
                f"the database is busy ({exc}): another newsletter command is writing to it. "
                "Try again when it has finished."
            ) from exc


def _database_of(ctx: click.Context) -> Path | None:
    """The database of this command run, if its configuration was loaded."""
    app = ctx.find_object(App)
    if app is None or "config" not in app.__dict__:  # never load it here: it may be what failed
        return None
    return app.config.database


def json_option(func: F) -> F:
    """Add --json to a list or show command."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


# Lines (or JSON items) a listing writes at a time.
_BLOCK = 1000


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_json_list(rows: Iterable[Any]) -> None:
    """What echo_json(list(rows)) prints, written as the rows come: a long listing is never
    held whole in memory."""
    block: list[str] = []
    opened = False
    for row in rows:
        # json.dumps escapes every newline inside a value, so each "\n" here is structure.
        block.append("  " + json.dumps(row, indent=2, ensure_ascii=False, default=str).replace("\n", "\n  "))
        if len(block) == _BLOCK:
            click.echo(("," if opened else "[") + "\n" + ",\n".join(block), nl=False)
            opened, block = True, []
    if block:
        click.echo(("," if opened else "[") + "\n" + ",\n".join(block), nl=False)
        opened = True
    click.echo("\n]" if opened else "[]")


def echo_table(
    rows: Iterable[dict[str, Any]], columns: list[str], *, widths: Mapping[str, int] | None = None
) -> None:
    """Print rows as aligned columns on stdout (no rows print nothing).

    Without `widths` the rows are gathered first to measure them. With it (the length of
    each column's longest value, as a query can tell beforehand) they are streamed, a block
    of lines at a time, and a listing of a million takes no more memory than one of ten.
    """
    if widths is None:
        rows = list(rows)
        widths = {c: max((len(_cell(r.get(c))) for r in rows), default=0) for c in columns}
    widths = {c: max(len(c), widths.get(c, 0)) for c in columns}
    lines: list[str] | None = None  # the header waits for a first row: no rows, no header
    for row in rows:
        if lines is None:
            lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
        lines.append("  ".join(_cell(row.get(c)).ljust(widths[c]) for c in columns).rstrip())
        if len(lines) >= _BLOCK:
            click.echo("\n".join(lines))
            lines = []
    if lines:
        click.echo("\n".join(lines))


def echo_rows(
    app: App, rows: Iterable[dict[str, Any]], columns: list[str], *, as_json: bool, empty: str,
    widths: Mapping[str, int] | None = None,
) -> None:
    """A list command's output: JSON, or a table, or (nothing to list) `empty` on stderr.
    `rows` may be a stream: with `widths` given for the table, it is never held whole."""
    stream = iter(rows)
    first = next(stream, None)
    if first is None:
        if as_json:
            echo_json([])
        else:
            app.info(empty)
        return
    if as_json:
        echo_json_list(itertools.chain([first], stream))
    else:
        echo_table(itertools.chain([first], stream), columns, widths=widths)


def echo_sample(sample: list[str], total: int) -> None:
    """The first few addresses of a dry run, and how many more there are."""
    for email in sample:
        click.echo(f"  {email}")
    if total > len(sample):
        click.echo(f"  ... and {total - len(sample)} more")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def say_captured(app: App, captured: Path | None, count: int) -> None:
    """Tell the user plainly when messages went to the built-in capture server, not out."""
    if captured is not None:
        app.info(
            f"No SMTP relay is configured (smtp.url), so the built-in capture server took "
            f"{'this message' if count == 1 else 'the messages'}: NOTHING LEFT THIS MACHINE. "
            f"See {captured}/*.eml."
        )


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
