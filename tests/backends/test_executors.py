"""backends.executors: every spec form resolves to an executor whose Z-string expectations agree
with an independent exact computation within a derived bound; bad specs and options are clear
errors that list what is valid.

Bounds (failure probability δ = 1e-9 per comparison, never hand-tuned):

- shot noise: a mean of K outcomes in [−1, 1] is within ``sqrt(2 ln(2/δ) / K)`` of its expectation
  (Hoeffding); for a postselected mean this holds given the K kept shots. A kept fraction of N
  shots is within ``sqrt(ln(2/δ) / (2N))`` of the success probability.
- device noise (``aer-noisy``, ``ibm:fake_*``): a ±1 observable moves by at most twice the total
  variation distance between the noisy and the ideal outcome distributions. Each compiled gate with
  average infidelity e moves that distance by at most 2e (``(d+1)/d · e`` for a Pauli channel,
  ``≈ 2e`` for amplitude damping), and a readout error of average flip probability ε by at most 2ε
  (the larger of the two flip probabilities is at most their sum). The errors are read from the
  fake device's target for exactly the compiled circuit that runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import backends
from backends import executors
from backends.executors import SPEC_HELP, resolve
from backends.postselection import lcu_params
from circuits import Circuit, Op, rbs_pyramid, two_design
from circuits.lcu import lcu
from tests.reference import reference_unitary

DELTA = 1e-9
SHOTS = 4000
QNN = two_design(2, 1)
QNN_PARAMS = np.array([0.2, 2.9, 0.1, 0.1])  # near |01>: <Z_0> ≈ 0.97, <Z_1> ≈ −0.97
WIRES = [(0,), (1,), (0, 1)]
SUBS = [two_design(2, 1), rbs_pyramid(2)]
LCU = lcu(SUBS)
LCU_PARAMS = lcu_params(
    torch.tensor([0.8, -0.5], dtype=torch.float64),
    torch.tensor([0.2, -1.1, 0.7, 2.0], dtype=torch.float64),
    torch.tensor([0.9], dtype=torch.float64),
).numpy()


def _z(n: int, wires: tuple[int, ...]) -> np.ndarray:
    return np.array([(-1) ** sum((i >> (n - 1 - w)) & 1 for w in wires) for i in range(2**n)])


def _reference(circuit: Circuit, params: np.ndarray, wires: tuple[int, ...]) -> tuple[float, float]:
    """(renormalised <Z string> of the postselected state, success probability), gate-table
    matrices multiplied out in numpy."""
    state = reference_unitary(circuit, params)[:, 0]
    if circuit.ancillas:  # ancilla = wire 0 in |0>: the top half of the register
        state = state[: 2 ** len(circuit.system_wires)]
    probs = np.abs(state) ** 2
    return float(probs @ _z(len(circuit.system_wires), wires) / probs.sum()), float(probs.sum())


def _hoeffding(k: float) -> float:
    return float(np.sqrt(2 * np.log(2 / DELTA) / k))


def _noise_allowance(executor, circuit: Circuit) -> float:
    """2 · (Σ 2·gate error + Σ 2·readout error) over the compiled circuit (module docstring)."""
    if executor.device is None or executor.spec == "aer":
        return 0.0
    if executor.spec.startswith("ibm:"):
        from backends import ibm

        device = executor.backend
        compiled = ibm.isa_circuit(circuit, backend=device, seed=executor.seed,
                                   optimization_level=executor.optimization_level)  # fmt: skip
    else:
        from backends import aer

        device = executor.noise_backend
        compiled = aer.isa_circuit(circuit, noise=device, seed=executor.seed,
                                   optimization_level=executor.optimization_level)  # fmt: skip
    tv = 0.0
    for inst in compiled.data:
        name = inst.operation.name
        qargs = tuple(compiled.find_bit(q).index for q in inst.qubits)
        if name == "barrier" or name not in device.target:
            continue
        props = device.target[name].get(qargs)
        tv += 2 * (props.error or 0.0) if props is not None else 0.0
    return 2 * tv


SPECS = ["exact", "aer", "aer-noisy:fake_manila", "ibm:fake_manila"]
NEEDS = {"exact": None, "aer": "qiskit_aer", "aer-noisy:fake_manila": "qiskit_ibm_runtime",
         "ibm:fake_manila": "qiskit_ibm_runtime"}  # fmt: skip


def _executor(spec: str, **options):
    if NEEDS[spec]:
        pytest.importorskip(NEEDS[spec])
        pytest.importorskip("qiskit_aer")
    return resolve(spec, **options)


@pytest.mark.parametrize("spec", SPECS)
def test_every_spec_agrees_with_exact_within_the_derived_bound(spec: str):
    executor = _executor(spec, shots=SHOTS, seed=7)
    batch = np.stack([QNN_PARAMS, -QNN_PARAMS])
    allowance = _noise_allowance(executor, QNN)
    for wires in WIRES:
        est = executor.z_expectation(QNN, batch, wires)
        assert est.values.shape == (2,) and est.shots == executor.shots
        np.testing.assert_allclose(est.kept_fraction, 1.0)  # no ancillas: every shot kept
        for row, value in zip(batch, est.values, strict=True):
            ref, _ = _reference(QNN, row, wires)
            bound = 1e-12 if executor.shots is None else _hoeffding(SHOTS) + allowance
            assert abs(value - ref) <= bound, (wires, value, ref, bound)
    single = executor.z_expectation(QNN, QNN_PARAMS, (0,))
    assert np.ndim(single.values) == 0 and np.ndim(single.kept_fraction) == 0


@pytest.mark.parametrize("spec", ["exact", "aer"])
def test_postselected_expectation_and_kept_fraction(spec: str):
    executor = _executor(spec, shots=SHOTS, seed=3)
    batch = np.stack([LCU_PARAMS, LCU_PARAMS + 0.3])
    for wires in WIRES:
        est = executor.z_expectation(LCU, batch, wires)
        for row, value, kept in zip(batch, est.values, est.kept_fraction, strict=True):
            ref, success = _reference(LCU, row, wires)
            if executor.shots is None:
                assert abs(value - ref) < 1e-12 and abs(kept - success) < 1e-12
                continue
            assert abs(kept - success) <= np.sqrt(np.log(2 / DELTA) / (2 * SHOTS))
            assert abs(value - ref) <= _hoeffding(kept * SHOTS)


def test_noisy_executors_run_postselection_and_agree_with_each_other_on_the_type():
    aer = _executor("aer", shots=500, seed=1)
    noisy = _executor("aer-noisy:fake_manila", shots=500, seed=1)
    ibm = _executor("ibm:fake_manila", shots=500, seed=1)
    samples = [e.sample_postselected(LCU, LCU_PARAMS) for e in (aer, noisy, ibm)]
    assert len({type(s) for s in samples}) == 1
    for s in samples:
        assert 0 < s.kept_fraction <= 1 and sum(s.counts.values()) == round(500 * s.kept_fraction)
        assert s.success_probability == pytest.approx(_reference(LCU, LCU_PARAMS, (0,))[1])
    assert samples[2].job_id and samples[0].job_id is None


# (spec, options, num_qubits, device, describe starts with)
PROPERTIES = [
    ("exact", {}, None, None, "exact: backends.exact"),
    ("aer", {}, None, None, "aer: qiskit-aer SamplerV2, ideal"),
    ("aer-noisy", {}, 133, "fake_torino", "aer-noisy: qiskit-aer SamplerV2 on AerSimulator"),
    ("aer-noisy", {"noise_device": "fake_manila"}, 5, "fake_manila", "aer-noisy: "),
    ("aer-noisy:fake_manila", {"noise_device": "fake_torino"}, 5, "fake_manila",
     "aer-noisy:fake_manila: qiskit-aer SamplerV2 on AerSimulator.from_backend(fake_manila)"),
    ("ibm:fake_manila", {}, 5, "fake_manila", "ibm:fake_manila: qiskit-ibm-runtime"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "options", "qubits", "device", "text"), PROPERTIES)
def test_resolved_properties(spec, options, qubits, device, text):
    if spec != "exact":
        pytest.importorskip("qiskit_aer")
    if spec.startswith(("aer-noisy", "ibm")):
        pytest.importorskip("qiskit_ibm_runtime")
    executor = resolve(spec, **options)
    assert executor.spec == spec and executor.num_qubits == qubits and executor.device == device
    assert executor.describe().startswith(text)
    assert executor.uses_shots == (spec != "exact")


def test_two_qubit_gate_counts():
    pytest.importorskip("qiskit_aer")
    assert resolve("exact").two_qubit_gate_count(QNN) is None
    ideal = resolve("aer", optimization_level=0).two_qubit_gate_count(QNN)
    assert ideal == 1  # the one CZ of a one-layer two-design on 2 qubits
    pytest.importorskip("qiskit_ibm_runtime")
    routed = resolve("ibm:fake_manila").two_qubit_gate_count(lcu(SUBS))
    assert routed is not None and routed >= resolve("aer").two_qubit_gate_count(lcu(SUBS))


BAD_SPECS = ["gpu", "", "Exact", "aer-noisy:", "ibm:", "aer:manila", 5, None]


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_bad_specs_list_the_valid_forms(spec):
    with pytest.raises(ValueError) as info:
        resolve(spec)
    assert SPEC_HELP in str(info.value)
    for form in ("exact", "aer", "aer-noisy[:fake_<name>]", "ibm:fake_<name>", "ibm:<device>"):
        assert form in str(info.value)


@pytest.mark.parametrize("spec", ["aer-noisy:fake_nowhere", "ibm:fake_nowhere"])
def test_unknown_fake_devices_are_named(spec: str):
    pytest.importorskip("qiskit_ibm_runtime")
    with pytest.raises(ValueError, match="unknown fake backend 'fake_nowhere'; expected one of"):
        resolve(spec)


def test_no_ibm_account_is_a_value_error_without_the_token(monkeypatch: pytest.MonkeyPatch):
    ibm = pytest.importorskip("backends.ibm")
    token = "tok-2718281828-secret"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", token)

    def refusing(**kwargs):
        raise ValueError(f"invalid token {kwargs['token']!r}")

    monkeypatch.setattr(ibm, "QiskitRuntimeService", refusing)
    with pytest.raises(ValueError, match="QISKIT_IBM_TOKEN") as info:
        resolve("ibm:ibm_fez")
    assert token not in str(info.value) and "***" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_exact_postselection_that_keeps_nothing_warns_and_reports_kept_zero():
    never = Circuit(2, [Op("x", (0,))], 0, ancillas=(0,), postselect=(0,))
    with pytest.warns(UserWarning, match=r"ancillas \[0\] never read the postselect pattern"):
        estimate = resolve("exact").z_expectation(never, np.zeros(0), (0,))
    assert estimate.kept_fraction == 0 and estimate.values == 0


ERRORS = [
    (lambda: resolve("aer", shots=0), "positive number of shots for 'aer'; found 0"),
    (lambda: resolve("aer", shots=True), "found True"),
    (lambda: resolve("aer", shots=2.5), "found 2.5"),
    (lambda: resolve("aer", seed="x"), "int seed or None; found 'x'"),
    (lambda: resolve("aer", optimization_level=4), "optimization_level in 0..3; found 4"),
    (lambda: resolve("aer").z_expectation(QNN, QNN_PARAMS, (0,)), "shots for 'aer'; found None"),
    (lambda: resolve("aer", shots=10).z_expectation(QNN, QNN_PARAMS, (2,)), r"wires in 0..1"),
    (lambda: resolve("aer", shots=10).z_expectation(QNN, QNN_PARAMS[:3], (0,)), r"shape \(4,\)"),
    (lambda: resolve("exact").z_expectation(LCU, LCU_PARAMS, (0, 0)), "distinct observable wires"),
    (lambda: resolve("exact").z_expectation(LCU, LCU_PARAMS, (2,)), r"in 0..1 \(system"),
    (lambda: resolve("exact").sample_postselected(LCU, LCU_PARAMS), "draws no shots"),
    (lambda: resolve("aer", shots=5).sample_postselected(QNN, QNN_PARAMS), "postselect"),
]


@pytest.mark.parametrize(("call", "match"), ERRORS)
def test_errors(call, match: str):
    pytest.importorskip("qiskit_aer")
    with pytest.raises(ValueError, match=match):
        call()


def test_options_copy_and_exact_ignores_them():
    pytest.importorskip("qiskit_aer")
    base = resolve("aer")
    tuned = base.with_options(shots=100, seed=None, optimization_level=3)
    assert (base.shots, tuned.shots, tuned.seed, tuned.optimization_level) == (None, 100, None, 3)
    exact = resolve("exact")
    assert exact.with_options(shots=0, seed=None, optimization_level=9) is exact
    assert exact.shots is None


def test_resolve_is_reexported_lazily():
    assert backends.resolve is executors.resolve and backends.Executor is executors.Executor
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = backends.nope
