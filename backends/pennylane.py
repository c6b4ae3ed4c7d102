"""Compile a :class:`circuits.Circuit` to a PennyLane quantum function or a torch QNode.

- :func:`to_pennylane` — ``qfunc(params)`` that queues the circuit's PennyLane ops.
- :func:`make_qnode` — a QNode (``default.qubit`` by default, ``lightning.qubit`` allowed) with the
  torch interface; gradients flow back to ``params``.
- :func:`resolve_device` — a device name (or ``None``, or a device) → a device with the wires.

Circuits with ancillas, postselected by mid-circuit measurement, are in
:mod:`backends.pennylane_postselection`.

IR wire ``w`` is PennyLane wire ``w``, and both read wire 0 as the most significant bit, so
``qml.matrix(to_pennylane(c), wire_order=range(n))(θ)`` equals ``exact.unitary(c, θ)``.

Each gate comes from its entry in :data:`circuits.GATES`: the PennyLane operation the table names
(``Gate.pennylane``, with its angle map), or else a ``qml.QubitUnitary`` of the reference matrix
(fixed gates) or of the table's rotation form in the parameters' own interface (rotations), which
keeps gradients. Controls go through ``qml.ctrl``; ``between_parity`` gates get the ``D`` dressing
below.

Note [RBS in PennyLane]
-----------------------
PennyLane has no RBS gate. ``qml.SingleExcitation(φ)`` acts on ``|01>, |10>`` as
``[[cos φ/2, −sin φ/2], [sin φ/2, cos φ/2]]`` while ``RBS(θ)`` there is
``[[cos θ, sin θ], [−sin θ, cos θ]]``; so ``RBS(θ) = SingleExcitation(−2θ)`` on the same wires
(checked numerically in ``tests/backends/test_pennylane.py``). The FBS is ``D · RBS · D`` with
``D = Π CZ(i, m)`` over the wires strictly between ``i`` and ``j`` (Note [FBS sign] in
:mod:`circuits.gates`). A controlled FBS controls the RBS only: ``D² = 1`` and ``D`` does not touch
the controls, so ``D · C(RBS) · D = C(D · RBS · D)``.

Adjoint rotations are the same gate at ``−θ`` (Note [rotation form] in :mod:`circuits.gates`);
adjoint fixed gates go through ``qml.adjoint``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal

import numpy as np

from backends.extras import missing_extra
from circuits import Circuit, Gate, Op, get_gate, reference_matrix, rotation_parts

try:
    import pennylane as qml
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise missing_extra("backends.pennylane", "pennylane", "pennylane") from err

__all__ = ["MEASUREMENTS", "make_qnode", "resolve_device", "to_pennylane"]

Measurement = Literal["state", "probs"]
#: Named measurements :func:`make_qnode` understands.
MEASUREMENTS: tuple[str, ...] = ("state", "probs")

def _rotation_matrix(name: str, theta: Any) -> Any:
    """``F + cos(ωθ)·C + sin(ωθ)·S`` (Note [rotation form] in :mod:`circuits.gates`) in the
    interface of ``theta`` (torch, numpy, autograd, JAX), so gradients flow through it."""
    omega, *arrays = rotation_parts(name)
    parts: list[Any] = list(arrays)
    if qml.math.get_interface(theta) == "torch":
        import torch

        parts = [torch.tensor(p, device=theta.device) for p in arrays]
    t = omega * theta
    fixed, cos_part, sin_part = parts
    return fixed + qml.math.cos(t) * cos_part + qml.math.sin(t) * sin_part


def _core(gate: Gate, theta: Any, adjoint: bool) -> Callable[..., Any]:
    """A callable ``f(wires=...)`` queuing the gate's PennyLane op at angle ``theta`` (already
    negated for an adjoint rotation), without the ``between_parity`` dressing."""
    native = gate.pennylane
    if native is not None:
        op_class = getattr(qml, native.name)
        if not gate.num_params:
            return qml.adjoint(op_class) if adjoint else op_class
        angle = theta if native.scale == 1.0 else native.scale * theta
        return partial(op_class, angle, *native.extra)
    if not gate.num_params:
        matrix = reference_matrix(gate.name, adjoint=adjoint)
    else:
        matrix = _rotation_matrix(gate.name, theta)
    return partial(qml.QubitUnitary, matrix)


def _maybe_ctrl(op: Op, fn: Callable[..., Any]) -> Callable[..., Any]:
    if not op.controls:
        return fn
    return qml.ctrl(fn, control=list(op.controls), control_values=list(op.control_values))


def _apply_op(op: Op, params: Any) -> None:
    """Queue the PennyLane ops of one IR op."""
    gate = get_gate(op.name)
    if op.param is None:
        theta = None
    else:
        theta = params[op.param] if isinstance(op.param, int) else float(op.param)
        if op.adjoint:
            theta = -theta
    wires = list(op.wires)
    lo, hi = min(wires), max(wires)
    between = range(lo + 1, hi) if gate.between_parity else range(0)
    for m in between:
        qml.CZ(wires=[wires[0], m])
    _maybe_ctrl(op, _core(gate, theta, op.adjoint))(wires=wires)
    for m in between:
        qml.CZ(wires=[wires[0], m])


def _check_params(circuit: Circuit, params: Any) -> None:
    """Shape ``(num_params,)`` and finite values, for torch tensors, numpy arrays and lists."""
    values = params.detach().cpu().numpy() if hasattr(params, "detach") else params
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):  # an autodiff tracer or other exotic input: check length only
        arr = None
    shape = arr.shape if arr is not None else (len(params),)
    if len(shape) != 1 or shape[0] != circuit.num_params:
        raise ValueError(
            f"expected params of shape ({circuit.num_params},) for this circuit; "
            f"found shape {tuple(shape)}"
        )
    if arr is not None and not np.isfinite(arr).all():
        k = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"params must be finite; found {arr[k]} at index [{k}]")


def to_pennylane(circuit: Circuit) -> Callable[[Any], None]:
    """A quantum function that applies ``circuit`` with PennyLane ops (wire ``w`` = wire ``w``).

    Args:
        circuit: the circuit.

    Returns:
        ``qfunc(params)``: queues the ops; ``params`` is a vector of ``circuit.num_params`` angles
        (torch tensor, numpy array or list), indexed per op, so gradients flow through it.
        ``qfunc`` raises ``ValueError`` naming the expected and found shape on a wrong length,
        and the index of the first NaN or infinity.

    Raises:
        TypeError: ``circuit`` is not a :class:`circuits.Circuit`.

    Example:
        >>> import numpy as np, pennylane as qml
        >>> from circuits import two_design
        >>> c = two_design(2, 1)
        >>> qml.matrix(to_pennylane(c), wire_order=range(2))(np.zeros(c.num_params)).shape
        (4, 4)
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a circuits.Circuit; found {type(circuit).__name__}")

    def qfunc(params: Any) -> None:
        _check_params(circuit, params)
        for op in circuit.ops:
            _apply_op(op, params)

    qfunc.__name__ = f"qfunc_{circuit.name or 'circuit'}"
    return qfunc


def make_qnode(
    circuit: Circuit,
    device: str | Any | None = None,
    measurement: Measurement | Callable[[], Any] = "state",
    *,
    diff_method: str = "best",
) -> Any:
    """A torch-interface QNode that runs ``circuit`` from ``|0…0>`` and measures.

    Args:
        circuit: the circuit.
        device: ``None`` for ``default.qubit`` (float64 stays float64), a device name such as
            ``"lightning.qubit"`` (returns float32 results), or a PennyLane device whose wires
            include ``0..n-1``.
        measurement: ``"state"`` (the state vector), ``"probs"`` (probabilities of all basis
            states, wire 0 most significant), or a callable returning PennyLane measurement(s),
            e.g. ``lambda: qml.expval(qml.PauliZ(0))``.
        diff_method: passed to :class:`pennylane.QNode` (``"best"``, ``"backprop"``,
            ``"adjoint"``, ``"parameter-shift"``, …).

    Returns:
        ``qnode(params)`` returning torch tensors; ``params`` is a torch tensor of length
        ``num_params`` (``requires_grad=True`` to differentiate).

    Raises:
        ValueError: an unknown measurement name (the message lists the valid ones), or a device
            with too few wires.

    Example:
        >>> import torch
        >>> from circuits import rbs_pyramid
        >>> q = make_qnode(rbs_pyramid(3), measurement=lambda: qml.expval(qml.PauliZ(0)))
        >>> float(q(torch.zeros(3, dtype=torch.float64)))
        1.0
    """
    n = circuit.n_qubits
    if isinstance(measurement, str):
        if measurement not in MEASUREMENTS:
            raise ValueError(
                f"unknown measurement {measurement!r}; expected one of {list(MEASUREMENTS)} "
                "or a callable returning PennyLane measurements"
            )
        name = measurement

        def measure() -> Any:
            return qml.state() if name == "state" else qml.probs(wires=range(n))

    elif callable(measurement):
        measure = measurement
    else:
        raise ValueError(
            f"expected measurement in {list(MEASUREMENTS)} or a callable; found {measurement!r}"
        )
    device = resolve_device(device, n)
    qfunc = to_pennylane(circuit)

    def circuit_fn(params: Any) -> Any:
        qfunc(params)
        return measure()

    return qml.QNode(circuit_fn, device, interface="torch", diff_method=diff_method)


def resolve_device(device: str | Any | None, n_qubits: int) -> Any:
    """The PennyLane device to run an ``n_qubits`` circuit on.

    Args:
        device: ``None`` for ``default.qubit``, a device name (built with wires
            ``0..n_qubits-1``), or a PennyLane device, checked to have those wires (a device
            with dynamic wires takes any).
        n_qubits: the circuit's number of wires.

    Returns:
        The device.

    Raises:
        ValueError: a device without the wires ``0..n_qubits-1``.

    Example:
        >>> resolve_device(None, 3).wires.tolist()
        [0, 1, 2]
    """
    if device is None:
        device = "default.qubit"
    if isinstance(device, str):
        device = qml.device(device, wires=n_qubits)
    wires: Sequence[Any] | None = getattr(device, "wires", None)
    if wires is None:  # a device with dynamic wires takes any wire label
        return device
    if any(w not in wires for w in range(n_qubits)):
        raise ValueError(
            f"expected a device with wires 0..{n_qubits - 1} for a {n_qubits}-qubit circuit; "
            f"found wires {list(wires)}"
        )
    return device

