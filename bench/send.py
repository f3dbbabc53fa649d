"""Benchmark `newsletter send` against Postfix's smtp-sink, with smtp-source as the reference.

Prints, in one run:
1. a matrix of campaigns (`newsletter send` as a subprocess, examples/article.txt, one
   recipient a message): unsigned and DKIM-signed, 4/16/64 connections, sending.processes
   1 and 2, smtp.pipelining on and off. Each repetition runs smtp-source with the same
   session count and message size (`-s N -d -m M -l SIZE`) next to the campaign (before it
   in odd repetitions, after it in even ones) on the same fresh smtp-sink, so every ratio
   compares two figures measured together. Per configuration: msgs/s median [min-max]
   over the repetitions, smtp-source's median, the ratio median [min-max] and the peak
   RSS (summed over the process tree, the largest of the repetitions);
2. a slow relay (`smtp-sink -w 1`: one second before each DATA reply), ratio to
   smtp-source at 4/16/64 sessions (throughput must scale with the connections);
3. peak RSS at 10,000 and 100,000 subscribers, unsigned and signed, processes 1 and 2
   (signed with 2 processes at 10,000 only: at 100,000 it would take minutes);
4. bytes per delivery row (sqlite's dbstat) in the database of the 100,000 run;
5. the issue's headline ratios: signed/unsigned rate and peak memory in the same
   repetitions, and unsigned pipelined at 16 connections against smtp-source.

The send phase is timed by this script from the CLI's own lines on stderr: from "Campaign N:
... to N subscribers." (rows queued, nothing sent yet) to its summary line; startup, render
and queueing are left out. Subscribers are imported once into template projects that
are copied per run. Every run must send every row: the summary line must say all sent
(none deferred, bounced or failed) and smtp-sink's own counter (-c) must have received
them, or the script prints an error and exits 1.
Peak RSS is sampled every 50 ms over the sending process and its descendants (shard and
signing workers; multiprocessing's resource tracker left out), summed per sample.
The load average is printed at the start and at the end: figures are only comparable on
a quiet machine. smtp.pipelining is shown "n/a (setting absent)" until the setting exists.

Needs Debian's postfix package (smtp-sink and smtp-source in /usr/sbin; no daemon runs).
Usage: .venv/bin/python bench/send.py [--quick] [--reps N] [--messages N] [--only WORDS]
       [--set KEY=VALUE ...]
The default run takes about 15 minutes on a quiet 2-core machine, --quick about 2.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
ARTICLE = ROOT / "examples" / "article.txt"
NEWSLETTER = [sys.executable, "-m", "newsletter"]
SAMPLE_S = 0.05
QUEUED = re.compile(r"^Campaign \d+: .* to (\d+) subscribers\.$")
SUMMARY = re.compile(
    r"this run (\d+) sent, (\d+) deferred, (\d+) bounced, (\d+) failed, (\d+) skipped in ([\d.]+)s"
    r".*Campaign (\w+): (\d+) of (\d+) sent"
)
SECTIONS = ("matrix", "slow", "memory", "storage")
DIMENSIONS = {
    "signed": {"unsigned": False, "signed": True},
    "connections": {"c4": 4, "c16": 16, "c64": 64},
    "processes": {"p1": 1, "p2": 2, "pdefault": 0},  # 0: sending.processes left at its default
    "pipelining": {"pipelining": True, "nopipelining": False},
}


class BenchError(Exception):
    """A run that did not deliver everything, or a tool that failed: the figures would lie."""


@dataclass(frozen=True)
class Variant:
    """One configuration of the matrix."""

    signed: bool
    connections: int
    processes: int  # 0: not set, the project's default
    pipelining: bool

    def label(self) -> str:
        return (f"{'signed' if self.signed else 'unsigned':8} c{self.connections:<3} p{self.processes or 'def'} "
                f"{'pipe' if self.pipelining else 'nopipe'}")


@dataclass
class Samples:
    """The repetitions of one configuration."""

    rates: list[float] = field(default_factory=list)
    references: list[float] = field(default_factory=list)
    peaks_mb: list[float] = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [ours / ref for ours, ref in zip(self.rates, self.references, strict=True)]


# --- tools --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """smtp-sink on 127.0.0.1 (discarding everything, counting with -c), optionally slow."""

    def __init__(self, work: Path, *, wait: int = 0, pipelining: bool = True) -> None:
        self.port = free_port()
        self.out = work / f"sink-{self.port}.out"
        args = [SINK, "-u", "nobody"] if os.geteuid() == 0 else [SINK]
        args += ["-c"] + (["-w", str(wait)] if wait else []) + ([] if pipelining else ["-p"])
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen([*args, f"127.0.0.1:{self.port}", "1024"], stdout=out)
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise BenchError(f"smtp-sink did not start on port {self.port}") from None
                time.sleep(0.05)

    def received(self) -> int:
        """Messages received so far (the last `mesg=` of smtp-sink's -c counters)."""
        with self.out.open("rb") as out:
            out.seek(max(0, self.out.stat().st_size - 200))
            found = re.findall(rb"mesg=(\d+)", out.read())
        return int(found[-1]) if found else 0

    def expect(self, total: int, what: str) -> None:
        deadline = time.monotonic() + 2  # the counter line is written as "." arrives; let it land
        while (got := self.received()) != total and time.monotonic() < deadline:
            time.sleep(0.05)
        if got != total:
            raise BenchError(f"smtp-sink received {got} messages after {what}, expected {total}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def smtp_source(port: int, *, sessions: int, messages: int, size: int) -> float:
    """Messages per second of smtp-source, connections kept open (-d)."""
    started = time.perf_counter()
    done = subprocess.run(
        [SOURCE, "-s", str(sessions), "-d", "-m", str(messages), "-l", str(size),
         "-f", "nieuws@example.nl", "-t", "lezer@example.nl", f"127.0.0.1:{port}"],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"smtp-source failed: {done.stderr.strip()}")
    return messages / (time.perf_counter() - started)


def cli(*args: str, cwd: Path) -> str:
    done = subprocess.run([*NEWSLETTER, *args], cwd=cwd, env=_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"newsletter {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


# Settings from --set KEY=VALUE, as NEWSLETTER_* variables for every newsletter command run.
EXTRA_ENV: dict[str, str] = {}


def _env(**settings: str) -> dict[str, str]:
    """This environment without stray NEWSLETTER_* variables, plus --set and `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(EXTRA_ENV)
    env.update(settings)
    return env


def setting_env(assignment: str) -> tuple[str, str]:
    """--set KEY=VALUE as (NEWSLETTER_* variable, value); the key must exist."""
    from newsletter.config import SETTINGS_BY_KEY

    key, sep, value = assignment.partition("=")
    if not sep or key.strip() not in SETTINGS_BY_KEY:
        raise SystemExit(f"Error: --set {assignment!r}: give KEY=VALUE with a key of newsletter.toml")
    return SETTINGS_BY_KEY[key.strip()].env, value


def has_setting(key: str) -> bool:
    from newsletter.config import SETTINGS_BY_KEY

    return key in SETTINGS_BY_KEY


# --- projects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """An initialised project with its subscribers imported, copied for every run."""

    directory: Path
    subscribers: int
    size: int  # bytes of the message a subscriber gets (from `newsletter preview`)


def make_template(directory: Path, subscribers: int) -> Template:
    """`init`, `subscribers import` of a CSV and the article, as a user would."""
    cli("-q", "init", str(directory), "--publication", "Demo Nieuws", "--from", "nieuws@example.nl",
        "--language", "nl", cwd=directory.parent)
    table = directory / "subscribers.csv"
    with table.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "lang"])
        writer.writerows([f"lezer{n:07d}@example.nl", f"Lezer {n}", "nl"] for n in range(subscribers))
    cli("subscribers", "import", "subscribers.csv", cwd=directory)
    table.unlink()
    shutil.copy(ARTICLE, directory / "article.txt")
    return Template(directory, subscribers, _preview_size(directory))


def signed_copy(template: Template, directory: Path) -> Template:
    """A copy of `template` that signs: `dkim keygen`, then the [dkim] keys it asks for."""
    shutil.copytree(template.directory, directory)
    cli("dkim", "keygen", "--selector", "bench", "--domain", "example.nl", cwd=directory)
    key = next((directory / "dkim").glob("*.pem")).relative_to(directory)
    config = directory / "newsletter.toml"
    lines, section = [], ""
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line
        elif section == "[dkim]" and line.startswith("selector ="):
            line = 'selector = "bench"'
        elif section == "[dkim]" and line.startswith("domain ="):
            line = 'domain = "example.nl"'
        elif section == "[dkim]" and line.startswith("key_file ="):
            line = f'key_file = "{key}"'
        lines.append(line)
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    size = _preview_size(directory)
    emls = list((directory / "preview").glob("*.eml"))
    if b"DKIM-Signature:" not in emls[0].read_bytes():
        raise BenchError("the signed project's preview has no DKIM-Signature: is [dkim] set?")
    return Template(directory, template.subscribers, size)


def _preview_size(directory: Path) -> int:
    shutil.rmtree(directory / "preview", ignore_errors=True)
    cli("preview", "article.txt", "--out", "preview", cwd=directory)
    return next((directory / "preview").glob("*.eml")).stat().st_size


# --- one campaign ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One finished campaign: messages, send-phase seconds, wall seconds, peak RSS."""

    sent: int
    send_s: float
    wall_s: float
    peak_mb: float
    directory: Path

    @property
    def rate(self) -> float:
        return self.sent / self.send_s


def run_send(template: Template, work: Path, port: int, *, connections: int, processes: int,
             pipelining: bool | None) -> Sent:
    """`newsletter send article.txt` in a fresh copy of `template`; checks every row was sent."""
    directory = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    shutil.copytree(template.directory, directory, dirs_exist_ok=True)
    settings = {
        "NEWSLETTER_SMTP_URL": f"smtp+plain://127.0.0.1:{port}",
        "NEWSLETTER_SENDING_CONCURRENCY": str(connections),
    }
    if processes:
        settings["NEWSLETTER_SENDING_PROCESSES"] = str(processes)
    if pipelining is not None:
        settings["NEWSLETTER_SMTP_PIPELINING"] = "true" if pipelining else "false"
    started = time.perf_counter()
    proc = subprocess.Popen([*NEWSLETTER, "send", "article.txt"], cwd=directory, env=_env(**settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.perf_counter(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak_kb = 0
    while proc.poll() is None:
        peak_kb = max(peak_kb, sum(_rss_kb(pid) for pid in _tree(proc.pid)))
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - started
    reader.join()
    text = "\n".join(line for _, line in lines)
    if proc.returncode != 0:
        raise BenchError(f"newsletter send failed (exit {proc.returncode}):\n{text}")
    queued_at = next((at for at, line in lines if QUEUED.match(line)), None)
    summary = next(((at, SUMMARY.search(line)) for at, line in lines if SUMMARY.search(line)), None)
    if queued_at is None or summary is None or summary[1] is None:
        raise BenchError(f"newsletter send printed no queue line or summary:\n{text}")
    done_at, match = summary
    sent, deferred, bounced, failed, skipped = (int(match[n]) for n in range(1, 6))
    status, total_sent, total = match[7], int(match[8]), int(match[9])
    if not (sent == total_sent == total == template.subscribers and status == "done"
            and deferred == bounced == failed == skipped == 0):
        raise BenchError(f"not every row was sent ({template.subscribers} subscribers):\n{text}")
    return Sent(sent, done_at - queued_at, wall, peak_kb / 1024, directory)


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, without multiprocessing's resource tracker."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            todo += [c for c in children if not _is_resource_tracker(c)]
    return found


def _is_resource_tracker(pid: int) -> bool:
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(template: Template, work: Path, variant: Variant, *, pipelining_setting: bool,
            source_first: bool = True, wait: int = 0) -> tuple[float, Sent]:
    """smtp-source and `newsletter send` one after the other on one fresh smtp-sink:
    (reference rate, our run). Every message must arrive."""
    sink = Sink(work, wait=wait)
    messages = template.subscribers

    def reference() -> float:
        rate = smtp_source(sink.port, sessions=variant.connections, messages=messages, size=template.size)
        sink.expect(messages * (1 if source_first else 2), "smtp-source")
        return rate

    try:
        rate = reference() if source_first else 0.0
        ours = run_send(template, work, sink.port, connections=variant.connections,
                        processes=variant.processes,
                        pipelining=variant.pipelining if pipelining_setting else None)
        sink.expect(messages * (2 if source_first else 1), "newsletter send")
        rate = rate or reference()
    finally:
        sink.stop()
    shutil.rmtree(ours.directory, ignore_errors=True)
    return rate, ours


# --- sections -------------------------------------------------------------------------------


def run_matrix(templates: dict[bool, Template], work: Path, variants: list[Variant], *, reps: int,
               pipelining_setting: bool) -> dict[Variant, Samples]:
    """Every variant once per repetition, repetitions interleaved so drift hits all alike."""
    results = {v: Samples() for v in variants if pipelining_setting or v.pipelining}
    for rep in range(reps):
        for variant in results:
            reference, ours = measure(templates[variant.signed], work, variant,
                                      pipelining_setting=pipelining_setting, source_first=rep % 2 == 0)
            samples = results[variant]
            samples.rates.append(ours.rate)
            samples.references.append(reference)
            samples.peaks_mb.append(ours.peak_mb)
        print(f"   repetition {rep + 1}/{reps} done, load average {_load()}", flush=True)
    return results


def print_matrix(results: dict[Variant, Samples], variants: list[Variant], *, pipelining_setting: bool,
                 messages: int, sizes: dict[bool, int]) -> None:
    print(f"   {messages:,} messages a campaign; {sizes[False]:,} bytes unsigned, {sizes[True]:,} signed; "
          "msgs/s of the send phase")
    print(f"   {'config':26} {'msgs/s median [min-max]':>24} {'smtp-source':>11} "
          f"{'ratio median [min-max]':>23} {'peak RSS':>9}")
    for variant in variants:
        samples = results.get(variant)
        if samples is None:
            print(f"   {variant.label():26} n/a (setting absent)")
            continue
        print(f"   {variant.label():26} {_spread(samples.rates, '.0f'):>24} "
              f"{statistics.median(samples.references):11.0f} {_spread(samples.ratios(), '.2f'):>23} "
              f"{max(samples.peaks_mb):6.0f} MB")


def run_slow(template_for: dict[int, Template], work: Path, *, reps: int, pipelining_setting: bool) -> None:
    """A relay that waits a second before each DATA reply: ours against smtp-source."""
    ratios: dict[int, list[float]] = {n: [] for n in template_for}
    rates: dict[int, list[float]] = {n: [] for n in template_for}
    for rep in range(reps):
        for n, template in template_for.items():
            variant = Variant(signed=False, connections=n, processes=1, pipelining=True)
            reference, ours = measure(template, work, variant, pipelining_setting=pipelining_setting,
                                      source_first=rep % 2 == 0, wait=1)
            ratios[n].append(ours.rate / reference)
            rates[n].append(ours.rate)
    for n in template_for:
        print(f"   c{n:<3} {template_for[n].subscribers:4d} messages: {_spread(rates[n], '.1f')} msgs/s, "
              f"ratio to smtp-source -s {n} {_spread(ratios[n], '.2f')}")


def run_memory(templates: dict[tuple[bool, int], Template], work: Path, *, processes: tuple[int, ...],
               pipelining_setting: bool) -> tuple[dict[tuple[bool, int, int], float], Path | None]:
    """Peak RSS (summed over the process tree) per (signed, processes, subscribers)."""
    peaks: dict[tuple[bool, int, int], float] = {}
    kept: Path | None = None
    largest = max(count for _, count in templates)
    for (signed, count), template in templates.items():
        for p in processes:
            if signed and p > 1 and count == largest:
                continue  # the slowest run of all (minutes); p1 carries the signed/unsigned headline
            sink = Sink(work)
            try:
                ours = run_send(template, work, sink.port, connections=16, processes=p,
                                pipelining=True if pipelining_setting else None)
                sink.expect(count, "newsletter send")
            finally:
                sink.stop()
            peaks[(signed, p, count)] = ours.peak_mb
            print(f"   {'signed' if signed else 'unsigned':8} p{p} {count:7,d} subscribers: peak RSS "
                  f"{ours.peak_mb:4.0f} MB, {ours.rate:5.0f} msgs/s, wall {ours.wall_s:5.1f} s", flush=True)
            if kept is None and not signed and p == 1 and count == largest:
                kept = ours.directory
            else:
                shutil.rmtree(ours.directory, ignore_errors=True)
    counts = sorted({count for _, count in templates})
    for signed in sorted({s for s, _ in templates}):
        for p in processes:
            small, large = peaks.get((signed, p, counts[0])), peaks.get((signed, p, counts[-1]))
            if small and large:
                    print(f"   {'signed' if signed else 'unsigned':8} p{p}: peak at {counts[-1]:,} / peak at "
                      f"{counts[0]:,} = {large / small:.2f}")
    return peaks, kept


def print_storage(directory: Path, rows: int) -> None:
    """Bytes per delivery row: dbstat of the deliveries table and its indexes, and the file."""
    path = directory / "subscribers.db"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'deliveries' AND type IN ('table', 'index')")]
        file_bytes = path.stat().st_size
        try:
            per = {n: conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = ?", [n]).fetchone()[0] or 0
                   for n in names}
        except sqlite3.OperationalError:
            print(f"   dbstat is not compiled into this sqlite; whole file {file_bytes / rows:.0f} "
                  f"bytes per delivery row ({file_bytes:,} bytes, subscribers included)")
            return
        subscribers = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master "
            "WHERE tbl_name = 'subscribers')").fetchone()[0] or 0
    finally:
        conn.close()
    table = per.get("deliveries", 0)
    print(f"   {rows:,} sent delivery rows: {sum(per.values()) / rows:.0f} bytes per row with its "
          f"{len(per) - 1} index(es) ({table / rows:.0f} table only); subscribers "
          f"{subscribers / rows:.0f} bytes per row with indexes; whole file {file_bytes:,} bytes")


def print_headlines(results: dict[Variant, Samples], memory: dict[tuple[bool, int, int], float], *,
                    pipelining_setting: bool) -> None:
    """The issue's targets as ratios within the same repetitions, at 16 connections, pipelined."""
    pipe = "pipe" if pipelining_setting else "today's path (smtp.pipelining absent)"
    for p in (1, 2, 0):
        unsigned = results.get(Variant(signed=False, connections=16, processes=p, pipelining=True))
        signed = results.get(Variant(signed=True, connections=16, processes=p, pipelining=True))
        name = f"c16 p{p or 'def'} {pipe}"
        if unsigned is None or signed is None:
            if p:
                print(f"   signed/unsigned rate, {name}: n/a (not run)")
            continue
        rate = [s / u for s, u in zip(signed.rates, unsigned.rates, strict=True)]
        peak = [s / u for s, u in zip(signed.peaks_mb, unsigned.peaks_mb, strict=True)]
        print(f"   signed/unsigned rate, {name}: {_spread(rate, '.2f')} (target >= 0.75); "
              f"peak RSS signed/unsigned {_spread(peak, '.2f')} (target <= 2)")
    best = {}
    for signed in (False, True):
        rows = [(statistics.median(s.rates), v) for v, s in results.items()
                if v.signed == signed and v.connections == 16 and v.pipelining]
        best[signed] = max(rows, default=None, key=lambda row: row[0])
    if best[False] and best[True]:
        print(f"   best signed / best unsigned at c16 (medians): {best[True][0] / best[False][0]:.2f} "
              f"(p{best[True][1].processes or 'def'} / p{best[False][1].processes or 'def'})")
    largest = max((count for *_, count in memory), default=0)
    for p in (1, 2):
        if (True, p, largest) in memory and (False, p, largest) in memory:
            print(f"   peak RSS signed/unsigned at {largest:,} subscribers, p{p}: "
                  f"{memory[(True, p, largest)] / memory[(False, p, largest)]:.2f} (target <= 2)")
    for p in (1, 2, 0):
        samples = results.get(Variant(signed=False, connections=16, processes=p, pipelining=True))
        if samples is not None:
            print(f"   unsigned c16 p{p or 'def'} {pipe} / smtp-source -s 16: "
                  f"{_spread(samples.ratios(), '.2f')} (target >= 0.40)")


def _spread(values: list[float], fmt: str) -> str:
    median = format(statistics.median(values), fmt)
    if len(values) == 1:
        return median
    return f"{median} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- main -----------------------------------------------------------------------------------


def parse_only(words: str) -> tuple[set[str], dict[str, set[object]]]:
    """--only: section names and matrix filters; filters of one dimension add up, dimensions narrow."""
    sections: set[str] = set()
    filters: dict[str, set[object]] = {}
    for word in filter(None, (w.strip() for w in words.split(","))):
        if word in SECTIONS:
            sections.add(word)
            continue
        for dimension, values in DIMENSIONS.items():
            if word in values:
                filters.setdefault(dimension, set()).add(values[word])
                break
        else:
            known = ", ".join([*SECTIONS, *(w for values in DIMENSIONS.values() for w in values)])
            raise SystemExit(f"Error: --only {word!r} is not one of: {known}")
    if filters and not sections:
        sections.add("matrix")
    return sections or set(SECTIONS), filters


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="--only takes a comma-separated list of sections (matrix, slow, memory, storage) and "
               "matrix filters (unsigned, signed, c4, c16, c64, p1, p2, pdefault, pipelining, nopipelining); "
               "filters of one kind add up, different kinds narrow: --only signed,c16 runs the "
               "signed rows at 16 connections. Filters alone imply the matrix only. storage needs memory. "
               "pdefault (sending.processes not set) runs only when named: --only p1,p2,pdefault.",
    )
    parser.add_argument("--quick", action="store_true", help="one repetition of a reduced matrix (~2 min)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, --quick 1)")
    parser.add_argument("--messages", type=int, help="messages a campaign (default 5000, --quick 2000)")
    parser.add_argument("--only", default="", help="sections and filters, e.g. signed,pipelining")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run, e.g. sending.per_connection=1000 (repeatable)")
    args = parser.parse_args()
    EXTRA_ENV.update(setting_env(a) for a in args.set)
    sections, filters = parse_only(args.only)
    reps = args.reps or (1 if args.quick else 3)
    messages = args.messages or (2000 if args.quick else 5000)
    connections = (16,) if args.quick else (4, 16, 64)
    memory_counts = (2_000, 10_000) if args.quick else (10_000, 100_000)
    slow_connections = (4, 16) if args.quick else (4, 16, 64)
    every = [
        Variant(signed=s, connections=c, processes=p, pipelining=pipe)
        for s in (False, True) for c in connections for p in (1, 2, 0) for pipe in (True, False)
    ]
    filters.setdefault("processes", {1, 2})  # the default's row only when asked for (pdefault)
    variants = [v for v in every if all(getattr(v, dim) in allowed for dim, allowed in filters.items())]
    pipelining_setting = has_setting("smtp.pipelining")
    print(f"bench/send.py{' --quick' if args.quick else ''}: {reps} repetition(s); "
          f"load average at start {_load()} ({os.cpu_count()} CPUs)")
    if args.set:
        print(f"   settings for every run: {', '.join(args.set)}")
    if not pipelining_setting:
        print("   smtp.pipelining does not exist yet: 'pipe' rows run today's path, 'nopipe' rows are n/a")
    work = Path(tempfile.mkdtemp(prefix="bench-send-"))
    started = time.monotonic()
    try:
        results: dict[Variant, Samples] = {}
        memory: dict[tuple[bool, int, int], float] = {}
        if "matrix" in sections and variants:
            unsigned = make_template(work / f"t{messages}", messages)
            templates = {False: unsigned, True: signed_copy(unsigned, work / f"t{messages}-signed")}
            print("1. Campaigns against smtp-source (same sessions, same size) on a fresh smtp-sink each",
                  flush=True)
            results = run_matrix(templates, work, variants, reps=reps, pipelining_setting=pipelining_setting)
            print_matrix(results, variants, pipelining_setting=pipelining_setting, messages=messages,
                         sizes={s: t.size for s, t in templates.items()})
        if "slow" in sections:
            print("2. Slow relay (smtp-sink -w 1: one second before each DATA reply), 3 messages a "
                  "connection, unsigned p1", flush=True)
            slow = {n: make_template(work / f"slow{n}", 3 * n) for n in slow_connections}
            run_slow(slow, work, reps=reps, pipelining_setting=pipelining_setting)
        if "memory" in sections:
            print("3. Peak RSS summed over the process tree, 16 connections, one run each", flush=True)
            mem_templates: dict[tuple[bool, int], Template] = {}
            for count in memory_counts:
                plain = make_template(work / f"m{count}", count)
                mem_templates[(False, count)] = plain
                mem_templates[(True, count)] = signed_copy(plain, work / f"m{count}-signed")
            memory, kept = run_memory(mem_templates, work, processes=(1, 2),
                                      pipelining_setting=pipelining_setting)
            if "storage" in sections and kept is not None:
                print("4. Storage after the largest unsigned send", flush=True)
                print_storage(kept, memory_counts[-1])
        if results:
            print("5. Headline ratios (same repetitions)")
            print_headlines(results, memory, pipelining_setting=pipelining_setting)
    except BenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end {_load()}; took {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
