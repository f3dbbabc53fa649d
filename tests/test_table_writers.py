"""Every table has exactly one module that writes it (outside the migrations): a grep of the source."""

from __future__ import annotations

import re
from pathlib import Path

from newsletter.db import open_db

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"

# SQL writes, in any case: INSERT [OR x] INTO t, REPLACE INTO t, UPDATE [OR x] t SET, DELETE FROM t.
SQL_WRITE = re.compile(
    r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|DELETE\s+FROM)\s+([A-Za-z_][\w.]*)"
    r"|\bUPDATE(?:\s+OR\s+\w+)?\s+([A-Za-z_][\w.]*)\s+SET\b",
    re.IGNORECASE,
)
# sqlite-utils' table writes: db["t"].insert(...), db.table("t").upsert(...), and so on.
TABLE_WRITE = re.compile(
    r"""(?:\[\s*|\.table\(\s*)["'](\w+)["']\s*[\])]\s*\.\s*"""
    r"(?:insert|insert_all|upsert|upsert_all|update|delete|delete_where|create|drop)\b"
)


def _schema_tables(tmp_path: Path) -> set[str]:
    db = open_db(tmp_path / "schema.db")
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.conn.close()
    # sqlite-utils keeps its own record of the migrations applied.
    return {n for n in names if not n.startswith("sqlite_") and n != "_sqlite_migrations"}


def writers(tables: set[str]) -> dict[str, set[str]]:
    """Table -> the modules (paths in the package) that write it."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(PACKAGE.parent))
        if path.name == "migrations.py":
            continue
        text = path.read_text(encoding="utf-8")
        names = [a or b for a, b in SQL_WRITE.findall(text)] + TABLE_WRITE.findall(text)
        for name in names:
            table = name.lower()
            if table.startswith(("temp.", "main.")):
                table = table.split(".", 1)[1]
                if name.lower().startswith("temp."):
                    continue  # a connection's own scratch table, not the database's
            if table in tables:
                found.setdefault(table, set()).add(module)
    return found


def test_the_grep_sees_sql_and_sqlite_utils_writes() -> None:
    sample = (
        'db.execute("insert or ignore into feeds (a) values (?)")\n'
        "f\"UPDATE subscribers SET {x} WHERE id = ?\"\n"
        'db["events"].insert({"kind": "x"})\n'
        'db.table("articles").upsert(row)\n'
        "text = 'update the subscribers list'  # prose, no SET\n"
    )
    names = [a or b for a, b in SQL_WRITE.findall(sample)] + TABLE_WRITE.findall(sample)
    assert sorted(n.lower() for n in names) == ["articles", "events", "feeds", "subscribers"]


def test_every_table_has_exactly_one_module_that_writes_it(tmp_path: Path) -> None:
    tables = _schema_tables(tmp_path)
    found = writers(tables)
    shared = {table: sorted(modules) for table, modules in found.items() if len(modules) > 1}
    assert shared == {}
    assert set(found) == tables  # and every table is written somewhere (the grep works)
