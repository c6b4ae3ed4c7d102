"""backends.torch_gates: the table entries and stacked matrices equal the per-op constructions
(op_table, gate_matrix), which tests/backends/test_exact.py checks against the gate table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backends.torch_gates import (
    entry_values,
    gate_matrix,
    op_table,
    stacked_matrices,
    table_entries,
)
from circuits import GATES, Circuit, Op
from tests.backends import cases

CIRCUITS = {
    **{f"gate_{g}": (lambda g=g: cases.gate_circuit(g)) for g in sorted(GATES)},
    "mixed": cases.mixed_circuit,
}


def _params(circuit: Circuit, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.randn(3, circuit.num_params, generator=g, dtype=torch.float64) * 2).to(dtype)


@pytest.mark.parametrize("make", CIRCUITS.values(), ids=CIRCUITS.keys())
@pytest.mark.parametrize("real", [torch.float64, torch.float32])
def test_table_entries_equal_the_table(make, real: torch.dtype) -> None:
    c = make()
    dtype = real if c.is_real else real.to_complex()
    p = _params(c, real)
    table = op_table(c, p, dtype)
    index = np.random.default_rng(0).permutation(table.shape[1])  # every entry, shuffled
    got = entry_values(table_entries(c, index), p, dtype)
    assert got.dtype == dtype
    tol = 1e-14 if real == torch.float64 else 1e-6
    torch.testing.assert_close(got, table[:, torch.as_tensor(index)], atol=tol, rtol=0)


SINGLES = [name for name, g in sorted(GATES.items()) if g.num_wires == 1]


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_stacked_matrices_equal_gate_matrix(dtype: torch.dtype) -> None:
    ops: list[Op] = []
    for name in SINGLES:
        if GATES[name].num_params:
            if not GATES[name].real and not dtype.is_complex:
                continue
            ops += [Op(name, (0,), 1), Op(name, (0,), 0, adjoint=True), Op(name, (0,), -0.4)]
        elif GATES[name].real or dtype.is_complex:
            ops += [Op(name, (0,)), Op(name, (0,), adjoint=True)]
    ops = ops[1::2] + ops[::2]  # names interleaved: the result must follow the ops' order
    p = _params(Circuit(1, [Op("ry", (0,), 0), Op("ry", (0,), 1)]))
    got = stacked_matrices(tuple(ops), p, dtype)
    want = torch.stack([gate_matrix(op, p, dtype) for op in ops], dim=1)
    torch.testing.assert_close(got, want.to(got.dtype), atol=1e-15, rtol=0)


def test_entry_values_gradients_pass_gradcheck() -> None:
    c = cases.gate_circuit("rbs")
    index = np.arange(0, 2 * len(c.ops) * 16 + 2, 3)
    parts = table_entries(c, index)
    p = _params(c)[:1].requires_grad_()
    assert torch.autograd.gradcheck(lambda t: entry_values(parts, t, torch.float64), (p,))
