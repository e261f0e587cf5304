"""Every script in bench/ still imports: a benchmark nobody can run has no figures to compare."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda path: path.name)
def test_a_bench_script_loads(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # as when run: a script imports its siblings
    namespace = runpy.run_path(str(script), run_name="bench_import_check")  # top level only
    assert namespace["__doc__"], f"{script.name} says nothing about what it measures"
