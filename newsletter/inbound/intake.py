"""Where returned messages come from: standard input (a pipe), a Maildir, an mbox file or an
IMAP folder; and marking what was processed so it is never read as new again.

A message that was used (a bounce, complaint, unsubscribe or auto-reply, or one seen
before) is moved out of the way: into the Maildir++ subfolder `.processed` of a Maildir,
into `NAME.processed` beside an mbox file, into the IMAP folder `processed`. A message
that was not recognised (or could not be read) stays where it is for a person to look at,
and is listed once; later runs skip it by its fingerprint. A message that arrives by pipe
and is not recognised is kept in the Maildir `bounces-unrecognised/` beside the
configuration, so nothing that came in is ever lost.
"""

from __future__ import annotations

import imaplib
import mailbox
import os
import re
import ssl
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from sqlite_utils import Database

from ..config import ENV_BOUNCES_PASSWORD, Config
from ..errors import InboundError
from .parse import MAX_BYTES
from .record import Handled, Recorder

PROCESSED = "processed"
UNRECOGNISED_DIR = "bounces-unrecognised"
IMAP_FLAG = "$NewsletterListed"  # set on an IMAP message left in place, so it is read once


@dataclass
class Listed:
    """A message a person should look at: where it is and why it was not used."""

    location: str
    kind: str
    reason: str


@dataclass
class Summary:
    """What one pass over a source did."""

    source: str
    read: int = 0
    duplicates: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    findings: int = 0
    listed: list[Listed] = field(default_factory=list)

    def add(self, handled: Handled, location: str) -> None:
        self.read += 1
        if handled.duplicate:
            self.duplicates += 1
            return
        self.kinds[handled.kind] += 1
        self.findings += handled.matched
        if handled.listed:
            self.listed.append(Listed(location, handled.kind, handled.reason))


Progress = Callable[[str, Handled], None]
# One message of a source: where it is, its bytes (the start only, past MAX_BYTES), its
# size, and what marks it processed (True) or read but left in place (False). A source
# yields None before it closes, when what was read must be marked.
Item = tuple[str, bytes, int, Callable[[bool], None]]
BATCH = 100  # messages recorded per transaction


def read_limited(stream: BinaryIO) -> tuple[bytes, int]:
    """At most MAX_BYTES + 1 bytes of the stream, and the stream's full size (the rest is
    read and dropped, so the MTA sees the message taken)."""
    data = stream.read(MAX_BYTES + 1)
    size = len(data)
    while chunk := stream.read(1 << 20):
        size += len(chunk)
    return data, size


def receive(config: Config, db: Database, data: bytes, *, size: int, recipient: str = "") -> tuple[Handled, str]:
    """One message from a pipe. Returns what was done and, for a message that was not used,
    the file it was kept in. Raises on a database error: the MTA must try again."""
    recorder = Recorder(config, db)
    parsed = recorder.parse(data[:MAX_BYTES], recipient=recipient, size=size)
    location = ""
    if parsed.kind in ("other", "bad") and not recorder.seen(parsed.fingerprint):
        keep = mailbox.Maildir(config.root / UNRECOGNISED_DIR, create=True)
        location = f"{UNRECOGNISED_DIR}/new/{keep.add(data)}"
    return recorder.record(parsed, via="pipe", location=location), location


def process_source(config: Config, db: Database, source: str, *, progress: Progress | None = None) -> Summary:
    """Read every new message of a Maildir, mbox file or imap(s):// folder once."""
    recorder = Recorder(config, db)
    summary = Summary(source=_display(source))
    if source.startswith(("imap://", "imaps://")):
        messages: Iterator[Item | None] = _imap(config, source)
        via = "imap"
    else:
        path = Path(source).expanduser()
        path = path if path.is_absolute() else config.root / path
        if path.is_dir():
            messages, via = _maildir(path), "maildir"
        elif path.is_file():
            messages, via = _mbox(path), "mbox"
        else:
            raise InboundError(
                f"{path} does not exist: give a Maildir folder, an mbox file or imap(s)://user@host/folder"
            )
    pending: list[tuple[str, Handled, Callable[[bool], None]]] = []

    def flush() -> None:
        # Mark the messages only once what they did is committed: a crash in between
        # leaves them unmarked, and their fingerprints make the next run skip them.
        if db.conn.in_transaction:
            db.conn.commit()
        for location, handled, done in pending:
            done(handled.duplicate or handled.kind not in ("other", "bad"))
            if progress is not None:
                progress(location, handled)
        pending.clear()

    try:
        for item in messages:
            if item is None:  # the source is about to close: mark what was read
                flush()
                continue
            location, data, size, done = item
            parsed = recorder.parse(data, size=size)
            if not db.conn.in_transaction:
                db.conn.execute("BEGIN IMMEDIATE")
            handled = recorder.record(parsed, via=via, location=location)
            summary.add(handled, location)
            pending.append((location, handled, done))
            if len(pending) >= BATCH:
                flush()
        flush()
    except BaseException:
        if db.conn.in_transaction:
            db.conn.rollback()
        raise
    return summary


def _display(source: str) -> str:
    parts = urlsplit(source)
    if parts.scheme in ("imap", "imaps") and parts.password:
        return source.replace(f":{parts.password}@", "@")
    return source


def _read_file(path: Path) -> tuple[bytes, int]:
    size = path.stat().st_size
    with path.open("rb") as handle:
        # Too large to be a bounce: its start is enough to fingerprint and list it.
        return handle.read(MAX_BYTES + 1 if size <= MAX_BYTES else 64 * 1024), size


def _maildir(path: Path) -> Iterator[Item | None]:
    if not (path / "cur").is_dir() and not (path / "new").is_dir():
        raise InboundError(f"{path} is a folder but not a Maildir (it has no cur/ or new/)")
    target = path / f".{PROCESSED}"
    for sub in ("cur", "new", "tmp"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    (target / "maildirfolder").touch()
    for sub in ("new", "cur"):
        # Listed one folder at a time by name, never all messages in memory at once.
        with os.scandir(path / sub) as entries:
            names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
        for name in names:
            file = path / sub / name
            try:
                data, size = _read_file(file)
            except FileNotFoundError:
                continue  # taken by a concurrent run
            location = f"{sub}/{name}"

            def done(used: bool, file: Path = file, name: str = name, sub: str = sub) -> None:
                if used:
                    # A new message becomes seen (the Maildir info suffix) as it moves.
                    final = name if sub == "cur" or ":2," in name else f"{name}:2,S"
                    try:
                        os.replace(file, target / "cur" / final)
                    except FileNotFoundError:
                        pass

            yield location, data, size, done
    yield None


def _mbox(path: Path) -> Iterator[Item | None]:
    try:
        box = mailbox.mbox(path, create=False)
        box.lock()
    except (mailbox.Error, OSError) as exc:
        raise InboundError(f"cannot open the mbox file {path}: {exc}") from exc
    processed = mailbox.mbox(path.with_name(f"{path.name}.{PROCESSED}"), create=True)
    used: list[str] = []
    try:
        for number, key in enumerate(list(box.keys()), start=1):
            data = box.get_bytes(key)

            def done(ok: bool, key: str = key, data: bytes = data) -> None:
                if ok:
                    processed.add(data)
                    used.append(key)

            yield f"message {number}", data, len(data), done
        yield None
        processed.flush()
        for key in used:
            box.remove(key)
        box.flush()
    finally:
        box.unlock()
        box.close()
        processed.close()


def _imap(config: Config, source: str) -> Iterator[Item | None]:
    parts = urlsplit(source)
    if not parts.hostname or not parts.username:
        raise InboundError(f"{_display(source)}: give imap(s)://user@host[:port]/folder")
    password = config.bounces_password()
    if password is None:
        raise InboundError(f"{_display(source)}: set {ENV_BOUNCES_PASSWORD} to the mailbox's password")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    try:
        if parts.scheme == "imaps":
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                parts.hostname, parts.port or 993, ssl_context=ssl.create_default_context(), timeout=60
            )
        else:
            client = imaplib.IMAP4(parts.hostname, parts.port or 143, timeout=60)
            if "STARTTLS" in client.capabilities:
                client.starttls(ssl_context=ssl.create_default_context())
        client.login(unquote(parts.username), password)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise InboundError(f"{_display(source)}: cannot log in ({exc})") from exc
    try:
        status, _ = client.select(_quote(folder))
        if status != "OK":
            raise InboundError(f"{_display(source)}: there is no folder {folder!r}")
        client.create(_quote(PROCESSED))  # NO when it exists: fine
        # What the server offers once logged in (imaplib keeps the greeting's list).
        status, listed = client.capability()
        can_move = status == "OK" and b"MOVE" in (listed[0] or b"").upper().split()
        status, found = client.uid("SEARCH", "NOT", "KEYWORD", IMAP_FLAG)
        uids = found[0].split() if status == "OK" and found and found[0] else []
        moved = False
        for uid_bytes in uids:
            uid = uid_bytes.decode()
            status, fetched = client.uid("FETCH", uid, "(RFC822.SIZE BODY.PEEK[])")
            data = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            if status != "OK" or data is None:
                continue
            size_match = re.search(rb"RFC822\.SIZE (\d+)", next(i[0] for i in fetched if isinstance(i, tuple)))
            size = int(size_match.group(1)) if size_match else len(data)

            def done(ok: bool, uid: str = uid) -> None:
                nonlocal moved
                if not ok:
                    client.uid("STORE", uid, "+FLAGS", f"({IMAP_FLAG})")
                elif can_move:
                    client.uid("MOVE", uid, _quote(PROCESSED))
                else:
                    client.uid("COPY", uid, _quote(PROCESSED))
                    client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
                    moved = True

            yield f"UID {uid}", data[: MAX_BYTES + 1], size, done
        yield None
        if moved:
            client.expunge()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise InboundError(f"{_display(source)}: {exc}") from exc
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
