"""The commands people run most start light: `--help`, `status`, `subscribers list` and
`subscribers count`, run on a real directory (subscribers, a sent campaign), import neither the
sending engine nor the libraries of rendering, validation and writing (bench/cli_start.py
measures the time and memory; this checks the cause). A database that is not up to date
still gets migrated, and the light read connection cannot write."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlite_utils import Database

from newsletter.db import DatabaseError, Reader, open_db, open_reader
from newsletter.migrations import MIGRATIONS
from newsletter.scaffold import init_directory

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SUBSCRIBERS = 12
# Modules none of the four commands needs (a package's submodules count as the package).
HEAVY = (
    "aiosmtplib", "premailer", "lxml", "jinja2", "babel", "markdown_it", "sqlite_utils", "email_validator",
    "idna", "dns", "asyncio", "concurrent.futures", "multiprocessing", "_hashlib",
    "newsletter.delivery.pool", "newsletter.delivery.ledger", "newsletter.delivery.queue",
    "newsletter.delivery.processes", "newsletter.delivery.run", "newsletter.content.render",
    "newsletter.content.message", "newsletter.audience.import_export",
)
# Runs the command in this process, then reports every module it imported.
DRIVER = """
import atexit, json, sys
atexit.register(lambda: print("MODULES=" + json.dumps(sorted(sys.modules)), file=sys.stderr))
from newsletter.cli.main import cli
cli(args=sys.argv[1:], prog_name="newsletter")
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}


def _newsletter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=cwd, env=_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A newsletter directory with subscribers and one campaign sent (capture server)."""
    directory = tmp_path_factory.mktemp("startup") / "site"
    init_directory(directory, values={"sender.address": "nieuws@example.nl", "publication.language": "nl"})
    rows = directory.parent / "leden.csv"
    rows.write_text("email,name\n" + "".join(f"lid{i}@example.nl,Lid {i}\n" for i in range(SUBSCRIBERS)),
                    encoding="utf-8")
    _newsletter("subscribers", "import", str(rows), cwd=directory)
    _newsletter("send", str(EXAMPLES / "article.txt"), cwd=directory)
    return directory


def run_and_list_modules(site: Path, *args: str) -> tuple[str, set[str]]:
    """(stdout, the modules imported) of one command run in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=site, env=_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stderr.splitlines() if line.startswith("MODULES="))
    return result.stdout, set(json.loads(line.removeprefix("MODULES=")))


def heavy_among(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_help_loads_none_of_the_heavy_modules(site: Path) -> None:
    stdout, modules = run_and_list_modules(site, "--help")
    assert "subscribers" in stdout and "newsletter.cli.main" in modules
    assert heavy_among(modules) == []


def test_status_of_a_sent_campaign_loads_none_of_the_heavy_modules(site: Path) -> None:
    stdout, modules = run_and_list_modules(site, "status", "--json")
    [campaign] = json.loads(stdout)
    assert (campaign["status"], campaign["total"], campaign["sent"]) == ("done", SUBSCRIBERS, SUBSCRIBERS)
    assert "newsletter.delivery.records" in modules
    assert heavy_among(modules) == []


def test_subscribers_list_loads_none_of_the_heavy_modules(site: Path) -> None:
    stdout, modules = run_and_list_modules(site, "subscribers", "list", "--json")
    assert [row["email"] for row in json.loads(stdout)] == [f"lid{i}@example.nl" for i in range(SUBSCRIBERS)]
    assert heavy_among(modules) == []


def test_subscribers_count_loads_none_of_the_heavy_modules(site: Path) -> None:
    stdout, modules = run_and_list_modules(site, "subscribers", "count", "--json")
    assert json.loads(stdout)["active"] == SUBSCRIBERS
    assert heavy_among(modules) == []


def test_status_on_a_database_a_migration_behind_migrates_it_first(tmp_path: Path) -> None:
    directory = tmp_path / "site"
    init_directory(directory, values={"sender.address": "nieuws@example.nl"})
    database = directory / "subscribers.db"
    database.unlink()
    old = Database(database)
    MIGRATIONS.apply(old, stop_before=MIGRATIONS.names[-1])
    old.conn.execute("PRAGMA journal_mode = WAL")
    old.close()
    result = subprocess.run([sys.executable, "-m", "newsletter", "status"], cwd=directory, env=_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "No campaigns yet" in result.stderr
    with sqlite3.connect(database) as conn:
        applied = [row[0] for row in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")]
    conn.close()
    assert applied == list(MIGRATIONS.names)


def test_the_light_reader_is_used_only_for_an_up_to_date_database_and_cannot_write(tmp_path: Path) -> None:
    database = tmp_path / "subscribers.db"
    open_db(database).close()
    reader = open_reader(database)
    assert isinstance(reader, Reader)
    assert [row["n"] for row in reader.query("SELECT count(*) AS n FROM subscribers")] == [0]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("DELETE FROM subscribers")
    reader.close()


def test_the_light_reader_refuses_what_open_db_refuses(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(DatabaseError, match="there is no database"):
        open_reader(missing, source="--db")
    assert not missing.exists()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(DatabaseError, match="another program's SQLite database"):
        open_reader(other)
