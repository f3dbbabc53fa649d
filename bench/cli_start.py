"""How long the command line takes to start: `newsletter --help` and a few light commands.

Runs each command as a subprocess many times, interleaved with `python -c pass` (the
interpreter's own start) so both see the same machine load, and prints the medians and the
difference. Usage: .venv/bin/python bench/cli_start.py [--runs 25]
(Set PYTHONPATH to another checkout to measure that one with the same interpreter.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [["--help"], ["status"], ["subscribers", "count"], ["subscribers", "list"]]


def timed(args: list[str], *, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    runs = parser.parse_args().runs
    env_note = os.environ.get("PYTHONPATH", "(this checkout)")
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        # cwd=tmp: `python -m` puts the current directory first on sys.path, and a checkout's
        # newsletter/ there would win over PYTHONPATH.
        subprocess.run([sys.executable, "-m", "newsletter", "-q", "init", str(site), "--publication", "B",
                        "--from", "b@example.nl"], check=True, stdout=subprocess.DEVNULL, cwd=tmp)
        times: dict[str, list[float]] = {"python -c pass": []}
        for _ in range(runs):
            times["python -c pass"].append(timed([sys.executable, "-c", "pass"], cwd=site))
            for command in COMMANDS:
                name = "newsletter " + " ".join(command)
                times.setdefault(name, []).append(timed([sys.executable, "-m", "newsletter", *command], cwd=site))
    base = statistics.median(times["python -c pass"])
    print(f"CLI start, median of {runs} runs each, interleaved ({env_note}):")
    for name, values in times.items():
        median = statistics.median(values)
        extra = "" if name == "python -c pass" else f"  (+{(median - base) * 1000:5.0f} ms over python)"
        print(f"  {name:28s} {median * 1000:6.0f} ms{extra}")


if __name__ == "__main__":
    main()
