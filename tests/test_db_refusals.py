"""The CLI opens only a newsletter database it understands: a newer version's is refused,
naming that version; another program's SQLite file is refused, not converted; a mistyped
--db is an error, not a new empty database. Each leaves the file as it was."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from newsletter import __version__

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_database_made_by_a_newer_version_is_refused_naming_that_version(workdir: Path, run_cli: RunCli) -> None:
    database = workdir / "subscribers.db"
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'migrated_by'").fetchone() == (__version__,)
        # What a later version would do: its own migration, a new column, its version.
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
            " VALUES ('newsletter', '0042_subscriber_tags', '2027-06-01')"
        )
        conn.execute("ALTER TABLE subscribers ADD COLUMN tags TEXT")
        conn.execute("UPDATE meta SET value = '3.2.0' WHERE key = 'migrated_by'")
    conn.close()
    before = digest(database)
    result = run_cli("subscribers", "list", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"Error: {database} was made by newsletter 3.2.0, newer than this newsletter {__version__}"
    )
    assert "0042_subscriber_tags" in result.stderr and "upgrade newsletter" in result.stderr
    assert "Traceback" not in result.stderr
    assert digest(database) == before


def test_another_programs_sqlite_file_is_refused_and_left_alone(workdir: Path, run_cli: RunCli) -> None:
    other = workdir / "photos.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE albums (id INTEGER PRIMARY KEY, title TEXT)")
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
        conn.execute("INSERT INTO photos (path) VALUES ('a.jpg')")
    conn.close()
    before = digest(other)
    result = run_cli("--db", str(other), "subscribe", "ann@example.nl", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"Error: {other} is another program's SQLite database (tables albums, photos), not a newsletter database"
    )
    assert digest(other) == before
    with sqlite3.connect(other) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"albums", "photos"}


def test_a_mistyped_db_path_is_an_error_not_a_new_database(workdir: Path, run_cli: RunCli) -> None:
    result = run_cli("--db", "subscriber.db", "subscribe", "ann@example.nl", "--confirmed", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"Error: there is no database at {workdir / 'subscriber.db'} (from command-line option). Check the path"
    )
    assert "`newsletter init` creates a new one" in result.stderr
    assert not (workdir / "subscriber.db").exists()
    result = run_cli("subscribers", "count", cwd=workdir, env={"NEWSLETTER_DB": str(workdir / "nieuw.db")})
    assert result.returncode == 1
    assert "(from environment variable NEWSLETTER_DB)" in result.stderr
    assert not (workdir / "nieuw.db").exists()
    # init is the one command that makes a new database where --db points.
    assert run_cli("--db", "subscriber.db", "init", cwd=workdir).returncode == 0
    assert run_cli("--db", "subscriber.db", "subscribe", "ann@example.nl", "--confirmed", cwd=workdir).returncode == 0
