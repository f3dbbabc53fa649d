"""Peak memory of `newsletter send` by article size: 1 KB, 100 KB and 4 MB articles to 1,000
subscribers, against Postfix's smtp-sink (which discards everything).

Prints, per article size: the size of one email, the peak RSS of the sending process and
its ratio to the 1 KB run of the same invocation, and the wall time. The build buffer is
bounded in bytes (sending.buffer_mb, 64 MB by default), so the peak should grow by about
the buffer plus a few messages per connection, not by messages times the buffer's count.
The 4 MB article makes an email larger than the default sending.max_message_mb (10 MB)
would allow only if it is mostly non-ASCII; the limit is raised for it and said so.

Needs Debian's postfix package (smtp-sink in /usr/sbin; no daemon runs).
Usage: .venv/bin/python bench/memory.py [SUBSCRIBERS]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send import Sink, _env, _rss_kb, _tree, make_template  # noqa: E402

SIZES = {"1 KB": 1024, "100 KB": 100 * 1024, "4 MB": 4 * 1024 * 1024}
PARAGRAPH = (
    "De werkplaats aan de gracht repareert elke week meer fietsen, en de planningssoftware "
    "die de eigenaar zelf schreef, houdt bij welke onderdelen er nodig zijn en wanneer. "
)


def article_text(size: int) -> str:
    """An article in the export format (publication, title, slug, paragraphs) of about `size` bytes."""
    paragraph = PARAGRAPH * 4
    count = max(1, size // (len(paragraph) + 2))
    body = "\n\n".join(paragraph.strip() for _ in range(count))
    return (
        "Demo Nieuws\n\nEen artikel om het geheugen te meten\n\nartikel-geheugen\n\n"
        f"{body}\n\nMarieke Dam - Redacteur Demo\n"
    )


def run(directory: Path, port: int, *, max_message_mb: float) -> dict[str, float]:
    env = _env(
        NEWSLETTER_SMTP_URL=f"smtp+plain://127.0.0.1:{port}",
        NEWSLETTER_SENDING_MAX_MESSAGE_MB=str(max_message_mb),
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "article.txt"], cwd=directory, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    peak = 0
    while proc.poll() is None:
        total = sum(_rss_kb(pid) for pid in _tree(proc.pid))  # with its shard and signer processes
        peak = max(peak, total)
        time.sleep(0.02)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"newsletter send failed:\n{err}")
    return {"elapsed": time.perf_counter() - started, "peak_mb": peak / 1024}


def email_size(directory: Path) -> int:
    from newsletter.config import load_config
    from newsletter.content.message import Recipient
    from newsletter.db import open_db
    from newsletter.delivery.campaigns import builder_for, get_campaign

    config = load_config(directory / "newsletter.toml")
    db = open_db(config.database)
    recipient = Recipient(subscriber_id=1, email="lezer0000001@example.nl", name="Lezer 1",
                          token="x" * 22, language="nl")
    size = len(builder_for(config, get_campaign(db, 1)).build(recipient))
    db.conn.close()
    return size


def main() -> None:
    subscribers = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    work = tempfile.TemporaryDirectory()
    sink = Sink(Path(work.name))
    print(f"newsletter send to {subscribers} subscribers, smtp-sink on 127.0.0.1, "
          "sending.buffer_mb = 64 (default), concurrency 8 (default)")
    reference = None
    try:
        for label, size in SIZES.items():
            with tempfile.TemporaryDirectory() as tmp:
                directory = make_template(Path(tmp) / "site", subscribers).directory
                (directory / "article.txt").write_text(article_text(size), encoding="utf-8")
                limit = 10.0 if size < 2**20 else 32.0
                figures = run(directory, sink.port, max_message_mb=limit)
                message = email_size(directory)
            reference = reference or figures["peak_mb"]
            note = "" if limit == 10.0 else f" (sending.max_message_mb raised to {limit:g})"
            print(f"{label:>7} article: email {message / 1024:9.0f} KB, peak RSS "
                  f"{figures['peak_mb']:7.1f} MB ({figures['peak_mb'] / reference:5.2f}x the 1 KB run), "
                  f"{figures['elapsed']:6.1f} s{note}")
    finally:
        sink.stop()
        work.cleanup()


if __name__ == "__main__":
    main()
