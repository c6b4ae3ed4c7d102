"""circuits.lcu: structure, parameter layout, angle map and errors (numpy reference only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from circuits import Circuit, Op, rbs_brick, rbs_pyramid, two_design
from circuits.lcu import lcu, lcu_angles, lcu_num_ancillas, lcu_num_angles
from tests.reference import reference_unitary, ry_tree_state

# (sub-circuits, coefficients): m = 2, 3, 4, 5 (padding), mixed signs and a zero coefficient.
CASES = [
    ([two_design(2, 1), rbs_pyramid(2)], [0.7, -0.3]),
    ([two_design(3, 1), rbs_pyramid(3), rbs_brick(3, 2)], [-1.0, 0.4, 2.5]),
    ([rbs_pyramid(2), two_design(2, 0), rbs_brick(2, 1), two_design(2, 1)], [0.2, 0.0, -0.5, 1.1]),
    ([two_design(2, 1)] * 5, [1.0, -2.0, 0.5, 0.25, -0.75]),
]



@pytest.mark.parametrize(("subs", "alpha"), CASES)
def test_postselected_block_is_normalised_combination(subs: list[Circuit], alpha: list[float]):
    rng = np.random.default_rng(len(subs))
    m, n = len(subs), subs[0].n_qubits
    c = lcu(subs, alpha)
    a = lcu_num_ancillas(m)
    assert c.n_qubits == a + n
    assert c.ancillas == tuple(range(a)) and c.postselect == (0,) * a
    assert c.system_wires == tuple(range(a, a + n))
    thetas = [rng.normal(size=s.num_params) for s in subs]
    assert c.num_params == lcu_num_angles(m) + sum(s.num_params for s in subs)
    params = np.concatenate([lcu_angles(alpha), *thetas])
    u = reference_unitary(c, params)
    target = sum(
        al * reference_unitary(s, t) for al, s, t in zip(alpha, subs, thetas, strict=True)
    ) / np.abs(alpha).sum()
    np.testing.assert_allclose(u[: 2**n, : 2**n], target, atol=1e-12)
    np.testing.assert_allclose(u @ u.conj().T, np.eye(2**c.n_qubits), atol=1e-12)
    fixed = lcu(subs, alpha, fixed_coefficients=True)
    assert fixed.num_params == sum(s.num_params for s in subs)
    np.testing.assert_allclose(reference_unitary(fixed, np.concatenate(thetas)), u, atol=1e-12)


@pytest.mark.parametrize(("subs", "alpha"), CASES)
def test_angles_prepare_the_documented_states(subs: list[Circuit], alpha: list[float]):
    m = len(subs)
    a = lcu_num_ancillas(m)
    ang = lcu_angles(alpha)
    assert ang.shape == (lcu_num_angles(m),) == ((2**a - 1) + 2 ** (a - 1),)
    al = np.zeros(2**a)
    al[:m] = alpha
    l1 = np.abs(al).sum()
    v = ry_tree_state(ang[: 2**a - 1], a)
    w = ry_tree_state(np.concatenate([ang[: 2 ** (a - 1) - 1], ang[2**a - 1 :]]), a)
    np.testing.assert_allclose(v, np.sqrt(np.abs(al) / l1), atol=1e-14)
    np.testing.assert_allclose(w, np.sign(al) * np.sqrt(np.abs(al) / l1), atol=1e-14)
    np.testing.assert_allclose(lcu_angles(3.7 * np.asarray(alpha)), ang, atol=1e-14)


def test_angles_are_continuous_through_a_sign_change():
    # the angles move like 4·sqrt(eps) (through sqrt|α|), with no jump at the sign change
    eps = 1e-12
    before, after = lcu_angles([1.0, eps]), lcu_angles([1.0, -eps])
    assert np.abs(before - after).max() < 5 * np.sqrt(eps)


def test_layout_and_select_controls():
    subs = [two_design(2, 1), rbs_pyramid(2), rbs_brick(2, 1)]
    c = lcu(subs, [1.0, 2.0, 3.0])
    assert lcu_num_angles(3) == 5  # V tree 3 + W leaves 2
    # sub-circuit i's ops are controlled on both ancillas holding the bits of i
    select = [op for op in c.ops if op.wires[0] >= 2]
    offsets = [5, 5 + subs[0].num_params, 5 + subs[0].num_params + subs[1].num_params]
    k = 0
    for i, s in enumerate(subs):
        bits = ((i >> 1) & 1, i & 1)
        for op in s.ops:
            got = select[k]
            assert got.controls == (0, 1) and got.control_values == bits
            assert got.name == op.name and got.wires == tuple(w + 2 for w in op.wires)
            if isinstance(op.param, int):
                assert got.param == op.param + offsets[i]
            k += 1
    assert c.to_dict() == Circuit.from_dict(c.to_dict()).to_dict()
    assert "a0" in str(c) and "postselect" in str(c)


def test_num_ancillas():
    assert [lcu_num_ancillas(m) for m in (2, 3, 4, 5, 8, 9)] == [1, 2, 2, 3, 3, 4]


ERRORS = [
    ([two_design(2, 1)], [1.0], "at least 2 circuits; found 1"),
    ([two_design(2, 1), rbs_pyramid(3)], [1.0, 1.0], "expected 2 .*found 3"),
    ([two_design(2, 1), rbs_pyramid(2)], [1.0, math.nan], "finite; found \\[nan\\]"),
    ([two_design(2, 1), rbs_pyramid(2)], [1.0, math.inf], "finite"),
    ([two_design(2, 1), rbs_pyramid(2)], [0.0, 0.0], "not all be zero"),
    ([two_design(2, 1), rbs_pyramid(2)], [1.0, 2.0, 3.0], "expected 2 LCU coefficients"),
    ([two_design(2, 1), rbs_pyramid(2)], [1.0, 1j], "real"),
    (
        [Circuit(2, [Op("x", (1,))], ancillas=(0,), postselect=(0,)), rbs_pyramid(2)],
        [1.0, 1.0],
        "must not have ancillas",
    ),
]


@pytest.mark.parametrize(("subs", "alpha", "match"), ERRORS)
def test_errors(subs: list[Circuit], alpha: list[complex], match: str):
    with pytest.raises(ValueError, match=match):
        lcu(subs, alpha)


@pytest.mark.parametrize(
    ("alpha", "match"),
    [([1.0], "at least 2 terms"), ([0.0, 0.0, 0.0], "not all be zero"), ([1, np.nan], "finite")],
)
def test_angle_errors(alpha: list[float], match: str):
    with pytest.raises(ValueError, match=match):
        lcu_angles(alpha)


def test_fixed_needs_coefficients():
    with pytest.raises(ValueError, match="needs coefficients"):
        lcu([two_design(2, 1), rbs_pyramid(2)], fixed_coefficients=True)
