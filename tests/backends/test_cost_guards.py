"""Every entry point that allocates by circuit, subspace or shot count checks backends.budget first.

Oversized inputs must fail fast with a MemoryError that names the size, the bytes, the budget and
the way to raise it — before any work (the calls below would take gigabytes or hours if the
check came late). Small budgets (``budget.limit``) keep the "still runs" cases tiny.
"""

from __future__ import annotations

import time
from math import comb

import numpy as np
import pytest
import torch

from backends import budget, exact, statevector, subspace
from backends.two_design_columns import two_design_columns
from circuits import Circuit, Op, fbs_butterfly, rbs_brick, rbs_pyramid, two_design

F64 = torch.float64


def _theta(c: Circuit, *batch: int, grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(*batch, c.num_params, generator=g, dtype=F64).requires_grad_(grad)


def _square(n: int, *batch: int, grad: bool = False) -> torch.Tensor:
    return torch.randn(*batch, n, n, dtype=F64, requires_grad=grad)


def _aer_sample():
    aer = pytest.importorskip("backends.aer")
    c = two_design(2, 1)
    return lambda: aer.sample(c, np.zeros(c.num_params), shots=10**12)


def _aer_expectation():
    aer = pytest.importorskip("backends.aer")
    c = two_design(2, 1)
    return lambda: aer.expectation(c, np.zeros((3, c.num_params)), ["ZI", "XX"], shots=10**10)


def _ibm_sample():
    ibm = pytest.importorskip("backends.ibm")
    c = two_design(2, 1)
    return lambda: ibm.sample(c, np.zeros(c.num_params), shots=10**12)


def _columns_plan():
    return lambda: two_design_columns(two_design(24, 1), _theta(two_design(24, 1)), 1)


P20, P16, T20 = rbs_pyramid(20), rbs_pyramid(16), two_design(20, 1)

#: (id, budget, a factory of the call, the message parts)
OVERSIZED = [
    ("hamming_block-20-10", None, lambda: lambda: exact.hamming_block(P20, _theta(P20), 10),
     ["exact.hamming_block of a 20-qubit circuit at weight 10", "184756 × 184756", "GiB"]),
    ("hamming_block-simulate-grad", None,
     lambda: lambda: exact.hamming_block(P16, _theta(P16, grad=True), 8, method="simulate"),
     ["weight 8", "12870 × 12870", "with autograd"]),
    ("compound-60-30", None, lambda: lambda: exact.compound(torch.randn(60, 60), 30),
     ["compound of 60×60 float32 matrices", "30×30 minors"]),
    ("compounds-batch", "64M", lambda: lambda: exact.compounds(_square(12, 50), 6),
     ["compounds of 50 × 12×12 float64", "924 × 924"]),
    ("rotation_compounds-20", None, lambda: lambda: exact.rotation_compounds(torch.eye(20)),
     ["rotation_compounds of 20×20", "184756 × 184756"]),
    ("unitary-20", None, lambda: lambda: exact.unitary(T20, _theta(T20)),
     ["exact.unitary of a 20-qubit circuit", "2^20 × 2^20", "16.0 TiB"]),
    ("unitary-batch-grad", "64M",
     lambda: lambda: exact.unitary(two_design(10, 1), _theta(two_design(10, 1), 8, grad=True)),
     ["exact.unitary of a 10-qubit circuit", "batch 8", "with autograd"]),
    ("columns-32", None, lambda: lambda: exact.columns(two_design(32, 1),
                                                       _theta(two_design(32, 1)), 1),
     ["exact.columns of a 32-qubit circuit", "2^32 × 1"]),
    ("apply-states", "16M",
     lambda: lambda: exact.apply(two_design(16, 1), _theta(two_design(16, 1)),
                                 torch.zeros(64, 2**16, dtype=F64)),
     ["exact.apply of a 16-qubit circuit", "2^16 × 64"]),
    ("two_design_columns-plan", None, _columns_plan, ["Kronecker tables", "24-qubit"]),
    ("aer.sample-shots", None, _aer_sample,
     ["aer.sample: 1000000000000 shots", "at most", "shots per set fit"]),
    ("aer.expectation-shots", None, _aer_expectation, ["aer.expectation: 10000000000 shots"]),
    ("ibm.sample-shots", None, _ibm_sample, ["ibm.sample: 1000000000000 shots"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("budget_text", "make", "parts"), [c[1:] for c in OVERSIZED], ids=[c[0] for c in OVERSIZED]
)
def test_oversized_input_is_refused_before_any_work(budget_text, make, parts, monkeypatch):
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    call = make()
    start = time.perf_counter()
    with budget.limit(budget_text or budget.DEFAULT_MAX_BYTES), pytest.raises(MemoryError) as info:
        call()
    assert time.perf_counter() - start < 5  # refused up front, not after the work
    msg = str(info.value)
    for part in [*parts, "over the budget of", "backends.budget.limit(...)", budget.ENV_VAR]:
        assert part in msg, msg


#: (id, budget, the call): sizes just under a small budget still run
UNDER = [
    ("unitary-8", "2M", lambda: exact.unitary(two_design(8, 1), _theta(two_design(8, 1)))),
    ("columns-grad", "2M", lambda: exact.columns(two_design(10, 2),
                                                 _theta(two_design(10, 2), grad=True), 2)),
    ("apply", "1M", lambda: exact.apply(two_design(10, 1), _theta(two_design(10, 1)),
                                        torch.zeros(4, 2**10, dtype=F64))),
    ("hamming_block-12-3", "4M", lambda: exact.hamming_block(rbs_pyramid(12),
                                                             _theta(rbs_pyramid(12)), 3)),
    ("hamming_block-simulate-grad", "64M",
     lambda: exact.hamming_block(rbs_pyramid(10), _theta(rbs_pyramid(10), grad=True), 3,
                                 method="simulate")),
    ("compound", "4M", lambda: exact.compound(_square(10), 4)),
    ("rotation_compounds", "8M", lambda: exact.rotation_compounds(torch.eye(10, dtype=F64))),
    ("two_design_columns", "2M", lambda: two_design_columns(two_design(8, 1),
                                                            _theta(two_design(8, 1)), 2)),
]  # fmt: skip


@pytest.mark.parametrize(("budget_text", "call"), [c[1:] for c in UNDER], ids=[c[0] for c in UNDER])
def test_sizes_under_a_small_budget_still_run(budget_text, call):
    with budget.limit(budget_text):
        out = call()
    assert all(torch.isfinite(t).all() for t in (out if isinstance(out, list) else [out]))


def test_the_same_call_is_refused_one_step_below_its_estimate():
    c, theta = two_design(8, 1), _theta(two_design(8, 1))
    need = statevector.run_nbytes(c, 1, None, F64, grad=False, copies=0)
    with budget.limit(need):
        exact.unitary(c, theta)
    with budget.limit(need - 1), pytest.raises(MemoryError, match=r"exact\.unitary"):
        exact.unitary(c, theta)


def test_an_explicit_qubit_cap_is_still_honoured():
    with pytest.raises(ValueError, match="expected n_qubits <= 4, found 5"):
        exact.columns(two_design(5, 1), _theta(two_design(5, 1)), 1, max_qubits=4)


CHANGED_ROWS = [
    (rbs_pyramid(7), 3), (rbs_brick(6, 3), 2), (fbs_butterfly(8), 4),
    (Circuit(4, [Op("cz", (0, 1)), Op("rbs", (1, 2), 0, controls=(3,))], 1), 2),
]  # fmt: skip


@pytest.mark.parametrize(("circuit", "k"), CHANGED_ROWS, ids=lambda v: getattr(v, "name", v))
def test_the_rows_each_op_changes_match_the_subspace_plan(circuit: Circuit, k: int):
    # the plan's passes change disjoint rows per op, so their sizes sum to the per-op counts
    plan = subspace._subspace_plan(circuit, k)
    counted = sum(subspace._changed_rows(op, circuit.n_qubits, k) for op in circuit.ops)
    assert sum(len(p.rows) for p in plan) == counted


def test_the_exact_row_count_is_used_when_the_bound_would_be_refused():
    c = rbs_pyramid(12)
    rows = comb(12, 6)
    with budget.limit("4G"):
        bound = subspace.simulate_nbytes(c, 1, 6, F64, grad=True)  # the bound fits 4 GiB
    with budget.limit(bound - 1):
        exact_count = subspace.simulate_nbytes(c, 1, 6, F64, grad=True)
    assert exact_count < bound and exact_count > 5 * rows * rows * 8


@pytest.mark.parametrize("circuit", [two_design(2, 0), two_design(5, 2), two_design(8, 3)],
                         ids=lambda c: c.name)  # fmt: skip
def test_the_moment_count_before_planning_is_the_plans(circuit: Circuit):
    from backends import two_design_columns as tdc

    assert tdc._ry_moments(circuit) == tdc._moments(circuit)[0].shape[0]
