"""After `subscribers erase`, no column of any table holds the address or its local part."""

from __future__ import annotations

from pathlib import Path

from send_helpers import make_config, open_workdb, relay_env, server, write_article  # noqa: F401

# Distinctive local parts, so a hit in the database can only be this person's.
BOUNCER = "zebedeus.bouncer@example.nl"
LEAVER = "wilhelmina.leaver@example.nl"
READER = "xaverius.reader@example.nl"
NEWCOMER = "quirina.newcomer@example.nl"


def _every_value(db_path: Path) -> list[tuple[str, str, str]]:
    """(table, column, text) of every text or blob value in every table of the database."""
    db = open_workdb(make_config(db_path.parent))
    found = []
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        for row in db.execute(f"SELECT * FROM {table}"):
            for column, value in zip(columns, row, strict=True):
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                if isinstance(value, str):
                    found.append((table, column, value.casefold()))
    db.conn.close()
    return found


def test_erase_leaves_no_address_or_local_part_of_bounced_unsubscribed_imported_mailed_subscribers(
    workdir, server, relay_env, invoke
):
    people = [BOUNCER, LEAVER, READER]
    (workdir / "leden.csv").write_text(
        "email,name,lang,cadence\n" + "".join(f"{p},{p.split('@')[0]},nl,each\n" for p in people),
        encoding="utf-8",
    )
    assert invoke("subscribers", "import", "leden.csv").exit_code == 0
    # A pending subscriber gets the confirmation email (an event of its own).
    assert invoke("subscribe", NEWCOMER, "--name", "Quirina").exit_code == 0
    # The relay quotes the address in its hard bounce, as real relays do.
    server.handler.on_data = lambda rcpt, n: (
        f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown" if rcpt == BOUNCER else None
    )
    write_article(workdir)
    sent = invoke("send", "artikel.txt")
    assert sent.exit_code == 0, sent.output
    assert invoke("unsubscribe", LEAVER).exit_code == 0
    assert invoke("subscribers", "set", READER, "--name", "Xaverius R.").exit_code == 0
    assert invoke("subscribers", "show", BOUNCER, "--json").stdout.count('"bounced"') >= 1

    for person in [*people, NEWCOMER]:
        assert invoke("subscribers", "erase", person, "--yes").exit_code == 0

    values = _every_value(workdir / "subscribers.db")
    assert values  # the scan did read the database
    for person in [*people, NEWCOMER]:
        local = person.split("@")[0].casefold()
        leaks = [(t, c) for t, c, v in values if local in v]
        assert leaks == [], f"{person} is still in {leaks}"
