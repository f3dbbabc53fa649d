"""Importing and exporting subscribers: every bad row reported, good rows kept, nothing doubled."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlite_utils import Database

from newsletter.audience import import_export
from newsletter.audience import subscribers
from newsletter.db import open_db
from newsletter.errors import ImportFileError


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_db(tmp_path / "subscribers.db")


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def emails(db: Database) -> list[tuple[str, str]]:
    return db.execute("SELECT email, status FROM subscribers ORDER BY id").fetchall()


def test_a_semicolon_file_with_bom_and_crlf_imports_with_names_intact(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "leden.csv", "\ufeffemail;name;lang;cadence\r\n"
                 "anna@example.nl;Anna “Annie” de Vries;nl;each\r\n"
                 "chloe@example.nl;Chloé Müller;en;weekly\r\n"
                 "zoë@example.nl;Zoë;nl;each\r\n")
    report = import_export.import_file(db, path)
    assert (report.rows, report.imported) == (3, 2)
    assert [s.reason for s in report.skipped] == [
        "line 4: 'zoë@example.nl' is not an email address: Internationalized characters before "
        "the @-sign are not supported: 'ë'."]
    rows = db.execute("SELECT email, name, language, cadence, status FROM subscribers ORDER BY id").fetchall()
    assert rows == [
        ("anna@example.nl", "Anna “Annie” de Vries", "nl", "each", "active"),
        ("chloe@example.nl", "Chloé Müller", "en", "weekly", "active"),
    ]
    assert report.summary() == "leden.csv: 3 rows, 2 imported, 1 skipped (1 invalid)"
    assert db.execute("SELECT count(*) FROM events WHERE kind = 'subscribed' AND source = 'import'").fetchone()[0] == 2


def test_bad_rows_are_reported_by_line_and_the_good_rows_are_imported(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "mixed.csv", (
        "email,name,lang,cadence\n"          # line 1
        "good1@example.nl,One,nl,each\n"     # 2
        "ann@,Broken,nl,each\n"              # 3
        "good2@example.nl,Two,,\n"           # 4
        "x@example.nl,Bad lang,de,each\n"    # 5
        "\n"                                 # 6 (blank, ignored)
        "y@example.nl,Bad cadence,nl,monthly\n"  # 7
        "z@example.nl,Too,many,each,fields\n"    # 8
        ",No address,nl,each\n"              # 9
        '"good3@example.nl","Three, with comma",en,daily\n'  # 10
    ))
    report = import_export.import_file(db, path)
    assert report.imported == 3
    assert [(s.line, s.kind) for s in report.skipped] == [
        (3, "invalid"), (5, "invalid"), (7, "invalid"), (8, "invalid"), (9, "invalid")]
    reasons = [s.reason for s in report.skipped]
    assert reasons[0].startswith("line 3: 'ann@' is not an email address")
    assert reasons[1] == "line 5: lang must be one of nl, en, not 'de'"
    assert reasons[2] == "line 7: cadence must be one of each, daily, weekly, not 'monthly'"
    assert reasons[3].startswith("line 8: 5 fields but the header has 4")
    assert reasons[4] == "line 9: no email address"
    assert [e for e, _ in emails(db)] == ["good1@example.nl", "good2@example.nl", "good3@example.nl"]
    assert report.summary() == "mixed.csv: 8 rows, 3 imported, 5 skipped (5 invalid)"


def test_a_row_whose_name_holds_a_unicode_line_break_is_skipped(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "names.csv", "email,name\nann@example.nl,Ann\u2028Bcc: x@evil.example\nbob@example.nl,Bob\n")
    report = import_export.import_file(db, path)
    assert report.imported == 1
    assert [(s.line, s.kind, s.reason) for s in report.skipped] == [
        (2, "invalid", "line 2: a name must be one line of text without control characters")]
    assert emails(db) == [("bob@example.nl", "active")]


def test_duplicates_in_the_file_and_in_the_database_are_never_doubled(db: Database, tmp_path: Path) -> None:
    subscribers.subscribe(db, "known@example.nl", name="Known", confirmed=True)
    path = write(tmp_path, "dups.csv", "email\nnew@example.nl\nNEW@example.nl\nknown@example.nl\n")
    report = import_export.import_file(db, path)
    assert report.imported == 1
    assert [s.reason for s in report.skipped] == [
        "line 3: NEW@example.nl is a duplicate of line 2",
        "line 4: known@example.nl is already a subscriber (active)",
    ]
    assert emails(db) == [("known@example.nl", "active"), ("new@example.nl", "active")]
    again = import_export.import_file(db, path)
    assert again.imported == 0 and db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 2


def test_an_import_never_reactivates_unsubscribed_bounced_complained_or_erased(db: Database, tmp_path: Path) -> None:
    for address, status in [("u@example.nl", "unsubscribed"), ("b@example.nl", "bounced"), ("c@example.nl", "complained")]:
        subscribers.subscribe(db, address, confirmed=True)
        subscribers.set_status(db, address, status, source="cli")
    subscribers.subscribe(db, "gone@example.nl")
    subscribers.erase(db, "gone@example.nl")
    path = write(tmp_path, "back.csv", "email,status\nu@example.nl,active\nb@example.nl,\nc@example.nl,\nGONE@example.nl,\n")
    report = import_export.import_file(db, path)
    assert report.imported == 0
    assert [s.kind for s in report.skipped] == ["suppressed"] * 4
    assert "is unsubscribed; an import never re-activates it" in report.skipped[0].reason
    assert "erased at the subscriber's request" in report.skipped[3].reason
    assert emails(db) == [("u@example.nl", "unsubscribed"), ("b@example.nl", "bounced"), ("c@example.nl", "complained")]


def test_imported_subscribers_never_inherit_an_erased_subscribers_id(db: Database, tmp_path: Path) -> None:
    ann = subscribers.subscribe(db, "ann@example.nl", confirmed=True).subscriber
    subscribers.erase(db, "ann@example.nl")
    import_export.import_file(db, write(tmp_path, "new.csv", "email\nbob@example.nl\ncas@example.nl\n"))
    ids = [row[0] for row in db.execute("SELECT id FROM subscribers ORDER BY id")]
    assert len(ids) == 2 and ann["id"] not in ids
    for new_id in ids:
        assert [e["kind"] for e in subscribers.events_for(db, new_id)] == ["subscribed"]


def test_a_file_that_is_not_utf8_is_refused_with_the_byte_offset_and_nothing_is_stored(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "excel.csv", "email;name\nfrancois@example.nl;François\n".encode("cp1252"))
    with pytest.raises(ImportFileError) as info:
        import_export.import_file(db, path)
    assert "is not UTF-8 text: byte 35 (0xe7) on line 2" in str(info.value)
    assert "--encoding" in str(info.value)
    assert emails(db) == []
    report = import_export.import_file(db, path, encoding="cp1252")
    assert report.imported == 1
    assert db.execute("SELECT name FROM subscribers").fetchone() == ("François",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name,lang\nAnn,nl\n", "the header row has no 'email' column (found 'name', 'lang')"),
        (b"", "is empty; it needs a header row"),
        (b"PK\x03\x04\x00\x00binary", "looks like a binary file"),
    ],
)
def test_unusable_files_are_refused_whole_with_what_to_do(db: Database, tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_export.import_file(db, write(tmp_path, "f.csv", data))
    assert emails(db) == []


def test_a_missing_file_is_a_clear_error(db: Database, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="does not exist"):
        import_export.import_file(db, tmp_path / "nope.csv")


def test_a_quoted_value_spanning_lines_keeps_line_numbers_right(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "multi.csv", 'email,notes\na@example.nl,"Two\nlines"\nbad@,x\n')
    report = import_export.import_file(db, path)
    assert report.imported == 1
    assert [s.line for s in report.skipped] == [4]
    assert report.ignored_columns == ["notes"]


def test_export_round_trips_through_import_in_csv_and_json(db: Database, tmp_path: Path) -> None:
    subscribers.subscribe(db, "a@example.nl", name="Ann “A”", language="nl", cadence="weekly", confirmed=True)
    subscribers.subscribe(db, "b@example.nl", name="Bob, Jr.", language="en")
    subscribers.subscribe(db, "c@example.nl", confirmed=True)
    subscribers.unsubscribe(db, "c@example.nl")
    query = "SELECT email, name, language, cadence, status, consent_at FROM subscribers ORDER BY email"
    for fmt in ("csv", "json"):
        out = io.StringIO()
        assert import_export.export(db, out, fmt=fmt) == 3
        path = write(tmp_path, f"export.{fmt}", out.getvalue())
        if fmt == "json":
            assert len(json.loads(out.getvalue())) == 3
        other = open_db(tmp_path / f"other-{fmt}.db")
        report = import_export.import_file(other, path)
        assert report.imported == 3, report.skipped
        assert other.execute(query).fetchall() == db.execute(query).fetchall()
        assert "token" not in out.getvalue()


def test_a_large_import_validates_in_parallel_and_keeps_order(db: Database, tmp_path: Path) -> None:
    lines = ["email,name"] + [f"user{i}@example{i % 7}.nl,User {i}" for i in range(import_export.PARALLEL_FROM + 10)]
    lines[5] = "broken@,Broken"
    path = write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    report = import_export.import_file(db, path)
    assert report.imported == import_export.PARALLEL_FROM + 9
    assert [s.line for s in report.skipped] == [6]
    assert db.execute("SELECT email FROM subscribers ORDER BY id LIMIT 1").fetchone() == ("user0@example0.nl",)
    assert db.execute("SELECT count(DISTINCT token) FROM subscribers").fetchone()[0] == report.imported


def test_reimporting_our_own_export_notes_no_ignored_columns(db: Database, tmp_path: Path) -> None:
    subscribers.subscribe(db, "a@example.nl", confirmed=True)
    out = io.StringIO()
    import_export.export(db, out)
    report = import_export.import_file(open_db(tmp_path / "copy.db"), write(tmp_path, "export.csv", out.getvalue()))
    assert report.imported == 1 and report.ignored_columns == []
