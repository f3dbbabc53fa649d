"""What every command shares: the application context, error mapping and output helpers.

Click stays at this edge: core modules raise NewsletterError, and NewsletterGroup turns
each into `Error: <message>` with exit code 1. Data goes to stdout, messages to stderr.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
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


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print rows as aligned columns on stdout (an empty list prints nothing)."""
    if not rows:
        return
    widths = {c: max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(_cell(row.get(c)).ljust(widths[c]) for c in columns).rstrip())


def echo_rows(app: App, rows: list[dict[str, Any]], columns: list[str], *, as_json: bool, empty: str) -> None:
    """A list command's output: JSON, or a table, or (nothing to list) `empty` on stderr."""
    if as_json:
        echo_json(rows)
    elif rows:
        echo_table(rows, columns)
    else:
        app.info(empty)


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
