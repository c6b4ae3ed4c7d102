"""The gate table: the one place that defines every gate the IR knows.

Each :class:`Gate` gives a name, an arity, a parameter count and a reference numpy matrix. The
backends build their own fast versions from the name; the tests check them against
:func:`reference_matrix`.

Matrices act on the gate's wires in the order given, the first wire being the most significant
bit (docs/architecture.md, "Conventions").
``RBS(θ)`` on wires ``(i, j)`` in the basis ``|00>, |01>, |10>, |11>``::

    [[1,      0,     0, 0],
     [0,  cos θ, sin θ, 0],
     [0, -sin θ, cos θ, 0],
     [0,      0,     0, 1]]

Note [FBS sign]
---------------
The fermionic beam splitter on wires ``(i, j)`` is ``RBS((-1)^p θ)`` where ``p`` is the parity of
the wires strictly between ``i`` and ``j``. Conjugating ``RBS(θ)`` by ``Z`` on its first wire flips
the sign of θ, and ``D = Π_{m between} CZ(i, m)`` applies exactly ``Z_i^p``, so::

    FBS_ij(θ) = D · RBS_ij(θ) · D

On adjacent wires ``p = 0`` and FBS is RBS. Unlike a plain RBS on distant wires, the FBS makes the
weight-k block of a circuit the k-th compound of its weight-1 block for any connectivity (the sign
is the one a determinant picks up when the row of ``i`` moves past the rows in between). Because its
matrix depends on the wires in between, :func:`reference_matrix` takes the number of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

import numpy as np

MatrixFn = Callable[[float], np.ndarray]


@dataclass(frozen=True)
class Gate:
    """One entry of the gate table.

    Attributes:
        name: lower-case gate name used by :class:`circuits.Op`.
        num_wires: number of target wires.
        num_params: 0 for fixed gates, 1 for rotations.
        matrix: reference matrix as a function of the angle (ignored for fixed gates).
        real: every matrix entry is real for every angle.
        diagonal: the matrix is diagonal for every angle.
        preserves_hamming_weight: maps each Hamming-weight subspace to itself.
        self_inverse: the gate is its own inverse (for fixed gates).
    """

    name: str
    num_wires: int
    num_params: int
    matrix: MatrixFn
    real: bool
    diagonal: bool = False
    preserves_hamming_weight: bool = False
    self_inverse: bool = False


def _fixed(m: list[list[complex]]) -> MatrixFn:
    arr = np.array(m, dtype=complex)
    if np.allclose(arr.imag, 0):
        arr = arr.real.copy()
    return lambda _theta=0.0: arr.copy()


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

GATES: dict[str, Gate] = {
    g.name: g
    for g in [
        Gate("i", 1, 0, _fixed([[1, 0], [0, 1]]), True, True, True, True),
        Gate("x", 1, 0, _fixed([[0, 1], [1, 0]]), True, self_inverse=True),
        Gate("y", 1, 0, _fixed([[0, -1j], [1j, 0]]), False, self_inverse=True),
        Gate("z", 1, 0, _fixed([[1, 0], [0, -1]]), True, True, True, True),
        Gate("h", 1, 0, _fixed([[_SQ2, _SQ2], [_SQ2, -_SQ2]]), True, self_inverse=True),
        Gate("s", 1, 0, _fixed([[1, 0], [0, 1j]]), False, True, True),
        Gate("t", 1, 0, _fixed([[1, 0], [0, np.exp(0.25j * np.pi)]]), False, True, True),
        Gate("rx", 1, 1, _rx, False),
        Gate("ry", 1, 1, _ry, True),
        Gate("rz", 1, 1, _rz, False, True, True),
        Gate("phase", 1, 1, _phase, False, True, True),
        Gate("cz", 2, 0, _fixed(np.diag([1, 1, 1, -1]).tolist()), True, True, True, True),
        Gate(
            "cnot",
            2,
            0,
            _fixed([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]),
            True,
            self_inverse=True,
        ),
        Gate(
            "swap",
            2,
            0,
            _fixed([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]),
            True,
            preserves_hamming_weight=True,
            self_inverse=True,
        ),
        Gate("rbs", 2, 1, _rbs, True, preserves_hamming_weight=True),
        Gate("fbs", 2, 1, _rbs, True, preserves_hamming_weight=True),
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
        num_between: for ``fbs`` only: the number of wires strictly between its two targets. The
            matrix then acts on ``(i, between..., j)`` in that order (see Note [FBS sign]).
        adjoint: return the conjugate transpose.

    Returns:
        A ``2^(c+t) × 2^(c+t)`` matrix; real dtype when the gate is real.
    """
    gate = get_gate(name)
    if gate.num_params and param is None:
        raise ValueError(f"gate {name!r} needs an angle; found None")
    if not gate.num_params and param is not None:
        raise ValueError(f"gate {name!r} takes no angle; found {param!r}")
    m = gate.matrix(0.0 if param is None else float(param))
    if name == "fbs" and num_between:
        # D · RBS · D with D = Π CZ(i, m) over the wires in between, RBS on (i, j).
        dim = 2 ** (num_between + 2)
        bits = (np.arange(dim)[:, None] >> np.arange(num_between + 1, -1, -1)) & 1
        parity = bits[:, 1:-1].sum(axis=1) % 2
        d = np.where(bits[:, 0] * parity == 1, -1.0, 1.0)
        perm = _ij_last_order(num_between)
        rbs_full = _kron(np.eye(2**num_between), m)  # acts on (between..., i, j)
        rbs_full = rbs_full[np.ix_(perm, perm)]  # reorder to (i, between..., j)
        m = d[:, None] * rbs_full * d[None, :]
    elif name != "fbs" and num_between:
        raise ValueError(f"num_between applies to 'fbs' only; found gate {name!r}")
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
