"""Checking one chunk of an import's rows: the work an import spreads over worker processes.

Plain data in, plain data out, no database: each row's fields are checked, its address
normalised, and its token, suppression hash and database row made, so the process that
stores the chunks only looks up duplicates and inserts. The answers are exactly
`subscribers.normalize_email`'s: the common address (ASCII, a dot-atom before the @, a
plain host name after it) is checked with email-validator's own dot-atom rule and its
domain by email-validator once per distinct domain (cached); anything else, and every
address the quick path is unsure of, goes to normalize_email itself.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from ..config import LANGUAGES
from ..errors import InvalidEmailError, NewsletterError
from .subscribers import (
    CADENCES,
    STATUSES,
    ImportedRow,
    check_name,
    email_hash,
    imported_row,
    normalize_email,
)

# The rules email-validator itself applies to the part before the @; a version that no
# longer has them here sends every address the slow way (normalize_email).
_DOT_ATOM: re.Pattern[str] | None
try:
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH
    from email_validator.rfc_constants import DOT_ATOM_TEXT as _DOT_ATOM
except ImportError:  # pragma: no cover - a future email-validator that moved them
    _DOT_ATOM, CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH = None, [], 254

# An address the quick path may take: no quotes, brackets, spaces or non-ASCII anywhere.
_PLAIN = re.compile(r"([A-Za-z0-9_!#$%&'*+\-/=?^`{|}~.]+)@([A-Za-z0-9.\-]+)")
_MAILBOX_NAMES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
# The same object for every row with the same value: pickling a chunk then sends each once.
_CANONICAL = {v: v for v in (*LANGUAGES, *CADENCES, *STATUSES)}


@dataclass(frozen=True)
class Skipped:
    """One row that was not imported, and why."""

    line: int
    email: str
    reason: str
    kind: str  # invalid, duplicate, suppressed


@dataclass(frozen=True)
class ChunkSpec:
    """What every chunk of one import is checked against."""

    columns: tuple[str, ...] | None  # the CSV header's names; None: records are dicts (JSON)
    delimiter: str
    default_status: str
    default_language: str
    at: str  # the import's time stamp, for every row and event
    source: str  # consent source of rows without one: import:FILE
    file_name: str
    hashes: bool  # make suppression hashes (only when the database has suppressions)


# One good row: (line, casefolded address, suppression hash or "", database row, event detail).
Good = tuple[int, str, str, ImportedRow, str]


@dataclass(frozen=True)
class CsvBlock:
    """Whole records of a CSV file as its text: the importing process cuts the file at
    record ends only (import_export._csv_blocks) and a checker parses the records, so the
    one process that stores never parses a field."""

    first_line: int  # the file's line number of the block's first line
    text: str


@dataclass(frozen=True)
class CheckedChunk:
    """A chunk's outcome: rows counted, the invalid ones, and the good ones in file order."""

    rows: int
    skipped: list[Skipped]
    good: list[Good]


def check_chunk(
    spec: ChunkSpec, records: CsvBlock | list[tuple[int, list[str]]] | list[tuple[int, dict[str, str]]]
) -> CheckedChunk:
    """Check one chunk of records: a block of CSV text, (line, CSV values) with
    spec.columns, or (item, dict)."""
    skipped: list[Skipped] = []
    good: list[Good] = []
    counted = 0
    if isinstance(records, CsvBlock):
        records = parse_block(records, spec.delimiter, skipped)
        counted = len(skipped)  # unreadable records count as rows
    columns = spec.columns
    width = len(columns) if columns is not None else 0
    details: dict[tuple[str, str], str] = {}
    for line, values in records:
        if columns is None:
            assert isinstance(values, dict)
            record = values
        else:
            assert isinstance(values, list)
            if not any(v.strip() for v in values):
                continue  # a blank line
            if len(values) > width and any(v.strip() for v in values[width:]):
                counted += 1
                skipped.append(Skipped(
                    line, values[0] if values else "",
                    f"line {line}: {len(values)} fields but the header has {width} "
                    f"(a '{spec.delimiter}' inside a value needs quotes)", "invalid"))
                continue
            record = {c: (unneutralise(values[i]) if i < len(values) else "") for i, c in enumerate(columns)}
        counted += 1
        row = _check_record(line, record, spec, skipped)
        if row is None:
            continue
        email, name, lang, cadence, status, consent_at, consent_source = row
        try:
            email = quick_normalize(email)
        except InvalidEmailError as exc:
            skipped.append(Skipped(line, email, f"line {line}: {exc}", "invalid"))
            continue
        detail = details.get((cadence, status))
        if detail is None:
            detail = details[cadence, status] = _detail(cadence, status, spec.file_name)
        key = email.casefold()
        good.append((
            line, key, email_hash(email) if spec.hashes else "",
            imported_row(email=email, name=name, language=lang, status=status, cadence=cadence,
                         consent_at=consent_at or spec.at, consent_source=consent_source or spec.source,
                         at=spec.at),
            detail,
        ))
    return CheckedChunk(counted, skipped, good)


def parse_block(block: CsvBlock, delimiter: str, skipped: list[Skipped]) -> list[tuple[int, list[str]]]:
    """The records of a block as (file line they start on, values); a record the csv module
    cannot read is added to `skipped` and left out, and reading goes on after it."""
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(block.text, newline=""), delimiter=delimiter)
    base = block.first_line - 1
    line = 0  # lines of the block read so far
    while True:
        try:
            for values in reader:  # the loop every row takes: kept short
                records.append((base + line + 1, values))
                line = reader.line_num
            return records
        except csv.Error as exc:
            where = base + line + 1
            skipped.append(Skipped(where, "", f"line {where}: unreadable CSV ({exc})", "invalid"))
            line = reader.line_num


def _detail(cadence: str, status: str, file_name: str) -> str:
    return json.dumps({"cadence": cadence, "file": file_name, "status": status}, sort_keys=True)


# OWASP's rule against spreadsheet formula injection: a cell that starts with one of these
# is written with a single quote in front, so a spreadsheet shows it as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def unneutralise(cell: str) -> str:
    """The value that `import_export.neutralise` wrote (our own export imports as it was)."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def _check_record(
    line: int, record: dict[str, str], spec: ChunkSpec, skipped: list[Skipped]
) -> tuple[str, str, str, str, str, str | None, str | None] | None:
    email = record.get("email", "").strip()
    if record.get("_bad"):
        skipped.append(Skipped(line, "", f"{record['_bad']}", "invalid"))
        return None
    problems = []
    lang = record.get("lang", "").strip().lower() or spec.default_language
    if lang not in LANGUAGES:
        problems.append(f"lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    cadence = record.get("cadence", "").strip().lower() or "each"
    if cadence not in CADENCES:
        problems.append(f"cadence must be one of {', '.join(CADENCES)}, not {cadence!r}")
    status = record.get("status", "").strip().lower() or spec.default_status
    if status not in STATUSES:
        problems.append(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    name = ""
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
        skipped.append(Skipped(line, email, f"line {line}: {'; '.join(problems)}", "invalid"))
        return None
    return (email, name, _CANONICAL[lang], _CANONICAL[cadence], _CANONICAL[status], consent_at,
            record.get("consent_source", "").strip() or None)


def quick_normalize(text: str) -> str:
    """normalize_email(text), answered without email-validator for the common address."""
    candidate = (text or "").strip()
    match = _PLAIN.fullmatch(candidate) if _DOT_ATOM is not None else None
    if match is not None and _DOT_ATOM is not None:
        local, domain = match.groups()
        forms = _domain(domain) if _DOT_ATOM.match(local) else None
        if forms is not None:
            unicode_domain, ascii_domain = forms
            if local.lower() in _MAILBOX_NAMES:  # RFC 2142 names, lower-cased as email-validator does
                local = local.lower()
            normalized = f"{local}@{unicode_domain}"
            if (len(candidate) <= EMAIL_MAX_LENGTH and len(normalized.encode()) <= EMAIL_MAX_LENGTH
                    and len(local) + 1 + len(ascii_domain) <= EMAIL_MAX_LENGTH):
                return normalized
    return normalize_email(text)


@lru_cache(maxsize=4096)
def _domain(domain: str) -> tuple[str, str] | None:
    """A domain's normalised and ASCII forms as email-validator gives them, or None when it
    refuses the domain (the full check of the address then says why)."""
    try:
        checked = validate_email(f"a@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return checked.domain, checked.ascii_domain
