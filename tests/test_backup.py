"""`newsletter backup`: a consistent copy taken while a campaign sends, checked, 0600; a
restore elsewhere resumes the campaign with nobody missing (at-least-once for the rows the
backup had not seen, with the same Message-ID); `run` keeps one a day when backup.dir is set."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from send_helpers import add_subscribers, server, write_article  # noqa: F401
from smtp_server import Server

from newsletter.db import open_db

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def rows(database: Path) -> dict[str, tuple[str, str | None]]:
    """email -> (delivery status, Message-ID) of campaign 1."""
    with sqlite3.connect(database) as conn:
        return {
            email: (status, message_id)
            for email, status, message_id in conn.execute(
                "SELECT s.email, d.status, d.message_id FROM delivery_rows d"
                " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.campaign_id = 1"
            )
        }


def test_a_backup_taken_mid_campaign_restores_elsewhere_and_resumes_with_nobody_missing(
    workdir: Path, server: Server, run_cli: RunCli, tmp_path: Path  # noqa: F811
) -> None:
    db = open_db(workdir / "subscribers.db")
    emails = add_subscribers(db, 200)
    db.conn.close()
    write_article(workdir)
    env = {"NEWSLETTER_SMTP_URL": server.url, "NEWSLETTER_SENDING_CONCURRENCY": "2"}
    server.handler.delay = 0.02  # a slow relay: the campaign is still sending during the backup
    sender = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "artikel.txt"], cwd=workdir, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(server.handler.messages) < 40:
        assert time.monotonic() < deadline and sender.poll() is None
        time.sleep(0.01)
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    made = run_cli("backup", str(shelf / "nieuws.db"), cwd=workdir, env=env)
    assert made.returncode == 0, made.stderr
    assert "integrity checked" in made.stderr
    assert sender.poll() is None  # taken while the campaign was sending
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    first_pass = {m.rcpt: m.message_id for m in server.handler.messages}
    assert sorted(first_pass) == sorted(emails)

    backup = shelf / "nieuws.db"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert sorted(p.name for p in shelf.iterdir()) == ["nieuws.db"]  # no temporary files left
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    seen = rows(backup)
    sent_in_backup = {e for e, (status, _) in seen.items() if status == "sent"}
    assert 0 < len(sent_in_backup) < len(emails)  # mid-campaign: some sent, some not yet

    # Restore in another folder, as after a lost disk: the config, the templates, the backup.
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(workdir / "newsletter.toml", restored / "newsletter.toml")
    shutil.copytree(workdir / "templates", restored / "templates")
    shutil.copy(backup, restored / "subscribers.db")
    status = run_cli("status", "1", cwd=restored, env=env)
    assert status.returncode == 0, status.stderr
    assert "interrupted" in status.stdout  # the backup's sender (on this machine) is gone
    server.handler.messages.clear()
    server.handler.delay = 0
    resumed = run_cli("resume", "1", cwd=restored, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "Campaign done: 200 of 200 sent" in resumed.stderr

    again = {m.rcpt: m.message_id for m in server.handler.messages}
    assert len(again) == len(server.handler.messages)  # nobody twice in the resumed run
    assert set(again) == set(emails) - sent_in_backup  # what the backup had not seen as sent
    for rcpt, message_id in again.items():
        assert message_id == first_pass[rcpt]  # the same Message-ID: a receiver can collapse it
    assert {status for status, _ in rows(restored / "subscribers.db").values()} == {"sent"}


def test_backup_refuses_the_database_itself_and_a_missing_folder(workdir: Path, run_cli: RunCli) -> None:
    itself = run_cli("backup", "subscribers.db", cwd=workdir)
    assert itself.returncode == 1
    assert itself.stderr.startswith("Error: ") and "is the database itself" in itself.stderr
    missing = run_cli("backup", str(workdir / "nergens" / "kopie.db"), cwd=workdir)
    assert missing.returncode == 1
    assert "folder" in missing.stderr and "does not exist" in missing.stderr
    assert not (workdir / "nergens").exists()


def test_run_keeps_one_verified_backup_a_day_and_only_backup_keep_of_them(
    workdir: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    env = {"NEWSLETTER_BACKUP_DIR": str(folder), "NEWSLETTER_BACKUP_KEEP": "2"}
    assert run_cli("subscribe", "ann@example.nl", "--confirmed", cwd=workdir).returncode == 0
    off = run_cli("run", cwd=workdir)
    assert off.returncode == 0, off.stderr
    assert not folder.exists()  # off by default

    folder.mkdir()
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        (folder / f"subscribers-{day}.db").write_bytes(b"old")
    (folder / "notes.txt").write_text("not a backup", encoding="utf-8")
    first = run_cli("run", cwd=workdir, env=env)
    assert first.returncode == 0, first.stderr
    assert "backed up the database to" in first.stderr
    assert (
        "removed 2 old backups (backup.keep = 2): subscribers-2026-01-01.db, subscribers-2026-01-02.db"
    ) in first.stderr
    today = [p for p in folder.iterdir() if p.name not in ("subscribers-2026-01-03.db", "notes.txt")]
    assert len(today) == 1 and today[0].name.startswith(f"subscribers-{date.today().year}")
    assert stat.S_IMODE(today[0].stat().st_mode) == 0o600
    with sqlite3.connect(today[0]) as conn:
        assert conn.execute("SELECT email FROM subscribers").fetchall() == [("ann@example.nl",)]

    second = run_cli("run", cwd=workdir, env=env)
    assert second.returncode == 0, second.stderr
    assert "backed up" not in second.stderr  # today's exists
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["notes.txt", "subscribers-2026-01-03.db", today[0].name]
    )
