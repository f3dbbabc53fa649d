"""DKIM-signed against unsigned campaigns, interleaved in one run against Postfix's smtp-sink.

Prints, for each way of signing (sending.signing = process with its default one signer
per spare core, or two; thread; inline, and inline with sending.processes = 2, which
shards the rows over two sending processes), the sending-phase rate of a full
`newsletter send` (as a subprocess) as a ratio to an unsigned campaign of the same size
sent in the same repetition, and its peak memory (RSS summed over the process and its
children, and the same in PSS, which counts shared library pages once) as a ratio to the
unsigned run's; `smtp-source -s 16 -d` to the same sink gives the scale.
Every repetition runs all the variants in turn, so load from elsewhere affects them alike;
the load average is printed before and after. Median and range over the repetitions.

The RSA-2048 signature alone is timed in this process first (the key the runs use, 2,000
signatures, CPU time): no signed campaign can cost less than the unsigned one plus that,
so the last line gives the ratio two cores would allow with nothing else added.

Measured 2026-12-07 on this 2-core machine, quiet (load 0.8-1.5), 20,000 subscribers, 16
connections, three repetitions (`--count 20000 --variants unsigned,process`): unsigned
4863 msgs/s, process 3091, 0.61 (0.57-0.64) of unsigned at 1.45x its RSS. CPU µs a
message over every process and the sink: unsigned 345, process 621 (loop thread 260,
signer 278, of which the RSA step is 243; sink 98). Two cores at 345 + 243 µs a message
send at most 3400 a second, 0.70 of the unsigned rate, even with no cost but the
signature. Single repetitions swing by 0.1 either way with the unsigned rate.

Needs Debian's postfix package (smtp-sink and smtp-source in /usr/sbin; no daemon runs).
Usage: .venv/bin/python bench/signing.py [--quick] [--repeat N] [--count N] [--variants a,b]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from send import Sink, _env, _is_resource_tracker, _rss_kb, _tree, make_template, smtp_source  # noqa: E402

# name -> (signed?, NEWSLETTER_* settings)
VARIANTS: dict[str, tuple[bool, dict[str, str]]] = {
    "unsigned": (False, {}),
    "unsigned-p2": (False, {"NEWSLETTER_SENDING_PROCESSES": "2"}),
    "inline": (True, {"NEWSLETTER_SENDING_SIGNING": "inline"}),
    "inline-p2": (True, {"NEWSLETTER_SENDING_SIGNING": "inline", "NEWSLETTER_SENDING_PROCESSES": "2"}),
    "thread": (True, {"NEWSLETTER_SENDING_SIGNING": "thread"}),
    "process": (True, {"NEWSLETTER_SENDING_SIGNING": "process"}),
    "process-2": (True, {"NEWSLETTER_SENDING_SIGNING": "process", "NEWSLETTER_SENDING_SIGNERS": "2"}),
    "thread-2": (True, {"NEWSLETTER_SENDING_SIGNING": "thread", "NEWSLETTER_SENDING_SIGNERS": "2"}),
    "process-p2": (True, {"NEWSLETTER_SENDING_SIGNING": "process", "NEWSLETTER_SENDING_PROCESSES": "2"}),
}
DEFAULT_VARIANTS = ("unsigned", "process", "process-2", "thread", "inline", "inline-p2")
CONCURRENCY = 16


def make_key(directory: Path) -> Path:
    """A 2048-bit DKIM key made by `newsletter dkim keygen`."""
    subprocess.run(
        [sys.executable, "-m", "newsletter", "-q", "dkim", "keygen", "--selector", "bench",
         "--domain", "example.nl", "--out", str(directory)],
        check=True, env=_env(), stdout=subprocess.DEVNULL,
    )
    return next(directory.glob("bench.example.nl.private.pem"))


def _pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (the Python and OpenSSL libraries every process
    maps) counted once over all processes, not once in each as RSS counts them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _before_exec(child: int, parent: int) -> bool:
    """A child caught between fork and exec (starting a signer or shard) still shows the
    parent's pages as its own RSS, all shared: counting them once more would be wrong."""
    try:
        return Path(f"/proc/{child}/cmdline").read_bytes() == Path(f"/proc/{parent}/cmdline").read_bytes()
    except OSError:
        return True


def _cpu_s(pid: int, *, thread: int = 0) -> float | None:
    """User + system CPU seconds of a process (or of one of its threads) so far, None once gone."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send(directory: Path, port: int, settings: dict[str, str], *, sink_pid: int = 0) -> dict[str, float]:
    """`newsletter send` as a subprocess: sending-phase rate and peak memory (RSS, and PSS)
    summed over its processes (multiprocessing's resource tracker left out, as send.py does)."""
    env = _env(
        NEWSLETTER_SMTP_URL=f"smtp+plain://127.0.0.1:{port}",
        NEWSLETTER_SENDING_CONCURRENCY=str(CONCURRENCY),
        **settings,
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "article.txt"], cwd=directory, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    peak_main = 0
    peaks: dict[int, int] = {}
    peak_pss = 0
    cpu: dict[int, float] = {}  # pid -> CPU seconds when last seen
    sink_before = _cpu_s(sink_pid) or 0.0 if sink_pid else 0.0
    loop_cpu = 0.0  # the main thread of the sending process: the event loop
    while proc.poll() is None:
        loop_cpu = _cpu_s(proc.pid, thread=proc.pid) or loop_cpu
        for pid in (proc.pid, *_tree(proc.pid)[1:]):
            seen = _cpu_s(pid)
            if seen is not None and not _is_resource_tracker(pid):
                cpu[pid] = seen
        peak_main = max(peak_main, _rss_kb(proc.pid))
        pss = _pss_kb(proc.pid)
        for child in _tree(proc.pid)[1:]:
            if not _is_resource_tracker(child) and not _before_exec(child, proc.pid):
                peaks[child] = max(peaks.get(child, 0), _rss_kb(child))
                pss += _pss_kb(child)
        peak_pss = max(peak_pss, pss)
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    sink_cpu = (_cpu_s(sink_pid) or 0.0) - sink_before if sink_pid else 0.0
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"newsletter send failed:\n{err}")
    from datetime import datetime

    from newsletter.db import open_db

    db = open_db(directory / "subscribers.db")
    sent = db.execute("SELECT count(*) FROM delivery_rows WHERE status = 'sent'").fetchone()[0]
    start = db.execute("SELECT started_at FROM campaigns WHERE id = 1").fetchone()[0]
    last = db.execute("SELECT max(sent_at) FROM delivery_rows").fetchone()[0]
    db.conn.close()
    sending = (datetime.fromisoformat(last) - datetime.fromisoformat(start)).total_seconds()
    return {"sent": sent, "rate": sent / elapsed, "send_rate": sent / sending,
            "total_mb": (peak_main + sum(peaks.values())) / 1024, "pss_mb": peak_pss / 1024,
            "children": len(peaks), "main_cpu_us": cpu.get(proc.pid, 0.0) / sent * 1e6,
            "loop_cpu_us": loop_cpu / sent * 1e6,
            "other_cpu_us": (sum(cpu.values()) - cpu.get(proc.pid, 0.0)) / sent * 1e6,
            "sink_cpu_us": sink_cpu / sent * 1e6}


def _range(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def rsa_step_us(key: Path, signatures: int = 2000) -> float:
    """CPU µs of one RSA-2048 PKCS#1 v1.5 signature over SHA-256 with `key`, as the signer
    makes it (cryptography, OpenSSL): the floor a signed message adds to an unsigned one."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    data = b"x" * 700  # about the size of the signed header fields
    for _ in range(50):
        private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    started = time.process_time()
    for _ in range(signatures):
        private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return (time.process_time() - started) / signatures * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    parser.add_argument("--repeat", type=int, default=0, help="repetitions (default 3, 1 with --quick)")
    parser.add_argument("--count", type=int, default=0, help="subscribers (default 20,000, 3,000 with --quick)")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)}; unsigned is always run")
    args = parser.parse_args()
    count = args.count or (3000 if args.quick else 20_000)
    repeat = args.repeat or (1 if args.quick else 3)
    names = ["unsigned"] + [n for n in args.variants.split(",") if n and n != "unsigned"]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}")
    work = Path(tempfile.mkdtemp(prefix="bench-signing-"))
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    references: list[float] = []
    load_before = os.getloadavg()
    try:
        key = make_key(work / "dkim")
        rsa_us = rsa_step_us(key)
        sink = Sink(work)
        try:
            size = 0
            for rep in range(repeat):
                for name in names:
                    signed, settings = VARIANTS[name]
                    template = make_template(work / f"{name}-{rep}", count)
                    site = template.directory
                    if signed:
                        settings = {**settings, "NEWSLETTER_DKIM_SELECTOR": "bench",
                                    "NEWSLETTER_DKIM_DOMAIN": "example.nl",
                                    "NEWSLETTER_DKIM_KEY_FILE": str(key)}
                    result = send(site, sink.port, settings, sink_pid=sink.proc.pid)
                    results[name].append(result)
                    size = size or template.size
                    shutil.rmtree(site, ignore_errors=True)
                    print(f"   rep {rep + 1} {name:12s} {result['send_rate']:7.0f} msgs/s sending, "
                          f"{result['total_mb']:4.0f} MB RSS, {result['pss_mb']:4.0f} MB PSS, CPU µs/msg "
                          f"main {result['main_cpu_us']:.0f} (its loop thread {result['loop_cpu_us']:.0f}) "
                          f"others {result['other_cpu_us']:.0f} "
                          f"sink {result['sink_cpu_us']:.0f}, "
                          f"load {os.getloadavg()[0]:.2f}", flush=True)
                references.append(smtp_source(sink.port, sessions=CONCURRENCY, messages=count, size=size))
        finally:
            sink.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"DKIM signing, {count:,} subscribers, {CONCURRENCY} connections, {repeat} repetition(s), "
          f"{os.cpu_count()} cores")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"smtp-source -s {CONCURRENCY} -d: {_range(references, '.0f')} msgs/s")
    base = results["unsigned"]
    cpu_lines: list[str] = []
    for name in names:
        runs = results[name]
        rates = [r["send_rate"] for r in runs]
        ratio = [r["send_rate"] / b["send_rate"] for r, b in zip(runs, base, strict=True)]
        memory = [r["total_mb"] / b["total_mb"] for r, b in zip(runs, base, strict=True)]
        pss = [r["pss_mb"] / b["pss_mb"] for r, b in zip(runs, base, strict=True)]
        source = [r["send_rate"] / s for r, s in zip(runs, references, strict=True)]
        main_cpu = [r["main_cpu_us"] for r in runs]
        loop_cpu = [r["loop_cpu_us"] for r in runs]
        all_cpu = [r["main_cpu_us"] + r["other_cpu_us"] + r["sink_cpu_us"] for r in runs]
        cpu_lines.append(
            f"  {name:12s} main process {_range(main_cpu, '.0f'):>16s} (its event loop's thread "
            f"{_range(loop_cpu, '.0f')}), all processes and the sink "
            f"{_range(all_cpu, '.0f'):>16s}"
        )
        print(f"  {name:12s} {_range(rates, '.0f'):>18s} msgs/s  of unsigned {_range(ratio):>16s}  "
              f"of smtp-source {_range(source):>16s}  peak RSS {_range([r['total_mb'] for r in runs], '.0f')} MB"
              f" = {_range(memory)} x unsigned (PSS {_range(pss)} x)")

    # CPU time per message depends little on what else the machine runs: the event loop's
    # thread can use one core at most, so its figure bounds the rate, and the sum over every
    # process (and the sink) bounds it on two cores.
    print("CPU µs per message sent (user + system), median (range):")
    for line in cpu_lines:
        print(line)
    def bound(run: dict[str, float], *, sharded: bool) -> float:
        total = run["main_cpu_us"] + run["other_cpu_us"] + run["sink_cpu_us"]
        # sharded: each shard process runs its own loop, so only the two cores bound it
        return 2 / total if sharded else min(1 / run["loop_cpu_us"], 2 / total)

    loop_bound = [bound(r, sharded=False) for r in base]
    for name in names[1:]:
        sharded = VARIANTS[name][1].get("NEWSLETTER_SENDING_PROCESSES", "1") != "1"
        bounds = [bound(r, sharded=sharded) / b for r, b in zip(results[name], loop_bound, strict=True)]
        print(f"  {name:12s} on an idle 2-core machine (from CPU time) at most {_range(bounds)} of unsigned")
    # The ceiling: a signed message costs at least what an unsigned one costs (every
    # process and the sink) plus the RSA step, so the cores send at most cores / that many
    # a second; against the unsigned rate measured in the same repetition. The CPU a
    # message includes each run's start (imports, render, queueing), which the send-phase
    # rate does not, so this ceiling is a little low at 20,000 messages (far too low with
    # --quick's 3,000, where the start weighs more); the loop-bound figures above, a
    # little high.
    cores = os.cpu_count() or 1
    ceiling = [
        1e6 * cores / (b["main_cpu_us"] + b["other_cpu_us"] + b["sink_cpu_us"] + rsa_us) / b["send_rate"]
        for b in base
    ]
    print(f"the RSA-2048 signature alone: {rsa_us:.0f} µs CPU; with nothing added to the unsigned "
          f"run but that, {cores} cores allow at most {_range(ceiling)} of the unsigned rate")


if __name__ == "__main__":
    main()
