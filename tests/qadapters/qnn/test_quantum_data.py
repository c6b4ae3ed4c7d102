"""Quantum data: spin-chain ground energies against independent references, labels, splits,
exact state preparation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backends import exact
from circuits.state_prep import preparation_circuit, preparation_params
from qadapters.qnn import quantum_data as qd

_I = np.eye(2)
_X = np.array([[0.0, 1.0], [1.0, 0.0]])
_Y = np.array([[0.0, -1j], [1j, 0.0]])
_Z = np.diag([1.0, -1.0])


def _on(op: np.ndarray, i: int, n: int) -> np.ndarray:
    """Dense ``op`` on spin ``i`` (spin 0 is the leftmost Kronecker factor)."""
    out = np.array([[1.0 + 0j]])
    for k in range(n):
        out = np.kron(out, op if k == i else _I)
    return out


def _dense(family: str, n: int, g: float, periodic: bool) -> np.ndarray:
    """The Hamiltonian written out with complex Paulis, independently of the module."""
    bonds = [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if periodic and n > 2 else [])
    h = np.zeros((2**n, 2**n), dtype=complex)
    for i, j in bonds:
        if family == "tfim":
            h -= _on(_Z, i, n) @ _on(_Z, j, n)
        else:
            h -= _on(_X, i, n) @ _on(_X, j, n) + _on(_Y, i, n) @ _on(_Y, j, n)
            h += g * _on(_Z, i, n) @ _on(_Z, j, n)
    if family == "tfim":
        h -= g * sum(_on(_X, i, n) for i in range(n))
    return h


# (family, n, coupling, periodic, known ground energy or None)
ENERGY_CASES = [
    ("tfim", 2, 0.5, False, -np.sqrt(1 + 4 * 0.5**2)),  # 2x2 block [[-1, -2h], [-2h, 1]]
    ("tfim", 2, 1.7, False, -np.sqrt(1 + 4 * 1.7**2)),
    ("xxz", 2, 0.3, False, -0.3 - 2),  # |01>,|10> block: -Δ ∓ 2
    ("xxz", 2, 1.8, False, -1.8 - 2),
    ("tfim", 3, 0.4, False, None),
    ("tfim", 3, 1.3, True, None),
    ("xxz", 4, 0.5, False, None),
    ("xxz", 4, 1.5, True, None),
    ("tfim", 5, 2.0, False, None),
]


@pytest.mark.parametrize(("family", "n", "g", "periodic", "known"), ENERGY_CASES)
def test_ground_energy_and_state_match_dense_diagonalisation(family, n, g, periodic, known):
    energy, state = qd.ground_state(family, n, g, periodic=periodic)
    dense = _dense(family, n, g, periodic)
    assert np.abs(dense.imag).max() == 0  # Y⊗Y is real
    values, vectors = np.linalg.eigh(dense.real)
    assert energy == pytest.approx(values[0], abs=1e-10)
    if known is not None:
        assert energy == pytest.approx(known, abs=1e-12)
    assert np.linalg.norm(state) == pytest.approx(1.0)
    assert state @ dense.real @ state == pytest.approx(energy, abs=1e-10)
    if values[1] - values[0] > 1e-6:  # unique: the same vector up to sign
        assert abs(state @ vectors[:, 0]) == pytest.approx(1.0, abs=1e-9)
    assert state.sum() > 0  # Perron–Frobenius sign


@pytest.mark.parametrize(("n", "h"), [(4, 0.3), (6, 1.0), (8, 1.6)])
def test_periodic_tfim_matches_free_fermions(n, h):
    k = np.pi * (2 * np.arange(n) + 1) / n  # antiperiodic momenta of the even sector
    expected = -np.sqrt(1 + h * h - 2 * h * np.cos(k)).sum()
    assert qd.ground_state("tfim", n, h, periodic=True)[0] == pytest.approx(expected, abs=1e-9)


def test_ferromagnetic_tfim_ground_state_is_flip_symmetric():
    _, state = qd.ground_state("tfim", 8, 0.2)  # splitting ~ h^n: nearly degenerate
    assert np.allclose(state, state[::-1], atol=1e-8)  # index i and ~i: global spin flip


@pytest.mark.parametrize(
    ("family", "g", "label"),
    [("tfim", 0.2, 0), ("tfim", 0.999, 0), ("tfim", 1.001, 1), ("tfim", 3.0, 1),
     ("xxz", 0.0, 0), ("xxz", 0.9, 0), ("xxz", 1.1, 1), ("xxz", 2.0, 1)],
)  # fmt: skip
def test_phase_labels(family, g, label):
    assert qd.phase_label(family, g) == label


def test_dataset_is_seeded_balanced_and_labelled():
    a = qd.make_dataset("xxz", 4, 21, seed=3, margin=0.2)
    b = qd.make_dataset("xxz", 4, 21, seed=3, margin=0.2)
    c = qd.make_dataset("xxz", 4, 21, seed=4, margin=0.2)
    assert np.array_equal(a.states, b.states) and np.array_equal(a.couplings, b.couplings)
    assert not np.array_equal(a.couplings, c.couplings)
    assert len(a) == 21 and a.labels.sum() == 11 and a.states.shape == (21, 16)
    assert np.all(np.abs(a.couplings - 1.0) >= 0.2)
    assert np.array_equal(a.labels, (a.couplings > 1).astype(int))
    assert np.allclose(np.linalg.norm(a.states, axis=1), 1.0)
    for g, e, s in zip(a.couplings, a.energies, a.states, strict=True):
        assert s @ (qd.hamiltonian("xxz", 4, g) @ s) == pytest.approx(e, abs=1e-10)


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.7])
def test_split_is_reproducible_stratified_and_disjoint(fraction):
    data = qd.make_dataset("tfim", 3, 20, seed=0)
    train, test = qd.train_test_split(data, fraction, seed=1)
    again, _ = qd.train_test_split(data, fraction, seed=1)
    other, _ = qd.train_test_split(data, fraction, seed=2)
    assert np.array_equal(train.couplings, again.couplings)
    assert not np.array_equal(train.couplings, other.couplings)
    both = np.concatenate([train.couplings, test.couplings])
    assert np.array_equal(np.sort(both), data.couplings)  # a partition
    assert test.labels.sum() == len(test) - test.labels.sum()  # same share of each class
    assert len(test) == 2 * round(fraction * 10)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_preparation_circuit_prepares_real_states_exactly(n):
    rng = np.random.default_rng(n)
    states = rng.normal(size=(4, 2**n))
    states[0] = 0
    states[0, -1] = -1.0  # a basis state with a sign
    states /= np.linalg.norm(states, axis=1, keepdims=True)
    circuit = preparation_circuit(n)
    assert circuit.count_ops() == ({"ry": 1} if n == 1 else {"ry": 2**n - 1, "cnot": 2**n - 2})
    params = torch.as_tensor(preparation_params(states))
    prepared = exact.columns(circuit, params, 1)[..., 0].numpy()
    assert np.allclose(prepared, states, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: qd.hamiltonian("tfim", 11, 1.0), "2 <= n_qubits <= 10"),
        (lambda: qd.make_dataset("tfim", 12, 10), "found n_qubits=12"),
        (lambda: qd.ground_state("xxz", 1, 1.0), "found n_qubits=1"),
        (lambda: qd.hamiltonian("tfim", 2.5, 1.0), "int number of spins"),
        (lambda: qd.hamiltonian("ising", 4, 1.0), "unknown Hamiltonian family"),
        (lambda: qd.hamiltonian("tfim", 4, float("nan")), "finite h"),
        (lambda: qd.phase_label("tfim", 1.0), "critical point"),
        (lambda: qd.make_dataset("tfim", 4, 1), "num_states >= 2"),
        (lambda: qd.make_dataset("tfim", 4, 10, low=0.95), "low <"),
        (lambda: qd.train_test_split(qd.make_dataset("tfim", 2, 4), 1.5), "0 < test_fraction"),
        (lambda: qd.train_test_split(qd.make_dataset("tfim", 2, 3), 0.5), "at least 2"),
        (lambda: preparation_params(np.zeros(4)), "norm 0"),
        (lambda: preparation_params(np.ones(6)), r"\(B, 2\^n\)"),
        (lambda: preparation_params(np.ones(4) * 1j), "real"),
        (lambda: preparation_circuit(0), "n_qubits >= 1"),
    ],
)
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_order_dataset_mixes_both_families_with_order_labels():
    d = qd.make_order_dataset(3, 12, seed=4)
    assert d.family == "tfim+xxz" and d.groups.tolist() == [0] * 6 + [1] * 6
    tfim, xxz = d.couplings[:6], d.couplings[6:]
    assert d.labels[:6].tolist() == [int(h > 1) for h in tfim]  # paramagnet = disordered
    assert d.labels[6:].tolist() == [int(g < 1) for g in xxz]  # XY = disordered, Néel = ordered
    train, test = qd.train_test_split(d, 0.5, seed=0)
    assert (len(train), len(test)) == (4, 8)  # 4 strata of 3 states, round(1.5) = 2 tested each
    for part in (train, test):  # stratified by family and label
        assert {(g, y) for g, y in zip(part.groups, part.labels, strict=True)} == {
            (0, 0), (0, 1), (1, 0), (1, 1)}
    with pytest.raises(ValueError, match="num_states >= 4"):
        qd.make_order_dataset(3, 3)


def test_degenerate_xxz_ground_state_is_deterministic_and_flip_symmetric():
    e, s = qd.ground_state("xxz", 3, 0.4)
    e2, s2 = qd.ground_state("xxz", 3, 0.4)
    assert np.array_equal(s, s2) and e == e2
    h = qd.hamiltonian("xxz", 3, 0.4).toarray()
    assert np.allclose(h @ s, e * s, atol=1e-10)  # an eigenvector of the lowest energy
    assert e == pytest.approx(np.linalg.eigvalsh(h)[0], abs=1e-12)
    assert np.allclose(s, s[::-1], atol=1e-12)  # global spin flip reverses the index


def test_spin_chain_names_and_the_deprecated_alias():
    assert qd.SPIN_CHAINS == ("tfim", "xxz") == tuple(qd.CRITICAL)
    with pytest.warns(DeprecationWarning, match="SPIN_CHAINS"):
        assert qd.FAMILIES == qd.SPIN_CHAINS
    with pytest.raises(AttributeError, match="no attribute 'NOPE'"):
        _ = qd.NOPE
