"""QNN and LCU adaptation: exact maths against an independent dense computation, adaptation on a
tiny case, the Aer/IBM path against exact with a fixed seed, and errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from backends import exact
from backends.postselection import lcu_params
from circuits import rbs_brick, rbs_pyramid, two_design
from circuits.lcu import lcu
from qadapters.qnn import classifier as qnn
from qadapters.qnn import execution as qe
from qadapters.qnn.quantum_data import make_dataset, train_test_split
from tests.reference import reference_unitary

FAST = qnn.TrainConfig(steps=60, lr=0.08, seed=0)


@pytest.fixture(scope="module")
def tasks():
    a = train_test_split(make_dataset("tfim", 4, 24, seed=0), 0.5, seed=0)
    b = train_test_split(make_dataset("xxz", 4, 24, seed=1), 0.5, seed=0)
    return a, b


@pytest.fixture(scope="module")
def models(tasks):
    (a_train, _), (b_train, _) = tasks
    base = qnn.train_qnn(a_train, layers=1, config=FAST)
    return base, qnn.adapt(base, b_train, config=FAST)


@pytest.mark.parametrize(
    ("n", "wires", "expected"),
    [(1, (0,), [1, -1]), (2, (0,), [1, 1, -1, -1]), (2, (1,), [1, -1, 1, -1]),
     (2, (0, 1), [1, -1, -1, 1]), (3, (2,), [1, -1, 1, -1, 1, -1, 1, -1])],
)  # fmt: skip
def test_z_diagonal_uses_wire_zero_as_most_significant_bit(n, wires, expected):
    assert qnn.z_diagonal(n, wires).tolist() == expected


# (QNN circuit, adapter circuit, alpha, observable)
LCU_CASES = [
    (two_design(3, 1), rbs_pyramid(3), [0.7, -0.3], (0,)),
    (two_design(3, 2), rbs_brick(3, 2), [0.2, 0.9], (1, 2)),
    (two_design(4, 1), rbs_pyramid(4), [-1.0, 0.4], (3,)),
]


@pytest.mark.parametrize(("u_qnn", "u_qa", "alpha", "observable"), LCU_CASES)
def test_postselected_prediction_equals_dense_computation(u_qnn, u_qa, alpha, observable):
    rng = np.random.default_rng(1)
    theta, phi = rng.normal(size=u_qnn.num_params), rng.normal(size=u_qa.num_params)
    circuit = lcu([u_qnn, u_qa])
    params = lcu_params(torch.tensor(alpha, dtype=torch.float64), torch.tensor(theta),
                        torch.tensor(phi))
    model = qnn.Classifier("lcu", circuit, params.detach(), observable, 3.0, 0.1, 0)
    states = rng.normal(size=(5, 2**u_qnn.n_qubits))
    states /= np.linalg.norm(states, axis=1, keepdims=True)

    # independent: gate-table matrices multiplied out in numpy, then the LCU formula
    a = np.asarray(alpha)
    op = (a[0] * reference_unitary(u_qnn, theta) + a[1] * reference_unitary(u_qa, phi)).real
    out = states @ (op / np.abs(a).sum()).T
    p = (out**2).sum(1)
    z = np.array([(-1) ** sum((i >> (u_qnn.n_qubits - 1 - w)) & 1 for w in observable)
                  for i in range(2**u_qnn.n_qubits)])  # fmt: skip
    ev = (out**2 * z).sum(1) / p

    got_ev, got_p = model.expectation(states)
    assert np.allclose(got_p, p, atol=1e-12) and np.all((got_p > 0) & (got_p <= 1 + 1e-12))
    assert np.allclose(got_ev, ev, atol=1e-12)
    assert np.array_equal(model.predict(states), (3.0 * (ev - 0.1) > 0).astype(int))

    # the circuit that backends run (prepare ψ, then the LCU), simulated on the full register
    full, rows = qe.prepared_circuit(model, states)
    finals = exact.columns(full, torch.as_tensor(rows), 1)[..., 0].numpy()
    kept = finals[:, : 2**u_qnn.n_qubits]  # ancilla (wire 0) in |0>: the top half
    assert np.allclose(kept, out, atol=1e-12)


def test_adaptation_beats_the_frozen_qnn(tasks, models):
    (_, a_test), (_, b_test) = tasks
    base, adapted = models
    assert qnn.accuracy(base, a_test) >= 0.9
    frozen = qnn.accuracy(base, b_test)
    assert qnn.accuracy(adapted, b_test) >= frozen + 0.25
    assert adapted.circuit.n_qubits == 5 and adapted.circuit.ancillas == (0,)
    # U_QNN's angles are untouched inside the LCU parameter vector (layout [α angles|θ|φ])
    assert torch.equal(adapted.params[2 : 2 + base.circuit.num_params], base.params)
    alpha = qnn.coefficients(adapted)
    assert np.abs(alpha).sum() == pytest.approx(1.0)
    _, p = adapted.expectation(b_test.states)
    assert np.all((p > 0) & (p <= 1 + 1e-12))


def test_baselines_train_what_they_say(tasks, models):
    (_, _), (b_train, b_test) = tasks
    base, _ = models
    thr = qnn.with_new_threshold(base, b_train, FAST)
    assert torch.equal(thr.params, base.params) and thr.trainable == 2
    # fitted for accuracy: the pretrained readout is one of the candidates, so it can only gain
    assert qnn.accuracy(thr, b_train) >= qnn.accuracy(base, b_train)
    flipped = replace(base, scale=-base.scale)
    assert qnn.accuracy(qnn.with_new_threshold(flipped, b_train), b_train) >= qnn.accuracy(
        base, b_train
    )  # a wrong sign is fixed too
    again = qnn.retrain(base, b_train, FAST)
    assert not torch.equal(again.params, base.params)
    alone = qnn.train_qa_alone(b_train, config=FAST)
    assert alone.circuit.preserves_hamming_weight and not alone.circuit.ancillas
    for m in (thr, again, alone):
        assert 0.0 <= qnn.accuracy(m, b_test) <= 1.0


def _margin_bound(model, data, shots, z=5.0):
    """Accuracy can only differ on states whose exact margin |<O> − threshold| is within z
    standard errors of a mean of ±1 outcomes over the kept shots (≈ p·shots of them)."""
    ev, p = model.expectation(data.states)
    tolerance = z / np.sqrt(p * shots)
    return float((np.abs(ev - model.threshold) <= tolerance).mean()), p


@pytest.mark.parametrize("shots", [500, 4000])
def test_aer_with_fixed_seed_is_within_the_shot_bound_of_exact(tasks, models, shots):
    pytest.importorskip("qiskit_aer")
    (_, _), (_, b_test) = tasks
    _, adapted = models
    exact_run = qe.evaluate(adapted, b_test, "exact")
    run = qe.evaluate(adapted, b_test, "aer", shots=shots, seed=11)
    again = qe.evaluate(adapted, b_test, "aer", shots=shots, seed=11)
    assert run.accuracy == again.accuracy and run.kept_fraction == again.kept_fraction
    bound, p = _margin_bound(adapted, b_test, shots)
    assert abs(run.accuracy - exact_run.accuracy) <= bound
    # the mean kept fraction vs the exact mean success probability: 5 standard errors
    assert abs(run.kept_fraction - p.mean()) <= 5 * np.sqrt(0.25 / (shots * len(p)))
    assert run.exact_success == pytest.approx(p.mean())


def test_ibm_fake_backend_in_local_mode_runs_the_same_circuit(tasks, models):
    pytest.importorskip("qiskit_ibm_runtime")
    (_, _), (_, b_test) = tasks
    _, adapted = models
    small = b_test.subset(np.arange(4))
    run = qe.evaluate(adapted, small, "ibm:fake_manila", shots=200, seed=3)
    assert run.shots == 200 and 0 <= run.accuracy <= 1 and 0 < run.kept_fraction <= 1


def test_errors_come_before_any_work(tasks, models):
    (_, _), (b_train, b_test) = tasks
    base, adapted = models
    with pytest.raises(ValueError, match="has 5 qubits; the circuit needs 6"):
        qe.check_backend("aer-noisy", 6, noise_backend="fake_manila")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        qe.check_backend("gpu", 2)
    with pytest.raises(ValueError, match="positive number of shots"):
        qe.evaluate(adapted, b_test, "aer", shots=None)
    with pytest.raises(ValueError, match="task-B states must have the QNN's 4 qubits; found 3"):
        qnn.adapt(base, make_dataset("xxz", 3, 6), config=FAST)
    with pytest.raises(ValueError, match="non-zero initial α"):
        qnn.adapt(base, b_train, alpha_init=(1.0, 0.0), config=FAST)
    with pytest.raises(ValueError, match="expected a unitary QNN"):
        qnn.adapt(adapted, b_train, config=FAST)
    with pytest.raises(ValueError, match="unknown adapter layout"):
        qnn.adapter_circuit(4, "butterfly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distinct observable wires"):
        qnn.z_diagonal(4, (0, 4))
    with pytest.raises(ValueError, match=r"shape \(N, 16\)"):
        base.expectation(np.ones((2, 8)))
    # α = (1, −1) on the same circuit: A = 0, nothing is ever kept
    same = lcu([base.circuit, base.circuit])
    cancel = torch.tensor([1.0, -1.0], dtype=torch.float64)
    zero = replace(
        adapted, circuit=same, params=lcu_params(cancel, base.params, base.params).detach()
    )
    with pytest.raises(ValueError, match="success probability > 1e-06 for every test state"):
        qe.evaluate(zero, b_test, "aer", shots=100)


def test_refit_threshold_moves_with_a_shifted_readout():
    model = qnn.Classifier("m", two_design(2, 1), torch.zeros(3), (0,), 4.0, 0.0, 0)
    values = np.array([-0.5, -0.2, 0.3, 0.6])
    labels = np.array([0, 0, 1, 1])
    assert qe.refit_threshold(model, values, labels) == pytest.approx(0.05)
    # a device that shrinks and shifts <O>: the trained threshold 0 now says "all 1"
    shifted = 0.4 * values + 0.3
    assert (model.labels_from(shifted) == labels).mean() == 0.5
    thr = qe.refit_threshold(model, shifted, labels)
    assert (replace(model, threshold=thr).labels_from(shifted) == labels).all()
    # a negative scale flips which side is label 1
    flipped = replace(model, scale=-4.0)
    assert (replace(flipped, threshold=qe.refit_threshold(flipped, -values, labels))
            .labels_from(-values) == labels).all()  # fmt: skip
    with pytest.raises(ValueError, match="equal-length"):
        qe.refit_threshold(model, values, labels[:3])


def test_select_uses_the_validation_set(tasks, models):
    (_, _), (_, b_test) = tasks
    base, adapted = models
    worse, better = (adapted, base) if qnn.accuracy(base, b_test) > qnn.accuracy(
        adapted, b_test) else (base, adapted)  # fmt: skip
    if qnn.accuracy(worse, b_test) == qnn.accuracy(better, b_test):
        pytest.skip("tie on this split")
    assert qnn.select([worse, better], b_test) is better
    assert qnn.select([better, better], b_test) is better
    with pytest.raises(ValueError, match="at least one candidate"):
        qnn.select([], b_test)


def test_calibrated_evaluation_and_two_qubit_counts(tasks, models):
    pytest.importorskip("qiskit_aer")
    (_, _), (b_train, b_test) = tasks
    _, adapted = models
    plain = qe.evaluate(adapted, b_test, "aer", shots=2000, seed=5)
    calib = qe.evaluate(adapted, b_test, "aer", shots=2000, seed=5, calibration=b_train)
    assert plain.accuracy_recalibrated is None
    assert calib.accuracy_recalibrated is not None and 0 <= calib.accuracy_recalibrated <= 1
    assert calib.kept_fraction == pytest.approx(plain.kept_fraction, abs=0.05)
    assert qe.two_qubit_gate_count(adapted, "exact") is None
    ideal = qe.two_qubit_gate_count(adapted, "aer")
    assert ideal is not None and ideal > 0
    pytest.importorskip("qiskit_ibm_runtime")
    routed = qe.two_qubit_gate_count(adapted, "ibm:fake_manila")
    assert routed is not None and routed >= ideal  # a linear chain only adds swaps
