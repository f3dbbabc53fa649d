"""The subscriber commands as a user types them: output streams, exit codes, messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import Result


def test_subscribe_then_list_and_show_as_json(workdir: Path, invoke: Callable[..., Result]) -> None:
    result = invoke("subscribe", "ann@example.nl", "--name", "Ann", "--confirmed", "--cadence", "weekly")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "Subscribed ann@example.nl (active)." in result.stderr
    listed = json.loads(invoke("subscribers", "list", "--json").stdout)
    assert [(r["email"], r["name"], r["language"], r["cadence"], r["status"]) for r in listed] == [
        ("ann@example.nl", "Ann", "nl", "weekly", "active")]
    assert "token" not in listed[0]
    shown = json.loads(invoke("subscribers", "show", "ANN@example.nl", "--json").stdout)
    assert shown["email"] == "ann@example.nl"
    assert [e["kind"] for e in shown["events"]] == ["subscribed"]


def test_subscribing_twice_says_so_and_changes_nothing(workdir: Path, invoke: Callable[..., Result]) -> None:
    invoke("subscribe", "ann@example.nl")
    result = invoke("subscribe", "Ann@Example.nl", "--confirmed")
    assert result.exit_code == 0
    assert "already subscribed (pending); nothing changed" in result.stderr
    assert json.loads(invoke("subscribers", "count", "--json").stdout)["pending"] == 1


def test_an_invalid_address_exits_1_with_an_error(workdir: Path, invoke: Callable[..., Result]) -> None:
    result = invoke("subscribe", "ann@")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 'ann@' is not an email address")


def test_a_bad_option_value_is_a_usage_error_with_exit_2(workdir: Path, invoke: Callable[..., Result]) -> None:
    result = invoke("subscribe", "ann@example.nl", "--cadence", "hourly")
    assert result.exit_code == 2
    assert "Invalid value for '--cadence'" in result.stderr


def test_list_filters_by_status_and_prints_a_table(workdir: Path, invoke: Callable[..., Result]) -> None:
    invoke("subscribe", "a@example.nl", "--confirmed")
    invoke("subscribe", "b@example.nl")
    invoke("unsubscribe", "a@example.nl")
    table = invoke("subscribers", "list", "--status", "unsubscribed").stdout.splitlines()
    assert table[0].split() == ["email", "name", "language", "cadence", "status", "created_at"]
    assert len(table) == 2 and table[1].startswith("a@example.nl")
    empty = invoke("subscribers", "list", "--status", "bounced")
    assert empty.stdout == "" and "No subscribers with status bounced." in empty.stderr


def test_import_reports_each_bad_row_and_a_summary(workdir: Path, invoke: Callable[..., Result]) -> None:
    path = workdir / "leden.csv"
    path.write_text("email;naam\nann@example.nl;Ann\nbob@;Bob\nann@example.nl;Ann\n", encoding="utf-8")
    result = invoke("subscribers", "import", str(path))
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "skipped line 3: 'bob@' is not an email address: There must be something after the @-sign.",
        "skipped line 4: ann@example.nl is a duplicate of line 2",
        "leden.csv: 3 rows, 1 imported, 2 skipped (1 duplicate, 1 invalid)",
    ]
    shown = json.loads(invoke("subscribers", "show", "ann@example.nl", "--json").stdout)
    assert shown["name"] == "Ann" and shown["language"] == "nl"


def test_import_of_an_unreadable_file_exits_1_and_keeps_what_was_stored(workdir: Path, invoke: Callable[..., Result]) -> None:
    invoke("subscribe", "kept@example.nl", "--confirmed")
    path = workdir / "latin1.csv"
    path.write_bytes("email,name\nze@example.nl,Zoë\n".encode("latin-1"))
    result = invoke("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "is not UTF-8 text" in result.stderr and "--encoding" in result.stderr
    assert json.loads(invoke("subscribers", "count", "--json").stdout)["total"] == 1


def test_export_then_import_elsewhere_gives_the_same_list(
    workdir: Path, invoke: Callable[..., Result], tmp_path: Path, monkeypatch
) -> None:
    invoke("subscribe", "a@example.nl", "--name", "Ann", "--confirmed")
    invoke("subscribe", "b@example.nl", "--lang", "en", "--cadence", "daily")
    exported = invoke("subscribers", "export", "--format", "json").stdout
    (tmp_path / "out.json").write_text(exported, encoding="utf-8")
    invoke("init", str(tmp_path / "copy"))
    monkeypatch.chdir(tmp_path / "copy")
    assert invoke("subscribers", "import", str(tmp_path / "out.json")).exit_code == 0
    copied = json.loads(invoke("subscribers", "list", "--json").stdout)
    assert [(r["email"], r["name"], r["language"], r["cadence"], r["status"]) for r in copied] == [
        ("a@example.nl", "Ann", "nl", "each", "active"), ("b@example.nl", "", "en", "daily", "pending")]


def test_erase_asks_first_and_then_leaves_only_a_hash(workdir: Path, invoke: Callable[..., Result]) -> None:
    invoke("subscribe", "ann@example.nl", "--confirmed")
    declined = invoke("subscribers", "erase", "ann@example.nl", input="n\n")
    assert declined.exit_code == 1
    assert json.loads(invoke("subscribers", "count", "--json").stdout)["total"] == 1
    result = invoke("subscribers", "erase", "ann@example.nl", "--yes")
    assert result.exit_code == 0
    assert json.loads(invoke("subscribers", "count", "--json").stdout)["total"] == 0
    path = workdir / "again.csv"
    path.write_text("email\nann@example.nl\n", encoding="utf-8")
    again = invoke("subscribers", "import", str(path))
    assert "erased at the subscriber's request" in again.stderr
    assert json.loads(invoke("subscribers", "count", "--json").stdout)["total"] == 0


def test_set_changes_the_cadence(workdir: Path, invoke: Callable[..., Result]) -> None:
    invoke("subscribe", "ann@example.nl")
    assert invoke("subscribers", "set", "ann@example.nl", "--cadence", "daily").exit_code == 0
    assert json.loads(invoke("subscribers", "show", "ann@example.nl", "--json").stdout)["cadence"] == "daily"
    assert invoke("subscribers", "set", "ann@example.nl").exit_code == 2


def secret_not_in(text: str, workdir: Path) -> bool:
    from newsletter.db import open_db

    tokens = [t for (t,) in open_db(workdir / "subscribers.db").execute("SELECT token FROM subscribers")]
    return bool(tokens) and not any(t in text for t in tokens)


def test_subscribe_sends_the_confirmation_email_through_the_relay(
    workdir: Path, invoke: Callable[..., Result], monkeypatch
) -> None:
    from smtp_server import Server

    server = Server().start()
    try:
        monkeypatch.setenv("NEWSLETTER_SMTP_URL", server.url)
        result = invoke("subscribe", "ann@example.nl", "--name", "Ann")
        assert result.exit_code == 0, result.stderr
        assert "Sent the confirmation email to ann@example.nl" in result.stderr
        assert "NOTHING LEFT" not in result.stderr
        shown = json.loads(invoke("subscribers", "show", "ann@example.nl", "--json").stdout)
        assert shown["status"] == "pending"
        assert [e["kind"] for e in shown["events"]] == ["subscribed", "confirmation_sent"]
        [message] = server.handler.messages
        assert message.rcpt == "ann@example.nl"
        assert secret_not_in(invoke("subscribers", "export", "--format", "json").stdout, workdir)
        from newsletter.db import open_db

        (secret,) = open_db(workdir / "subscribers.db").execute("SELECT token FROM subscribers").fetchone()
        assert f"https://example.nl/c/{secret}".encode() in message.data.replace(b"=\r\n", b"")

        assert invoke("subscribe", "bob@example.nl", "--confirmed").exit_code == 0
        assert len(server.handler.messages) == 1  # no confirmation for a confirmed subscriber
    finally:
        server.stop()


def test_a_refused_confirmation_keeps_the_subscriber_pending_and_says_how_to_retry(
    workdir: Path, invoke: Callable[..., Result], monkeypatch
) -> None:
    from smtp_server import Server

    server = Server().start()
    try:
        monkeypatch.setenv("NEWSLETTER_SMTP_URL", server.url)
        server.handler.on_data = lambda rcpt, seen: "550 5.7.1 policy says no"
        result = invoke("subscribe", "ann@example.nl")
        assert result.exit_code == 1
        assert "Error: ann@example.nl is stored as pending, but the confirmation email" in result.stderr
        assert "newsletter subscribers resend-confirmation ann@example.nl" in result.stderr
        assert json.loads(invoke("subscribers", "show", "ann@example.nl", "--json").stdout)["status"] == "pending"
        server.handler.on_data = None
        again = invoke("subscribers", "resend-confirmation", "ann@example.nl")
        assert again.exit_code == 0, again.stderr
        assert [m.rcpt for m in server.handler.messages] == ["ann@example.nl"]
    finally:
        server.stop()


def test_without_a_relay_the_confirmation_is_captured_and_the_user_told(
    workdir: Path, invoke: Callable[..., Result]
) -> None:
    result = invoke("subscribe", "ann@example.nl")
    assert result.exit_code == 0
    assert "NOTHING LEFT THIS MACHINE" in result.stderr
    [eml] = list((workdir / "outbox").rglob("*.eml"))
    assert b"ann@example.nl" in eml.read_bytes()


def test_export_to_a_folder_that_does_not_exist_is_an_error_not_a_traceback(
    workdir: Path, invoke: Callable[..., Result]
) -> None:
    invoke("subscribe", "ann@example.nl", "--confirmed")
    result = invoke("subscribers", "export", "-o", str(workdir / "missing" / "leden.csv"))
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot write {workdir / 'missing' / 'leden.csv'}: No such file or directory\n"


def test_a_database_locked_by_another_process_is_an_error_not_a_traceback(
    workdir: Path, invoke: Callable[..., Result], monkeypatch
) -> None:
    import sqlite3

    import newsletter.db

    monkeypatch.setattr(newsletter.db, "BUSY_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(workdir / "subscribers.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = invoke("subscribe", "ann@example.nl", "--confirmed")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the database is busy (database is locked)")


def test_a_killed_import_leaves_no_worker_process_running(workdir: Path) -> None:
    import signal
    import subprocess
    import sys

    from processes_helpers import alive, children_of, spawn_env, wait_for

    rows = 120_000  # well past PARALLEL_FROM: the addresses are checked in worker processes
    lines = ["email,name"] + [f"lid{i}@voorbeeld{i % 13}.nl,Lid {i}" for i in range(rows)]
    (workdir / "groot.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "subscribers", "import", "groot.csv"],
        cwd=workdir, env=spawn_env({}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()

    def workers_started() -> bool:
        workers.update(children_of(proc.pid))
        return len(workers) >= 2

    try:
        wait_for(workers_started, timeout=60, step=0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)


def test_a_long_list_is_streamed_aligned_to_its_longest_value_and_as_json_is_one_array(
    workdir: Path, invoke: Callable[..., Result]
) -> None:
    # More rows than one written block (1,000), with the widest name and address late in
    # the list, a name with é and one without a name: the widths come from the database
    # before the rows do, and must be the ones the whole list would give.
    path = workdir / "leden.csv"
    rows = [f"lezer{n:04d}@example.nl,Lezer {n}" for n in range(2500)]
    rows[1999] = "anne-marie.van.den.berg-de.wit@voorbeeld-uitgeverij.nl,Anne-Marie Léonie van den Berg"
    rows[7] = "zonder.naam@example.nl,"
    path.write_text("email,name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert invoke("subscribers", "import", str(path)).exit_code == 0

    listed = json.loads(invoke("subscribers", "list", "--json").stdout)
    assert len(listed) == 2500 and listed[1999]["name"] == "Anne-Marie Léonie van den Berg"
    assert invoke("subscribers", "list", "--json").stdout == json.dumps(listed, indent=2, ensure_ascii=False) + "\n"

    table = invoke("subscribers", "list").stdout.splitlines()
    columns = ["email", "name", "language", "cadence", "status", "created_at"]
    widths = {c: max(len(c), *(len(r[c] or "") for r in listed)) for c in columns}
    expected = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()] + [
        "  ".join((r[c] or "").ljust(widths[c]) for c in columns).rstrip() for r in listed
    ]
    assert table == expected
    assert table[2000].startswith("anne-marie.van.den.berg-de.wit@voorbeeld-uitgeverij.nl  Anne-Marie Léonie")
    assert invoke("subscribers", "list", "--status", "pending", "--json").stdout == "[]\n"
