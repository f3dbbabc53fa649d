"""Benchmark the sending engine against Postfix's smtp-sink, with smtp-source as the reference.

Prints, in one run on this machine:
1. a full campaign (`newsletter send`, as a subprocess: render, queue, send) of 20,000
   subscribers with the seed-sized examples/article.txt, in messages per second, as a
   ratio to `smtp-source -s 16 -d` sending messages of the same size to the same sink,
   with one sending process (the default) and with two;
2. a slow relay (`smtp-sink -w 1`: one second per message) at several concurrencies, as a
   ratio to smtp-source with the same number of sessions (throughput must scale);
3. peak memory (RSS) of the sending process (and its shard processes), at 10,000 and
   100,000 subscribers.

Needs Debian's postfix package (smtp-sink and smtp-source in /usr/sbin; no daemon runs).
Usage: .venv/bin/python bench/send.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
ARTICLE = ROOT / "examples" / "article.txt"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """smtp-sink on 127.0.0.1 (discarding everything), optionally slow."""

    def __init__(self, *, wait: float = 0) -> None:
        self.port = free_port()
        args = [SINK, "-u", "nobody"] if os.geteuid() == 0 else [SINK]
        if wait:
            args += ["-w", str(wait)]
        self.proc = subprocess.Popen([*args, f"127.0.0.1:{self.port}", "1024"])
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def smtp_source(port: int, *, sessions: int, messages: int, size: int) -> float:
    """Messages per second of smtp-source, connections kept open (-d)."""
    started = time.perf_counter()
    subprocess.run(
        [SOURCE, "-s", str(sessions), "-d", "-m", str(messages), "-l", str(size),
         "-f", "nieuws@example.nl", "-t", "lezer@example.nl", f"127.0.0.1:{port}"],
        check=True,
    )
    return messages / (time.perf_counter() - started)


def make_site(directory: Path, subscribers: int) -> Path:
    """An initialised directory with `subscribers` active subscribers and the article."""
    env = _env()
    subprocess.run(
        [sys.executable, "-m", "newsletter", "-q", "init", str(directory), "--publication",
         "Demo Nieuws", "--from", "nieuws@example.nl", "--language", "nl"],
        check=True, env=env,
    )
    sys.path.insert(0, str(ROOT))
    from newsletter.db import now, open_db

    db = open_db(directory / "subscribers.db")
    stamp = now()
    with db.conn:
        db.conn.executemany(
            "INSERT INTO subscribers (email, name, language, status, cadence, token, created_at, updated_at)"
            " VALUES (?, ?, 'nl', 'active', 'each', ?, ?, ?)",
            (
                (f"lezer{n:07d}@example.nl", f"Lezer {n}", secrets.token_urlsafe(16), stamp, stamp)
                for n in range(subscribers)
            ),
        )
    db.conn.close()
    shutil.copy(ARTICLE, directory / "article.txt")
    return directory


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(settings)
    return env


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def run_send(
    directory: Path, port: int, *, concurrency: int, processes: int = 1, extra: tuple[str, ...] = ()
) -> dict[str, float]:
    """`newsletter send` as a subprocess: wall time, messages sent, peak RSS per process."""
    env = _env(
        NEWSLETTER_SMTP_URL=f"smtp+plain://127.0.0.1:{port}",
        NEWSLETTER_SENDING_CONCURRENCY=str(concurrency),
        NEWSLETTER_SENDING_PROCESSES=str(processes),
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "article.txt", *extra], cwd=directory, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    peak_main = 0
    peaks: dict[int, int] = {}  # child pid -> peak RSS; multiprocessing's resource tracker left out
    while proc.poll() is None:
        peak_main = max(peak_main, _rss_kb(proc.pid))
        for child in _children(proc.pid):
            if _is_resource_tracker(child):
                continue
            peaks[child] = max(peaks.get(child, 0), _rss_kb(child))
        time.sleep(0.05)
    children_seen = len(peaks)
    peak_child = max(peaks.values(), default=0)
    peak_total = peak_main + sum(peaks.values())
    elapsed = time.perf_counter() - started
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"newsletter send failed:\n{err}")
    from newsletter.db import open_db

    db = open_db(directory / "subscribers.db")
    sent = db.execute("SELECT count(*) FROM delivery_rows WHERE status = 'sent'").fetchone()[0]
    started = db.execute("SELECT started_at FROM campaigns WHERE id = 1").fetchone()[0]
    last = db.execute("SELECT max(sent_at) FROM delivery_rows").fetchone()[0]
    db.conn.close()
    from datetime import datetime

    # The sending phase: from taking the lease (rows queued, article rendered) to the last 250.
    sending = (datetime.fromisoformat(last) - datetime.fromisoformat(started)).total_seconds()
    return {
        "sent": sent, "elapsed": elapsed, "rate": sent / elapsed, "send_rate": sent / sending,
        "peak_main_mb": peak_main / 1024, "peak_child_mb": peak_child / 1024,
        "children": children_seen, "total_mb": peak_total / 1024,
    }


def _is_resource_tracker(pid: int) -> bool:
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def message_size(directory: Path) -> int:
    from newsletter.config import load_config
    from newsletter.db import open_db
    from newsletter.content.message import Recipient
    from newsletter.delivery.campaigns import builder_for, get_campaign

    config = load_config(directory / "newsletter.toml")
    db = open_db(config.database)
    campaign = get_campaign(db, 1)
    recipient = Recipient(subscriber_id=1, email="lezer0000001@example.nl", name="Lezer 1",
                          token=secrets.token_urlsafe(16), language="nl")
    size = len(builder_for(config, campaign).build(recipient))
    db.conn.close()
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = parser.parse_args()
    count = 4000 if args.quick else 20_000
    work = Path(tempfile.mkdtemp(prefix="bench-send-"))
    try:
        print(f"1. Full campaign of {count:,} subscribers, article {ARTICLE.stat().st_size:,} bytes")
        sink = Sink()
        try:
            runs = {}
            for processes in (1, 2):
                site = make_site(work / f"full{processes}", count)
                runs[processes] = run_send(site, sink.port, concurrency=16, processes=processes)
            size = message_size(site)
            reference = smtp_source(sink.port, sessions=16, messages=count, size=size)
        finally:
            sink.stop()
        print(f"   message size {size:,} bytes; 16 connections each")
        print(f"   smtp-source -s 16 -d:          {reference:8.0f} msgs/s")
        for processes, ours in runs.items():
            print(f"   sending.processes = {processes}{' (default)' if processes == 1 else ''}:")
            print(f"     newsletter send (whole run): {ours['rate']:8.0f} msgs/s  "
                  f"ratio {ours['rate'] / reference:.2f}  ({ours['sent']:,} sent in {ours['elapsed']:.1f} s)")
            print(f"     sending phase:               {ours['send_rate']:8.0f} msgs/s  "
                  f"ratio {ours['send_rate'] / reference:.2f}  (lease taken to last 250)")
            print(f"     peak RSS: main {ours['peak_main_mb']:.0f} MB, {ours['children']} child "
                  f"process(es) up to {ours['peak_child_mb']:.0f} MB each, sum {ours['total_mb']:.0f} MB")

        print("2. Slow relay (smtp-sink -w 1: one second per message)")
        sink = Sink(wait=1)
        try:
            for n in (4, 16, 64) if not args.quick else (4, 16):
                messages = 3 * n
                site = make_site(work / f"slow{n}", messages)
                ours = run_send(site, sink.port, concurrency=n)
                reference = smtp_source(sink.port, sessions=n, messages=messages, size=size)
                print(f"   concurrency {n:3d}: smtp-source -s {n} {reference:6.1f} msgs/s, newsletter "
                      f"{ours['send_rate']:6.1f} msgs/s sending ({ours['rate']:.1f} whole run), "
                      f"ratio {ours['send_rate'] / reference:.2f}")
        finally:
            sink.stop()

        print("3. Peak memory")
        sink = Sink()
        try:
            for processes in (1, 2):
                memory(work, sink.port, processes=processes, quick=args.quick)
        finally:
            sink.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def memory(work: Path, port: int, *, processes: int, quick: bool) -> None:
    """Peak RSS at two list sizes, per process and summed, and how it grows."""
    print(f"   sending.processes = {processes}:")
    peaks = {}
    for subscribers in (10_000, 100_000) if not quick else (2_000, 10_000):
        site = make_site(work / f"mem{processes}-{subscribers}", subscribers)
        result = run_send(site, port, concurrency=16, processes=processes)
        peaks[subscribers] = result
        print(f"   {subscribers:7,d} subscribers: main {result['peak_main_mb']:.0f} MB, "
              f"largest of {result['children']} children {result['peak_child_mb']:.0f} MB, "
              f"sum of the peaks {result['total_mb']:.0f} MB; {result['rate']:.0f} msgs/s whole run")
    small, large = sorted(peaks)
    for key, label in (("peak_main_mb", "main"), ("peak_child_mb", "largest child"), ("total_mb", "sum")):
        if peaks[small][key]:
            ratio = peaks[large][key] / peaks[small][key]
            print(f"   {label}: peak at {large:,} / peak at {small:,} = {ratio:.2f}")


if __name__ == "__main__":
    main()
