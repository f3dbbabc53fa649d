"""Bulk subscriber files: import CSV or JSON with a report of every row skipped, and export.

An import never aborts on a bad row and never loses a good one: each bad row is reported
with its line number and reason, the good rows go in (in one transaction, so a crash
leaves nothing half-done and running the import again is safe). Duplicates inside the file
and against the database are reported, never doubled, and an address that unsubscribed,
bounced, complained or was erased is never re-activated by an import.

A CSV file streams through in chunks of CHUNK rows, whatever its size: cut here into
blocks of text at record ends, parsed and checked (import_rows.py) in this process for a
small file and in WORKERS processes for one that may hold PARALLEL_FROM rows, at most
IN_FLIGHT chunks out at a time, then stored chunk by chunk, each chunk's duplicates found
by the database (which already holds the file's earlier chunks, inside the same
transaction). Memory stays flat: what grows with the file is four bytes per imported row
(its line number, for "a duplicate of line N") and the report of skipped rows. A JSON
file is read whole (our export's other format).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import os
import signal
from array import array
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlite_utils import Database

from ..children import die_with_parent
from ..db import now, transaction
from ..errors import ImportFileError
from .import_rows import FORMULA_START, CheckedChunk, ChunkSpec, CsvBlock, Good, Skipped, check_chunk
from .subscribers import SUPPRESSED, add_imported, current_actor, next_id

EXPORT_FIELDS = ("email", "name", "lang", "cadence", "status", "consent_at", "consent_source",
                 "created_at", "confirmed_at")
KNOWN_FIELDS = {"email", "name", "lang", "cadence", "status", "consent_at", "consent_source"}
# Header names people bring from other tools and spreadsheets.
ALIASES = {
    "e-mail": "email", "mail": "email", "emailadres": "email", "e-mailadres": "email",
    "email address": "email", "naam": "name", "language": "lang", "taal": "lang",
}
CHUNK = 2000
# Rows; below this a second process costs more than it saves. The file's size decides (a
# file of fewer than PARALLEL_FROM * MIN_ROW_BYTES bytes cannot hold that many rows).
PARALLEL_FROM = 20000
# Two checkers keep up with the one process that stores (the database is the limit); more
# would only add their memory.
WORKERS = 2
IN_FLIGHT = 2 * WORKERS  # chunks handed to the workers and not yet stored
MIN_ROW_BYTES = 16  # "a@b.nl,Ann,nl\n"
# SQLite's page cache while importing, in KiB (the default is 2 MB): the address and token
# indexes take random inserts, which a small cache turns into page reads and re-writes.
CACHE_KB = 32 * 1024

Record = tuple[int, list[str]] | tuple[int, dict[str, str]]
Chunk = list[Record] | CsvBlock  # what one checker call takes

@dataclass
class ImportReport:
    """The outcome of an import, for the summary line and `--json`."""

    file: str
    rows: int = 0
    imported: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for item in self.skipped:
            kinds[item.kind] = kinds.get(item.kind, 0) + 1
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        skipped = f"{len(self.skipped):,} skipped" + (f" ({detail})" if detail else "")
        return f"{self.file}: {self.rows:,} rows, {self.imported:,} imported, {skipped}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "imported": self.imported,
            "skipped": [vars(s) for s in self.skipped],
            "ignored_columns": self.ignored_columns,
        }


def import_file(
    db: Database,
    path: Path,
    *,
    encoding: str | None = None,
    default_status: str = "active",
    default_language: str = "en",
    actor: str | None = None,
) -> ImportReport:
    """Import subscribers from a CSV (comma, semicolon or tab) or JSON file."""
    if default_status not in ("active", "pending"):
        raise ImportFileError(f"the status of imported rows must be active or pending, not {default_status!r}")
    report = ImportReport(file=path.name)
    stream = _open_text(path, encoding)
    with stream:
        columns: tuple[str, ...] | None
        chunks: Iterator[Chunk]
        if path.suffix.lower() == ".json":
            columns, delimiter = None, ","
            chunks = _chunks(_json_records(_read(stream.read, path, encoding), path))
        else:
            columns, delimiter, header_lines = _csv_header(stream, path, encoding, report)
            chunks = _csv_blocks(stream, after=header_lines, delimiter=delimiter, path=path, encoding=encoding)
        who = current_actor() if actor is None else actor
        with transaction(db), _import_cache(db):
            at = now()
            spec = ChunkSpec(
                columns=columns, delimiter=delimiter, default_status=default_status,
                default_language=default_language, at=at, source=f"import:{path.name}",
                file_name=path.name, hashes=_has_suppressions(db),
            )
            # closing: a failure stops the workers before the transaction rolls back.
            may_be_large = _size(path) >= PARALLEL_FROM * MIN_ROW_BYTES
            with closing(_checked_chunks(chunks, spec, may_be_large=may_be_large)) as checked:
                _store(db, checked, report, actor=who, at=at)
    report.skipped.sort(key=lambda s: s.line)
    return report


def _open_text(path: Path, encoding: str | None) -> TextIO:
    """The file as text, refused whole (with what to do) when it is not text at all."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise ImportFileError(f"{path} does not exist") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        head = raw.read(65536)
        wide = (encoding or "").lower().replace("_", "-").startswith(("utf-16", "utf16", "utf-32", "utf32"))
        if not wide and _looks_utf16(head):
            raise ImportFileError(
                f"{path} is UTF-16 text (as Excel's 'Unicode text' saves it), not UTF-8. "
                "Nothing was imported. Import it with --encoding utf-16, or save it as CSV UTF-8."
            )
        if b"\0" in head and not wide:
            raise ImportFileError(
                f"{path} looks like a binary file, not CSV text (a spreadsheet?). "
                "Save or export it as CSV (UTF-8) and import that."
            )
        source: BinaryIO = raw
        if raw.seekable():
            raw.seek(0)
        else:  # a pipe: what was read already goes first
            source = io.BytesIO(head + raw.read())
            raw.close()
        return io.TextIOWrapper(source, encoding=encoding or "utf-8-sig", newline="")
    except LookupError:
        raw.close()
        raise ImportFileError(f"unknown encoding {encoding!r}; try utf-8, cp1252 or latin-1") from None
    except OSError as exc:
        raw.close()
        raise ImportFileError(f"cannot read {path}: {exc.strerror}") from None
    except BaseException:
        raw.close()
        raise


def _undecodable(path: Path, encoding: str | None) -> str:
    """What to say about a file that is not in its encoding: the first byte that is not,
    found by decoding the file again block by block (the import stops at the first error)."""
    name = encoding or "utf-8-sig"
    shown = "UTF-8" if encoding is None else encoding
    decoder = codecs.getincrementaldecoder(name)()
    offset = newlines = 0  # bytes (and newlines among them) handed to the decoder so far
    with path.open("rb") as raw:
        while True:
            block = raw.read(1 << 20)
            pending = decoder.getstate()[0]  # bytes the decoder holds from the last block
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                base = offset - len(pending)  # exc.start counts from the held bytes on
                where = base + exc.start
                line = newlines - pending.count(b"\n") + exc.object[: exc.start].count(b"\n") + 1
                return (
                    f"{path} is not {shown} text: byte {where} (0x{exc.object[exc.start]:02x}) on line {line} "
                    f"cannot be decoded. Nothing was imported. Save the file as UTF-8, or name its "
                    f"encoding with --encoding (e.g. --encoding cp1252 for Excel on Windows)."
                )
            if not block:
                return f"{path} is not {shown} text. Nothing was imported. Save the file as UTF-8."
            offset += len(block)
            newlines += block.count(b"\n")


def _looks_utf16(data: bytes) -> bool:
    """A UTF-16 byte-order mark, or text whose every other byte is NUL."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    head = data[:4096]
    if len(head) < 4:
        return False
    even, odd = head[0::2], head[1::2]
    return even.count(0) > 0.9 * len(even) or odd.count(0) > 0.9 * len(odd)


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def _read(read: Callable[[], str], path: Path, encoding: str | None) -> str:
    """`read()` of the import file (all of it, or a line), its failures in words."""
    try:
        return read()
    except UnicodeDecodeError:
        raise ImportFileError(_undecodable(path, encoding)) from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}") from None


def _csv_header(
    stream: TextIO, path: Path, encoding: str | None, report: ImportReport
) -> tuple[tuple[str, ...], str, int]:
    """The header's column names, the delimiter, and the lines it took (`stream` is left
    at the line after it)."""
    first_line = _read(stream.readline, path, encoding)
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(itertools.chain([first_line] if first_line else [], stream), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(f"{path} is empty; it needs a header row with at least 'email'") from None
    except csv.Error as exc:
        raise ImportFileError(f"{path}, line 1: {exc}") from None
    except UnicodeDecodeError:
        raise ImportFileError(_undecodable(path, encoding)) from None
    columns = [ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    _check_duplicate_columns(header, columns, path)
    _check_header(columns, path, report)
    return tuple(columns), delimiter, reader.line_num


def _csv_blocks(
    stream: TextIO, *, after: int, delimiter: str, path: Path, encoding: str | None
) -> Iterator[CsvBlock]:
    """The CSV's records after its header (which ends on line `after`) in blocks of CHUNK,
    as text cut only where a record ends.

    A line without a quote mark is a whole record. Where a line has one, a quoted field
    may go on over the next lines, and the csv module, reading just that record, says
    where it ends; the checker that parses the block reads it the same way from the same
    place. So this process only looks for quote marks, and never splits a field.
    """
    lines: list[str] = []
    records = 0
    first = after + 1
    source = iter(stream)
    try:
        for text in source:  # the loop every row takes: kept short
            lines.append(text)
            if '"' in text:
                _rest_of_record(text, source, lines, delimiter)
            records += 1
            if records >= CHUNK:
                yield CsvBlock(first, "".join(lines))
                first += len(lines)
                lines = []
                records = 0
        if lines:
            yield CsvBlock(first, "".join(lines))
    except UnicodeDecodeError:
        raise ImportFileError(_undecodable(path, encoding)) from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}") from None


def _rest_of_record(text: str, source: Iterator[str], lines: list[str], delimiter: str) -> None:
    """Add to `lines` the lines after `text` that the record starting with it goes on over."""

    def record() -> Iterator[str]:
        yield text
        for more in source:
            lines.append(more)
            yield more

    # An unreadable record ends where the csv module gives up on it; the checker reports it.
    with suppress(csv.Error):
        next(csv.reader(record(), delimiter=delimiter), None)


def _json_records(text: str, path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{path} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, list):
        raise ImportFileError(f"{path} must hold a JSON list of objects with at least 'email'")
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            item = {"email": "", "_bad": f"item {number} is not an object"}
        yield number, {str(k).lower(): "" if v is None else str(v) for k, v in item.items()}


def _chunks(records: Iterator[Any]) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(records, CHUNK)):
        yield chunk


def _check_duplicate_columns(header: list[str], columns: list[str], path: Path) -> None:
    """Refuse a header that names a column twice: which of the two is meant is a guess."""
    where: dict[str, list[int]] = {}
    for number, column in enumerate(columns, start=1):
        if column:
            where.setdefault(column, []).append(number)
    twice = {column: numbers for column, numbers in where.items() if len(numbers) > 1}
    if twice:
        shown = "; ".join(
            f"{column!r} is " + " and ".join(f"column {n} ({header[n - 1].strip()!r})" for n in numbers)
            for column, numbers in twice.items()
        )
        raise ImportFileError(
            f"{path}: the header row names a column more than once: {shown}. Nothing was "
            "imported. Remove or rename the extra column, then import again."
        )


def _check_header(columns: list[str], path: Path, report: ImportReport) -> None:
    if "email" not in columns:
        found = ", ".join(repr(c) for c in columns) or "nothing"
        raise ImportFileError(
            f"{path}: the header row has no 'email' column (found {found}). "
            "The first line must name the columns, e.g. email,name,lang,cadence"
        )
    # Columns our own export writes but an import cannot take (the times are the new
    # database's own) are expected, not worth a note.
    expected = KNOWN_FIELDS | set(EXPORT_FIELDS)
    report.ignored_columns = sorted({c for c in columns if c and c not in expected})


def _checked_chunks(
    chunks: Iterator[Chunk], spec: ChunkSpec, *, may_be_large: bool
) -> Generator[CheckedChunk, None, None]:
    """The chunks checked, in file order: in WORKERS processes with at most IN_FLIGHT
    chunks out at once when the file may hold PARALLEL_FROM rows or more, else here.

    The workers start before the first chunk is read, while this process is small: a
    forked worker's memory starts as a copy of this process's.
    """
    if not may_be_large or (os.cpu_count() or 1) < 2:
        for chunk in chunks:
            yield check_chunk(spec, chunk)  # type: ignore[arg-type]
        return
    pending: deque[Future[CheckedChunk]] = deque()
    # The checkers die with this process: a killed import must not leave them running.
    with ProcessPoolExecutor(max_workers=WORKERS, initializer=_start_worker, initargs=(os.getpid(),)) as pool:
        try:
            for chunk in chunks:
                pending.append(pool.submit(check_chunk, spec, chunk))  # type: ignore[arg-type]
                if len(pending) >= IN_FLIGHT:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _start_worker(parent: int) -> None:
    die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the importing process handles it (it rolls
    # back and stops us), a worker that stopped too would only add a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _import_cache(db: Database) -> Iterator[None]:
    (before,) = db.execute("PRAGMA cache_size").fetchone()
    db.execute(f"PRAGMA cache_size = {-CACHE_KB}")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size = {int(before)}")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _has_suppressions(db: Database) -> bool:
    return bool(db.execute("SELECT EXISTS (SELECT 1 FROM suppressions)").fetchone()[0])


@dataclass
class _Seen:
    """What the rows stored so far tell about the next ones."""

    first_id: int  # the id of this import's first subscriber; the rest follow in file order
    lines: array[int] = field(default_factory=lambda: array("I"))  # line of each, by id - first_id
    # Addresses whose later rows are duplicates but which the database cannot find as this
    # import's: rows skipped as known or suppressed, and imported non-ASCII addresses (see _known).
    firsts: dict[str, int] = field(default_factory=dict)


def _store(db: Database, chunks: Iterator[CheckedChunk], report: ImportReport, *, actor: str, at: str) -> None:
    seen = _Seen(next_id(db))
    for checked in chunks:
        report.rows += checked.rows
        report.skipped.extend(checked.skipped)
        candidates = _unseen(checked.good, report, seen)
        if not candidates:
            continue
        if (not candidates[0][2] and all(c[3][0].isascii() for c in candidates)
                and _insert(db, candidates, report, seen, actor=actor, at=at, all_or_none=True)):
            # Nothing is suppressed and no address needs _known: the chunk went in whole.
            # Had the database held one of its addresses, nothing would have been written
            # and the addresses would be looked up one by one below.
            continue
        fresh = _fresh(db, candidates, report, seen)
        if fresh:
            _insert(db, fresh, report, seen, actor=actor, at=at)


def _insert(
    db: Database, fresh: list[Good], report: ImportReport, seen: _Seen, *, actor: str, at: str,
    all_or_none: bool = False,
) -> bool:
    if not add_imported(db, [g[3] for g in fresh], first_id=seen.first_id + len(seen.lines),
                        details=[g[4] for g in fresh], actor=actor, at=at, all_or_none=all_or_none):
        return False
    seen.lines.extend(g[0] for g in fresh)
    for line, key, _, row, _ in fresh:
        if not row[0].isascii():
            seen.firsts[key] = line
    report.imported += len(fresh)
    return True


def _unseen(good: list[Good], report: ImportReport, seen: _Seen) -> list[Good]:
    """A chunk's rows less the duplicates of rows before them that the database cannot find."""
    candidates = []
    in_chunk: dict[str, int] = {}
    for item in good:
        line, key, email = item[0], item[1], item[3][0]
        first = in_chunk.get(key) or seen.firsts.get(key)
        if first:
            report.skipped.append(Skipped(
                line, email, f"line {line}: {email} is a duplicate of line {first}", "duplicate"))
            continue
        in_chunk[key] = line
        candidates.append(item)
    return candidates


def _fresh(db: Database, candidates: list[Good], report: ImportReport, seen: _Seen) -> list[Good]:
    """The rows of a chunk to insert; duplicates, known and suppressed addresses reported."""
    marks = ",".join("?" * len(candidates))
    known = {
        email.casefold(): (subscriber_id, status)
        for subscriber_id, email, status in db.execute(
            f"SELECT id, email, status FROM subscribers WHERE email IN ({marks})", [c[3][0] for c in candidates]
        )
    }
    erased: set[str] = set()
    if candidates[0][2]:  # hashes were made: the database has suppressions
        erased = {
            h for (h,) in db.execute(
                f"SELECT email_hash FROM suppressions WHERE email_hash IN ({marks})", [c[2] for c in candidates]
            )
        }
    fresh = []
    for item in candidates:
        line, key, hashed, row, _ = item
        email = row[0]
        found = known.get(key)
        if found is None and not email.isascii():
            found = _known(db, key, seen)
        subscriber_id, status = found or (0, None)
        if subscriber_id >= seen.first_id:
            first = seen.lines[subscriber_id - seen.first_id]
            report.skipped.append(Skipped(
                line, email, f"line {line}: {email} is a duplicate of line {first}", "duplicate"))
            continue
        if status in SUPPRESSED:
            report.skipped.append(Skipped(
                line, email,
                f"line {line}: {email} is {status}; an import never re-activates it "
                "(`newsletter subscribe` does, on their explicit request)", "suppressed"))
        elif status is not None:
            report.skipped.append(Skipped(
                line, email, f"line {line}: {email} is already a subscriber ({status})", "duplicate"))
        elif hashed in erased:
            report.skipped.append(Skipped(
                line, email,
                f"line {line}: this address was erased at the subscriber's request; not imported",
                "suppressed"))
        else:
            fresh.append(item)
            continue
        seen.firsts[key] = line
    return fresh


def _known(db: Database, key: str, seen: _Seen) -> tuple[int, str | None] | None:
    """For a non-ASCII address the database's NOCASE lookup did not find: the one case it
    misses, an address whose casefolded form (straße -> strasse) this import stored already
    as an ASCII address, a duplicate as the file sees it."""
    if not key.isascii():
        return None
    row = db.execute("SELECT id FROM subscribers WHERE email = ? AND id >= ?", [key, seen.first_id]).fetchone()
    return (row[0], None) if row else None


def export(db: Database, out: TextIO, *, fmt: str = "csv") -> int:
    """Write every subscriber to `out` as CSV or JSON (streamed); returns how many."""
    query = (
        "SELECT email, name, language, cadence, status, consent_at, consent_source, created_at, "
        "confirmed_at FROM subscribers ORDER BY id"
    )
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_FIELDS)
        for row in db.execute(query):
            writer.writerow(["" if v is None else neutralise(v) for v in row])
            count += 1
    elif fmt == "json":
        out.write("[")
        for row in db.execute(query):
            out.write(",\n  " if count else "\n  ")
            out.write(json.dumps(dict(zip(EXPORT_FIELDS, row, strict=True)), ensure_ascii=False))
            count += 1
        out.write("\n]\n" if count else "]\n")
    else:
        raise ImportFileError(f"unknown export format {fmt!r}; use csv or json")
    return count
