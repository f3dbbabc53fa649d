"""Benchmark `newsletter serve` under a burst of one-click unsubscribes while a campaign sends.

One run on this machine, one SQLite file shared by everything:
1. a 20,000-message campaign (`newsletter send`, a subprocess) to Postfix's smtp-sink with
   no web load: its throughput is the reference;
2. for each offered rate (100, 300 and 1,000 one-click POSTs a second, 10 s each), the same
   campaign again (`send --again`) while an async client POSTs
   `List-Unsubscribe=One-Click` at that fixed rate to `newsletter serve` (a subprocess),
   each to a different subscriber (not one the campaign mails): achieved rate, p50 and p99
   latency (from the moment each request was due, so a stalled server is not hidden),
   errors, unsubscribes recorded in the database, and the campaign's throughput during the
   load as a ratio to the reference;
3. the subscribe form's answer time for new and for active addresses (it must not tell them
   apart);
4. the unloaded campaign once more at the end, to show how much the shared machine moved.

Needs Debian's postfix package (smtp-sink in /usr/sbin; no daemon runs).
Usage: .venv/bin/python bench/web.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
ARTICLE = ROOT / "examples" / "article.txt"
RATES = (100, 300, 1000)
ONE_CLICK = b"List-Unsubscribe=One-Click"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.05)


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(settings)
    return env


def make_site(directory: Path, *, campaign: int, leaving: int) -> list[str]:
    """`campaign` subscribers who get every article, `leaving` weekly ones (not in the
    campaign) whose tokens the load unsubscribes; returns those tokens."""
    subprocess.run(
        [sys.executable, "-m", "newsletter", "-q", "init", str(directory), "--publication", "Demo Nieuws",
         "--from", "nieuws@example.nl", "--language", "nl"],
        check=True, env=_env(),
    )
    tokens = [secrets.token_urlsafe(18) for _ in range(leaving)]
    stamp = datetime.now(UTC).isoformat()
    conn = sqlite3.connect(directory / "subscribers.db")
    with conn:
        conn.executemany(
            "INSERT INTO subscribers (email, name, language, status, cadence, token, created_at, updated_at)"
            " VALUES (?, ?, 'nl', 'active', ?, ?, ?, ?)",
            [(f"lezer{n:07d}@example.nl", f"Lezer {n}", "each", secrets.token_urlsafe(18), stamp, stamp)
             for n in range(campaign)]
            + [(f"weg{n:07d}@example.nl", "", "weekly", token, stamp, stamp) for n, token in enumerate(tokens)],
        )
    conn.close()
    shutil.copy(ARTICLE, directory / "article.txt")
    return tokens


def _query(directory: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(directory / "subscribers.db", timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _stamp(text: object) -> float:
    return datetime.fromisoformat(str(text)).timestamp()


def start_send(directory: Path, sink_port: int, *, again: bool) -> subprocess.Popen[bytes]:
    env = _env(NEWSLETTER_SMTP_URL=f"smtp+plain://127.0.0.1:{sink_port}")
    args = [sys.executable, "-m", "newsletter", "-q", "send", "article.txt", *(["--again"] if again else [])]
    return subprocess.Popen(args, cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_until_sending(directory: Path, campaign_id: int, proc: subprocess.Popen[bytes]) -> None:
    while True:
        rows = _query(directory, "SELECT count(*) FROM delivery_rows WHERE campaign_id = ? AND status = 'sent'",
                      (campaign_id,))
        if rows[0][0]:
            return
        if proc.poll() is not None:
            raise SystemExit(f"newsletter send ended early: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.02)


def finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"newsletter send failed:\n{err.decode()}")


def campaign_rate(directory: Path, campaign_id: int, *, start: float | None = None, end: float | None = None) -> float:
    """Messages per second of a campaign's sending phase (first to last 250), or within [start, end]."""
    stamps = sorted(_stamp(r[0]) for r in _query(
        directory, "SELECT sent_at FROM delivery_rows WHERE campaign_id = ? AND status = 'sent'", (campaign_id,)
    ))
    if start is None or end is None:
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])
    end = min(end, stamps[-1])
    start = max(start, stamps[0])
    inside = sum(1 for s in stamps if start <= s <= end)
    return inside / (end - start) if end > start else 0.0


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, token: str) -> int:
    """One keep-alive HTTP/1.1 POST as a mailbox provider sends it; returns the status code."""
    writer.write(
        f"POST /u/{token} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(ONE_CLICK)}\r\n\r\n".encode() + ONE_CLICK
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def offer(url: str, tokens: list[str], *, rate: float, connections: int = 64) -> dict[str, float]:
    """POST one-click unsubscribes at a fixed offered rate over `connections` keep-alive
    connections; each latency is counted from when its request was due, so time spent
    waiting for a free connection (a slow server) is in the figures.

    A small asyncio client of its own rather than httpx: at a thousand requests a second
    httpx's own per-request cost would be what is measured.
    """
    host = url.split("//", 1)[1]
    address, _, port = host.partition(":")
    due_queue: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(address, int(port))
        try:
            while (job := await due_queue.get()) is not None:
                token, due = job
                try:
                    status = await _post(reader, writer, host, token)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(address, int(port))
                    continue
                if status == 200:
                    latencies.append(time.perf_counter() - due)
                else:
                    errors += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connections open before the clock starts
    started = time.perf_counter()
    for index, token in enumerate(tokens):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due_queue.put_nowait((token, due))
    for _ in workers:
        due_queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "offered": rate,
        "achieved": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0,
        "errors": errors,
    }


def start_web(directory: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(port)], cwd=directory,
            env=_env(NEWSLETTER_WEB_URL=url, NEWSLETTER_SUBSCRIBE_PER_CLIENT="100000"),
            stdout=out, stderr=subprocess.STDOUT,
        )
    _wait_for_port(port, proc, "newsletter serve")
    return proc, url


async def form_timing(url: str, *, new: list[str], known: list[str]) -> tuple[float, float]:
    """Median ms of POST /subscribe for addresses nobody has and for known ones, interleaved."""
    times: dict[bool, list[float]] = {True: [], False: []}
    async with httpx.AsyncClient() as client:
        for fresh, existing in zip(new, known, strict=True):
            for is_new, address in ((True, fresh), (False, existing)):
                started = time.perf_counter()
                answer = await client.post(f"{url}/subscribe", data={"email": address, "website": ""})
                answer.raise_for_status()
                times[is_new].append(time.perf_counter() - started)
    return statistics.median(times[True]) * 1000, statistics.median(times[False]) * 1000


def recorded(directory: Path, tokens: list[str]) -> int:
    marks = ",".join("?" * len(tokens))
    return int(_query(directory, f"SELECT count(*) FROM subscribers WHERE status = 'unsubscribed' AND token IN ({marks})",
                      tuple(tokens))[0][0])  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s per rate and a 5,000-message campaign")
    args = parser.parse_args()
    seconds = 2 if args.quick else 10
    recipients = 5_000 if args.quick else 20_000
    if not Path(SINK).exists():
        raise SystemExit("smtp-sink not found: apt-get install postfix")

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        site = Path(tmp) / "site"
        tokens = make_site(site, campaign=recipients, leaving=sum(RATES) * seconds)
        # The control: the same web load on a database of its own, so the campaign shares the
        # CPU with it but not the SQLite file. The difference between the two rows is what
        # sharing the file costs; the rest is two busy processes on a small machine.
        other = Path(tmp) / "other"
        other_tokens = make_site(other, campaign=0, leaving=sum(RATES) * seconds)
        sink_port = free_port()
        sink_args = [SINK, "-u", "nobody"] if os.geteuid() == 0 else [SINK]
        sink = subprocess.Popen([*sink_args, f"127.0.0.1:{sink_port}", "1024"])
        _wait_for_port(sink_port, sink, "smtp-sink")
        logs = [Path(tmp) / "serve.log", Path(tmp) / "serve-other.log"]
        web, url = start_web(site, logs[0])
        web_other, url_other = start_web(other, logs[1])
        try:
            print(f"{recipients:,}-message campaigns to smtp-sink; one-click POSTs to newsletter serve, "
                  f"{seconds} s per rate. Machine: {os.cpu_count()} cores, shared with other work.")
            campaign = 1
            finish(start_send(site, sink_port, again=False))
            reference = campaign_rate(site, campaign)
            print(f"campaign without web load: {reference:,.0f} msg/s")
            print(f"{'database':<9} {'offered/s':>9} {'achieved/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
                  f"{'recorded':>8} {'campaign msg/s':>14} {'vs unloaded':>11}")
            used = 0
            for rate in RATES:
                for where, target, target_dir, pool in (("shared", url, site, tokens),
                                                        ("separate", url_other, other, other_tokens)):
                    batch = pool[used : used + rate * seconds]
                    campaign += 1
                    proc = start_send(site, sink_port, again=True)
                    wait_until_sending(site, campaign, proc)
                    load_start = time.time()
                    figures = asyncio.run(offer(target, batch, rate=rate))
                    load_end = time.time()
                    finish(proc)
                    loaded = campaign_rate(site, campaign, start=load_start, end=load_end)
                    print(f"{where:<9} {rate:>9} {figures['achieved']:>10.0f} {figures['p50_ms']:>7.1f} "
                          f"{figures['p99_ms']:>7.1f} {figures['errors']:>6.0f} {recorded(target_dir, batch):>8} "
                          f"{loaded:>14,.0f} {loaded / reference:>10.2f}x")
                used += rate * seconds
            fresh = [f"nieuw{n}@example.nl" for n in range(200)]
            known = [f"lezer{n:07d}@example.nl" for n in range(200)]
            new_ms, known_ms = asyncio.run(form_timing(url, new=fresh, known=known))
            print(f"the subscribe form: median {new_ms:.2f} ms for a new address, {known_ms:.2f} ms for an active "
                  "one (200 each, interleaved)")
            campaign += 1
            finish(start_send(site, sink_port, again=True))
            print(f"campaign without web load, again at the end: {campaign_rate(site, campaign):,.0f} msg/s "
                  "(the spread between the two unloaded runs is the machine's noise)")
        finally:
            for proc in (web, web_other, sink):
                proc.terminate()
                proc.wait()
        locked = any("database is locked" in log.read_text(errors="replace") for log in logs)
        print(f"'database is locked' in the servers' output: {'YES' if locked else 'no'}")


if __name__ == "__main__":
    main()
