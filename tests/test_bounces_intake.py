"""The three ways in: `bounces receive` on standard input (with the exit codes an MTA acts
on), `bounces process` over a Maildir and an mbox file (each message once, used ones moved
away), and `newsletter run` reading bounces.source."""

from __future__ import annotations

import mailbox
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from bounce_helpers import SentSite
from send_helpers import server  # noqa: F401

from newsletter.db import BUSY_TIMEOUT_S


@pytest.fixture
async def site(workdir: Path, server) -> SentSite:  # noqa: F811
    sent = SentSite(workdir, server)
    sent.campaign_id = await sent.send()  # type: ignore[attr-defined]
    return sent


def _inbound(site: SentSite) -> list[tuple[str, str]]:
    return list(site.db.execute("SELECT via, kind FROM inbound_messages ORDER BY id"))


def _write_envelope_setting(site: SentSite) -> None:
    # The CLI reads newsletter.toml: give it the same bounce address as the site's config.
    path = site.workdir / "newsletter.toml"
    path.write_text(path.read_text().replace('envelope = ""', 'envelope = "bounces+{token}@example.nl"', 1))


async def test_receive_records_a_bounce_and_exits_0_and_the_same_one_again_changes_nothing(site, run_cli) -> None:
    _write_envelope_setting(site)
    cid, target = site.campaign_id, site.emails[0]
    data = site.fill("postfix-user-unknown.eml", cid, target).decode()
    first = run_cli("bounces", "receive", cwd=site.workdir, input=data)
    assert first.returncode == 0, first.stderr
    assert "hard bounce (5.1.1)" in first.stderr
    second = run_cli("bounces", "receive", cwd=site.workdir, input=data)
    assert second.returncode == 0 and "seen before" in second.stderr
    assert site.status(target) == "bounced"
    assert [k for k, _ in site.events(target)].count("bounced") == 1
    assert _inbound(site) == [("pipe", "bounce")]


async def test_receive_keeps_a_message_it_does_not_recognise_and_lists_it(site, run_cli) -> None:
    data = site.fill("no-structure.eml", site.campaign_id, site.emails[0]).decode()
    result = run_cli("bounces", "receive", cwd=site.workdir, input=data)
    assert result.returncode == 0, result.stderr
    kept = list((site.workdir / "bounces-unrecognised" / "new").iterdir())
    assert len(kept) == 1 and kept[0].read_text() == data
    report = run_cli("bounces", "report", cwd=site.workdir)
    assert f"bounces-unrecognised/new/{kept[0].name}" in report.stdout and "not a bounce" in report.stdout


async def test_receive_takes_a_20_mb_message_lists_it_and_exits_0(site, run_cli) -> None:
    data = "From: x@example.org\nSubject: big\n\n" + "a" * (20 * 1024 * 1024)
    result = run_cli("bounces", "receive", cwd=site.workdir, input=data)
    assert result.returncode == 0, result.stderr
    assert "too large: 21.0 MB" in result.stderr
    assert _inbound(site) == [("pipe", "bad")]


async def test_receive_exits_75_when_the_database_stays_busy_and_records_nothing(site, run_cli) -> None:
    data = site.fill("postfix-user-unknown.eml", site.campaign_id, site.emails[0]).decode()
    holder = sqlite3.connect(site.config.database)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(BUSY_TIMEOUT_S + 15, holder.rollback)
    release.start()
    try:
        started = time.monotonic()
        result = run_cli("bounces", "receive", cwd=site.workdir, input=data, timeout=BUSY_TIMEOUT_S + 60)
        assert time.monotonic() - started >= BUSY_TIMEOUT_S - 1
    finally:
        release.cancel()
        holder.rollback()
        holder.close()
    assert result.returncode == 75, result.stderr
    assert "the mail system will try again" in result.stderr
    assert _inbound(site) == [] and site.status(site.emails[0]) == "active"
    assert run_cli("bounces", "receive", cwd=site.workdir, input=data).returncode == 0


def test_receive_exits_75_outside_a_newsletter_directory(tmp_path: Path, run_cli) -> None:
    result = run_cli("bounces", "receive", cwd=tmp_path, input="From: a@example.org\n\nhi\n")
    assert result.returncode == 75 and "newsletter.toml" in result.stderr


async def test_process_reads_a_maildir_once_and_moves_what_it_used(site, run_cli) -> None:
    _write_envelope_setting(site)
    cid = site.campaign_id
    box = mailbox.Maildir(site.workdir / "returns", create=True)
    names = ["postfix-user-unknown.eml", "out-of-office.eml", "no-structure.eml", "arf-abuse-complaint.eml"]
    keys = [box.add(site.fill(name, cid, site.emails[n])) for n, name in enumerate(names)]
    (site.workdir / "returns" / "new" / "junk").write_bytes(b"\x00\x01binary\x00" * 50)

    first = run_cli("bounces", "process", "returns", cwd=site.workdir)
    assert first.returncode == 0, first.stderr
    assert "5 message(s) read" in first.stderr and "2 listed" in first.stderr
    assert site.status(site.emails[0]) == "bounced" and site.status(site.emails[3]) == "complained"
    processed = mailbox.Maildir(site.workdir / "returns" / ".processed", create=False)
    assert len(processed) == 3
    left = sorted(p.name for p in (site.workdir / "returns" / "new").iterdir())
    assert left == sorted([keys[2], "junk"])

    second = run_cli("bounces", "process", "returns", cwd=site.workdir)
    assert second.returncode == 0 and "nothing new" in second.stderr and "2 seen before" in second.stderr
    assert len(_inbound(site)) == 5
    assert sorted(k for _, k in _inbound(site)) == ["auto_reply", "bad", "bounce", "complaint", "other"]


async def test_process_reads_an_mbox_file_and_moves_what_it_used_beside_it(site, run_cli) -> None:
    _write_envelope_setting(site)
    path = site.workdir / "returns.mbox"
    box = mailbox.mbox(path)
    box.add(site.fill("qmail-no-mailbox.eml", site.campaign_id, site.emails[1]))
    box.add(site.fill("no-structure.eml", site.campaign_id, site.emails[2]))
    box.flush()
    box.close()
    first = run_cli("bounces", "process", str(path), cwd=site.workdir)
    assert first.returncode == 0, first.stderr
    assert site.status(site.emails[1]) == "bounced"
    assert len(mailbox.mbox(path)) == 1 and len(mailbox.mbox(path.with_name("returns.mbox.processed"))) == 1
    second = run_cli("bounces", "process", str(path), cwd=site.workdir)
    assert "1 seen before" in second.stderr and len(_inbound(site)) == 2


def test_process_names_a_source_that_does_not_exist(workdir: Path, run_cli) -> None:
    result = run_cli("bounces", "process", "nowhere", cwd=workdir)
    assert result.returncode == 1 and "does not exist" in result.stderr and "Maildir" in result.stderr


async def test_run_reads_the_bounce_source_before_it_sends(site, run_cli) -> None:
    _write_envelope_setting(site)
    box = mailbox.Maildir(site.workdir / "returns", create=True)
    box.add(site.fill("gmail-account-does-not-exist.eml", site.campaign_id, site.emails[2]))
    result = run_cli("run", "--no-feeds", cwd=site.workdir, env={"NEWSLETTER_BOUNCES_SOURCE": "returns"})
    assert result.returncode == 0, result.stderr
    assert "bounces: 1 message(s) from returns: 1 bounce; 1 finding(s)" in result.stderr
    assert site.status(site.emails[2]) == "bounced"
    again = run_cli("run", "--no-feeds", cwd=site.workdir, env={"NEWSLETTER_BOUNCES_SOURCE": "returns"})
    assert again.returncode == 0 and "bounces:" not in again.stderr
