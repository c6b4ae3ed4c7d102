"""circuits.state_prep.ry_tree_angles: hand-computed angles, the state the tree prepares, and its
two users (the LCU's PREPARE trees and the state-preparation circuit)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from circuits.lcu import lcu_angles, lcu_num_ancillas
from circuits.state_prep import preparation_circuit, preparation_params, ry_tree_angles
from tests.reference import reference_unitary, ry_tree_state

PI = math.pi

# (amplitudes, level-order angles worked out by hand: θ = 2·atan2(weight right, weight left))
HAND = [
    ([1.0, 0.0], [0.0]),
    ([0.0, 1.0], [PI]),
    ([1.0, 1.0], [PI / 2]),
    ([1.0, -1.0], [-PI / 2]),
    ([0.0, -1.0], [-PI]),  # RY(−π)|0> = −|1>
    ([3.0, 4.0], [2 * math.atan2(4, 3)]),  # scale does not matter
    ([1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
    ([0.0, 0.0, 1.0, 1.0], [PI, 0.0, PI / 2]),  # an empty subtree gets atan2(0, 0) = 0
    ([1.0, 1.0, 0.0, -1.0], [2 * math.atan2(1, math.sqrt(2)), PI / 2, -PI]),
    ([1.0] * 8, [PI / 2] * 7),
]


@pytest.mark.parametrize(("amplitudes", "expected"), HAND)
def test_hand_computed_angles(amplitudes: list[float], expected: list[float]):
    np.testing.assert_allclose(ry_tree_angles(np.array(amplitudes)), expected, atol=1e-15)



@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_tree_prepares_the_normalised_amplitudes_with_signs(depth: int):
    rng = np.random.default_rng(depth)
    batch = rng.normal(size=(3, 2**depth))
    batch[0, : 2 ** (depth - 1)] = 0  # a whole subtree empty
    angles = ry_tree_angles(batch)
    assert angles.shape == (3, 2**depth - 1)
    for row, theta in zip(batch, angles, strict=True):
        want = row / np.linalg.norm(row)
        np.testing.assert_allclose(ry_tree_state(theta, depth), want, atol=1e-14)


@pytest.mark.parametrize("alpha", [[0.7, -0.3], [-1.0, 0.4, 2.5], [0.2, 0.0, -0.5, 1.1, 0.3]])
def test_lcu_angles_are_the_trees_of_sqrt_alpha(alpha: list[float]):
    a = lcu_num_ancillas(len(alpha))
    root = np.zeros(2**a)
    root[: len(alpha)] = np.sqrt(np.abs(alpha))
    signed = np.sign(np.pad(alpha, (0, 2**a - len(alpha)))) * root
    got = lcu_angles(alpha)
    np.testing.assert_allclose(got[: 2**a - 1], ry_tree_angles(root), atol=1e-15)  # V
    np.testing.assert_allclose(got[2**a - 1 :], ry_tree_angles(signed)[2 ** (a - 1) - 1 :])  # W


@pytest.mark.parametrize("n", [1, 2, 3])
def test_preparation_circuit_uses_the_tree(n: int):
    state = np.random.default_rng(10 + n).normal(size=2**n)
    prepared = reference_unitary(preparation_circuit(n), preparation_params(state))[:, 0]
    np.testing.assert_allclose(prepared, state / np.linalg.norm(state), atol=1e-12)


@pytest.mark.parametrize(
    ("amplitudes", "match"),
    [
        (np.array([1.0, 1j]), "real amplitudes"),
        (np.array(["a", "b"]), "real amplitudes"),
        (np.ones(3), r"\(\.\.\., 2\^a\) with a >= 1; found shape \(3,\)"),
        (np.ones(1), r"found shape \(1,\)"),
        (np.float64(1.0), r"found shape \(\)"),
    ],
)
def test_bad_amplitudes_are_a_clear_error(amplitudes: np.ndarray, match: str):
    with pytest.raises(ValueError, match=match):
        ry_tree_angles(amplitudes)
