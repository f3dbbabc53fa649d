"""A large import streams in bounded chunks and still reports, refuses and stores exactly as a small one."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from processes_helpers import alive, children_of, spawn_env, wait_for

from newsletter.audience import import_export, import_rows
from newsletter.audience.subscribers import normalize_email
from newsletter.db import now, open_db
from newsletter.errors import InvalidEmailError


def cpu_ticks(pid: int) -> int:
    """User plus system time a process has used, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def big_file(path: Path, rows: int) -> None:
    lines = ["email,name"] + [f"lid{i}@voorbeeld{i % 13}.nl,Lid {i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def count(database: Path, table: str = "subscribers") -> int:
    with sqlite3.connect(database) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_rows_in_late_chunks_are_reported_by_their_line_and_duplicates_found_across_chunks(
    workdir: Path, invoke: Callable[..., Result], run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    invoke("subscribe", "known@example.nl", "--confirmed")
    invoke("subscribe", "left@example.nl", "--confirmed")
    invoke("unsubscribe", "left@example.nl")
    rows = import_export.PARALLEL_FROM + 10 * import_export.CHUNK  # the last 10 chunks go to the workers
    physical = ["email,name,notes"]  # line 1
    physical.append("first@example.nl,First,")  # line 2
    physical.append('quoted@example.nl,Quoted,"two')  # line 3: a value spanning lines 3 and 4
    physical.append('lines"')
    for i in range(rows):
        physical.append(f"lid{i}@voorbeeld{i % 13}.nl,Lid {i},")
    late = len(physical)  # the line numbers of the rows added now, in the last chunks
    physical += [
        "FIRST@example.nl,First again,",           # late + 1: a duplicate of line 2
        "broken@,Broken,",                          # late + 2
        "known@example.nl,Known,",                  # late + 3
        "left@example.nl,Left,",                    # late + 4
        "extra@example.nl,Extra,x,y",               # late + 5: too many fields
        "",                                         # late + 6: blank, not a row
        "lid7@voorbeeld7.nl,Lid 7 again,",          # late + 7: a duplicate of line 12
        "last@example.nl,Last,",                    # late + 8
    ]
    (workdir / "leden.csv").write_text("\n".join(physical) + "\n", encoding="utf-8")

    result = run_cli("subscribers", "import", "leden.csv", "--json", cwd=workdir, timeout=300)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(s["line"], s["kind"]) for s in report["skipped"]] == [
        (late + 1, "duplicate"), (late + 2, "invalid"), (late + 3, "duplicate"), (late + 4, "suppressed"),
        (late + 5, "invalid"), (late + 7, "duplicate")]
    reasons = [s["reason"] for s in report["skipped"]]
    assert reasons[0] == f"line {late + 1}: FIRST@example.nl is a duplicate of line 2"
    assert reasons[1].startswith(f"line {late + 2}: 'broken@' is not an email address")
    assert reasons[2] == f"line {late + 3}: known@example.nl is already a subscriber (active)"
    assert reasons[3].startswith(f"line {late + 4}: left@example.nl is unsubscribed; an import never re-activates it")
    assert reasons[4].startswith(f"line {late + 5}: 4 fields but the header has 3")
    assert reasons[5] == f"line {late + 7}: lid7@voorbeeld7.nl is a duplicate of line 12"
    imported = rows + 3  # first, quoted, the numbered rows and last
    assert (report["rows"], report["imported"]) == (rows + 2 + 7, imported)
    assert report["ignored_columns"] == ["notes"]
    database = workdir / "subscribers.db"
    assert count(database) == imported + 2
    with sqlite3.connect(database) as conn:
        ordered = [e for (e,) in conn.execute("SELECT email FROM subscribers ORDER BY id")]
        (events,) = conn.execute("SELECT count(*) FROM events WHERE kind = 'subscribed' AND source = 'import'").fetchone()
        (tokens,) = conn.execute("SELECT count(DISTINCT token) FROM subscribers").fetchone()
    assert ordered[2:5] == ["first@example.nl", "quoted@example.nl", "lid0@voorbeeld0.nl"]
    assert ordered[-2:] == [f"lid{rows - 1}@voorbeeld{(rows - 1) % 13}.nl", "last@example.nl"]
    assert events == imported and tokens == imported + 2


def _start_import(workdir: Path, rows: int) -> subprocess.Popen[str]:
    big_file(workdir / "groot.csv", rows)
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "subscribers", "import", "groot.csv"],
        cwd=workdir, env=spawn_env({}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )


def _wait_until_workers_check_chunks(proc: subprocess.Popen[str]) -> set[int]:
    """The worker pids, once they have done some of the checking (the import is under way)."""
    workers: set[int] = set()

    def working() -> bool:
        workers.update(children_of(proc.pid))
        return sum(cpu_ticks(pid) for pid in workers) >= 10 or proc.poll() is not None

    wait_for(working, timeout=120, step=0.01)
    assert proc.poll() is None, "the import finished before it could be interrupted"
    return workers


def test_ctrl_c_during_a_large_import_stores_nothing_and_stops_the_workers_without_a_traceback(workdir: Path) -> None:
    proc = _start_import(workdir, 300_000)
    try:
        workers = _wait_until_workers_check_chunks(proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert "Traceback" not in err and err.endswith("Aborted!\n"), err
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)
    assert count(workdir / "subscribers.db") == 0
    assert count(workdir / "subscribers.db", "events") == 0


def test_a_large_import_killed_midway_leaves_no_partial_chunk_and_runs_again_whole(
    workdir: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    rows = 60_000
    proc = _start_import(workdir, rows)
    try:
        _wait_until_workers_check_chunks(proc)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert count(workdir / "subscribers.db") == 0
    assert count(workdir / "subscribers.db", "events") == 0
    again = run_cli("subscribers", "import", "groot.csv", cwd=workdir, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[-1] == f"groot.csv: {rows:,} rows, {rows:,} imported, 0 skipped"
    assert count(workdir / "subscribers.db") == rows


def test_blocks_are_cut_only_where_a_record_ends_whatever_the_quotes(tmp_path: Path) -> None:
    # Quoted values spanning lines exactly where a block of CHUNK records ends, a lone quote
    # mark inside an unquoted value (which would make counting quote marks go wrong for the
    # rest of the file), a record the csv module cannot read, and a duplicate after all of
    # them: every row is read as one reading of the whole file with the csv module reads it.
    chunk = import_export.CHUNK
    physical = ["email,name,notes"]
    record_lines: list[int] = []  # the line each record starts on

    def record(*lines: str) -> None:
        record_lines.append(len(physical) + 1)
        physical.extend(lines)

    total = import_export.PARALLEL_FROM + 3 * chunk
    too_long = "x" * (csv.field_size_limit() + 1)
    for i in range(total):
        if i == chunk - 1:  # the last record of the first block goes on over three lines
            record(f"lid{i}@example.nl,Lid {i},\"ends", "the", 'block"')
        elif i == chunk:
            record(f'lid{i}@example.nl,"Lid {i}","starts', 'the next"')
        elif i == chunk + 10:
            record(f'lid{i}@example.nl,Scherm 5" breed,')  # a lone quote: a literal quote mark
        elif i == chunk + 20:
            record(f'lid{i}@example.nl,"Jansen, ""JJ""","a ""quoted""', 'note",')
        elif i == 2 * chunk - 1:
            record(f'lid{i}@example.nl,Lid {i},"{too_long}"')
        else:
            record(f"lid{i}@example.nl,Lid {i},")
    record("LID5@example.nl,Again,")
    path = tmp_path / "quotes.csv"
    path.write_text("\n".join(physical) + "\n", encoding="utf-8")
    with path.open(newline="", encoding="utf-8") as handle:  # the reading to match
        whole = csv.reader(handle)
        starts, unread, line = [], [], 1
        next(whole)
        while True:
            try:
                for _ in whole:
                    starts.append(line + 1)
                    line = whole.line_num
                break
            except csv.Error:
                unread.append(line + 1)
                line = whole.line_num
    assert sorted(starts + unread) == record_lines  # the file is as meant
    db = open_db(tmp_path / "subscribers.db")

    report = import_export.import_file(db, path)

    unreadable = record_lines[2 * chunk - 1]
    assert unread == [unreadable]
    assert report.rows == total + 1
    assert [(s.line, s.kind) for s in report.skipped] == [(unreadable, "invalid"), (record_lines[-1], "duplicate")]
    assert "unreadable CSV" in report.skipped[0].reason
    assert report.skipped[1].reason.endswith(f"is a duplicate of line {record_lines[5]}")
    assert report.imported == total - 1
    names = dict(db.execute("SELECT email, name FROM subscribers").fetchall())
    assert names[f"lid{chunk + 10}@example.nl"] == 'Scherm 5" breed'
    assert names[f"lid{chunk + 20}@example.nl"] == 'Jansen, "JJ"'
    assert names[f"lid{chunk}@example.nl"] == f"Lid {chunk}"
    assert names[f"lid{chunk + 21}@example.nl"] == f"Lid {chunk + 21}"
    assert names[f"lid{total - 1}@example.nl"] == f"Lid {total - 1}"


def test_a_chunk_with_an_address_already_stored_goes_in_without_it_and_writes_no_stray_event(tmp_path: Path) -> None:
    # The chunk is first inserted whole; the database refusing one of its rows undoes the
    # chunk's rows (and no event is written for them) before each address is looked up.
    db = open_db(tmp_path / "subscribers.db")
    (tmp_path / "first.csv").write_text("email\nb@example.nl\n", encoding="utf-8")
    import_export.import_file(db, tmp_path / "first.csv")
    (tmp_path / "second.csv").write_text("email\na@example.nl\nB@example.nl\nc@example.nl\n", encoding="utf-8")

    report = import_export.import_file(db, tmp_path / "second.csv")

    assert report.imported == 2
    assert [(s.line, s.kind) for s in report.skipped] == [(3, "duplicate")]
    rows = db.execute("SELECT id, email FROM subscribers ORDER BY id").fetchall()
    assert rows == [(1, "b@example.nl"), (2, "a@example.nl"), (3, "c@example.nl")]
    events = db.execute("SELECT subscriber_id FROM events WHERE kind = 'subscribed' ORDER BY id").fetchall()
    assert events == [(1,), (2,), (3,)]


def test_the_checkers_never_have_more_than_a_few_chunks_out() -> None:
    spec = import_rows.ChunkSpec(
        columns=("email", "name"), delimiter=",", default_status="active", default_language="nl",
        at=now(), source="import:test.csv", file_name="test.csv", hashes=False)
    total = import_export.PARALLEL_FROM // import_export.CHUNK + 12
    pulled = 0

    def chunks() -> Iterator[list[import_export.Record]]:
        nonlocal pulled
        for c in range(total):
            pulled += 1
            base = c * import_export.CHUNK
            yield [(base + i + 2, [f"lid{base + i}@example.nl", "Lid"]) for i in range(import_export.CHUNK)]

    lines = []
    checked = import_export._checked_chunks(chunks(), spec, may_be_large=True)
    for done, chunk in enumerate(checked, start=1):
        assert pulled - done <= import_export.IN_FLIGHT
        lines += [g[0] for g in chunk.good]
    assert lines == list(range(2, total * import_export.CHUNK + 2))


@pytest.mark.parametrize("first, later", [("a@strasse.de", "a@straße.de"), ("a@straße.de", "a@STRASSE.de")])
def test_addresses_equal_when_casefolded_are_duplicates_across_chunks(tmp_path: Path, first: str, later: str) -> None:
    filler = [f"lid{i}@example.nl" for i in range(import_export.CHUNK + 5)]
    (tmp_path / "leden.csv").write_text("\n".join(["email", first, *filler, later]) + "\n", encoding="utf-8")
    report = import_export.import_file(open_db(tmp_path / "subscribers.db"), tmp_path / "leden.csv")
    assert report.imported == len(filler) + 1
    assert [(s.line, s.kind) for s in report.skipped] == [(len(filler) + 3, "duplicate")]
    assert report.skipped[0].reason.endswith("is a duplicate of line 2")


ADDRESSES = [
    "ann@example.nl", "Ann.de.Vries@Example.NL", " padded@example.nl ", "a+tag@gmail.com", "o'brien@example.ie",
    "INFO@example.nl", "Postmaster@EXAMPLE.com", "webmaster@b.nl", "a..b@example.nl", ".a@example.nl",
    "a.@example.nl", "a@localhost", "a@example", "a@b.test", "a@b.invalid", "a@b.local", "a@b.onion",
    "a@xn--strae-oqa.de", "a@straße.de", "user@sub-domain.example.co.uk", "x@-bad.nl", "x@bad-.nl",
    "x@123.456", "a@b..nl", "a@.nl", "a@nl.", "a@exa_mple.com", "A@B.CO", "a@b.c", "a@b.c0",
    "x" * 64 + "@example.nl", "x" * 65 + "@example.nl", "a@" + "b" * 63 + ".nl", "a@" + "b" * 64 + ".nl",
    "a" * 60 + "@" + ".".join(["c" * 60] * 3) + ".nl", "a" * 64 + "@" + ".".join(["c" * 61] * 3) + ".nl",
    "first last@example.nl", "<a@b.nl>", "Ann <a@b.nl>", '"quoted"@example.nl', "a@[127.0.0.1]",
    "zoë@example.nl", "a@b@c.nl", "@example.nl", "a@", "", "   ", "a@EXAMPLE.NL.", "a@bücher.de",
    "a@xn--bcher-kva.de", "ab@ex--ample.nl", "a@xn--ab.nl", "a#b$c%d&e*f@example.nl", "{a}|~`^=?@example.nl",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_quick_address_check_answers_exactly_as_email_validator(address: str) -> None:
    try:
        expected = normalize_email(address)
    except InvalidEmailError as exc:
        with pytest.raises(InvalidEmailError) as info:
            import_rows.quick_normalize(address)
        assert str(info.value) == str(exc)
    else:
        assert import_rows.quick_normalize(address) == expected
