"""Run :class:`circuits.Circuit` on Qiskit Aer: shots, Pauli expectation values, noise, unitaries.

- :func:`sample` — counts and empirical probabilities for many parameter sets of one circuit, in
  one Aer job (one PUB whose bindings array holds every set), optionally with a noise model.
- :func:`expectation` — Pauli observables: exact (Aer's estimator) or estimated from shots.
- :func:`probabilities` — exact noiseless probabilities from Aer's statevector method.
- :func:`unitary` — the circuit's unitary from ``AerSimulator(method="unitary")``.
- :func:`sample_postselected` — shots postselected on the circuit's ancilla pattern: the kept-shot
  fraction next to the exact success probability.
- :func:`isa_circuit` — the compiled circuit that :func:`sample` runs (to count its gates).
- :func:`total_variation`, :func:`tv_bound` — comparing sampled and exact distributions.

Bit order: everything returned is in the IR's order (wire 0 = most significant bit = leftmost
character of a bitstring), via :func:`backends.qiskit.to_qiskit` (Note [Qiskit bit order] there).
Pauli labels such as ``"ZIIX"`` are read the same way: character ``w`` acts on wire ``w``. That is
also how Qiskit reads a ``SparsePauliOp`` label on the compiled circuit (its leftmost character is
qubit ``n-1`` = wire 0), so labels pass through unchanged.

Binding, counts, observables and postselection are shared with :mod:`backends.ibm` through
:mod:`backends.sampling`; :class:`Sample` and :class:`PostselectedSample` are its result types.

Noise: ``noise`` is ``None`` (ideal), an Aer ``NoiseModel`` (gates are first rewritten to its basis
gates), a backend (``AerSimulator.from_backend``: its noise model, basis gates and coupling map;
the circuit is transpiled onto it) or a fake backend name such as ``"fake_manila"`` (from
``qiskit_ibm_runtime.fake_provider``, needs ``qadapters[ibm]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np

from backends.extras import missing_extra
from circuits import Circuit

try:
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.primitives import EstimatorV2, SamplerV2
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise missing_extra("backends.aer", "qiskit and qiskit-aer", "qiskit") from err

from backends.hardware import COMPILATIONS, compile_on_line
from backends.mitigation import NONE, Mitigation, fold, measured_qubits, split_shots, twirled
from backends.qiskit import check_shots, parameter_sets, to_qiskit
from backends.sampling import (
    PostselectedSample,
    Sample,
    bindings,
    check_qubits,
    check_shot_budget,
    counts_per_set,
    estimator_pubs,
    expectation_values,
    make_sample,
    merge_counts,
    pauli_observables,
    postselected_sample,
    pub,
    transpile,
    z_parity_mean,
)

__all__ = [
    "SAFE_BASIS",
    "PostselectedSample",
    "Sample",
    "expectation",
    "isa_circuit",
    "probabilities",
    "sample",
    "sample_postselected",
    "simulator",
    "total_variation",
    "tv_bound",
    "unitary",
]

#: ``None``, an Aer ``NoiseModel``, a backend object or a fake backend name (module docstring).
Noise: TypeAlias = "NoiseModel | Any | str | None"


# ---------------------------------------------------------------------------- helpers
def simulator(noise: Noise = None, *, method: str = "automatic", seed: int | None = None) -> Any:
    """The ``AerSimulator`` for a noise spec (see the module docstring).

    Raises:
        ValueError: an unknown fake backend name.
    """
    options: dict[str, Any] = {"method": method}
    if seed is not None:
        options["seed_simulator"] = seed
    if isinstance(noise, str):
        from backends.ibm import fake_backend  # needs qadapters[ibm]

        noise = fake_backend(noise)
    if noise is None:
        return AerSimulator(**options)
    if isinstance(noise, NoiseModel):
        return AerSimulator(noise_model=noise, basis_gates=noise.basis_gates, **options)
    # Building a device's noise model takes seconds on a 133-qubit device; the simulator is
    # kept per backend object (held in the key, so its id stays valid), method and seed.
    key = (id(noise), method, seed)
    if key not in _FROM_BACKEND:
        _FROM_BACKEND[key] = (noise, AerSimulator.from_backend(noise, **options))
    return _FROM_BACKEND[key][1]


_FROM_BACKEND: dict[tuple[int, str, int | None], tuple[Any, Any]] = {}


# Note [Aer controlled-rotation binds]
# ------------------------------------
# qiskit-aer 0.18 ignores PUB / ``parameter_binds`` values for its native *parameterized
# controlled* gates (cry, crx, crz, cp, cu, …): they run as if the angle were another value
# (Qiskit/qiskit-aer#2323, #2391, #2403; checked here: cry(0.7) bound that way is off by 0.34).
# LCU circuits are full of controlled rotations, so an ideal simulator never receives them: the
# circuit is rewritten to ``SAFE_BASIS`` (uncontrolled rotations + fixed multi-qubit gates)
# first. Device-like simulators (from a backend or a noise model) already use bases without them.
SAFE_BASIS: tuple[str, ...] = (
    "id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg",
    "rx", "ry", "rz", "p", "u", "cx", "cz", "ccx", "swap", "measure",
)  # fmt: skip


def _transpile(
    qc: QuantumCircuit,
    sim: Any,
    seed: int | None,
    level: int,
    device_like: bool = False,
    compilation: str = "preset",
) -> QuantumCircuit:
    """Rewrite for Aer: onto the simulated device when there is one (the preset pass manager on
    the whole device, or :func:`backends.hardware.compile_on_line` for ``compilation="line"``),
    else to :data:`SAFE_BASIS`."""
    if compilation not in COMPILATIONS:
        raise ValueError(f"expected compilation one of {list(COMPILATIONS)}; found {compilation!r}")
    if device_like and compilation == "line":
        return compile_on_line(qc, sim, optimization_level=level, seed=seed)
    if device_like:
        return transpile(qc, backend=sim, optimization_level=level, seed=seed)
    return transpile(qc, basis_gates=SAFE_BASIS, optimization_level=level, seed=seed)


def isa_circuit(
    circuit: Circuit,
    *,
    noise: Noise = None,
    seed: int | None = None,
    optimization_level: int = 1,
    compilation: str = "preset",
) -> QuantumCircuit:
    """The measured circuit as :func:`sample` compiles it for this noise spec.

    Args:
        circuit: the circuit.
        noise: see the module docstring (``None``: :data:`SAFE_BASIS`, all-to-all).
        seed: transpiler seed.
        optimization_level: preset pass manager level.
        compilation: ``"preset"`` or ``"line"`` (:data:`backends.hardware.COMPILATIONS`; a
            device-like ``noise`` only).

    Returns:
        The compiled ``QuantumCircuit`` (symbolic parameters, measurements included).

    Raises:
        ValueError: an unknown fake backend name or compilation.
    """
    sim = simulator(noise, seed=seed)
    symbolic = to_qiskit(circuit, measure=True)
    return _transpile(symbolic, sim, seed, optimization_level, noise is not None, compilation)


# ---------------------------------------------------------------------------- sampling
def sample(
    circuit: Circuit,
    params: Any,
    *,
    shots: int,
    seed: int | None = None,
    noise: Noise = None,
    method: str = "automatic",
    optimization_level: int = 1,
    compilation: str = "preset",
    mitigation: Mitigation = NONE,
    fold_scale: int = 1,
) -> Sample:
    """Measure every wire ``shots`` times for each parameter set, in one Aer job.

    Args:
        circuit: the circuit (ancillas are measured like every other wire).
        params: shape ``(num_params,)`` or ``(B, num_params)``; all B sets go into one PUB.
        shots: shots per parameter set, > 0.
        seed: seeds the sampler and the transpiler; same seed, same counts.
        noise: see the module docstring.
        method: Aer simulation method (``"automatic"``, ``"statevector"``, ``"density_matrix"``…).
        optimization_level: preset pass manager level used to rewrite the circuit for Aer.
        compilation: ``"preset"`` or ``"line"`` (see :func:`isa_circuit`).
        mitigation: ``mitigation.twirls`` Pauli-twirled copies share the shots (one PUB each,
            counts added); readout mitigation is applied by the caller to the counts, on
            :attr:`Sample.measured_qubits` (:mod:`backends.mitigation`).
        fold_scale: every two-qubit gate folded to this odd noise scale after compiling
            (:func:`backends.mitigation.fold`, for zero-noise extrapolation).

    Returns:
        A :class:`Sample` in IR bit order.

    Raises:
        ValueError: params of the wrong shape or non-finite, shots <= 0, unknown noise backend.
        MemoryError: more shots than :mod:`backends.budget` holds
            (:func:`backends.sampling.check_shot_budget`), before anything runs.
    """
    arr, single = parameter_sets(circuit, params)
    shots = check_shots(shots)
    check_shot_budget(shots, circuit.n_qubits, len(arr), what="aer.sample")
    sim = simulator(noise, method=method, seed=seed)
    check_qubits(circuit, sim, "simulator")
    symbolic = to_qiskit(circuit, measure=True)
    isa = _transpile(symbolic, sim, seed, optimization_level, noise is not None, compilation)
    values = bindings(symbolic, isa, arr)
    target = sim.target if noise is not None else None
    copies = twirled(isa, mitigation.twirls, target=target, seed=seed)
    copies = [fold(c, fold_scale) for c in copies]
    each = split_shots(shots, len(copies))
    sampler = SamplerV2.from_backend(sim, seed=seed)
    results = sampler.run([pub(c, values) for c in copies], shots=each).result()
    counts = merge_counts([counts_per_set(r.data.c, len(arr)) for r in results])
    qubits = measured_qubits(isa)
    return make_sample(counts, circuit.n_qubits, each * len(copies), single,
                       measured_qubits=qubits)  # fmt: skip


def _saved_result(circuit: Circuit, params: Any, method: str, key: str) -> np.ndarray:
    """Run ``circuit`` once per parameter set with Aer's ``save_<key>`` instruction."""
    arr, single = parameter_sets(circuit, params)
    sim = AerSimulator(method=method)
    symbolic = to_qiskit(circuit)
    qc = _transpile(symbolic, sim, 0, 0)
    getattr(qc, f"save_{key}")()
    values = bindings(symbolic, qc, arr)
    binds = [{p: values[:, k] for k, p in enumerate(qc.parameters)}] if qc.num_parameters else None
    result = sim.run(qc, parameter_binds=binds, shots=1).result()
    out = np.stack([np.asarray(result.data(b)[key]) for b in range(len(arr))])
    return out[0] if single else out


def probabilities(circuit: Circuit, params: Any) -> np.ndarray:
    """Exact noiseless probabilities of every basis state (Aer statevector method).

    Returns:
        Shape ``(2^n,)`` or ``(B, 2^n)``, indexed by the IR basis index.
    """
    return _saved_result(circuit, params, "statevector", "probabilities")


def unitary(circuit: Circuit, params: Any) -> np.ndarray:
    """The unitary from ``AerSimulator(method="unitary")`` (IR bit order, like
    ``exact.unitary``; the rewrite to Aer's gates uses optimisation level 0).

    Returns:
        Complex array ``(2^n, 2^n)`` or ``(B, 2^n, 2^n)``.
    """
    return _saved_result(circuit, params, "unitary", "unitary")


# ---------------------------------------------------------------------------- expectation values
def _qwc_groups(labels: list[str]) -> list[str]:
    """Greedy qubit-wise commuting measurement bases covering every label (``I`` = free)."""
    bases: list[list[str]] = []
    for label in labels:
        for basis in bases:
            if all(a == "I" or b in ("I", a) for a, b in zip(label, basis, strict=True)):
                for w, a in enumerate(label):
                    if a != "I":
                        basis[w] = a
                break
        else:
            bases.append(list(label))
    return ["".join(b) for b in bases]


def _basis_circuit(symbolic: QuantumCircuit, basis: str) -> QuantumCircuit:
    """``symbolic`` + rotations so that measuring Z reads ``basis``; measures every qubit."""
    n = symbolic.num_qubits
    qc = symbolic.copy()
    for w, a in enumerate(basis):
        q = n - 1 - w
        if a == "X":
            qc.h(q)
        elif a == "Y":
            qc.sdg(q)
            qc.h(q)
    qc.measure_all()
    return qc


def expectation(
    circuit: Circuit,
    params: Any,
    observables: str | SparsePauliOp | Sequence[str | SparsePauliOp],
    *,
    shots: int | None = None,
    seed: int | None = None,
    noise: Noise = None,
    optimization_level: int = 1,
) -> np.ndarray:
    """Expectation values ``<ψ(θ)|O|ψ(θ)>`` of Pauli observables.

    Args:
        circuit: the circuit (state prepared from ``|0…0>``).
        params: shape ``(num_params,)`` or ``(B, num_params)``.
        observables: a Pauli string in IR wire order (``"ZIIX"``: Z on wire 0, X on wire 3), a
            ``SparsePauliOp`` (same label order), or a list of them.
        shots: ``None`` for exact values (Aer's estimator; with ``noise`` it simulates the noisy
            channel), or shots per measurement basis: terms are grouped into qubit-wise commuting
            bases, each basis is one PUB (all parameter sets bound at once) of one sampler job.
        seed: seeds the sampler and the transpiler.
        noise: see the module docstring.
        optimization_level: preset pass manager level.

    Returns:
        Real array of shape ``([B,] [K])``: B only for batched params, K only for a list of
        observables.

    Raises:
        ValueError: bad params, shots <= 0, or observables of the wrong size or type.
        MemoryError: more shots than :mod:`backends.budget` holds, before anything runs.
    """
    arr, single_p = parameter_sets(circuit, params)
    ops, single_o = pauli_observables(observables, circuit.n_qubits)
    sim = simulator(noise, seed=seed)
    symbolic = to_qiskit(circuit)
    if shots is None:
        isa = _transpile(symbolic, sim, seed, optimization_level, noise is not None)
        estimator = EstimatorV2.from_backend(
            sim, options={"run_options": {"seed_simulator": seed}} if seed is not None else {}
        )
        pubs = estimator_pubs(isa, ops, bindings(symbolic, isa, arr))
        res = estimator.run(pubs).result()
        return expectation_values(res, len(arr), single_params=single_p, single_observable=single_o)
    shots = check_shots(shots)
    terms = [(label, complex(c)) for op in ops for label, c in op.to_list()]
    bases = _qwc_groups([t[0] for t in terms])
    check_shot_budget(shots, circuit.n_qubits, len(arr) * len(bases), what="aer.expectation")
    circuits = [_basis_circuit(symbolic, b) for b in bases]
    isas = [_transpile(qc, sim, seed, optimization_level, noise is not None) for qc in circuits]
    pubs = [pub(isa, bindings(symbolic, isa, arr)) for isa in isas]
    results = SamplerV2.from_backend(sim, seed=seed).run(pubs, shots=shots).result()
    parities: dict[str, np.ndarray] = {}
    for basis, res in zip(bases, results, strict=True):
        counts = counts_per_set(res.data.meas, len(arr))
        for label, _ in terms:
            if label in parities or not all(
                a == "I" or a == b for a, b in zip(label, basis, strict=True)
            ):
                continue
            support = [w for w, a in enumerate(label) if a != "I"]
            parities[label] = np.array([z_parity_mean(c, support)[0] for c in counts])
    out = np.stack(
        [sum(np.real(c) * parities[label] for label, c in op.to_list()) for op in ops], -1
    )
    out = out[..., 0] if single_o else out
    return out[0] if single_p else out


# ---------------------------------------------------------------------------- postselection
def sample_postselected(
    circuit: Circuit,
    params: Any,
    *,
    shots: int,
    seed: int | None = None,
    noise: Noise = None,
    optimization_level: int = 1,
    compilation: str = "preset",
    mitigation: Mitigation = NONE,
) -> PostselectedSample:
    """Sample, then keep the shots whose ancillas read the circuit's ``postselect`` pattern.

    The kept fraction estimates the success probability (``‖Σ α_i U_i ψ‖² / ‖α‖₁²`` for an
    LCU, see Note [LCU postselection] in :mod:`circuits.lcu`); the exact noiseless value comes
    from :mod:`backends.exact`, so the two can be compared directly
    (:func:`backends.sampling.postselected_sample`).

    Args:
        circuit: a circuit with ``ancillas`` and ``postselect``.
        params, shots, seed, noise, optimization_level, compilation, mitigation: as for
            :func:`sample` (readout mitigation is not applied to these integer counts).

    Returns:
        A :class:`PostselectedSample`; arrays have a leading B axis only for batched params. A
        parameter set with no kept shot has NaN probabilities (check ``kept_fraction``).

    Warns:
        UserWarning: some parameter set kept no shot.

    Raises:
        ValueError: no postselection recorded, or the errors of :func:`sample`.
        MemoryError: the shots would not fit :mod:`backends.budget`.
    """
    if not isinstance(circuit, Circuit) or not circuit.ancillas or not circuit.postselect:
        raise ValueError("expected a circuit with ancillas and a postselect pattern")
    arr, single = parameter_sets(circuit, params)
    raw = sample(
        circuit, arr, shots=shots, seed=seed, noise=noise, optimization_level=optimization_level,
        compilation=compilation, mitigation=mitigation,
    )  # fmt: skip
    counts = raw.counts if isinstance(raw.counts, list) else [raw.counts]
    return postselected_sample(circuit, arr, counts, raw.shots, single=single)


# ---------------------------------------------------------------------------- statistics
def total_variation(p: Any, q: Any) -> np.ndarray:
    """``½ Σ |p − q|`` over the last axis."""
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum(-1)


def tv_bound(dim: int, shots: int, delta: float = 1e-9) -> float:
    """A bound on the total-variation distance between an empirical distribution of ``shots``
    samples over ``dim`` outcomes and the true one, holding with probability ``>= 1 − delta``.

    ``E‖p̂ − p‖₁ ≤ Σ_i sqrt(p_i/N) ≤ sqrt(dim/N)`` (Cauchy–Schwarz), and ``‖p̂ − p‖₁`` changes by at
    most ``2/N`` when one sample changes, so McDiarmid gives
    ``P(‖p̂ − p‖₁ ≥ sqrt(dim/N) + t) ≤ exp(−N t² / 2)``. Hence, with probability ``>= 1 − delta``::

        TV ≤ ½ (sqrt(dim/N) + sqrt(2 ln(1/delta) / N))
    """
    shots = check_shots(shots)
    return 0.5 * (np.sqrt(dim / shots) + np.sqrt(2 * np.log(1 / delta) / shots))
