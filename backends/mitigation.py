"""Error mitigation for shot-based executors, postselection-aware.

- :class:`Mitigation` — what to apply: readout mitigation with ``mthree`` (matrix-free, M3), Pauli
  twirling of the two-qubit gates (Qiskit's :func:`qiskit.circuit.pauli_twirl_2q_gates` on Aer
  and fake backends, averaged over ``twirls`` randomisations; the runtime sampler's own twirling
  on ``ibm:<device>``), and dynamical decoupling (the runtime sampler's option, real devices).
- :func:`readout_mitigator` — an ``mthree.M3Mitigation`` calibrated on the measured physical
  qubits of a compiled circuit (cached per device, qubits and calibration shots).
- :func:`mitigated_postselected` — quasi-probabilities over *all* measured bits, then the
  postselection on the ancillas and the renormalisation (Note [mitigate, then postselect]).
- :func:`twirled` — the twirled copies of an ISA circuit, and :func:`split_shots` their shots.

Note [mitigate, then postselect]
--------------------------------
Readout errors act on every measured bit, the ancillas' included: a shot whose ancilla was
``|1>`` may read ``0`` and be kept, and a good shot may be thrown away. M3 inverts the readout
channel ``A`` on the space spanned by the observed bitstrings, ``q = A⁻¹ c / shots`` (a
quasi-probability over ``ancilla ⊗ system`` strings; negative entries allowed, the nearest
probability distribution taken afterwards). Postselection is a linear map too, ``P`` (keep the
strings whose ancillas read the pattern), and it does *not* commute with ``A⁻¹``: mitigating the
kept counts alone would treat the misread ancilla shots as system errors. So the order is
``q_kept = P A⁻¹ c``, renormalised by its own total (the mitigated success probability), and the
Z string is averaged over that distribution. With ``mthree`` missing, asking for readout
mitigation raises an ``ImportError`` that names the extra (``qadapters[mitigation]``).

Pauli twirling replaces each two-qubit gate ``G`` by ``(P' ⊗ Q') G (P ⊗ Q)`` with Paulis chosen
so the product is still ``G``; averaging counts over random choices turns the gate's coherent
error into a Pauli channel, whose effect on a Z string is a shrink towards 0 rather than a
rotation that can move it past a threshold. Each twirled copy gets an equal share of the shots,
so twirling costs no extra shots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends.extras import missing_extra
from circuits import Circuit

__all__ = [
    "NONE",
    "Mitigation",
    "estimate_z",
    "extrapolate",
    "fold",
    "measured_qubits",
    "moments",
    "readout_mitigator",
    "split_shots",
    "twirled",
]

#: Default shots of each readout-calibration circuit.
CALIBRATION_SHOTS = 4096


@dataclass(frozen=True)
class Mitigation:
    """Which mitigation a sampling executor applies (Note [mitigate, then postselect]).

    Attributes:
        readout: M3 readout mitigation over every measured bit (needs ``mthree``).
        twirls: Pauli-twirl randomisations of the two-qubit gates (0: no twirling; on a real
            ``ibm:<device>`` any positive value turns on the runtime's gate twirling with that
            many randomisations).
        dynamical_decoupling: the runtime sampler's dynamical decoupling (``ibm:<device>``
            only; simulators ignore it, their idle qubits do not decohere in the noise model).
        calibration_shots: shots per readout-calibration circuit.
        zne_scales: noise scales of zero-noise extrapolation by folding the two-qubit gates
            (:func:`fold`, :func:`extrapolate`); ``(1,)`` is no extrapolation. Each scale costs
            the full shots again. The numerator and the kept fraction of the postselected Z
            string are extrapolated separately (both are plain expectation values), never their
            ratio.

    Raises:
        ValueError: negative ``twirls`` or non-positive ``calibration_shots``.

    Example:
        >>> Mitigation(readout=True, twirls=8).label
        'readout+twirl8'
    """

    readout: bool = False
    twirls: int = 0
    dynamical_decoupling: bool = False
    calibration_shots: int = CALIBRATION_SHOTS
    zne_scales: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        scales = self.zne_scales
        if (
            not isinstance(scales, tuple)
            or not scales
            or scales[0] != 1
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 or s % 2 == 0
                   for s in scales)
            or len(set(scales)) != len(scales)
        ):  # fmt: skip
            raise ValueError(f"expected distinct odd zne_scales starting at 1; found {scales!r}")
        if isinstance(self.twirls, bool) or not isinstance(self.twirls, int) or self.twirls < 0:
            raise ValueError(f"expected twirls >= 0; found {self.twirls!r}")
        shots = self.calibration_shots
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
            raise ValueError(f"expected calibration_shots >= 1; found {shots!r}")

    @property
    def active(self) -> bool:
        """Whether anything is applied."""
        return (
            self.readout or self.twirls > 0 or self.dynamical_decoupling
            or len(self.zne_scales) > 1
        )  # fmt: skip

    @property
    def label(self) -> str:
        """A short name for reports (``"none"``, ``"readout"``, ``"readout+twirl8"``, …)."""
        parts = (["readout"] if self.readout else []) + (
            [f"twirl{self.twirls}"] if self.twirls else []
        ) + (["dd"] if self.dynamical_decoupling else []) + (
            ["zne" + "_".join(map(str, self.zne_scales[1:]))] if len(self.zne_scales) > 1 else []
        )  # fmt: skip
        return "+".join(parts) or "none"

    @classmethod
    def parse(cls, text: str) -> Mitigation:
        """From a label: ``"none"``, or ``+``-joined ``readout``, ``twirl<K>``, ``dd``.

        Raises:
            ValueError: an unknown part.

        Example:
            >>> Mitigation.parse("readout+twirl4+zne3").zne_scales
            (1, 3)
        """
        readout, twirls, dd = False, 0, False
        scales: tuple[int, ...] = (1,)
        for part in (p.strip() for p in text.split("+")):
            if part.startswith("zne"):
                try:
                    scales = (1, *(int(s) for s in (part[3:] or "3").split("_")))
                except ValueError:
                    raise ValueError(
                        f"expected zne<odd scales> such as zne3; found {part!r}"
                    ) from None
                continue
            if part == "readout":
                readout = True
            elif part.startswith("twirl") and part[5:].isdigit() and int(part[5:]) > 0:
                twirls = int(part[5:])
            elif part == "dd":
                dd = True
            elif part != "none":
                raise ValueError(
                    f"unknown mitigation {part!r} in {text!r}; expected none, or readout, "
                    "twirl<K> (K > 0), dd and zne<scales> (zne3, zne3_5) joined by '+'"
                )
        return cls(readout=readout, twirls=twirls, dynamical_decoupling=dd, zne_scales=scales)


#: No mitigation.
NONE = Mitigation()


# ---------------------------------------------------------------------------- twirling
def split_shots(shots: int, parts: int) -> int:
    """Shots of each of ``parts`` twirled copies so that together they take at least ``shots``."""
    return max(1, math.ceil(shots / max(1, parts)))


def twirled(isa: Any, twirls: int, *, target: Any = None, seed: int | None = None) -> list[Any]:
    """``twirls`` Pauli-twirled copies of an ISA circuit (the circuit itself for 0).

    Args:
        isa: a compiled circuit (symbolic parameters allowed).
        twirls: randomisations.
        target: the device target, so that the inserted Paulis are rewritten to its basis.
        seed: seeds the random Paulis (``None`` means 0).
    """
    if twirls <= 0:
        return [isa]
    from qiskit.circuit import pauli_twirl_2q_gates

    out = pauli_twirl_2q_gates(isa, seed=0 if seed is None else seed, num_twirls=twirls,
                               target=target)  # fmt: skip
    return list(out) if isinstance(out, list) else [out]


# ---------------------------------------------------------------------------- readout
def measured_qubits(compiled: Any) -> list[int]:
    """Physical qubit measured into each clbit of a compiled circuit, in clbit order.

    Raises:
        ValueError: a clbit that no measurement writes.
    """
    out: dict[int, int] = {}
    for inst in compiled.data:
        if inst.name == "measure":
            out[compiled.find_bit(inst.clbits[0]).index] = compiled.find_bit(inst.qubits[0]).index
    missing = [c for c in range(compiled.num_clbits) if c not in out]
    if missing:
        raise ValueError(f"expected every clbit to be measured; found clbits {missing} unmeasured")
    return [out[c] for c in range(compiled.num_clbits)]


_MITIGATORS: dict[tuple[int, tuple[int, ...], int], Any] = {}


def readout_mitigator(system: Any, qubits: Sequence[int], shots: int = CALIBRATION_SHOTS) -> Any:
    """An ``mthree.M3Mitigation`` calibrated on ``qubits`` of ``system`` (cached per system
    object, qubits and shots).

    Args:
        system: the backend or simulator that runs the circuits.
        qubits: physical qubits to calibrate.
        shots: shots per calibration circuit.

    Raises:
        ImportError: ``mthree`` is not installed (the message names the extra).
    """
    try:
        import mthree
    except ImportError as err:
        raise missing_extra("readout mitigation", "mthree", "mitigation") from err
    key = (id(system), tuple(sorted(set(qubits))), int(shots))
    if key not in _MITIGATORS:
        mit = mthree.M3Mitigation(system)
        mit.cals_from_system(list(key[1]), shots=int(shots), method="balanced", async_cal=False)
        mit.qadapters_system = system  # keeps the cached object's id valid
        _MITIGATORS[key] = mit
    return _MITIGATORS[key]


def calibration_cost(mitigator: Any, qubits: Sequence[int], shots: int) -> int:
    """Shots the balanced calibration of ``qubits`` took: two circuits (all 0, all 1) and two
    per further bit pattern that M3 runs; read from the mitigator when it records them."""
    circuits = getattr(mitigator, "num_cal_circuits", None)
    if circuits is None:
        circuits = 2 * max(1, math.ceil(math.log2(max(2, len(set(qubits)))))) + 2
    return int(circuits) * int(shots)


def moments(
    circuit: Circuit,
    counts: Sequence[dict[str, float]],
    wires: Sequence[int],
    mitigator: Any = None,
    qubits: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """The two linear quantities a postselected Z string is the ratio of, per parameter set.

    ``N = Σ_kept P(b) (−1)^(ones of b at wires)`` and ``K = Σ_kept P(b)`` over bitstrings ``b``
    whose ancillas read the pattern (every string without ancillas); the postselected value is
    ``N / K`` and ``K`` is the kept fraction. With a ``mitigator`` the distribution ``P`` is the
    nearest probability distribution to the M3 quasi-probabilities over *all* measured bits
    (Note [mitigate, then postselect]); else the counts normalised.

    Args:
        circuit: the circuit (IR wires; bitstrings read wire 0 first).
        counts: one ``{bitstring: count}`` over all wires per parameter set.
        wires: system-register positions of the Z string.
        mitigator: from :func:`readout_mitigator`, or ``None``.
        qubits: physical qubit of each clbit (clbit 0 = the rightmost character).

    Returns:
        ``(N, K)``, each ``(B,)``.

    Example:
        >>> from circuits import two_design
        >>> moments(two_design(1, 0), [{"0": 3, "1": 1}], (0,))
        (array([0.5]), array([1.]))
    """
    system = list(circuit.system_wires)
    chars = [system[w] for w in wires]
    pattern = list(zip(circuit.ancillas, circuit.postselect, strict=True))
    out_n, out_k = [], []
    for c in counts:
        if mitigator is not None:
            probs = dict(mitigator.apply_correction(dict(c), list(qubits))
                         .nearest_probability_distribution())  # fmt: skip
        else:
            total = sum(c.values()) or 1
            probs = {b: k / total for b, k in c.items()}
        kept = value = 0.0
        for bits, pr in probs.items():
            if any(int(bits[a]) != v for a, v in pattern):
                continue
            kept += pr
            value += pr * (-1) ** sum(bits[ch] == "1" for ch in chars)
        out_n.append(value)
        out_k.append(kept)
    return np.array(out_n), np.array(out_k)


def extrapolate(scales: Sequence[int], values: Sequence[np.ndarray]) -> np.ndarray:
    """Richardson extrapolation to noise scale 0 (the polynomial through the points).

    Example:
        >>> float(extrapolate([1, 3], [np.array(0.6), np.array(0.2)]))
        0.8
    """
    x = np.asarray(scales, dtype=np.float64)
    out = np.zeros_like(np.asarray(values[0], dtype=np.float64))
    for j, v in enumerate(values):
        others = np.delete(x, j)
        out = out + np.asarray(v, dtype=np.float64) * np.prod(others / (others - x[j]))
    return out


def fold(isa: Any, scale: int) -> Any:
    """Local unitary folding of every two-qubit gate: ``G → G (G† G)^((scale − 1)/2)``.

    The circuit's unitary is unchanged and each two-qubit gate's noise is applied ``scale``
    times, so ``scale`` multiplies the two-qubit noise (the dominant part on current devices)
    for zero-noise extrapolation (:func:`extrapolate`). Barriers keep the transpiler-free
    circuit as written; the gates are the device's own, so the folded circuit is still ISA.

    Raises:
        ValueError: ``scale`` is not an odd positive int.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1 or scale % 2 == 0:
        raise ValueError(f"expected an odd noise scale >= 1; found {scale!r}")
    if scale == 1:
        return isa
    out = isa.copy_empty_like()
    for inst in isa.data:
        out.append(inst)
        if inst.operation.num_qubits == 2 and inst.name not in ("barrier", "measure"):
            for _ in range((scale - 1) // 2):
                out.append(inst.operation.inverse(), inst.qubits)
                out.append(inst.operation, inst.qubits)
    return out


def estimate_z(
    circuit: Circuit,
    rows: np.ndarray,
    wires: Sequence[int],
    mitigation: Mitigation,
    sample: Callable[[Circuit, np.ndarray, int], Any],
    system: Callable[[], Any],
) -> tuple[np.ndarray, np.ndarray, int]:
    """A postselected Z string per parameter set, mitigated as ``mitigation`` says.

    For each noise scale of ``mitigation.zne_scales`` the circuit is sampled (``sample(circuit,
    rows, scale)`` returns a :class:`backends.sampling.Sample` with its measured qubits); the
    counts are readout-mitigated over every bit if asked, and the two moments ``N``, ``K`` of
    :func:`moments` are taken. With several scales each moment is extrapolated to scale 0 on
    its own; the value is ``N / K`` (clipped to ``[−1, 1]``; 0 where ``K`` is not positive).

    Args:
        circuit: the circuit (IR).
        rows: parameter sets ``(B, num_params)``.
        wires: system-register positions of the Z string.
        mitigation: what to apply.
        sample: the executor's sampler.
        system: returns the backend or simulator the readout calibration runs on.

    Returns:
        ``(values, kept_fraction, calibration_shots)``.

    Warns:
        UserWarning: a parameter set kept no shot (at scale 1).
    """
    from backends.sampling import postselected_sample

    calibration = 0
    per_scale: list[tuple[np.ndarray, np.ndarray]] = []
    for scale in mitigation.zne_scales:
        raw = sample(circuit, rows, scale)
        counts = raw.counts if isinstance(raw.counts, list) else [raw.counts]
        if circuit.ancillas and scale == 1:  # warns about sets that kept nothing
            postselected_sample(circuit, rows, counts, raw.shots, single=False)
        mitigator, qubits = None, raw.measured_qubits or ()
        if mitigation.readout:
            mitigator = readout_mitigator(system(), qubits, mitigation.calibration_shots)
            calibration = calibration_cost(mitigator, qubits, mitigation.calibration_shots)
        per_scale.append(moments(circuit, counts, wires, mitigator, qubits))
    if len(per_scale) > 1:
        numer = extrapolate(mitigation.zne_scales, [n for n, _ in per_scale])
        kept = np.clip(extrapolate(mitigation.zne_scales, [k for _, k in per_scale]), 0.0, 1.0)
    else:
        numer, kept = per_scale[0]
    safe = np.where(kept > 0, kept, 1.0)
    return np.where(kept > 0, np.clip(numer / safe, -1.0, 1.0), 0.0), kept, calibration
