"""How fast the command line starts: wall time and peak memory of whole `newsletter` processes.

Makes a real newsletter directory (`newsletter init`, a few hundred subscribers imported, one
article sent through the built-in capture server), then runs `--help`, `status`,
`subscribers list` and `subscribers count` as subprocesses, each --runs times, interleaved
with `python -c pass` (the interpreter's own start) so all see the same machine load. Prints
per command the median and range of the wall time, the ratio to `python -c pass`, and the
peak RSS of the process (its own rusage from wait4, as /usr/bin/time -f %M reports it),
against the targets: under 120 ms and under 30 MB.

Usage: .venv/bin/python bench/cli_start.py [--runs 21] [--quick] [--also PATH ...]
--also PATH measures the checkout at PATH too (PYTHONPATH=PATH, the same interpreter and the
same directory, interleaved in the same run): e.g. --also /path/to/main for before/after.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [["--help"], ["status"], ["subscribers", "list"], ["subscribers", "count"]]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command (default 21)")
    parser.add_argument("--quick", action="store_true", help="5 runs each: a smoke test, not a figure")
    parser.add_argument("--also", action="append", default=[], metavar="PATH",
                        help="another checkout to measure in the same run (PYTHONPATH=PATH)")
    options = parser.parse_args()
    runs = 5 if options.quick else options.runs
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
        sites = {}
        for index, (label, env) in enumerate(checkouts.items()):
            (Path(tmp) / f"checkout{index}").mkdir()
            sites[label] = make_site(Path(tmp) / f"checkout{index}", env)
        # One warm-up round: byte-compiled files written, the database's pages cached.
        jobs: list[tuple[str, list[str], dict[str, str], Path]] = [
            ("python -c pass", [sys.executable, "-c", "pass"], base_env, sites["this checkout"])
        ]
        for label, env in checkouts.items():
            for command in COMMANDS:
                name = "newsletter " + " ".join(command) + ("" if len(checkouts) == 1 else f"  [{label}]")
                jobs.append((name, [sys.executable, "-m", "newsletter", *command], env, sites[label]))
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
    print(f"  {'command':44s} {'wall median':>11s} {'range':>12s} {'x python':>8s} {'CPU':>7s} {'peak RSS':>9s}  target")
    for name in walls:
        median = statistics.median(walls[name])
        span = f"{min(walls[name]):.0f}-{max(walls[name]):.0f}"
        peak = max(peaks[name])
        verdict = ""
        if name != "python -c pass":
            ok = median < TARGET_MS and peak < TARGET_MB
            verdict = "ok" if ok else f"over ({TARGET_MS:.0f} ms, {TARGET_MB:.0f} MB)"
        print(f"  {name:44s} {median:8.0f} ms {span:>9s} ms {median / base:7.2f}x "
              f"{statistics.median(cpus[name]):4.0f} ms {peak:6.1f} MB  {verdict}")
    if TIME is None:
        print("  (no /usr/bin/time: peak RSS from wait4, which also counts this script's own memory)")

if __name__ == "__main__":
    main()
