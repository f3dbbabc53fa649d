"""Benchmark: make a daily digest for many subscribers (planning, rendering, writing the rows).

Prints seconds for the first day's digest (everybody gets everything) and the next day's
(everybody already received the first day's articles, so the "not already received" filter
does real work), and peak memory; as the reference in the same run, the time of a bare
INSERT ... SELECT of one delivery row per subscriber, which is the floor for writing them.
Needs the sending engine's tables (campaigns, deliveries).
Run: .venv/bin/python bench/digest.py [SUBSCRIBERS]
"""

from __future__ import annotations

import resource
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.config import load_config  # noqa: E402
from newsletter.content.parse import parse_text  # noqa: E402
from newsletter.content.store import add_article  # noqa: E402
from newsletter.db import open_db  # noqa: E402
from newsletter.digests.plan import create_digest, mark_for_digest  # noqa: E402
from newsletter.periods import period_from_key  # noqa: E402
from newsletter.scaffold import init_directory  # noqa: E402

ZONE = "Europe/Amsterdam"


def main(count: int) -> None:
    directory = Path(tempfile.mkdtemp()) / "site"
    init_directory(directory, values={"publication.language": "nl"})
    config = load_config(directory / "newsletter.toml", environ={})
    db = open_db(config.database)
    if "campaigns" not in db.table_names():
        sys.exit("bench/digest.py needs the sending engine's tables (campaigns, deliveries)")
    stamp = "2026-11-01T00:00:00+00:00"
    with db.conn:
        db.conn.executemany(
            "INSERT INTO subscribers (email, language, status, cadence, token, created_at, updated_at)"
            " VALUES (?, ?, 'active', 'daily', ?, ?, ?)",
            [(f"lezer{n}@example.nl", "nl" if n % 3 else "en", secrets.token_urlsafe(18), stamp, stamp)
             for n in range(count)],
        )
    for day in (20, 21):
        for n in range(4):
            slug = f"artikel-{day}-{n}"
            add_article(db, parse_text(f"---\ntitle: Artikel {day} {n}\nslug: {slug}\n---\nTekst met € en é.\n",
                                       source=f"{slug}.md"))
            mark_for_digest(db, slug, at=datetime(2026, 11, day, 9 + n, tzinfo=UTC))

    start = time.perf_counter()
    first = create_digest(config, db, period_from_key("daily:2026-11-20", zone=ZONE))
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    second = create_digest(config, db, period_from_key("daily:2026-11-21", zone=ZONE))
    second_s = time.perf_counter() - start

    # The floor: the same delivery rows written by one INSERT ... SELECT into the real
    # (indexed) table, for a throwaway campaign, rolled back afterwards.
    db.conn.execute("BEGIN IMMEDIATE")
    cursor = db.conn.execute(
        "INSERT INTO campaigns (kind, subject, status, campaign_key, created_at, updated_at)"
        " VALUES ('digest', 'floor', 'ready', 'floor', ?, ?)", [stamp, stamp])
    start = time.perf_counter()
    db.conn.execute("INSERT INTO deliveries (campaign_id, subscriber_id, status)"
                    " SELECT ?, id, 0 FROM subscribers WHERE cadence = 'daily'", [cursor.lastrowid])
    floor_s = time.perf_counter() - start
    db.conn.rollback()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"subscribers: {count:,}")
    print(f"first day:  {first_s:.2f} s ({first.recipients:,} recipients, {first.articles} articles, "
          f"{len(first.campaigns)} campaign)")
    print(f"second day: {second_s:.2f} s ({second.recipients:,} recipients, {second.articles} articles, "
          f"{len(second.campaigns)} campaign) -- filters what each already received")
    print(f"reference (one bare INSERT ... SELECT of the same rows): {floor_s:.2f} s; "
          f"ratio {second_s / floor_s:.1f}x")
    print(f"peak memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
