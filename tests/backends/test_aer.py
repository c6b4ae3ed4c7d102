"""backends.aer against backends.exact: unitaries, sampled distributions, expectations,
postselection, errors. TV bounds come from ``aer.tv_bound`` (derived there; failure
probability 1e-9 per comparison), never hand-tuned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("qiskit_aer")

from backends import aer, exact
from backends.postselection import lcu_params, success_probability
from circuits import Circuit, Op
from circuits.builders import fbs_butterfly, rbs_brick, rbs_butterfly, rbs_pyramid, two_design
from circuits.lcu import lcu
from tests.backends.cases import exact_probabilities as _exact_probs
from tests.backends.cases import random_params as _params

BUILDERS = [
    *(two_design(n, layers) for n in (2, 3, 5) for layers in (0, 2)),
    *(rbs_pyramid(n) for n in (2, 3, 5)),
    *(rbs_pyramid(n, gate="fbs") for n in (3, 5)),
    *(rbs_brick(n, 3) for n in (2, 4, 5)),
    rbs_butterfly(4),
    fbs_butterfly(4),
    lcu([two_design(3, 1), rbs_pyramid(3)]),
    lcu([two_design(2, 1), rbs_pyramid(2), rbs_brick(2, 2)]),
]


@pytest.mark.parametrize("circuit", BUILDERS, ids=lambda c: c.name)
def test_unitary_matches_exact(circuit: Circuit):
    p = _params(circuit, 0)
    u = aer.unitary(circuit, p)
    assert np.abs(u - exact.unitary(circuit, torch.as_tensor(p)).numpy()).max() < 1e-10


def test_unitary_batched():
    c = lcu([two_design(2, 1), rbs_pyramid(2)])
    p = _params(c, 1, batch=3)
    u = aer.unitary(c, p)
    assert u.shape == (3, 8, 8)
    assert np.abs(u - exact.unitary(c, torch.as_tensor(p)).numpy()).max() < 1e-10


SAMPLING = [
    (two_design(3, 2), 4000, 11),
    (rbs_pyramid(4), 4000, 12),
    (lcu([two_design(3, 1), rbs_pyramid(3)]), 8000, 13),
]


@pytest.mark.parametrize(
    ("circuit", "shots", "seed"), SAMPLING, ids=lambda x: getattr(x, "name", str(x))
)
def test_sampled_distribution_within_tv_bound(circuit: Circuit, shots: int, seed: int):
    p = _params(circuit, seed, batch=3)  # three parameter sets in one PUB
    s = aer.sample(circuit, p, shots=shots, seed=seed)
    exact_p = _exact_probs(circuit, p)
    assert s.probabilities.shape == (3, 2**circuit.n_qubits)
    assert all(sum(c.values()) == shots for c in s.counts)
    assert np.abs(aer.probabilities(circuit, p) - exact_p).max() < 1e-10
    bound = aer.tv_bound(2**circuit.n_qubits, shots)
    assert (aer.total_variation(s.probabilities, exact_p) < bound).all()
    again = aer.sample(circuit, p, shots=shots, seed=seed)
    assert again.counts == s.counts  # seeded


def test_bit_order_is_ir_order():
    from circuits import Op

    c = Circuit(3, [Op("x", (0,))])  # wire 0 = most significant = leftmost
    s = aer.sample(c, np.zeros(0), shots=10, seed=0)
    assert s.counts == {"100": 10} and s.probabilities[4] == 1.0


def test_postselection_kept_fraction_vs_exact_success():
    subs = [two_design(3, 1), rbs_pyramid(3)]
    c = lcu(subs)
    rng = np.random.default_rng(5)
    alpha = torch.tensor([[0.8, -0.5], [0.3, 1.0]], dtype=torch.float64)
    thetas = [torch.as_tensor(rng.normal(size=(2, s.num_params))) for s in subs]
    params = lcu_params(alpha, *thetas).numpy()
    shots = 10000
    ps = aer.sample_postselected(c, params, shots=shots, seed=7)
    zero = torch.zeros(8, dtype=torch.float64)
    zero[0] = 1
    expected = success_probability(c, torch.as_tensor(params), zero).numpy()
    assert np.abs(ps.success_probability - expected).max() < 1e-10
    # the kept fraction is a binomial mean: same McDiarmid bound with dim = 2 outcomes
    assert (np.abs(ps.kept_fraction - expected) < 2 * aer.tv_bound(2, shots)).all()
    assert ps.probabilities.shape == (2, 8)
    np.testing.assert_allclose(ps.probabilities.sum(-1), 1.0)


def test_postselection_that_keeps_nothing_warns_and_is_nan():
    # RY(π) on the ancilla (wire 0) flips it: pattern (0,) never occurs for the first set
    c = Circuit(2, [Op("ry", (0,), 0)], 1, ancillas=(0,), postselect=(0,))
    with pytest.warns(UserWarning, match=r"no shot of 50 kept for parameter set\(s\) \[0\].*NaN"):
        ps = aer.sample_postselected(c, np.array([[np.pi], [np.pi / 2]]), shots=50, seed=1)
    assert ps.kept_fraction[0] == 0 and np.isnan(ps.probabilities[0]).all()
    assert ps.kept_fraction[1] > 0 and ps.probabilities[1].sum() == pytest.approx(1.0)


OBSERVABLES = ["ZIII", "IXZI", "YYII", "IIIZ"]


def test_expectation_exact_and_sampled():
    c = lcu([two_design(3, 1), rbs_pyramid(3)])
    p = _params(c, 3, batch=2)
    u = exact.unitary(c, torch.as_tensor(p)).numpy()
    psi = u[..., :, 0]
    from qiskit.quantum_info import SparsePauliOp

    ref = np.stack(
        [np.real(np.einsum("bi,ij,bj->b", psi.conj(), SparsePauliOp(o).to_matrix(), psi))
         for o in OBSERVABLES],
        -1,
    )
    ev = aer.expectation(c, p, OBSERVABLES)
    assert ev.shape == (2, 4) and np.abs(ev - ref).max() < 1e-10
    shots = 8000
    est = aer.expectation(c, p, OBSERVABLES, shots=shots, seed=3)
    # a ±1 mean of N shots: Hoeffding, |mean - E| <= sqrt(2 ln(2/δ) / N), δ = 1e-9
    assert np.abs(est - ref).max() < np.sqrt(2 * np.log(2e9) / shots)
    single = aer.expectation(c, p[0], SparsePauliOp.from_list([("ZIII", 0.5), ("IIIZ", 2.0)]))
    assert abs(single - (0.5 * ref[0, 0] + 2 * ref[0, 3])) < 1e-10


def test_noise_model_changes_the_distribution():
    c = lcu([two_design(2, 1), rbs_pyramid(2)])
    p = _params(c, 4)
    shots = 4000
    noisy = aer.sample(c, p, shots=shots, seed=1, noise="fake_manila")
    tv = aer.total_variation(noisy.probabilities, _exact_probs(c, p))
    assert tv > aer.tv_bound(8, shots)  # the noise is visible above shot noise
    again = aer.sample(c, p, shots=shots, seed=1, noise="fake_manila")
    assert again.counts == noisy.counts


ERRORS = [
    (lambda: aer.sample(two_design(2, 1), np.zeros(3), shots=10), "shape \\(4,\\)"),
    (lambda: aer.sample(two_design(2, 1), np.zeros(4), shots=0), "positive int; found 0"),
    (lambda: aer.sample(two_design(2, 1), np.zeros(4), shots=-5), "found -5"),
    (lambda: aer.sample(two_design(2, 1), [0, 0, np.nan, 0], shots=10), "finite"),
    (lambda: aer.sample(two_design(2, 1), np.zeros(4), shots=10, noise="fake_nope"), "fake_nope"),
    (lambda: aer.expectation(two_design(2, 1), np.zeros(4), "ZZZ"), "on 2 qubits; found 3"),
    (lambda: aer.sample_postselected(two_design(2, 1), np.zeros(4), shots=10), "postselect"),
]


@pytest.mark.parametrize(("call", "match"), ERRORS)
def test_errors(call, match: str):
    with pytest.raises(ValueError, match=match):
        call()


def test_tv_bound_is_the_derived_formula():
    assert aer.tv_bound(16, 10000, delta=1e-9) == pytest.approx(
        0.5 * (np.sqrt(16 / 10000) + np.sqrt(2 * np.log(1e9) / 10000))
    )
