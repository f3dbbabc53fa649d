"""Bulk subscriber files: import CSV or JSON with a report of every row skipped, and export.

An import never aborts on a bad row and never loses a good one: each bad row is reported
with its line number and reason, the good rows go in (in one transaction, so a crash
leaves nothing half-done and running the import again is safe). Duplicates inside the file
and against the database are reported, never doubled, and an address that unsubscribed,
bounced, complained or was erased is never re-activated by an import.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from sqlite_utils import Database

from ..children import die_with_parent
from ..config import LANGUAGES
from ..db import now, transaction
from ..errors import ImportFileError, InvalidEmailError, NewsletterError
from .subscribers import (
    CADENCES,
    STATUSES,
    SUPPRESSED,
    NewSubscriber,
    add_imported,
    check_name,
    current_actor,
    email_hash,
    normalize_email,
)

EXPORT_FIELDS = ("email", "name", "lang", "cadence", "status", "consent_at", "consent_source",
                 "created_at", "confirmed_at")
KNOWN_FIELDS = {"email", "name", "lang", "cadence", "status", "consent_at", "consent_source"}
# Header names people bring from other tools and spreadsheets.
ALIASES = {
    "e-mail": "email", "mail": "email", "emailadres": "email", "e-mailadres": "email",
    "email address": "email", "naam": "name", "language": "lang", "taal": "lang",
}
CHUNK = 2000
PARALLEL_FROM = 20000  # rows; below this a second process costs more than it saves


@dataclass(frozen=True)
class Skipped:
    """One row that was not imported, and why."""

    line: int
    email: str
    reason: str
    kind: str  # invalid, duplicate, suppressed


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


@dataclass
class _Row:
    line: int
    email: str
    name: str
    lang: str
    cadence: str
    status: str
    consent_at: str | None
    consent_source: str | None


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
    text = _read_text(path, encoding)
    report = ImportReport(file=path.name)
    if path.suffix.lower() == ".json":
        records = _json_records(text, path)
    else:
        records = _csv_records(text, path, report)
    rows = list(_check_rows(records, report, default_status, default_language))
    checked = _validated_chunks(rows, report)
    _store(db, checked, report, path.name, current_actor() if actor is None else actor)
    report.skipped.sort(key=lambda s: s.line)
    return report


def _read_text(path: Path, encoding: str | None) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(f"{path} does not exist") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}") from None
    if b"\0" in data[:65536] and not (encoding or "").lower().startswith("utf-16"):
        raise ImportFileError(
            f"{path} looks like a binary file, not CSV text (a spreadsheet?). "
            "Save or export it as CSV (UTF-8) and import that."
        )
    name = encoding or "utf-8-sig"
    try:
        return data.decode(name)
    except LookupError:
        raise ImportFileError(f"unknown encoding {encoding!r}; try utf-8, cp1252 or latin-1") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        shown = "UTF-8" if encoding is None else encoding
        raise ImportFileError(
            f"{path} is not {shown} text: byte {exc.start} (0x{data[exc.start]:02x}) on line {line} "
            f"cannot be decoded. Nothing was imported. Save the file as UTF-8, or name its "
            f"encoding with --encoding (e.g. --encoding cp1252 for Excel on Windows)."
        ) from None


def _csv_records(text: str, path: Path, report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(f"{path} is empty; it needs a header row with at least 'email'") from None
    except csv.Error as exc:
        raise ImportFileError(f"{path}, line 1: {exc}") from None
    columns = [ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    _check_header(columns, path, report)
    line = reader.line_num
    while True:
        start = line + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num
            report.rows += 1
            report.skipped.append(Skipped(start, "", f"line {start}: unreadable CSV ({exc})", "invalid"))
            continue
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(columns) and any(v.strip() for v in values[len(columns):]):
            report.rows += 1
            report.skipped.append(Skipped(
                start, values[0] if values else "",
                f"line {start}: {len(values)} fields but the header has {len(columns)} "
                f"(a '{delimiter}' inside a value needs quotes)", "invalid"))
            continue
        yield start, {c: (values[i] if i < len(values) else "") for i, c in enumerate(columns)}


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


def _check_rows(
    records: Iterable[tuple[int, dict[str, str]]],
    report: ImportReport,
    default_status: str,
    default_language: str,
) -> Iterator[_Row]:
    for line, record in records:
        report.rows += 1
        email = record.get("email", "").strip()
        where = f"line {line}"
        if record.get("_bad"):
            report.skipped.append(Skipped(line, "", f"{record['_bad']}", "invalid"))
            continue
        problems = []
        lang = record.get("lang", "").strip().lower() or default_language
        if lang not in LANGUAGES:
            problems.append(f"lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
        cadence = record.get("cadence", "").strip().lower() or "each"
        if cadence not in CADENCES:
            problems.append(f"cadence must be one of {', '.join(CADENCES)}, not {cadence!r}")
        status = record.get("status", "").strip().lower() or default_status
        if status not in STATUSES:
            problems.append(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        try:
            name = check_name(record.get("name", ""))
        except NewsletterError as exc:
            problems.append(str(exc))
        consent_at = record.get("consent_at", "").strip() or None
        if consent_at:
            try:
                datetime.fromisoformat(consent_at)
            except ValueError:
                problems.append(f"consent_at must be an ISO 8601 time, not {consent_at!r}")
        if not email:
            problems.insert(0, "no email address")
        if problems:
            report.skipped.append(Skipped(line, email, f"{where}: {'; '.join(problems)}", "invalid"))
            continue
        yield _Row(line, email, name, lang, cadence, status, consent_at,
                   record.get("consent_source", "").strip() or None)


def _normalize_many(addresses: Sequence[str]) -> list[tuple[str, str]]:
    """(normalised address, "") or ("", reason) for each address."""
    out = []
    for address in addresses:
        try:
            out.append((normalize_email(address), ""))
        except InvalidEmailError as exc:
            out.append(("", str(exc)))
    return out


def _validated_chunks(rows: list[_Row], report: ImportReport) -> Iterator[list[_Row]]:
    """Rows in chunks, each address normalised; invalid ones are reported and left out.

    Syntax checking is the slow part of a large import, so big files check in worker
    processes while this one stores the chunks already checked.
    """
    chunks = [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]
    addresses = [[r.email for r in chunk] for chunk in chunks]
    workers = min(4, os.cpu_count() or 1)
    if len(rows) >= PARALLEL_FROM and workers > 1:
        # The checkers die with this process: a killed import must not leave them running.
        with ProcessPoolExecutor(
            max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            yield from _apply(chunks, pool.map(_normalize_many, addresses), report)
    else:
        yield from _apply(chunks, map(_normalize_many, addresses), report)


def _apply(
    chunks: list[list[_Row]], results: Iterable[list[tuple[str, str]]], report: ImportReport
) -> Iterator[list[_Row]]:
    for chunk, checked in zip(chunks, results, strict=True):
        good = []
        for row, (normalized, reason) in zip(chunk, checked, strict=True):
            if normalized:
                row.email = normalized
                good.append(row)
            else:
                report.skipped.append(Skipped(
                    row.line, row.email,
                    f"line {row.line}: {reason}", "invalid"))
        yield good


def _store(
    db: Database, chunks: Iterable[list[_Row]], report: ImportReport, file_name: str, actor: str
) -> None:
    seen: dict[str, int] = {}
    stamp = now()
    source = f"import:{file_name}"
    # The event detail is the same shape for every row: build its JSON once.
    detail = '{{"cadence": "{}", "file": ' + json.dumps(file_name).replace("{", "{{").replace("}", "}}") + ', "status": "{}"}}'
    with transaction(db):
        for rows in chunks:
            chunk = []
            for row in rows:
                key = row.email.casefold()
                if key in seen:
                    report.skipped.append(Skipped(
                        row.line, row.email,
                        f"line {row.line}: {row.email} is a duplicate of line {seen[key]}", "duplicate"))
                    continue
                seen[key] = row.line
                chunk.append(row)
            if not chunk:
                continue
            marks = ",".join("?" * len(chunk))
            existing = {
                email.casefold(): status
                for email, status in db.execute(
                    f"SELECT email, status FROM subscribers WHERE email IN ({marks})",
                    [r.email for r in chunk],
                )
            }
            hashes = [email_hash(r.email) for r in chunk]
            erased = {
                h for (h,) in db.execute(
                    f"SELECT email_hash FROM suppressions WHERE email_hash IN ({marks})", hashes
                )
            }
            fresh = []
            for row, hashed in zip(chunk, hashes, strict=True):
                status = existing.get(row.email.casefold())
                if status in SUPPRESSED:
                    report.skipped.append(Skipped(
                        row.line, row.email,
                        f"line {row.line}: {row.email} is {status}; an import never re-activates it "
                        "(`newsletter subscribe` does, on their explicit request)", "suppressed"))
                elif status is not None:
                    report.skipped.append(Skipped(
                        row.line, row.email, f"line {row.line}: {row.email} is already a subscriber ({status})",
                        "duplicate"))
                elif hashed in erased:
                    report.skipped.append(Skipped(
                        row.line, row.email,
                        f"line {row.line}: this address was erased at the subscriber's request; not imported",
                        "suppressed"))
                else:
                    fresh.append(row)
            if not fresh:
                continue
            add_imported(
                db,
                [NewSubscriber(r.email, r.name, r.lang, r.status, r.cadence, r.consent_at or stamp,
                               r.consent_source or source) for r in fresh],
                details=[detail.format(r.cadence, r.status) for r in fresh],
                actor=actor,
                at=stamp,
            )
            report.imported += len(fresh)


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
            writer.writerow(["" if v is None else v for v in row])
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
