"""Benchmark: import 100,000 subscribers from CSV (target: under 5 seconds on this machine).

Prints rows per second for the real import (email-validator syntax checks, duplicate and
suppression checks, tokens, events) and, as the reference in the same run, a bare
executemany of the same rows into the same schema with none of those checks.
Run: .venv/bin/python bench/import_subscribers.py [ROWS]
"""

from __future__ import annotations

import csv
import random
import resource
import sqlite3
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.audience import import_export  # noqa: E402
from newsletter.db import open_db, transaction  # noqa: E402

DOMAINS = ["gmail.com", "outlook.com", "hotmail.com", "ziggo.nl", "kpn.nl", "xs4all.nl",
           "planet.nl", "icloud.com", "yahoo.com", "tech-bedrijf.nl", "universiteit.nl", "gemeente.nl"]
FIRST = ["Anna", "Bram", "Chloé", "Daan", "Eva", "Fleur", "Gijs", "Hélène", "Ilse", "Joep", "Zoë", "Noël"]
LAST = ["de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "van Dijk"]


def make_csv(path: Path, rows: int) -> None:
    rng = random.Random(42)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["email", "name", "lang", "cadence"])
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            # Addresses are ASCII before the @ (see subscribers.normalize_email); names are not.
            local = unicodedata.normalize("NFKD", f"{first}.{last}".lower().replace(" ", ""))
            local = local.encode("ascii", "ignore").decode("ascii") + str(i)
            writer.writerow([f"{local}@{rng.choice(DOMAINS)}", f"{first} {last}",
                             rng.choice(["nl", "nl", "en"]), rng.choice(["each", "each", "daily", "weekly"])])


def reference(path: Path, db_path: Path) -> float:
    """The same rows straight into the same table: the floor any import stands on."""
    db = open_db(db_path)
    start = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=";")
        next(reader)
        with transaction(db):
            db.conn.executemany(
                "INSERT INTO subscribers (email, name, language, cadence, status, token, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'active', ?, 'now', 'now')",
                ((e, n, lang, c, e) for e, n, lang, c in reader),
            )
    return time.perf_counter() - start


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "leden.csv"
        make_csv(source, rows)
        ref = reference(source, folder / "reference.db")
        db = open_db(folder / "subscribers.db")
        start = time.perf_counter()
        report = import_export.import_file(db, source)
        took = time.perf_counter() - start
        assert report.imported == rows, report.summary()
        (stored,) = db.execute("SELECT count(*) FROM subscribers").fetchone()
        (events,) = db.execute("SELECT count(*) FROM events").fetchone()
        assert stored == rows and events == rows
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows:                 {rows:,}")
    print(f"import:               {took:.2f} s  ({rows / took:,.0f} rows/s)  target < 5 s: "
          f"{'met' if took < 5 else 'NOT met'}")
    print(f"reference insert:     {ref:.2f} s  ({rows / ref:,.0f} rows/s, no validation)")
    print(f"import / reference:   {took / ref:.1f}x the time of a bare insert")
    print(f"peak memory:          {peak_mb:.0f} MB")
    print(f"sqlite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
