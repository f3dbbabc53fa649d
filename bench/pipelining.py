"""Benchmark PIPELINING (RFC 2920): a campaign with smtp.pipelining on and off, against smtp-source.

Postfix's smtp-sink on 127.0.0.1 (it offers PIPELINING) receives an unsigned campaign of
the seed-sized examples/article.txt, sent by `newsletter send` as a subprocess with
smtp.pipelining = true (the default: MAIL, RCPT and DATA in one write) and = false (one
round trip per command, as before), and `smtp-source -s N -d` sending messages of the same
size to the same sink. The three alternate within each repetition, so each ratio compares
runs made under the same load; the median and range over the repetitions are printed,
with the load average. "sending phase" is from taking the lease (rows queued, article
rendered) to the last 250, the figure the engine is responsible for.

Needs Debian's postfix package (smtp-sink and smtp-source in /usr/sbin; no daemon runs).
Usage: .venv/bin/python bench/pipelining.py [--quick] [--connections 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send import Sink, make_site, message_size, run_send, smtp_source  # noqa: E402


def _set_pipelining(site: Path, on: bool) -> None:
    config = site / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    if "pipelining = true" not in text:
        raise SystemExit("newsletter.toml has no `pipelining = true` under [smtp]: is smtp.pipelining there?")
    config.write_text(text.replace("pipelining = true", f"pipelining = {'true' if on else 'false'}"), encoding="utf-8")


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (range {min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages a run instead of 20,000")
    parser.add_argument("--connections", type=int, default=16, help="connections (and smtp-source sessions)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (at least 3 for a range)")
    args = parser.parse_args()
    count = 2000 if args.quick else 20_000
    work = Path(tempfile.mkdtemp(prefix="bench-pipelining-"))
    ratios: dict[str, list[float]] = {"on": [], "off": [], "on/off": []}
    whole: dict[str, list[float]] = {"on": [], "off": []}
    loads = [os.getloadavg()[0]]
    sink = Sink()
    try:
        print(f"Unsigned campaign of {count:,} messages, {args.connections} connections, "
              f"{args.repeat} repetitions; smtp-sink on 127.0.0.1")
        size = 0
        for rep in range(args.repeat):
            rates = {}
            before = smtp_source(sink.port, sessions=args.connections, messages=count, size=size) if size else 0.0
            for label in ("on", "off"):
                site = make_site(work / f"{label}{rep}", count)
                _set_pipelining(site, label == "on")
                result = run_send(site, sink.port, concurrency=args.connections)
                rates[label] = result
                size = size or message_size(site)
                shutil.rmtree(site, ignore_errors=True)
            after = smtp_source(sink.port, sessions=args.connections, messages=count, size=size)
            reference = (before + after) / 2 if before else after  # smtp-source around the two runs
            loads.append(os.getloadavg()[0])
            for label in ("on", "off"):
                ratios[label].append(rates[label]["send_rate"] / reference)
                whole[label].append(rates[label]["rate"] / reference)
            ratios["on/off"].append(rates["on"]["send_rate"] / rates["off"]["send_rate"])
            print(f"  {rep + 1}: smtp-source {reference:6.0f} msgs/s; sending phase with PIPELINING "
                  f"{rates['on']['send_rate']:6.0f}, without {rates['off']['send_rate']:6.0f} msgs/s")
    finally:
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"message size {size:,} bytes")
    print(f"smtp.pipelining = true  (default), sending phase / smtp-source: {_summary(ratios['on'])}")
    print(f"smtp.pipelining = false,           sending phase / smtp-source: {_summary(ratios['off'])}")
    print(f"with / without PIPELINING, sending phase:                     {_summary(ratios['on/off'])}")
    print(f"whole run (render, queue, send) / smtp-source: on {_summary(whole['on'])}, off {_summary(whole['off'])}")
    print(f"load average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
