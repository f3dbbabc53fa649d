"""How fast the command line starts: wall time and peak memory of whole `newsletter` processes.

Makes a real newsletter directory (`newsletter init`, a few hundred subscribers imported, one
article sent through the built-in capture server), then runs `--help`, `status`,
`subscribers list` and `subscribers count` as subprocesses, each --runs times, interleaved
with `python -c pass` (the interpreter's own start) so all see the same machine load. Prints
per command the median and range of the wall time, the ratio to `python -c pass`, and the
peak RSS of the process (its own rusage from wait4, as /usr/bin/time -f %M reports it),
against the targets: under 120 ms and under 30 MB.

Then the same for `status`, `subscribers count` and `subscribers list` in a copy of that
directory grown to what a year brings a larger publisher (--large: 100,000 more subscribers
imported through the CLI; --campaigns: 52 finished campaigns with a sent delivery row for
every subscriber, written by SQL as the ledger leaves them): the commands whose work grows
with the data. `subscribers list` writes every subscriber there, so it is held to the
memory target only.

Usage: .venv/bin/python bench/cli_start.py [--runs 21] [--quick] [--large N] [--campaigns M]
       [--also PATH ...]
--also PATH measures the checkout at PATH too (PYTHONPATH=PATH, the same interpreter and the
same directory, interleaved in the same run): e.g. --also /path/to/main for before/after.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [["--help"], ["status"], ["subscribers", "list"], ["subscribers", "count"]]
# The commands whose work grows with the data, measured again in a directory grown large.
LARGE_COMMANDS = [["status"], ["subscribers", "count"], ["subscribers", "list"]]
LARGE = "large:"
TARGET_MS = 120.0
TARGET_MB = 30.0
SUBSCRIBERS = 300
ARTICLE = Path(__file__).resolve().parent.parent / "examples" / "article.txt"
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None  # Debian package `time`


def run_once(args: list[str], *, cwd: Path, env: dict[str, str], rss_file: Path) -> tuple[float, float, float]:
    """(wall ms, CPU ms, peak RSS in MB) of one whole process.

    The peak RSS is /usr/bin/time's %M, not our own wait4: a child's ru_maxrss also counts
    the memory of the process that started it (at exec), and this script is larger than
    `python -c pass`. /usr/bin/time is small, and its child starts afresh.
    """
    command = [TIME, "-f", "%M", "-o", str(rss_file), *args] if TIME else args
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited with {process.returncode} in {cwd}")
    kilobytes = int(rss_file.read_text().split()[-1]) if TIME else usage.ru_maxrss
    return wall * 1000, (usage.ru_utime + usage.ru_stime) * 1000, kilobytes / 1024


def make_site(tmp: Path, env: dict[str, str]) -> Path:
    """A newsletter directory with subscribers and one sent campaign."""
    site = tmp / "site"
    newsletter = [sys.executable, "-m", "newsletter", "-q"]
    # cwd=tmp: `python -m` puts the current directory first on sys.path, and a checkout's
    # newsletter/ there would win over PYTHONPATH.
    subprocess.run([*newsletter, "init", str(site), "--publication", "Bench", "--from", "bench@example.nl"],
                   check=True, stdout=subprocess.DEVNULL, cwd=tmp, env=env)
    rows = tmp / "subscribers.csv"
    with rows.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name"])
        writer.writerows([f"reader{i}@example.nl", f"Reader {i}"] for i in range(SUBSCRIBERS))
    for command in (["subscribers", "import", str(rows)], ["send", str(ARTICLE)]):
        subprocess.run([*newsletter, *command], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd=site, env=env)
    return site


def make_large_site(site: Path, tmp: Path, env: dict[str, str], *, subscribers: int, campaigns: int) -> Path:
    """A copy of `site` grown to what a year brings: `subscribers` more subscribers imported
    through the CLI, and `campaigns` finished campaigns of one sent delivery row each for
    every subscriber, written by SQL in the shape the ledger leaves them (a copy of the
    campaign sent for real, status sent, reply 250, the time in ms)."""
    large = tmp / "large"
    shutil.copytree(site, large)
    rows = tmp / "large.csv"
    with rows.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name"])
        writer.writerows([f"lezer{i}@voorbeeld.nl", f"Lezer {i}"] for i in range(subscribers))
    subprocess.run([sys.executable, "-m", "newsletter", "-q", "subscribers", "import", str(rows)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=large, env=env)
    with sqlite3.connect(large / "subscribers.db") as db:
        # Columns every checkout since the compact delivery rows has, so --also works too.
        copied = ("kind, article_slug, subject, status, rendered, created_at, started_at, finished_at,"
                  " updated_at, message_ids")
        everyone = db.execute("SELECT count(*) FROM subscribers").fetchone()[0]
        for n in range(campaigns):
            cid = db.execute(
                f"INSERT INTO campaigns (campaign_key, total, sent, {copied})"
                f" SELECT campaign_key || '-year-' || ?, ?, ?, {copied} FROM campaigns WHERE id = 1",
                [n, everyone, everyone],
            ).lastrowid
            db.execute(
                "INSERT INTO deliveries (campaign_id, subscriber_id, status, attempts, next_attempt_at,"
                " last_attempt_at, reply_code, enhanced_code, relay)"
                " SELECT ?, id, 1, 1, NULL, ? + id, 250, '2.0.0', NULL FROM subscribers ORDER BY id",
                [cid, 1_790_000_000_000 + n * 86_400_000],
            )
    return large


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command (default 21)")
    parser.add_argument("--quick", action="store_true", help="5 runs each: a smoke test, not a figure")
    parser.add_argument("--large", type=int, default=100_000, metavar="N",
                        help="also measure a directory grown to N more subscribers (default 100000; 0: not)")
    parser.add_argument("--campaigns", type=int, default=52, metavar="M",
                        help="finished campaigns to every subscriber in that directory (default 52: weekly)")
    parser.add_argument("--also", action="append", default=[], metavar="PATH",
                        help="another checkout to measure in the same run (PYTHONPATH=PATH)")
    options = parser.parse_args()
    runs = 5 if options.quick else options.runs
    if options.quick and options.large:
        options.large, options.campaigns = 2_000, 3
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        # As an installed newsletter runs: from byte-code (pip compiles at install). The
        # byte-code goes to a folder of its own, so no checkout gets __pycache__ written into
        # it; the warm-up round below fills it. (PYTHONDONTWRITEBYTECODE would make every run
        # compile every module of ours from source.)
        base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
        base_env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        checkouts = {"this checkout": base_env}
        for path in options.also:
            checkouts[path] = {**base_env, "PYTHONPATH": str(Path(path).resolve())}
        rss_file = Path(tmp) / "rss"
        # Each checkout gets a directory made by its own code: an older checkout refuses a
        # database that a newer one has migrated further.
        sites, large_sites = {}, {}
        for index, (label, env) in enumerate(checkouts.items()):
            folder = Path(tmp) / f"checkout{index}"
            folder.mkdir()
            sites[label] = make_site(folder, env)
            if options.large:
                large_sites[label] = make_large_site(sites[label], folder, env, subscribers=options.large,
                                                     campaigns=options.campaigns)
        # One warm-up round: byte-compiled files written, the database's pages cached.
        jobs: list[tuple[str, list[str], dict[str, str], Path]] = [
            ("python -c pass", [sys.executable, "-c", "pass"], base_env, sites["this checkout"])
        ]
        for label, env in checkouts.items():
            suffix = "" if len(checkouts) == 1 else f"  [{label}]"
            for command in COMMANDS:
                name = "newsletter " + " ".join(command) + suffix
                jobs.append((name, [sys.executable, "-m", "newsletter", *command], env, sites[label]))
            if options.large:
                for command in LARGE_COMMANDS:
                    name = f"{LARGE} newsletter " + " ".join(command) + suffix
                    jobs.append((name, [sys.executable, "-m", "newsletter", *command], env, large_sites[label]))
        for _, args, env, site in jobs:
            run_once(args, cwd=site, env=env, rss_file=rss_file)
        walls: dict[str, list[float]] = {name: [] for name, _, _, _ in jobs}
        cpus: dict[str, list[float]] = {name: [] for name, _, _, _ in jobs}
        peaks: dict[str, list[float]] = {name: [] for name, _, _, _ in jobs}
        for _ in range(runs):
            for name, args, env, site in jobs:
                wall, cpu, peak = run_once(args, cwd=site, env=env, rss_file=rss_file)
                walls[name].append(wall)
                cpus[name].append(cpu)
                peaks[name].append(peak)
    load_after = os.getloadavg()
    base = statistics.median(walls["python -c pass"])
    print(f"CLI start: {runs} runs of each, interleaved; {SUBSCRIBERS} subscribers, one sent campaign; "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if options.large:
        print(f"  {LARGE} {options.large:,} more subscribers and {options.campaigns} more finished campaigns "
              f"of a delivery row for each (about {options.large * options.campaigns:,} rows); `subscribers list` "
              "writes every subscriber, so its target is memory alone")
    wide = max(len(name) for name in walls)
    print(f"  {'command':{wide}s} {'wall median':>11s} {'range':>12s} {'x python':>8s} {'CPU':>7s} {'peak RSS':>9s}  target")
    for name in walls:
        median = statistics.median(walls[name])
        span = f"{min(walls[name]):.0f}-{max(walls[name]):.0f}"
        peak = max(peaks[name])
        verdict = ""
        if name != "python -c pass":
            ok = (median < TARGET_MS or name.startswith(f"{LARGE} newsletter subscribers list")) and peak < TARGET_MB
            verdict = "ok" if ok else f"over ({TARGET_MS:.0f} ms, {TARGET_MB:.0f} MB)"
        print(f"  {name:{wide}s} {median:8.0f} ms {span:>9s} ms {median / base:7.2f}x "
              f"{statistics.median(cpus[name]):4.0f} ms {peak:6.1f} MB  {verdict}")
    if TIME is None:
        print("  (no /usr/bin/time: peak RSS from wait4, which also counts this script's own memory)")

if __name__ == "__main__":
    main()
