"""No file of the project keeps a merge's conflict markers (one was found in the README)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^(<{7} |={7}$|>{7} )", re.MULTILINE)
SUFFIXES = {".py", ".md", ".toml", ".html", ".css", ".txt", ".cfg", ".ini", ".yml", ".yaml", ""}


def test_no_file_holds_conflict_markers() -> None:
    found = []
    for path in [ROOT / "Makefile", ROOT / "README.md", ROOT / "pyproject.toml", ROOT / ".ci" / "run",
                 *ROOT.glob("newsletter/**/*"), *ROOT.glob("templates/**/*"), *ROOT.glob("tests/*.py"),
                 *ROOT.glob("bench/*.py"), *ROOT.glob("examples/*")]:
        if not path.is_file() or path.suffix not in SUFFIXES:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}" for m in MARKER.finditer(text)]
    assert found == []
