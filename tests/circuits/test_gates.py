"""The gate table: each reference matrix is unitary and its flags tell the truth."""

from __future__ import annotations

import numpy as np
import pytest

from circuits import GATES, get_gate, reference_matrix
from tests.reference import embed

ANGLES = [0.0, 0.3, -1.7, np.pi]


def _matrices(name: str) -> list[np.ndarray]:
    gate = GATES[name]
    if gate.num_params == 0:
        return [reference_matrix(name)]
    return [reference_matrix(name, a) for a in ANGLES]


@pytest.mark.parametrize("name", sorted(GATES))
def test_reference_matrix_is_unitary_with_true_flags(name: str) -> None:
    gate = GATES[name]
    mixes = False
    for m in _matrices(name):
        assert m.shape == (2**gate.num_wires,) * 2
        np.testing.assert_allclose(m.conj().T @ m, np.eye(len(m)), atol=1e-14)
        if gate.real:
            assert np.isrealobj(m) or np.allclose(m.imag, 0)
        if gate.diagonal:
            np.testing.assert_allclose(m, np.diag(np.diag(m)), atol=0)
        weights = np.array([bin(i).count("1") for i in range(len(m))])
        mixes |= np.abs(m[weights[:, None] != weights[None, :]]).max(initial=0) > 1e-14
        if gate.self_inverse:
            np.testing.assert_allclose(m @ m, np.eye(len(m)), atol=1e-14)
    assert mixes != gate.preserves_hamming_weight


@pytest.mark.parametrize(
    ("name", "angle", "expected"),
    [
        ("ry", 0.6, [[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]]),
        ("rz", 0.6, np.diag([np.exp(-0.3j), np.exp(0.3j)])),
        ("rx", 0.6, [[np.cos(0.3), -1j * np.sin(0.3)], [-1j * np.sin(0.3), np.cos(0.3)]]),
        ("cz", None, np.diag([1, 1, 1, -1])),
        ("cnot", None, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]),
        ("h", None, np.array([[1, 1], [1, -1]]) / np.sqrt(2)),
        ("x", None, [[0, 1], [1, 0]]),
        (
            "rbs",
            0.4,
            [
                [1, 0, 0, 0],
                [0, np.cos(0.4), np.sin(0.4), 0],
                [0, -np.sin(0.4), np.cos(0.4), 0],
                [0, 0, 0, 1],
            ],
        ),
    ],
)
def test_conventions_of_design_md(name: str, angle: float | None, expected: object) -> None:
    np.testing.assert_allclose(reference_matrix(name, angle), np.asarray(expected), atol=1e-15)


@pytest.mark.parametrize("values", [(1,), (0,), (1, 0), (0, 0), (1, 1)])
@pytest.mark.parametrize("name", ["ry", "x", "rbs", "rz"])
def test_controlled_matrix_acts_only_on_its_control_block(name: str, values: tuple) -> None:
    angle = 0.8 if GATES[name].num_params else None
    target = reference_matrix(name, angle)
    m = reference_matrix(name, angle, num_controls=len(values), control_values=values)
    t = len(target)
    block = int("".join(map(str, values)), 2)
    for b in range(2 ** len(values)):
        expected = target if b == block else np.eye(t)
        np.testing.assert_allclose(m[b * t : (b + 1) * t, b * t : (b + 1) * t], expected)
    off = m.copy()
    for b in range(2 ** len(values)):
        off[b * t : (b + 1) * t, b * t : (b + 1) * t] = 0
    assert np.abs(off).max() == 0


@pytest.mark.parametrize("between", [1, 2, 3])
def test_fbs_is_rbs_with_parity_signed_angle(between: int) -> None:
    theta = 0.7
    n = between + 2
    m = reference_matrix("fbs", theta, num_between=between)
    for col in range(2**n):
        parity = bin(col & ((1 << (n - 1)) - 2)).count("1") % 2  # ones strictly between
        signed = reference_matrix("rbs", -theta if parity else theta)
        expected = embed(signed, [0, n - 1], n)[:, col]
        np.testing.assert_allclose(m[:, col], expected, atol=1e-15)


def test_adjoint_is_conjugate_transpose() -> None:
    m = reference_matrix("rx", 0.9)
    np.testing.assert_allclose(reference_matrix("rx", 0.9, adjoint=True), m.conj().T)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: get_gate("rot"), "unknown gate 'rot'; expected one of"),
        (lambda: reference_matrix("ry"), "needs an angle"),
        (lambda: reference_matrix("cz", 0.1), "takes no angle"),
        (lambda: reference_matrix("ry", 0.1, num_between=1), "applies to 'fbs' only"),
        (lambda: reference_matrix("x", num_controls=2, control_values=(1,)), "expected 2 control"),
    ],
)
def test_bad_gate_requests_say_what_was_expected(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
