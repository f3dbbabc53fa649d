"""Files that hold addresses and unsubscribe tokens are created 0600, their folders 0700,
whatever the umask allows; a stricter umask still wins."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from send_helpers import write_article

from newsletter.db import open_db


def newsletter(*args: str, cwd: Path, umask: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=120, preexec_fn=lambda: os.umask(umask), check=True,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_outbox_preview_and_export_are_private_under_a_permissive_umask(tmp_path: Path) -> None:
    site = tmp_path / "site"
    newsletter("init", str(site), "--from", "nieuws@example.nl", cwd=tmp_path, umask=0o022)
    newsletter("subscribe", "ann@example.nl", "--confirmed", cwd=site, umask=0o022)
    article = write_article(site)
    newsletter("send", str(article), cwd=site, umask=0o022)
    newsletter("preview", str(article), "--as", "ann@example.nl", cwd=site, umask=0o022)
    newsletter("subscribers", "export", "-o", "leden.csv", cwd=site, umask=0o022)
    newsletter("subscribers", "export", "--format", "json", "-o", "leden.json", cwd=site, umask=0o022)

    assert mode(site / "subscribers.db") == 0o600
    assert mode(site / "outbox") == 0o700
    emails = list((site / "outbox").glob("*.eml"))
    assert len(emails) == 1 and mode(emails[0]) == 0o600
    assert mode(site / "preview") == 0o700
    previews = list((site / "preview").iterdir())
    assert {p.suffix for p in previews} == {".eml", ".html", ".txt"}
    assert all(mode(p) == 0o600 for p in previews)
    assert mode(site / "leden.csv") == 0o600
    assert mode(site / "leden.json") == 0o600

    # SQLite gives the write-ahead log and the shared-memory index the database's mode.
    db = open_db(site / "subscribers.db")
    with db.conn:
        db.conn.execute("UPDATE subscribers SET name = 'Ann'")
    assert mode(site / "subscribers.db-wal") == 0o600
    assert mode(site / "subscribers.db-shm") == 0o600
    db.conn.close()


def test_an_export_over_a_world_readable_file_becomes_private_and_a_stricter_umask_still_wins(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    newsletter("init", str(site), cwd=tmp_path, umask=0o022)
    target = site / "leden.csv"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)
    newsletter("subscribers", "export", "-o", str(target), cwd=site, umask=0o022)
    assert mode(target) == 0o600
    newsletter("subscribers", "export", "-o", str(target), cwd=site, umask=0o277)
    assert mode(target) == 0o400

    article = write_article(site)
    newsletter("preview", str(article), cwd=site, umask=0o277)
    previews = list((site / "preview").iterdir())
    assert previews and all(mode(p) == 0o400 for p in previews)
    assert mode(site / "preview") == 0o500
