"""Every benchmark under bench/ can at least be loaded: an import that a change broke shows
here, not on the day someone needs the figures (bench/pipelining.py once could not start).
The benchmarks themselves are run by hand; their figures are never asserted in a test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_the_benchmark_loads_without_running(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # they import each other as plain modules
    spec = importlib.util.spec_from_file_location(f"bench_{script[:-3]}", BENCH / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # __name__ is not "__main__": nothing is measured
    assert module.__doc__, f"bench/{script} says at the top what it prints and needs"
