"""Storage faults: a full disk (a real 2 MB tmpfs), a read-only database file, folder or
mount, and an impossible rate each end in `Error: ...` saying what to do, exit 1, and lose
nothing that was stored; the campaign finishes once the fault is gone."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from send_helpers import add_subscribers, server, write_article  # noqa: F401
from smtp_server import Server

from newsletter.db import open_db

NOBODY = 65534


def newsletter(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180,
               unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    full_env.update(env or {})
    # Root writes through any permission bits: a read-only file is tested as another user.
    prefix = DROP_ROOT if unprivileged and os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "newsletter", *args], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )


DROP_ROOT = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def mount_tmpfs(directory: Path, size: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        reason = f"mounting a tmpfs is not allowed here: {result.stderr.strip() or result.returncode}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must allow it: run the tests as root)")
        pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A real small filesystem (2 MB unless the test asks for more), unmounted after the test."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, getattr(request, "param", "2m"))
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = disk / "filler"
    block = b"\0" * 4096
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return filler


def init_site(directory: Path, env: dict[str, str] | None = None) -> Path:
    result = newsletter("init", str(directory), "--from", "nieuws@example.nl", cwd=directory.parent, env=env)
    assert result.returncode == 0, result.stderr
    return directory


def statuses(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM delivery_rows GROUP BY status").fetchall())


# Room for the write-ahead log of the resumed run once the disk has space again (SQLite
# lets it grow to about 4 MB before it starts over).
@pytest.mark.parametrize("small_disk", ["8m"], indirect=True)
def test_a_disk_that_fills_up_mid_campaign_stops_it_with_an_error_and_resume_finishes_it(
    small_disk: Path, server: Server  # noqa: F811
) -> None:
    site = init_site(small_disk / "site")
    db = open_db(site / "subscribers.db")
    emails = add_subscribers(db, 300)
    db.conn.close()
    write_article(site)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "2"}
    server.handler.delay = 0.02
    sender = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "artikel.txt"], cwd=site, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(server.handler.messages) < 20:
        assert time.monotonic() < deadline and sender.poll() is None, "the send did not start"
        time.sleep(0.01)
    filler = fill(small_disk)
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 1, err
    assert "Traceback" not in err
    assert "Error: campaign 1 stopped: " in err
    assert "the disk is full" in err.lower() and "`newsletter resume 1` finishes it" in err
    received_at_fault = len(server.handler.messages)
    assert received_at_fault < len(emails)

    filler.unlink()
    server.handler.delay = 0
    resumed = newsletter("resume", "1", cwd=site, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert statuses(site / "subscribers.db") == {"sent": 300}
    received = server.handler.by_rcpt()
    assert sorted(received) == sorted(emails)  # nobody missing
    for copies in received.values():  # a second copy only of a message in flight, same Message-ID
        assert len({c.message_id for c in copies}) == 1
    with sqlite3.connect(site / "subscribers.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_full_outbox_defers_the_captured_messages_instead_of_failing_them(
    small_disk: Path, tmp_path: Path
) -> None:
    database = tmp_path / "subscribers.db"  # the database has room; the outbox has none
    env = {"NEWSLETTER_DB": str(database), "NEWSLETTER_RETRY_MIN_BACKOFF": "1"}
    site = init_site(small_disk / "site", env=env)
    db = open_db(database)
    add_subscribers(db, 5)
    db.conn.close()
    write_article(site)
    filler = fill(small_disk)
    first = newsletter("send", "artikel.txt", cwd=site, env=env)
    assert first.returncode == 0, first.stderr
    assert "this run 0 sent, 5 deferred, 0 bounced, 0 failed" in first.stderr
    assert statuses(database) == {"deferred": 5}
    filler.unlink()
    second = newsletter("retry", "1", "--now", cwd=site, env=env)
    assert second.returncode == 0, second.stderr
    assert statuses(database) == {"sent": 5}
    assert len(list((site / "outbox").glob("*.eml"))) == 5


def test_a_full_disk_before_anything_is_written_is_an_error_and_changes_nothing(small_disk: Path) -> None:
    site = init_site(small_disk / "site")
    filler = fill(small_disk)
    csv_file = Path(tempfile.mkdtemp()) / "leden.csv"
    csv_file.write_text("email\n" + "".join(f"lezer{n}@example.nl\n" for n in range(3000)), encoding="utf-8")
    result = newsletter("subscribers", "import", str(csv_file), cwd=site)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: the disk is full")
    filler.unlink()
    with sqlite3.connect(site / "subscribers.db") as conn:
        assert conn.execute("SELECT count(*) FROM subscribers").fetchone() == (0,)
    shutil.rmtree(csv_file.parent)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged user can reach (pytest's own are root-only)."""
    directory = Path(tempfile.mkdtemp(prefix="newsletter-ro-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _give_away(path: Path) -> None:
    if os.geteuid() == 0:
        for item in [path, *path.rglob("*")]:
            os.chown(item, NOBODY, NOBODY)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_database_file_or_folder_is_an_error_that_changes_nothing(shared_dir: Path, what: str) -> None:
    site = init_site(shared_dir / "site")
    assert newsletter("subscribe", "ann@example.nl", "--confirmed", cwd=site).returncode == 0
    write_article(site)
    _give_away(site)
    database = site / "subscribers.db"
    before = database.read_bytes()
    (database if what == "file" else site).chmod(0o444 if what == "file" else 0o555)
    try:
        for args in (("subscribe", "bob@example.nl", "--confirmed"), ("send", "artikel.txt")):
            result = newsletter(*args, cwd=site, unprivileged=True)
            assert result.returncode == 1, result.stderr
            assert "Traceback" not in result.stderr
            assert f"\nError: cannot write to the database {database}: " in "\n" + result.stderr
            assert "check their owner and permissions" in result.stderr
    finally:
        # SQLite makes -wal and -shm with the database file's mode: they were read-only too.
        for path in (site, database, *site.glob("subscribers.db-*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert database.read_bytes() == before
    result = newsletter("subscribe", "bob@example.nl", "--confirmed", cwd=site, unprivileged=True)
    assert result.returncode == 0, result.stderr


def test_a_read_only_mount_is_an_error_that_changes_nothing(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "4m")
    try:
        site = init_site(disk / "site")
        assert newsletter("subscribe", "ann@example.nl", "--confirmed", cwd=site).returncode == 0
        write_article(site)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for args in (("subscribe", "bob@example.nl", "--confirmed"), ("send", "artikel.txt"),
                     ("preview", "artikel.txt")):
            result = newsletter(*args, cwd=site)
            assert result.returncode == 1, result.stderr
            assert "Traceback" not in result.stderr
            assert "read-only" in result.stderr.lower()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("how", [("--rate", "inf"), ("--rate", "nan")])
def test_an_infinite_rate_is_an_error_not_a_traceback(tmp_path: Path, how: tuple[str, str]) -> None:
    site = init_site(tmp_path / "site")
    write_article(site)
    result = newsletter("send", "artikel.txt", *how, cwd=site)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: sending.rate (from command-line option): must be a finite number")
    result = newsletter("send", "artikel.txt", cwd=site, env={"NEWSLETTER_SENDING_RATE": how[1]})
    assert result.stderr.startswith("Error: sending.rate (from environment variable NEWSLETTER_SENDING_RATE)")
