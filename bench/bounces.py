"""Benchmark: `bounces process` over a Maildir of 10,000 mixed returned messages.

The mix is the test corpus's formats with real VERP tokens and Message-IDs of a campaign
to 10,000 subscribers: Postfix DSNs (hard and delayed), Gmail and Exchange DSNs, qmail,
Exim and Yahoo bounces (flufl.bounce), ARF complaints, mailto unsubscribes, out-of-office
replies and unrecognised mail. Prints messages per second (target: at least 500) and the
peak memory of runs over 1,000 and 10,000 messages, each in a fresh process (target: flat
in the count); as the reference in the same run, the rate of a bare
email.message_from_bytes() over the same files, the floor of reading them at all.
Run: .venv/bin/python bench/bounces.py [COUNT]
"""

from __future__ import annotations

import email
import mailbox
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.config import load_config  # noqa: E402
from newsletter.content.message import make_message_id  # noqa: E402
from newsletter.db import open_db  # noqa: E402
from newsletter.delivery.campaigns import create_campaign, envelope_sender, make_owner, verp_token  # noqa: E402
from newsletter.delivery.codes import to_ms  # noqa: E402
from newsletter.inbound.intake import process_source  # noqa: E402
from newsletter.scaffold import init_directory  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "bounces"
# (fixture, share of the mix in 20ths)
MIX = [
    ("postfix-user-unknown.eml", 5), ("postfix-delayed.eml", 3), ("gmail-account-does-not-exist.eml", 2),
    ("exchange-recipient-not-found.eml", 1), ("qmail-no-mailbox.eml", 2), ("exim-failed.eml", 1),
    ("yahoo-no-account.eml", 1), ("arf-abuse-complaint.eml", 1), ("mailto-unsubscribe.eml", 1),
    ("out-of-office.eml", 2), ("no-structure.eml", 1),
]
ARTICLE = "Testblad\n\nEen artikel voor de bounce-benchmark\n\nbounce-benchmark\n\nTekst met € en é.\n"


def build(count: int, directory: Path) -> Path:
    """A site whose campaign went to `count` subscribers, and a Maildir of their bounces."""
    init_directory(directory, values={"sender.address": "nieuws@example.nl", "sender.envelope":
                                      "bounces+{token}@example.nl"})
    config = load_config(directory / "newsletter.toml", environ={})
    db = open_db(config.database)
    stamp = "2026-11-01T00:00:00+00:00"
    with db.conn:
        db.conn.executemany(
            "INSERT INTO subscribers (email, language, status, cadence, token, created_at, updated_at)"
            " VALUES (?, 'nl', 'active', 'each', ?, ?, ?)",
            [(f"lezer{n:06d}@example.net", secrets.token_urlsafe(18), stamp, stamp) for n in range(count)],
        )
    (directory / "artikel.txt").write_text(ARTICLE, encoding="utf-8")
    campaign = create_campaign(config, db, directory / "artikel.txt", owner=make_owner())
    rows = db.execute(
        "SELECT d.id, d.subscriber_id, s.email, s.token FROM deliveries d JOIN subscribers s"
        " ON s.id = d.subscriber_id WHERE d.campaign_id = ? ORDER BY d.id", [campaign.id]
    ).fetchall()
    # As if the campaign had gone out: sent, with the Message-ID message.py gives each.
    with db.conn:
        db.conn.executemany(
            # (Stored as the compact rows do: status code 1, times in ms: delivery/codes.py.)
            "UPDATE deliveries SET status = 1, message_id = ?, last_attempt_at = ?, next_attempt_at = NULL"
            " WHERE id = ?",
            [(make_message_id(campaign_key=campaign.campaign_key, subscriber_id=sid, domain="example.nl"),
              to_ms(stamp), did) for did, sid, _, _ in rows],
        )
    templates = [(CORPUS / name).read_bytes() for name, share in MIX for _ in range(share)]
    box = mailbox.Maildir(directory / "returns", create=True)
    for n, (did, sid, address, token) in enumerate(rows):
        values = {
            b"@@VERP@@": envelope_sender(config, verp_token(did, campaign.campaign_key)).encode(),
            b"@@MID@@": make_message_id(campaign_key=campaign.campaign_key, subscriber_id=sid,
                                        domain="example.nl").encode(),
            b"@@RCPT@@": address.encode(),
            b"@@TOKEN@@": token.encode(),
        }
        data = templates[n % len(templates)]
        for placeholder, value in values.items():
            data = data.replace(placeholder, value)
        # Each message is its own (the same text twice would be one message, by fingerprint).
        box.add(re.sub(rb"(?im)^(message-id: *<)", f"\\g<1>{n}.".encode(), data, count=1))
    db.conn.close()
    return directory


def child(directory: Path) -> None:
    """One timed run (in its own process, so its peak memory is its own)."""
    config = load_config(directory / "newsletter.toml", environ={})
    db = open_db(config.database)
    files = sorted((directory / "returns" / "new").iterdir())
    start = time.perf_counter()
    for path in files:
        email.message_from_bytes(path.read_bytes())
    floor_s = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    summary = process_source(config, db, str(directory / "returns"))
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(summary.kinds.items()))
    print(f"{summary.read} {elapsed:.3f} {floor_s:.3f} {cpu:.3f} {after.ru_maxrss} {summary.findings} {kinds}")


def run(count: int) -> list[str]:
    directory = Path(tempfile.mkdtemp()) / "site"
    build(count, directory)
    result = subprocess.run([sys.executable, __file__, "--child", str(directory)],
                            capture_output=True, text=True, check=True)
    return result.stdout.split(maxsplit=6)


def main(count: int) -> None:
    small = run(max(count // 10, 100))
    large = run(count)
    read, elapsed, floor_s, cpu, peak, findings, kinds = large
    rate = int(read) / float(elapsed)
    floor = int(read) / float(floor_s)
    load = os.getloadavg()[0]
    print(f"bounces process: {read} messages from a Maildir in {float(elapsed):.2f} s = {rate:,.0f} messages/s "
          f"(target >= 500/s); load average {load:.1f} on {os.cpu_count()} cores")
    print(f"  CPU time {float(cpu):.2f} s = {int(read) / float(cpu):,.0f} messages per CPU-second "
          f"({float(cpu) / int(read) * 1000:.2f} ms each)")
    print(f"  reference in this run: email.message_from_bytes alone {floor:,.0f} messages/s "
          f"(processing is {floor / rate:.1f}x that floor)")
    print(f"  {findings} findings recorded; {kinds.strip()}")
    print(f"peak memory (max RSS): {int(small[4]) / 1024:.0f} MiB for {small[0]} messages, "
          f"{int(peak) / 1024:.0f} MiB for {read} messages (target: flat in the count)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
