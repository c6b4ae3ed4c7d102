"""Linear combinations of unitaries (LCU) as circuits: PREPARE, SELECT, un-PREPARE, postselect.

:func:`lcu` builds one :class:`~circuits.Circuit` from ``m`` sub-circuits on the same ``n`` system
qubits. It adds ``a = ⌈log2 m⌉`` ancillas **first**: wires ``0..a-1`` are the ancillas (ancilla 0 is
the most significant bit of the index ``i``), and sub-circuit wire ``w`` becomes wire ``a + w``.
With ancillas first, the postselected block is the top-left ``2^n × 2^n`` block of the unitary.

Note [LCU postselection]
------------------------
Let ``α ∈ R^m``, ``‖α‖₁ = Σ|α_i|``, and two real ancilla states::

    v_i = sqrt(|α_i| / ‖α‖₁)                 (PREPARE:    V |0> = Σ_i v_i |i>)
    w_i = sign(α_i) · sqrt(|α_i| / ‖α‖₁)     (un-PREPARE: W |0> = Σ_i w_i |i>, applied as W†)

and ``SELECT = Σ_i |i><i| ⊗ U_i`` (identity on the padding indices ``i ≥ m``). Then::

    (<0| ⊗ I) · W† · SELECT · V · (|0> ⊗ I) = Σ_i w_i v_i U_i = Σ_i α_i U_i / ‖α‖₁

because W is real (``<0|W†|i> = w_i``). Measuring the ancillas and keeping ``|0…0>`` therefore
leaves ``(Σ α_i U_i)|ψ> / ‖α‖₁`` (unnormalised) on the system, with success probability
``‖Σ α_i U_i ψ‖² / ‖α‖₁²``. Putting the signs into W rather than into SELECT keeps the circuit's
structure independent of α and its angles continuous in α, so α is trainable.

Both V and W are binary trees of RY rotations (Note [RY tree] in :mod:`circuits.state_prep`): the
rotation at level ``l`` (ancilla ``l``) for the prefix ``p`` of the first ``l`` index bits is
controlled on those ancillas holding ``p``. V's tree is that of the amplitudes ``sqrt|α|``, W's that
of ``sign(α)·sqrt|α|``; their inner angles agree (they depend on norms only), so only W's leaf
level is new.

Parameter layout of the returned circuit (trainable coefficients, the default)::

    [ V tree: 2^a − 1 angles (level order: level 0, then level 1 prefixes 0,1, …)
      | W leaves: 2^(a−1) angles (prefixes 0, 1, …)
      | sub-circuit 0 params | sub-circuit 1 params | … ]

:func:`lcu_angles` maps α to the first ``2^a − 1 + 2^(a−1)`` entries (see
:func:`lcu_num_angles`); ``backends.postselection.lcu_angles_torch`` is its differentiable twin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from circuits.circuit import Circuit, Op
from circuits.state_prep import ry_tree_angles

__all__ = ["lcu", "lcu_angles", "lcu_num_ancillas", "lcu_num_angles"]


def lcu_num_ancillas(num_terms: int) -> int:
    """``⌈log2 m⌉``: the ancillas an LCU of ``m >= 2`` terms needs."""
    _check_num_terms(num_terms)
    return max(1, math.ceil(math.log2(num_terms)))


def lcu_num_angles(num_terms: int) -> int:
    """Number of PREPARE / un-PREPARE angles at the front of an LCU's parameter vector."""
    a = lcu_num_ancillas(num_terms)
    return (2**a - 1) + 2 ** (a - 1)


def _check_num_terms(m: object) -> None:
    if isinstance(m, bool) or not isinstance(m, int) or m < 2:
        raise ValueError(f"an LCU needs at least 2 terms; found {m!r}")


def check_coefficients(coefficients: Sequence[float] | np.ndarray, num_terms: int) -> np.ndarray:
    """Validate LCU coefficients and return them as a float64 array.

    Raises:
        ValueError: wrong count, complex or non-numeric, non-finite, or all zero.
    """
    arr = np.asarray(coefficients)
    if arr.ndim != 1 or arr.shape[0] != num_terms:
        raise ValueError(
            f"expected {num_terms} LCU coefficients (one per circuit); found shape {arr.shape}"
        )
    if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"expected real LCU coefficients; found dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = [i for i, x in enumerate(arr) if not np.isfinite(x)]
        raise ValueError(f"LCU coefficients must be finite; found {arr[bad].tolist()} at {bad}")
    if not np.any(arr):
        raise ValueError(f"LCU coefficients must not all be zero; found {arr.tolist()}")
    return arr


def lcu_angles(coefficients: Sequence[float] | np.ndarray) -> np.ndarray:
    """The PREPARE and un-PREPARE angles of an LCU with these coefficients (numpy).

    Args:
        coefficients: real ``α``, length ``m >= 2``, finite, not all zero. Any scale: only
            ``α / ‖α‖₁`` matters.

    Returns:
        Shape ``(lcu_num_angles(m),)``: the V tree in level order, then W's leaf angles
        (Note [LCU postselection]). Put them in front of the sub-circuits' parameters.

    Raises:
        ValueError: fewer than 2 coefficients, complex, non-finite or all-zero coefficients.

    Example:
        >>> lcu_angles([1.0, 1.0]).round(4).tolist()  # V = W = RY(π/2): |+>
        [1.5708, 1.5708]
    """
    m = np.asarray(coefficients).reshape(-1).shape[0]
    _check_num_terms(m)
    alpha = check_coefficients(coefficients, m)
    a = lcu_num_ancillas(m)
    plain = np.zeros(2**a)
    plain[:m] = np.sqrt(np.abs(alpha))
    signed = np.sign(np.pad(alpha, (0, 2**a - m))) * plain
    v = ry_tree_angles(plain)
    w_leaves = ry_tree_angles(signed)[2 ** (a - 1) - 1 :]
    return np.concatenate([v, w_leaves])


def _tree_ops(a: int, index: list[int | float]) -> list[Op]:
    """RY tree on ancillas ``0..a-1`` with the given parameter (index or angle) per node."""
    ops = []
    k = 0
    for level in range(a):
        for p in range(2**level):
            bits = tuple((p >> (level - 1 - q)) & 1 for q in range(level))
            ops.append(Op("ry", (level,), index[k], tuple(range(level)), bits))
            k += 1
    return ops


def lcu(
    circuits: Sequence[Circuit],
    coefficients: Sequence[float] | np.ndarray | None = None,
    *,
    fixed_coefficients: bool = False,
) -> Circuit:
    """The LCU circuit ``W† · SELECT · V`` of ``m >= 2`` sub-circuits (Note [LCU postselection]).

    Args:
        circuits: the sub-circuits ``U_i``, all on the same number of qubits, without ancillas.
        coefficients: the real ``α_i``, validated when given. Unless ``fixed_coefficients``, the
            angles are parameters: pass ``lcu_angles(α)`` in front of the sub-circuits' params.
        fixed_coefficients: bake the angles of ``coefficients`` into the circuit as constants, so
            the parameter vector is just the sub-circuits' parameters, concatenated.

    Returns:
        A circuit on ``a + n`` wires, ``a = ⌈log2 m⌉`` ancillas first (wires ``0..a-1``),
        ``ancillas = (0, …, a-1)`` and ``postselect = (0, …, 0)``. Parameter layout: the module
        docstring (``[angles | sub 0 | sub 1 | …]``, no angles when ``fixed_coefficients``).

    Raises:
        ValueError: fewer than 2 circuits, different qubit counts, a sub-circuit that has
            ancillas of its own, coefficients of the wrong count, non-finite or all zero, or
            ``fixed_coefficients`` without coefficients.

    Example:
        >>> from circuits import rbs_pyramid, two_design
        >>> c = lcu([two_design(2, 1), rbs_pyramid(2)], [0.7, -0.3])
        >>> c.n_qubits, c.ancillas, c.postselect, c.num_params
        (3, (0,), (0,), 7)
    """
    circuits = list(circuits)
    if len(circuits) < 2:
        raise ValueError(f"an LCU needs at least 2 circuits; found {len(circuits)}")
    for k, c in enumerate(circuits):
        if not isinstance(c, Circuit):
            raise ValueError(f"circuits[{k}] must be a Circuit; found {type(c).__name__}")
    n = circuits[0].n_qubits
    for k, c in enumerate(circuits):
        if c.n_qubits != n:
            raise ValueError(
                f"every LCU sub-circuit must act on the same qubits: expected {n} "
                f"(circuits[0]), found {c.n_qubits} for circuits[{k}]"
            )
        if c.ancillas:
            raise ValueError(
                f"LCU sub-circuits must not have ancillas; found ancillas {c.ancillas} on "
                f"circuits[{k}] (postselection does not nest)"
            )
    m = len(circuits)
    if coefficients is not None:
        check_coefficients(coefficients, m)
    elif fixed_coefficients:
        raise ValueError("fixed_coefficients=True needs coefficients; found None")
    a = lcu_num_ancillas(m)
    n_tree = 2**a - 1
    n_leaves = 2 ** (a - 1)
    v_index: list[int | float]
    w_index: list[int | float]
    if fixed_coefficients and coefficients is not None:
        angles = lcu_angles(coefficients).tolist()
        v_index = angles[:n_tree]
        w_index = angles[: n_tree - n_leaves] + angles[n_tree:]
        offset = 0
    else:
        v_index = list(range(n_tree))
        w_index = [*range(n_tree - n_leaves), *range(n_tree, n_tree + n_leaves)]
        offset = n_tree + n_leaves
    total = a + n
    ancillas = tuple(range(a))
    prepare = Circuit(total, tuple(_tree_ops(a, v_index)), offset)
    unprepare = Circuit(total, tuple(_tree_ops(a, w_index)), offset).inverse()
    ops = list(prepare.ops)
    system = tuple(range(a, total))
    for i, c in enumerate(circuits):
        bits = tuple((i >> (a - 1 - q)) & 1 for q in range(a))
        placed = c.on_wires(system, total).shift_params(offset).controlled(ancillas, bits)
        ops.extend(placed.ops)
        offset += c.num_params
    ops.extend(unprepare.ops)
    label = "lcu(" + ", ".join(c.name or f"circuit{k}" for k, c in enumerate(circuits)) + ")"
    return Circuit(total, tuple(ops), offset, ancillas, (0,) * a, label)
