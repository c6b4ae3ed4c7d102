"""backends.cut_unitary, the state-vector engine's cut path (Note [cut unitary]):
U = Σ_r H_r ⊗ L_r against the gate-by-gate reference, Qiskit's Operator and the sweep path;
gradients; which circuits take it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backends import cut_unitary, exact, statevector
from circuits import Circuit, Op
from circuits.builders import two_design
from tests.reference import reference_unitary


def _mixed(n: int) -> Circuit:
    """Complex and fixed gates, controls, adjoints and constants inside each half; CZ, a
    controlled S and a controlled Z across the middle; a two-qubit rotation (a block step)."""
    h = n // 2
    return Circuit(
        n,
        name="mixed",
        ops=[
            Op("ry", (0,), 0),
            Op("h", (h,)),
            Op("rbs", (1, 2), 1),
            Op("cz", (h - 1, h)),
            Op("rx", (n - 1,), 2),
            Op("rz", (h - 1,), 3, adjoint=True),
            Op("s", (h + 1,), controls=(h - 2,)),
            Op("ry", (h,), 0.3, adjoint=True),
            Op("fbs", (h, n - 1), 1),
            Op("z", (0,), controls=(n - 1,), control_values=(0,)),
            Op("cnot", (0, 2)),
            Op("ry", (h - 1,), 0),
        ],
    )


# (name, circuit, expected number of terms of the chosen cut)
CUT_CASES = [
    ("two_design(7,1)", two_design(7, 1), 2),
    ("two_design(8,0)", two_design(8, 0), 1),
    ("two_design(8,2)", two_design(8, 2), 4),
    ("two_design(8,3)", two_design(8, 3), 8),
    ("mixed(8)", _mixed(8), 8),
]


def _params(circuit: Circuit, seed: int = 0, batch: tuple[int, ...] = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, circuit.num_params, generator=g, dtype=torch.float64) * 2.0


@pytest.mark.parametrize(("circuit", "terms"), [c[1:] for c in CUT_CASES],
                         ids=[c[0] for c in CUT_CASES])
def test_cut_unitary_matches_gate_by_gate_reference(circuit: Circuit, terms: int) -> None:
    cut = cut_unitary.cut_plan(circuit)
    assert cut is not None and cut.terms == terms
    assert (cut.both is not None) == (circuit.n_qubits % 2 == 0 and circuit.name != "mixed")
    theta = _params(circuit)
    want = reference_unitary(circuit, theta.numpy())
    got = exact.unitary(circuit, theta).numpy()
    assert got.dtype == (np.float64 if circuit.is_real else np.complex128)
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("h", range(1, 6))
@pytest.mark.parametrize(("name", "circuit"), [("two_design(6,2)", two_design(6, 2)),
                                               ("mixed(6)", _mixed(6))])
def test_every_cut_position_gives_the_unitary(name: str, circuit: Circuit, h: int) -> None:
    cut = cut_unitary._cut_at(circuit, h)
    if cut is None:  # a non-diagonal gate crosses wire h
        return
    theta = _params(circuit, seed=h)
    dtype = torch.float64 if circuit.is_real else torch.complex128
    got = cut_unitary.cut_unitary(cut, circuit.n_qubits, theta[None], dtype)[0]
    np.testing.assert_allclose(got.numpy(), reference_unitary(circuit, theta.numpy()),
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize(("circuit", "h"), [
    (Circuit(7, [Op("cnot", (w, w + 1)) for w in range(6)]), None),  # every cut: a CNOT
    (Circuit(7, [Op("rbs", (0, 6), 0), Op("cz", (0, 6))]), None),  # spans every cut
    (two_design(8, 5), None),  # 2^5 terms at every cut: sweeps are cheaper
    # one crossing at every cut but h = 3 (two), and CZ across wires 0 and 7 at every cut
    (Circuit(8, [Op("cz", (w, w + 1)) for w in range(7)] + [Op("cz", (2, 3))]), 4),
    (Circuit(8, [Op("ry", (w,), w) for w in range(8)] + [Op("cz", (0, 7))]), 4),
])
def test_which_circuits_take_the_cut(circuit: Circuit, h: int | None) -> None:
    cut = cut_unitary.cut_plan(circuit)
    assert (cut.h if cut else None) == h
    theta = _params(circuit)
    got = exact.unitary(circuit, theta)
    want = statevector.run(circuit, theta[None], None, got.dtype, cut=False)[0]
    torch.testing.assert_close(got, want, atol=1e-13, rtol=0)


@pytest.mark.parametrize(("n", "layers"), [(9, 3), (10, 2)])
def test_cut_unitary_matches_qiskit_operator(n: int, layers: int) -> None:
    pytest.importorskip("qiskit")
    from qiskit.quantum_info import Operator

    from backends.qiskit import to_qiskit

    c = two_design(n, layers)
    theta = _params(c, seed=n)
    want = Operator(to_qiskit(c, theta.numpy())).data
    np.testing.assert_allclose(exact.unitary(c, theta).numpy(), want, atol=1e-12, rtol=0)


def test_cut_unitary_at_12_qubits_matches_the_sweeps() -> None:
    c = two_design(12, 2)
    theta = _params(c, seed=12)
    with torch.no_grad():
        got = exact.unitary(c, theta)
        want = statevector.run(c, theta[None], None, torch.float64, cut=False)[0]
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


# odd (two sides apart), even (one batch of two sides), and with a block step
GRAD_CASES = [CUT_CASES[0][:2], CUT_CASES[2][:2], CUT_CASES[-1][:2]]


@pytest.mark.parametrize(("name", "circuit"), GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_cut_unitary_gradcheck(name: str, circuit: Circuit) -> None:
    theta = _params(circuit, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: exact.unitary(circuit, t), (theta,), eps=1e-6,
                                    atol=1e-7, fast_mode=True)


def test_cut_unitary_batches_and_follows_float32() -> None:
    c = _mixed(8)
    theta = _params(c, seed=4, batch=(2, 3))
    got = exact.unitary(c, theta)
    assert got.shape == (2, 3, 256, 256)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(got[i, j], exact.unitary(c, theta[i, j]), atol=1e-13,
                                       rtol=0)
    single = exact.unitary(two_design(8, 2), _params(two_design(8, 2)).float())
    assert single.dtype == torch.float32


def test_gradients_of_the_cut_match_the_sweeps() -> None:
    c = two_design(9, 2)
    theta = _params(c, seed=5)
    weights = torch.randn(512, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = []
    for cut in (True, False):
        t = theta.clone().requires_grad_()
        u = statevector.run(c, t[None], None, torch.float64, cut=cut)[0]
        (u * weights).sum().backward()
        grads.append(t.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-10, rtol=0)
