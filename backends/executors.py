"""One interface for every place a circuit runs, resolved once from a spec string.

:func:`resolve` turns a backend spec into an :class:`Executor`:

- ``"exact"`` — :mod:`backends.exact`: float64 state vectors, no shots;
- ``"aer"`` — ideal Aer sampling (:mod:`backends.aer`: no coupling map, a generic basis);
- ``"aer-noisy"`` / ``"aer-noisy:<fake device>"`` — Aer's ``SamplerV2`` on
  ``AerSimulator.from_backend`` of a fake device (default :data:`DEFAULT_NOISE_DEVICE`): its noise
  model, basis gates and coupling map;
- ``"ibm:fake_<name>"`` — ``qiskit-ibm-runtime``'s sampler in local testing mode on that fake
  backend (noisy, no account); ``"ibm:<device>"`` — a real device (needs an account, see
  :mod:`backends.ibm`).

Code above :mod:`backends` holds an executor and calls its methods: expectation values of a
Z string (:meth:`Executor.z_expectation`), postselected sampling, the two-qubit gates a backend
runs, a one-line description. It never branches on the spec or imports a backend's internals. The
optional SDKs (``qiskit_aer``, ``qiskit_ibm_runtime``) are imported when a spec that needs them is
resolved, with an install hint if missing; ``"exact"`` needs neither.

Postselection: for a circuit with ancillas (e.g. :func:`circuits.lcu.lcu`) an executor keeps the
shots (or amplitudes) whose ancillas read the circuit's ``postselect`` pattern and averages the
Z string over those: the renormalised expectation of the postselected state. A parameter set with
nothing kept gets the value 0 and ``kept_fraction`` 0 (the field to check), with a
``UserWarning`` that names the pattern.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np
import torch

from backends import exact
from backends.mitigation import NONE, Mitigation
from backends.postselection import NEVER, kept_indices
from circuits import Circuit

if TYPE_CHECKING:
    from backends.hardware import GateReport
    from backends.sampling import PostselectedSample, Sample

__all__ = [
    "DEFAULT_NOISE_DEVICE",
    "SPEC_FORMS",
    "SPEC_HELP",
    "AerExecutor",
    "ExactExecutor",
    "Executor",
    "IBMExecutor",
    "ZEstimate",
    "resolve",
]

#: Every form :func:`resolve` accepts.
SPEC_FORMS: tuple[str, ...] = (
    "exact",
    "aer",
    "aer-noisy",
    "aer-noisy:fake_<name>",
    "ibm:fake_<name>",
    "ibm:<device>",
)
#: The valid forms in words (for help texts and errors).
SPEC_HELP = (
    "exact, aer, aer-noisy[:fake_<name>] (Aer with a fake device's noise), ibm:fake_<name> "
    "(local testing mode) or ibm:<device>"
)
#: Fake device whose noise ``"aer-noisy"`` simulates unless told otherwise (Heron r1, 133 qubits).
DEFAULT_NOISE_DEVICE = "fake_torino"


@dataclass(frozen=True)
class ZEstimate:
    """Expectation values of a Z string, one per parameter set.

    Attributes:
        values: ``<Π_w Z_w>`` of the (postselected, renormalised) state; shape ``([B],)``.
        kept_fraction: kept shots / shots (or the exact success probability without shots);
            1 for a circuit without ancillas; shape ``([B],)``.
        shots: shots per parameter set (``None`` for exact values).
        calibration_shots: shots the readout calibration of a mitigated run cost, once for
            all parameter sets (0 without readout mitigation).
    """

    values: np.ndarray
    kept_fraction: np.ndarray
    shots: int | None
    calibration_shots: int = 0


class Executor(Protocol):
    """What every backend offers to code above :mod:`backends` (see :func:`resolve`).

    Executors are immutable: :meth:`with_options` returns a configured copy that shares the
    resolved device (no second account or device lookup).
    """

    @property
    def spec(self) -> str:
        """The spec the executor was resolved from (``"aer-noisy"``, ``"ibm:fake_manila"``…)."""
        ...

    @property
    def shots(self) -> int | None:
        """Shots per parameter set (``None``: not set, or exact)."""
        ...

    @property
    def uses_shots(self) -> bool:
        """Whether results are estimated from shots (``False``: exact, shots are ignored)."""
        ...

    @property
    def num_qubits(self) -> int | None:
        """Qubits of the device (``None``: no limit but memory)."""
        ...

    @property
    def device(self) -> str | None:
        """The device's name (``None`` without a device)."""
        ...

    def with_options(
        self,
        *,
        shots: int | None,
        seed: int | None,
        optimization_level: int,
        compilation: str | None = None,
        mitigation: Mitigation | None = None,
    ) -> Executor:
        """A copy that runs with these options (exact executors ignore them).

        Args:
            shots, seed, optimization_level: sampling and transpiler options.
            compilation, mitigation: ``"line"`` / ``"preset"``
                (:data:`backends.hardware.COMPILATIONS`) and a
                :class:`backends.mitigation.Mitigation`; ``None`` keeps the current one.

        Raises:
            ValueError: non-positive shots, a level outside 0..3, or an unknown compilation.
        """
        ...

    def z_expectation(self, circuit: Circuit, params: Any, wires: Sequence[int]) -> ZEstimate:
        """``<Π_{w ∈ wires} Z_w>`` of the state the circuit prepares from ``|0…0>``.

        Args:
            circuit: the circuit; with ancillas, the state is postselected on its pattern.
            params: ``(num_params,)`` or ``(B, num_params)``.
            wires: positions in the system register (``circuit.system_wires`` order; all wires
                when there are no ancillas).

        Raises:
            ValueError: shots not set on a sampling executor, bad params or wires, or the
                backend's errors.
        """
        ...

    def sample_postselected(self, circuit: Circuit, params: Any) -> PostselectedSample:
        """Sample, then keep the shots whose ancillas read the circuit's pattern.

        Raises:
            ValueError: an executor without shots (``"exact"``), no postselection recorded, or
                the backend's errors.
        """
        ...

    def two_qubit_gate_count(self, circuit: Circuit) -> int | None:
        """Two-qubit gates of the compiled, measured circuit the backend runs (``None``: exact)."""
        ...

    def gate_report(self, circuit: Circuit, params: Any) -> GateReport | None:
        """Two-qubit gates and depth of the circuit as :meth:`z_expectation` compiles it for
        these parameter sets (parameters equal in every set bound first); ``None``: exact."""
        ...

    def describe(self) -> str:
        """One line saying what this executor simulates or runs on."""
        ...


# ---------------------------------------------------------------------------- helpers
def _check_wires(wires: Sequence[int], circuit: Circuit) -> tuple[int, ...]:
    s = len(circuit.system_wires)
    out = tuple(wires)
    if len(set(out)) != len(out) or not all(
        isinstance(w, int | np.integer) and not isinstance(w, bool) and 0 <= w < s for w in out
    ):
        raise ValueError(
            f"expected distinct observable wires in 0..{s - 1} (system register); found {out}"
        )
    return tuple(int(w) for w in out)


def _check_level(level: object) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 3:
        raise ValueError(f"expected optimization_level in 0..3; found {level!r}")
    return level


def _z_signs(n_bits: int, wires: tuple[int, ...]) -> np.ndarray:
    """``(−1)^(ones at wires)`` for every basis index of ``n_bits`` (wire 0 most significant)."""
    idx = np.arange(2**n_bits)
    parity = np.zeros_like(idx)
    for w in wires:
        parity ^= (idx >> (n_bits - 1 - w)) & 1
    return 1.0 - 2.0 * parity


def _two_qubit_gates(compiled: Any) -> int:
    return sum(1 for inst in compiled.data if inst.operation.num_qubits == 2)


# ---------------------------------------------------------------------------- exact
@dataclass(frozen=True)
class ExactExecutor:
    """``"exact"``: :mod:`backends.exact` in float64, no shots (options are ignored)."""

    @property
    def spec(self) -> str:
        return "exact"

    @property
    def shots(self) -> int | None:
        return None

    @property
    def uses_shots(self) -> bool:
        return False

    @property
    def num_qubits(self) -> int | None:
        return None

    @property
    def device(self) -> str | None:
        return None

    def with_options(
        self,
        *,
        shots: int | None,
        seed: int | None,
        optimization_level: int,
        compilation: str | None = None,
        mitigation: Mitigation | None = None,
    ) -> ExactExecutor:
        return self

    def z_expectation(self, circuit: Circuit, params: Any, wires: Sequence[int]) -> ZEstimate:
        if not isinstance(circuit, Circuit):
            raise TypeError(f"expected a circuits.Circuit; found {type(circuit).__name__}")
        wires = _check_wires(wires, circuit)
        p = params.detach() if isinstance(params, torch.Tensor) else np.asarray(params, float)
        state = exact.columns(circuit, torch.as_tensor(p, dtype=torch.float64), 1)[..., 0]
        if circuit.ancillas:
            state = state[..., torch.as_tensor(kept_indices(circuit))]
        probs = (state.abs() ** 2).numpy()
        kept = probs.sum(-1)
        if circuit.ancillas and bool((kept <= NEVER).any()):
            warnings.warn(
                f"the ancillas {list(circuit.ancillas)} never read the postselect pattern "
                f"{list(circuit.postselect)} for {int((kept <= NEVER).sum())} parameter set(s); "
                "their values are 0 with kept_fraction 0",
                UserWarning,
                stacklevel=2,
            )
        weighted = probs @ _z_signs(len(circuit.system_wires), wires)
        values = np.where(kept > 0, weighted / np.where(kept > 0, kept, 1.0), 0.0)
        return ZEstimate(values, kept, None)

    def sample_postselected(self, circuit: Circuit, params: Any) -> PostselectedSample:
        raise ValueError(
            "the 'exact' executor computes exact values and draws no shots; use z_expectation, "
            "or a sampling spec such as 'aer'"
        )

    def two_qubit_gate_count(self, circuit: Circuit) -> int | None:
        return None

    def gate_report(self, circuit: Circuit, params: Any) -> GateReport | None:
        return None

    def describe(self) -> str:
        return "exact: backends.exact, float64 state vectors, no shots"


# ---------------------------------------------------------------------------- sampling
@dataclass(frozen=True)
class _SamplingExecutor:
    """Shared behaviour of the shot-based executors: options, and Z strings from counts."""

    spec: str
    shots: int | None = None
    seed: int | None = 0
    optimization_level: int = 1
    compilation: str = "line"
    mitigation: Mitigation = NONE

    @property
    def uses_shots(self) -> bool:
        return True

    def with_options(
        self,
        *,
        shots: int | None,
        seed: int | None,
        optimization_level: int,
        compilation: str | None = None,
        mitigation: Mitigation | None = None,
    ) -> Self:
        if shots is not None and (
            isinstance(shots, bool) or not isinstance(shots, int | np.integer) or shots < 1
        ):
            raise ValueError(
                f"expected a positive number of shots for {self.spec!r}; found {shots!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise ValueError(f"expected an int seed or None; found {seed!r}")
        from backends.hardware import COMPILATIONS

        if compilation is not None and compilation not in COMPILATIONS:
            raise ValueError(
                f"expected compilation one of {list(COMPILATIONS)}; found {compilation!r}"
            )
        if mitigation is not None and not isinstance(mitigation, Mitigation):
            raise ValueError(
                f"expected a backends.mitigation.Mitigation; found {type(mitigation).__name__}"
            )
        return dataclasses.replace(
            self,
            shots=None if shots is None else int(shots),
            seed=None if seed is None else int(seed),
            optimization_level=_check_level(optimization_level),
            compilation=self.compilation if compilation is None else compilation,
            mitigation=self.mitigation if mitigation is None else mitigation,
        )

    def _shots(self) -> int:
        if self.shots is None:
            raise ValueError(f"expected a positive number of shots for {self.spec!r}; found None")
        return self.shots

    def _sample(self, circuit: Circuit, rows: np.ndarray, fold_scale: int = 1) -> Sample:
        raise NotImplementedError

    def sample_postselected(self, circuit: Circuit, params: Any) -> PostselectedSample:
        raise NotImplementedError

    def _system(self) -> Any:
        """The backend or simulator that runs the circuits (readout calibrations run there)."""
        raise NotImplementedError

    def gate_report(self, circuit: Circuit, params: Any) -> GateReport | None:
        from backends.hardware import freeze_constants, gate_report
        from backends.qiskit import parameter_sets

        rows, _ = parameter_sets(circuit, params)
        frozen, _ = freeze_constants(circuit, rows)
        return gate_report(self._compiled(frozen))

    def _compiled(self, circuit: Circuit) -> Any:
        raise NotImplementedError

    def two_qubit_gate_count(self, circuit: Circuit) -> int | None:
        return _two_qubit_gates(self._compiled(circuit))

    def z_expectation(self, circuit: Circuit, params: Any, wires: Sequence[int]) -> ZEstimate:
        """See :meth:`Executor.z_expectation`; constants bound first (``freeze_constants``)."""
        shots = self._shots()
        from backends.hardware import freeze_constants
        from backends.mitigation import estimate_z
        from backends.qiskit import parameter_sets

        rows, single = parameter_sets(circuit, params)
        wires = _check_wires(wires, circuit)
        frozen, frozen_rows = freeze_constants(circuit, rows)
        values, kept, calibration = estimate_z(
            frozen, frozen_rows, wires, self.mitigation, self._sample, self._system
        )
        if single:
            return ZEstimate(values[0], kept[0], shots, calibration)
        return ZEstimate(values, kept, shots, calibration)


@dataclass(frozen=True)
class AerExecutor(_SamplingExecutor):
    """``"aer"`` (ideal, all-to-all) or ``"aer-noisy[:device]"`` (a fake device's noise).

    Attributes:
        noise_device: the fake device whose noise model, basis and coupling map are simulated
            (``None``: ideal).
        noise_backend: that fake backend object (``None``: ideal).
    """

    noise_device: str | None = None
    noise_backend: Any = field(default=None, repr=False, compare=False)

    @property
    def num_qubits(self) -> int | None:
        return None if self.noise_backend is None else int(self.noise_backend.num_qubits)

    @property
    def device(self) -> str | None:
        return self.noise_device

    def _options(self) -> dict[str, Any]:
        return {
            "shots": self._shots(),
            "seed": self.seed,
            "noise": self.noise_backend,
            "optimization_level": self.optimization_level,
            "compilation": self.compilation,
            "mitigation": self.mitigation,
        }

    def _system(self) -> Any:
        from backends import aer

        return aer.simulator(self.noise_backend, seed=self.seed)

    def _compiled(self, circuit: Circuit) -> Any:
        from backends import aer

        return aer.isa_circuit(
            circuit,
            noise=self.noise_backend,
            seed=self.seed,
            optimization_level=self.optimization_level,
            compilation=self.compilation,
        )

    def _sample(self, circuit: Circuit, rows: np.ndarray, fold_scale: int = 1) -> Sample:
        from backends import aer

        return aer.sample(circuit, rows, fold_scale=fold_scale, **self._options())

    def sample_postselected(self, circuit: Circuit, params: Any) -> PostselectedSample:
        from backends import aer

        return aer.sample_postselected(circuit, params, **self._options())


    def describe(self) -> str:
        if self.noise_backend is None:
            return f"{self.spec}: qiskit-aer SamplerV2, ideal, all-to-all"
        return (
            f"{self.spec}: qiskit-aer SamplerV2 on AerSimulator.from_backend({self.noise_device}): "
            "its noise model, basis and coupling map"
        )


@dataclass(frozen=True)
class IBMExecutor(_SamplingExecutor):
    """``"ibm:fake_<name>"`` (local testing mode) or ``"ibm:<device>"`` (IBM Quantum).

    Attributes:
        backend: the runtime (or fake) backend object.
    """

    backend: Any = field(default=None, repr=False, compare=False)

    @property
    def num_qubits(self) -> int | None:
        return int(self.backend.num_qubits)

    @property
    def device(self) -> str | None:
        return str(self.backend.name)

    def _options(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "shots": self._shots(),
            "seed": self.seed,
            "optimization_level": self.optimization_level,
            "compilation": self.compilation,
            "mitigation": self.mitigation,
        }

    def _system(self) -> Any:
        return self.backend

    def _compiled(self, circuit: Circuit) -> Any:
        from backends import ibm

        return ibm.isa_circuit(
            circuit,
            backend=self.backend,
            seed=self.seed,
            optimization_level=self.optimization_level,
            compilation=self.compilation,
        )

    def _sample(self, circuit: Circuit, rows: np.ndarray, fold_scale: int = 1) -> Sample:
        from backends import ibm

        return ibm.sample(circuit, rows, fold_scale=fold_scale, **self._options())

    def sample_postselected(self, circuit: Circuit, params: Any) -> PostselectedSample:
        from backends import ibm

        return ibm.sample_postselected(circuit, params, **self._options())


    def describe(self) -> str:
        name = self.spec.removeprefix("ibm:")
        if name.startswith("fake_"):
            return (
                f"{self.spec}: qiskit-ibm-runtime executor Sampler, local testing mode on {name} "
                "(its own noise model, basis and coupling map)"
            )
        return f"{self.spec}: qiskit-ibm-runtime executor Sampler on the device"


# ---------------------------------------------------------------------------- resolve
def resolve(
    spec: str,
    *,
    shots: int | None = None,
    seed: int | None = 0,
    noise_device: str = DEFAULT_NOISE_DEVICE,
    optimization_level: int = 1,
    compilation: str = "line",
    mitigation: Mitigation = NONE,
) -> Executor:
    """The executor a backend spec names (see the module docstring for the forms).

    Everything that can fail before a job is checked here: the spec, the fake device's name,
    the IBM account (for a real device) and whether the optional SDK is installed.

    Args:
        spec: one of :data:`SPEC_FORMS`.
        shots: shots per parameter set for the sampling executors (may be set later with
            :meth:`Executor.with_options`; ignored by ``"exact"``).
        seed: seeds the sampler and the transpiler.
        noise_device: the fake device of a bare ``"aer-noisy"``.
        optimization_level: preset pass-manager level of the transpiler (0..3).
        compilation: ``"line"`` (default: the device's best line of qubits,
            :func:`backends.hardware.compile_on_line`) or ``"preset"`` (the preset pass manager
            on the whole device); ideal ``"aer"`` compiles all-to-all either way.
        mitigation: a :class:`backends.mitigation.Mitigation` (default none).

    Returns:
        An :class:`Executor`.

    Raises:
        ValueError: a spec of none of the valid forms (the message lists them), an unknown fake
            device, no IBM account or an unavailable device (token scrubbed), bad options.
        ImportError: the SDK a spec needs is not installed (the message says which extra).

    Example:
        >>> from circuits import two_design
        >>> executor = resolve("exact")  # RY(0) on wire 0, RY(π) on wire 1: |01>
        >>> float(executor.z_expectation(two_design(2, 0), [0.0, np.pi], (1,)).values)
        -1.0
    """
    if not isinstance(spec, str):
        raise ValueError(f"expected a backend spec ({SPEC_HELP}); found {type(spec).__name__}")
    executor: Executor
    if spec == "exact":
        executor = ExactExecutor()
    elif spec == "aer":
        importlib.import_module("backends.aer")  # fails here, with the install hint
        executor = AerExecutor(spec)
    elif spec == "aer-noisy" or spec.startswith("aer-noisy:"):
        name = spec.partition(":")[2] if ":" in spec else noise_device
        if not name:
            raise ValueError(f"unknown backend {spec!r}; expected {SPEC_HELP}")
        importlib.import_module("backends.aer")
        from backends.ibm import fake_backend

        executor = AerExecutor(spec, noise_device=name, noise_backend=fake_backend(name))
    elif spec.startswith("ibm:") and len(spec) > len("ibm:"):
        from backends import ibm

        try:
            backend = ibm.resolve_backend(spec)
        except ibm.IBMAccountMissingError as err:
            raise ValueError(str(err)) from None
        executor = IBMExecutor(spec, backend=backend)
    else:
        raise ValueError(f"unknown backend {spec!r}; expected {SPEC_HELP}")
    return executor.with_options(
        shots=shots,
        seed=seed,
        optimization_level=optimization_level,
        compilation=compilation,
        mitigation=mitigation,
    )
