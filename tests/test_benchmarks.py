"""The benchmarks still run and still check that their contenders agree (no timing asserted)."""

from __future__ import annotations

from benchmarks import unitary


def test_unitary_benchmark_quick_run(capsys) -> None:
    assert unitary.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "Operator/exact" in out and "det/ours" in out
