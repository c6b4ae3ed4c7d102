"""The gate table: the one place that defines every gate the IR knows.

Each :class:`Gate` gives a name, an arity, a parameter count, a reference numpy matrix and what a
backend needs to build the gate without knowing it by name:

- a **rotation** (``num_params == 1``) is ``M(θ) = exp(−iθG)`` for the Hermitian ``generator`` G,
  whose non-zero eigenvalues are ``±ω`` (``frequency``); see Note [rotation form];
- ``qiskit`` / ``pennylane``: the SDK's own gate for it, as a :class:`Native` (a class or op name
  and an angle map), where the SDK has one;
- ``decomposition``: the gate as a product of other gates of the table (:class:`Step`), for SDKs
  without a native gate;
- ``between_parity``: the FBS dressing of Note [FBS sign].

The backends derive everything else (the torch matrices of :mod:`backends.torch_gates`, the Qiskit
and PennyLane gates) from these fields, with generic fall-backs when a gate has no native name: the
reference matrix (fixed gates) or the generator (rotations). Adding a gate is one entry in
:data:`GATES`; ``tests/backends/test_gate_table.py`` walks the table and checks every backend
against :func:`reference_matrix`.

Matrices act on the gate's wires in the order given, the first wire being the most significant
bit (docs/architecture.md, "Conventions").
``RBS(θ)`` on wires ``(i, j)`` in the basis ``|00>, |01>, |10>, |11>``::

    [[1,      0,     0, 0],
     [0,  cos θ, sin θ, 0],
     [0, -sin θ, cos θ, 0],
     [0,      0,     0, 1]]

Note [rotation form]
--------------------
When the spectrum of a Hermitian G is ``{0, ±ω}`` (ω > 0), ``G³ = ω²G``, and the exponential
series folds into three fixed matrices::

    exp(−iθG) = F + cos(ωθ) · C + sin(ωθ) · S,   C = G²/ω²,  F = 1 − C,  S = −iG/ω

(``C`` projects onto the eigenvalues ±ω, on which ``G/ω`` squares to one). Every rotation of the
table has this form: ``ry`` is G = Y/2 (ω = ½, F = 0, C = 1, S = [[0,−1],[1,0]]), ``rbs`` is
G = (X⊗Y − Y⊗X)/2 (ω = 1, F = |00><00| + |11><11|). The parts are real exactly when the gate is.
Because G is Hermitian, ``M(θ)† = M(−θ)``: the adjoint of a rotation is the rotation at −θ.

Note [FBS sign]
---------------
The fermionic beam splitter on wires ``(i, j)`` is ``RBS((-1)^p θ)`` where ``p`` is the parity of
the wires strictly between ``i`` and ``j``. Conjugating ``RBS(θ)`` by ``Z`` on its first wire flips
the sign of θ, and ``D = Π_{m between} CZ(i, m)`` applies exactly ``Z_i^p``, so::

    FBS_ij(θ) = D · RBS_ij(θ) · D

On adjacent wires ``p = 0`` and FBS is RBS. Unlike a plain RBS on distant wires, the FBS makes the
weight-k block of a circuit the k-th compound of its weight-1 block for any connectivity (the sign
is the one a determinant picks up when the row of ``i`` moves past the rows in between). Because its
matrix depends on the wires in between, :func:`reference_matrix` takes the number of them. In the
table, ``fbs`` is the ``rbs`` entry with ``between_parity=True``: a backend builds the RBS core
from the entry's other fields and dresses it with ``D``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache, reduce

import numpy as np

MatrixFn = Callable[[float], np.ndarray]
#: A small matrix as nested tuples of numbers (hashable, so a :class:`Gate` stays a value).
MatrixData = tuple[tuple[complex, ...], ...]


@dataclass(frozen=True)
class Native:
    """A gate as an SDK spells it: ``SDK.<name>(scale · θ, *extra)`` on the gate's wires.

    The wires are passed in the IR's order (Qiskit qargs after the bit-order map of
    :mod:`backends.qiskit`); the IR's matrix convention must then hold for the SDK's gate, which
    ``tests/backends/test_gate_table.py`` checks for every entry.

    Attributes:
        name: a class of ``qiskit.circuit.library`` or an operation of ``pennylane``.
        scale: the SDK's angle is ``scale · θ`` (ignored for fixed gates).
        extra: further fixed arguments after the angle.

    Example:
        >>> Native("SingleExcitation", scale=-2.0)  # RBS(θ) in PennyLane
        Native(name='SingleExcitation', scale=-2.0, extra=())
    """

    name: str
    scale: float = 1.0
    extra: tuple[float, ...] = ()


@dataclass(frozen=True)
class Step:
    """One gate of a :attr:`Gate.decomposition`: table gate ``name`` on the local wires ``wires``
    (positions among the decomposed gate's targets), at angle ``scale · θ`` (``None`` for a fixed
    gate)."""

    name: str
    wires: tuple[int, ...]
    scale: float | None = None


@dataclass(frozen=True, kw_only=True)
class Gate:
    """One entry of the gate table.

    Attributes:
        name: lower-case gate name used by :class:`circuits.Op`.
        num_wires: number of target wires.
        num_params: 0 for fixed gates, 1 for rotations.
        real: every matrix entry is real for every angle.
        matrix: reference matrix as a function of the angle (ignored for fixed gates); for a
            rotation, ``None`` means the closed form of Note [rotation form].
        generator: for a rotation, the Hermitian G of ``M(θ) = exp(−iθG)``.
        frequency: ω, the largest eigenvalue of G (its spectrum must be ``{0, ±ω}``).
        diagonal: the matrix is diagonal for every angle.
        preserves_hamming_weight: maps each Hamming-weight subspace to itself.
        self_inverse: the gate is its own inverse (for fixed gates).
        between_parity: the gate is ``D · M · D`` (Note [FBS sign]); ``M`` is what the other
            fields describe.
        qiskit: the ``qiskit.circuit.library`` gate, if Qiskit has one.
        pennylane: the ``pennylane`` operation, if PennyLane has one.
        decomposition: the gate as a product of other table gates, in time order.

    Raises:
        ValueError: a rotation without a generator or whose ``real`` flag disagrees with it, a
            fixed gate without a matrix, or a parameter count other than 0 or 1.
    """

    name: str
    num_wires: int
    num_params: int
    real: bool
    matrix: MatrixFn | None = None
    generator: MatrixData | None = None
    frequency: float = 1.0
    diagonal: bool = False
    preserves_hamming_weight: bool = False
    self_inverse: bool = False
    between_parity: bool = False
    qiskit: Native | None = None
    pennylane: Native | None = None
    decomposition: tuple[Step, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.num_params not in (0, 1):
            raise ValueError(
                f"gate {self.name!r}: expected 0 or 1 parameters; found {self.num_params}"
            )
        if not self.num_params:
            if self.matrix is None:
                raise ValueError(f"fixed gate {self.name!r} needs a matrix; found None")
            return
        if self.generator is None:
            raise ValueError(f"rotation {self.name!r} needs a generator; found None")
        real = all(np.isrealobj(p) for p in _parts(self.generator, self.frequency))
        if real != self.real:
            raise ValueError(
                f"rotation {self.name!r}: its generator gives a {'real' if real else 'complex'}"
                f" exp(-iθG); found real={self.real}"
            )
        if self.matrix is None:
            object.__setattr__(self, "matrix", _closed_form(self.generator, self.frequency))


def _fixed(m: list[list[complex]]) -> MatrixFn:
    arr = np.array(m, dtype=complex)
    if np.allclose(arr.imag, 0):
        arr = arr.real.copy()

    def matrix(_theta: float = 0.0) -> np.ndarray:
        return arr.copy()

    return matrix


def _parts(generator: MatrixData, frequency: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(F, C, S)`` of Note [rotation form]; real arrays when they are real."""
    g = np.array(generator, dtype=complex)
    c = g @ g / frequency**2
    f, s = np.eye(len(g)) - c, -1j * g / frequency
    if all(np.allclose(p.imag, 0, atol=0) for p in (f, c, s)):
        return f.real.copy(), c.real.copy(), s.real.copy()
    return f, c, s


def _closed_form(generator: MatrixData, frequency: float) -> MatrixFn:
    f, c, s = _parts(generator, frequency)

    def matrix(theta: float) -> np.ndarray:
        return f + np.cos(frequency * theta) * c + np.sin(frequency * theta) * s

    return matrix


@cache
def rotation_parts(name: str) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """``(ω, F, C, S)`` of a rotation, with ``M(θ) = F + cos(ωθ)·C + sin(ωθ)·S``.

    See Note [rotation form]. The arrays are real when the gate is real, complex otherwise; they
    are shared between calls, so copy before writing to them.

    Args:
        name: a rotation of :data:`GATES`.

    Returns:
        The frequency ω and three ``2^t × 2^t`` arrays.

    Raises:
        ValueError: unknown gate, or a fixed gate.

    Example:
        >>> omega, f, c, s = rotation_parts("ry")
        >>> omega, s.tolist()
        (0.5, [[0.0, -1.0], [1.0, 0.0]])
    """
    gate = get_gate(name)
    if gate.generator is None:
        raise ValueError(f"expected a rotation; gate {name!r} takes no angle")
    f, c, s = _parts(gate.generator, gate.frequency)
    for p in (f, c, s):
        p.flags.writeable = False
    return gate.frequency, f, c, s


def _rx(t: float) -> np.ndarray:
    c, s = np.cos(t / 2), np.sin(t / 2)
    return np.array([[c, -1j * s], [-1j * s, c]])


def _ry(t: float) -> np.ndarray:
    c, s = np.cos(t / 2), np.sin(t / 2)
    return np.array([[c, -s], [s, c]])


def _rz(t: float) -> np.ndarray:
    return np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])


def _phase(t: float) -> np.ndarray:
    return np.diag([1.0, np.exp(1j * t)])


def _rbs(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[1, 0, 0, 0], [0, c, s, 0], [0, -s, c, 0], [0, 0, 0, 1]], dtype=float)


_SQ2 = 1 / np.sqrt(2)
_HALF = 0.5


def _fixed_gate(name: str, m: list[list[complex]], qiskit: str, pennylane: str, **flags) -> Gate:
    return Gate(
        name=name,
        num_wires=int(np.log2(len(m))),
        num_params=0,
        real=bool(np.allclose(np.imag(np.array(m, dtype=complex)), 0)),
        matrix=_fixed(m),
        qiskit=Native(qiskit),
        pennylane=Native(pennylane),
        **flags,
    )


# RBS(θ) = exp(−iθG) with G = i·[[0, 1], [−1, 0]] on |01>, |10>. PennyLane's SingleExcitation(φ)
# has the block [[cos φ/2, −sin φ/2], [sin φ/2, cos φ/2]], so RBS(θ) = SingleExcitation(−2θ).
# Qiskit's XXPlusYYGate(2θ, β=π/2) on the same qargs is RBS too, but the OpenQASM 3 exporter of
# qiskit 2.6 mis-writes gates whose definitions take angle expressions, so Qiskit builds RBS from
# its decomposition in standard gates: H⊗H · CZ · (RY(θ) ⊗ RY(−θ)) · CZ · H⊗H.
_RBS = Gate(
    name="rbs",
    num_wires=2,
    num_params=1,
    real=True,
    matrix=_rbs,
    generator=((0, 0, 0, 0), (0, 0, 1j, 0), (0, -1j, 0, 0), (0, 0, 0, 0)),
    preserves_hamming_weight=True,
    pennylane=Native("SingleExcitation", scale=-2.0),
    decomposition=(
        Step("h", (0,)),
        Step("h", (1,)),
        Step("cz", (0, 1)),
        Step("ry", (0,), 1.0),
        Step("ry", (1,), -1.0),
        Step("cz", (0, 1)),
        Step("h", (0,)),
        Step("h", (1,)),
    ),
)

GATES: dict[str, Gate] = {
    g.name: g
    for g in [
        _fixed_gate("i", [[1, 0], [0, 1]], "IGate", "Identity", diagonal=True,
                    preserves_hamming_weight=True, self_inverse=True),
        _fixed_gate("x", [[0, 1], [1, 0]], "XGate", "PauliX", self_inverse=True),
        _fixed_gate("y", [[0, -1j], [1j, 0]], "YGate", "PauliY", self_inverse=True),
        _fixed_gate("z", [[1, 0], [0, -1]], "ZGate", "PauliZ", diagonal=True,
                    preserves_hamming_weight=True, self_inverse=True),
        _fixed_gate("h", [[_SQ2, _SQ2], [_SQ2, -_SQ2]], "HGate", "Hadamard", self_inverse=True),
        _fixed_gate("s", [[1, 0], [0, 1j]], "SGate", "S", diagonal=True,
                    preserves_hamming_weight=True),
        _fixed_gate("t", [[1, 0], [0, np.exp(0.25j * np.pi)]], "TGate", "T", diagonal=True,
                    preserves_hamming_weight=True),
        Gate(name="rx", num_wires=1, num_params=1, real=False, matrix=_rx,
             generator=((0, _HALF), (_HALF, 0)), frequency=_HALF,
             qiskit=Native("RXGate"), pennylane=Native("RX")),
        Gate(name="ry", num_wires=1, num_params=1, real=True, matrix=_ry,
             generator=((0, -0.5j), (0.5j, 0)), frequency=_HALF,
             qiskit=Native("RYGate"), pennylane=Native("RY")),
        Gate(name="rz", num_wires=1, num_params=1, real=False, matrix=_rz,
             generator=((_HALF, 0), (0, -_HALF)), frequency=_HALF, diagonal=True,
             preserves_hamming_weight=True, qiskit=Native("RZGate"), pennylane=Native("RZ")),
        Gate(name="phase", num_wires=1, num_params=1, real=False, matrix=_phase,
             generator=((0, 0), (0, -1)), frequency=1.0, diagonal=True,
             preserves_hamming_weight=True, qiskit=Native("PhaseGate"),
             pennylane=Native("PhaseShift")),
        _fixed_gate("cz", np.diag([1, 1, 1, -1]).tolist(), "CZGate", "CZ", diagonal=True,
                    preserves_hamming_weight=True, self_inverse=True),
        _fixed_gate("cnot", [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], "CXGate",
                    "CNOT", self_inverse=True),
        _fixed_gate("swap", [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], "SwapGate",
                    "SWAP", preserves_hamming_weight=True, self_inverse=True),
        _RBS,
        replace(_RBS, name="fbs", between_parity=True),
    ]
}


def get_gate(name: str) -> Gate:
    """Look a gate up by name.

    Raises:
        ValueError: the name is not in the table; the message lists the valid names.
    """
    try:
        return GATES[name]
    except KeyError:
        raise ValueError(
            f"unknown gate {name!r}; expected one of {sorted(GATES)}"
        ) from None


def _kron(*ms: np.ndarray) -> np.ndarray:
    return reduce(np.kron, ms)


def reference_matrix(
    name: str,
    param: float | None = None,
    *,
    num_controls: int = 0,
    control_values: tuple[int, ...] | None = None,
    num_between: int = 0,
    adjoint: bool = False,
) -> np.ndarray:
    """The reference matrix of a gate, optionally controlled, in numpy.

    Args:
        name: gate name from :data:`GATES`.
        param: angle for rotation gates; must be None for fixed gates.
        num_controls: number of control wires, placed *before* the targets (most significant).
        control_values: the value (0 or 1) each control must hold; default all ones.
        num_between: for ``between_parity`` gates (``fbs``) only: the number of wires strictly
            between its two targets. The matrix then acts on ``(i, between..., j)`` in that order
            (see Note [FBS sign]).
        adjoint: return the conjugate transpose.

    Returns:
        A ``2^(c+t) × 2^(c+t)`` matrix; real dtype when the gate is real.
    """
    gate = get_gate(name)
    if gate.num_params and param is None:
        raise ValueError(f"gate {name!r} needs an angle; found None")
    if not gate.num_params and param is not None:
        raise ValueError(f"gate {name!r} takes no angle; found {param!r}")
    if gate.matrix is None:  # pragma: no cover - Gate.__post_init__ always sets it
        raise ValueError(f"gate {name!r} has no reference matrix")
    m = gate.matrix(0.0 if param is None else float(param))
    if gate.between_parity and num_between:
        # D · RBS · D with D = Π CZ(i, m) over the wires in between, RBS on (i, j).
        dim = 2 ** (num_between + 2)
        bits = (np.arange(dim)[:, None] >> np.arange(num_between + 1, -1, -1)) & 1
        parity = bits[:, 1:-1].sum(axis=1) % 2
        d = np.where(bits[:, 0] * parity == 1, -1.0, 1.0)
        perm = _ij_last_order(num_between)
        rbs_full = _kron(np.eye(2**num_between), m)  # acts on (between..., i, j)
        rbs_full = rbs_full[np.ix_(perm, perm)]  # reorder to (i, between..., j)
        m = d[:, None] * rbs_full * d[None, :]
    elif num_between:
        parity = ", ".join(repr(g.name) for g in GATES.values() if g.between_parity)
        raise ValueError(f"num_between applies to {parity} only; found gate {name!r}")
    if adjoint:
        m = m.conj().T
    if num_controls:
        values = (1,) * num_controls if control_values is None else tuple(control_values)
        if len(values) != num_controls:
            raise ValueError(
                f"expected {num_controls} control values; found {len(values)}: {values}"
            )
        t = m.shape[0]
        full = np.eye(2**num_controls * t, dtype=m.dtype)
        block = int("".join(str(v) for v in values), 2)
        full[block * t : (block + 1) * t, block * t : (block + 1) * t] = m
        m = full
    return m


def _ij_last_order(num_between: int) -> np.ndarray:
    """Index map from the order ``(i, between..., j)`` to ``(between..., i, j)``."""
    n = num_between + 2
    out = np.empty(2**n, dtype=int)
    for idx in range(2**n):
        bits = [(idx >> (n - 1 - q)) & 1 for q in range(n)]
        i, between, j = bits[0], bits[1:-1], bits[-1]
        moved = [*between, i, j]
        out[idx] = int("".join(map(str, moved)), 2)
    return out
