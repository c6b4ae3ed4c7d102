"""Compile a :class:`circuits.Circuit` to a PennyLane quantum function or a torch QNode.

- :func:`to_pennylane` — ``qfunc(params)`` that queues the circuit's PennyLane ops.
- :func:`make_qnode` — a QNode (``default.qubit`` by default, ``lightning.qubit`` allowed) with the
  torch interface; gradients flow back to ``params``.
- :func:`postselected_qfunc`, :func:`make_postselected_qnode` — a circuit with ancillas (an LCU of
  :func:`circuits.lcu.lcu`) run from given system states, its ancillas measured mid-circuit with
  ``qml.measure(wire, postselect=v)``, and the renormalised system measured (Note [postselection
  in PennyLane]); :func:`make_success_qnode` — the probability of keeping a shot.

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

Note [postselection in PennyLane]
---------------------------------
:func:`backends.postselection.postselected_operator` defines the system operator of a circuit with
ancillas as ``A[r, c] = <r, pattern| U |c, pattern>``: the ancillas start in the postselect pattern
and are kept when they read it again. The QNodes here do exactly that: ``qml.X`` on each ancilla
whose pattern bit is 1, ``qml.StatePrep`` of the (normalised) input on the system wires, the
circuit, then ``qml.measure(a, postselect=v)`` on each ancilla. ``default.qubit`` defers those
measurements (``mcm_method="deferred"``): a projector, then renormalisation, so every terminal
measurement sees ``φ = A ψ / ‖A ψ‖`` — for an LCU, ``(Σ α_i U_i) ψ`` renormalised (Note [LCU
postselection] in :mod:`circuits.lcu`). The norm is gone after that, so the success probability
``‖A ψ‖²`` comes from a second QNode without postselection (:func:`make_success_qnode`: terminal
``qml.probs`` of the ancillas, at the pattern's index).

Two limits of PennyLane 0.45 shape the API:

- ``qml.state()`` is refused under deferred measurement (and by native MCM simulation), so
  ``"state"`` is read from the system's density matrix ``ρ = φ φ†``: column ``k`` of ``ρ`` divided
  by ``sqrt(ρ_kk)``, ``k`` the largest diagonal entry, is ``φ`` with the global phase that makes
  ``φ_k`` real and positive.
- Shift rules do not see the renormalisation: ``diff_method="parameter-shift"`` returns wrong
  gradients for postselected expectations (PennyLane issue 5943, open), and ``"adjoint"`` does not
  support mid-circuit measurements. Postselected QNodes therefore differentiate by
  ``"backprop"`` only (:data:`POSTSELECTED_DIFF_METHODS`); the success QNode has no mid-circuit
  measurement and takes any method.
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

__all__ = [
    "MEASUREMENTS",
    "POSTSELECTED_DIFF_METHODS",
    "POSTSELECTED_MEASUREMENTS",
    "make_postselected_qnode",
    "make_qnode",
    "make_success_qnode",
    "postselected_qfunc",
    "to_pennylane",
]

Measurement = Literal["state", "probs"]
#: Named measurements :func:`make_qnode` understands.
MEASUREMENTS: tuple[str, ...] = ("state", "probs")
PostselectedMeasurement = Literal["state", "density_matrix", "probs"]
#: Named measurements :func:`make_postselected_qnode` understands (all on the system wires).
POSTSELECTED_MEASUREMENTS: tuple[str, ...] = ("state", "density_matrix", "probs")
#: Gradient methods that are exact through postselection (Note [postselection in PennyLane]).
POSTSELECTED_DIFF_METHODS: tuple[str, ...] = ("backprop",)


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
    if device is None:
        device = "default.qubit"
    if isinstance(device, str):
        device = qml.device(device, wires=n)
    _check_device_wires(device, n)
    qfunc = to_pennylane(circuit)

    def circuit_fn(params: Any) -> Any:
        qfunc(params)
        return measure()

    return qml.QNode(circuit_fn, device, interface="torch", diff_method=diff_method)


def _check_device_wires(device: Any, n: int) -> None:
    wires: Sequence[Any] | None = getattr(device, "wires", None)
    if wires is None:  # a device with dynamic wires takes any wire label
        return
    missing = [w for w in range(n) if w not in wires]
    if missing:
        raise ValueError(
            f"expected a device with wires 0..{n - 1} for a {n}-qubit circuit; found wires "
            f"{list(wires)}"
        )


# ---------------------------------------------------------------------------- postselection
def _resolve_device(device: str | Any | None, n: int) -> Any:
    if device is None:
        device = "default.qubit"
    if isinstance(device, str):
        device = qml.device(device, wires=n)
    _check_device_wires(device, n)
    return device


def _check_postselected(circuit: Circuit) -> None:
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a circuits.Circuit; found {type(circuit).__name__}")
    if not circuit.ancillas or not circuit.postselect:
        raise ValueError(
            "expected a circuit with ancillas and a postselect pattern (e.g. from "
            f"circuits.lcu.lcu); found ancillas={circuit.ancillas}, "
            f"postselect={circuit.postselect}"
        )


def _check_inputs(circuit: Circuit, inputs: Any) -> None:
    """Shape ``(2^s,)`` or ``(N, 2^s)`` over the ``s`` system wires, finite, no zero row."""
    system = circuit.system_wires
    dim = 2 ** len(system)
    values = inputs.detach().cpu().numpy() if hasattr(inputs, "detach") else inputs
    try:
        arr = np.asarray(values)
        arr.astype(np.complex128)
    except (TypeError, ValueError):  # an autodiff tracer or other exotic input: check shape only
        arr = None
    shape = arr.shape if arr is not None else tuple(getattr(inputs, "shape", ()))
    if len(shape) not in (1, 2) or shape[-1] != dim:
        raise ValueError(
            f"expected inputs of shape ({dim},) or (N, {dim}): one amplitude per basis state of "
            f"the {len(system)} system wires {list(system)}; found shape {tuple(shape)}"
        )
    if arr is None:
        return
    rows = arr.reshape(-1, dim)
    if not np.isfinite(rows).all():
        raise ValueError("expected finite input states; found NaN or infinity")
    zero = np.flatnonzero(np.linalg.norm(rows, axis=-1) == 0)
    if zero.size:
        raise ValueError(f"expected non-zero input states; found norm 0 at row {int(zero[0])}")


def _prepare(circuit: Circuit, inputs: Any) -> None:
    """The input state on the system wires (normalised), the ancillas in their pattern."""
    if inputs is not None:
        _check_inputs(circuit, inputs)
        qml.StatePrep(inputs, wires=list(circuit.system_wires), normalize=True)
    for wire, value in zip(circuit.ancillas, circuit.postselect, strict=True):
        if value:
            qml.X(wires=wire)


def postselected_qfunc(circuit: Circuit) -> Callable[..., list[Any]]:
    """A quantum function: prepare, apply ``circuit``, postselect its ancillas mid-circuit.

    Note [postselection in PennyLane] says what the QNodes built from it compute.

    Args:
        circuit: a circuit with ``ancillas`` and a ``postselect`` pattern (an LCU of
            :func:`circuits.lcu.lcu`: one ancilla per two terms, first, pattern all zeros).

    Returns:
        ``qfunc(params, inputs=None)``: queues ``qml.StatePrep(inputs, normalize=True)`` on the
        system wires (``inputs`` of shape ``(2^s,)`` or a batch ``(N, 2^s)``; ``None`` starts
        them in ``|0…0>``), ``qml.X`` on the ancillas whose pattern bit is 1, the circuit's ops
        (:func:`to_pennylane`), then ``qml.measure(a, postselect=v)`` per ancilla; returns the
        mid-circuit measurement values. Raises ``ValueError`` for inputs of the wrong size,
        non-finite or zero inputs, or bad params.

    Raises:
        TypeError: ``circuit`` is not a :class:`circuits.Circuit`.
        ValueError: the circuit records no ancillas or no postselect pattern.

    Example:
        >>> import numpy as np
        >>> from circuits import rbs_pyramid, two_design
        >>> from circuits.lcu import lcu, lcu_angles
        >>> c = lcu([two_design(2, 1), rbs_pyramid(2)])
        >>> qfunc = postselected_qfunc(c)
        >>> @qml.qnode(qml.device("default.qubit", wires=3))
        ... def z1(params):
        ...     qfunc(params, inputs=np.array([0.0, 0.0, 1.0, 0.0]))  # |10> on the system
        ...     return qml.expval(qml.PauliZ(1))
        >>> params = np.concatenate([lcu_angles([1.0, 1.0]), np.zeros(c.num_params - 2)])
        >>> round(float(z1(params)), 12)  # at θ = 0, A = (CZ + 1)/2 keeps |10>
        -1.0
    """
    _check_postselected(circuit)
    apply = to_pennylane(circuit)

    def qfunc(params: Any, inputs: Any = None) -> list[Any]:
        _prepare(circuit, inputs)
        apply(params)
        pattern = zip(circuit.ancillas, circuit.postselect, strict=True)
        return [qml.measure(wire, postselect=value) for wire, value in pattern]

    qfunc.__name__ = f"postselected_{circuit.name or 'circuit'}"
    return qfunc


def _measured_wires(result: Any, n: int) -> set[int]:
    """Wires read by a measurement (or a sequence of them); no wires means all of them."""
    if isinstance(result, list | tuple):
        return set().union(*(_measured_wires(r, n) for r in result))
    wires = list(getattr(result, "wires", []))
    return set(wires) if wires else set(range(n))


def _check_diff_method(diff_method: str) -> None:
    if diff_method not in POSTSELECTED_DIFF_METHODS:
        raise ValueError(
            f"diff_method {diff_method!r} is not exact through postselection (Note [postselection "
            f"in PennyLane]); expected one of {list(POSTSELECTED_DIFF_METHODS)}"
        )


def _pure_state(rho: Any) -> Any:
    """``φ`` from ``ρ = φ φ†`` (batched), its largest entry made real and positive."""
    diag = qml.math.real(qml.math.diagonal(rho, axis1=-2, axis2=-1))
    k = diag.argmax(-1, keepdim=True)
    column = rho.gather(-1, k.unsqueeze(-2).expand(*rho.shape[:-1], 1)).squeeze(-1)
    return column / qml.math.sqrt(diag.gather(-1, k))


def make_postselected_qnode(
    circuit: Circuit,
    device: str | Any | None = None,
    measurement: PostselectedMeasurement | Callable[[], Any] = "state",
    *,
    diff_method: str = "backprop",
    mcm_method: str = "deferred",
) -> Callable[..., Any]:
    """A torch QNode: ``circuit`` with its ancillas postselected, the system measured after.

    Args:
        circuit: a circuit with ancillas and a postselect pattern (e.g. :func:`circuits.lcu.lcu`).
        device: ``None`` for ``default.qubit``, a device name, or a PennyLane device whose wires
            include ``0..n-1``; it must support ``diff_method``.
        measurement: on the system only, after renormalisation: ``"state"`` (``φ``, complex, its
            largest amplitude real and positive: Note [postselection in PennyLane]),
            ``"density_matrix"`` (``φ φ†``), ``"probs"`` (``|φ|²``, first system wire most
            significant), or a callable returning PennyLane measurement(s) on system wires, e.g.
            ``lambda: qml.expval(qml.PauliZ(1))``.
        diff_method: one of :data:`POSTSELECTED_DIFF_METHODS`.
        mcm_method: how PennyLane handles the mid-circuit measurements (``"deferred"``; the
            callable measurements also run with ``"tree-traversal"``).

    Returns:
        ``qnode(params, inputs=None)`` returning torch tensors; ``params`` of length
        ``circuit.num_params``, ``inputs`` as in :func:`postselected_qfunc` (a batch ``(N, 2^s)``
        gives results with a leading ``N``). For ``"state"`` a function around the
        density-matrix QNode, which is its ``.qnode`` attribute. The result is NaN for an input
        the ancillas never keep; :func:`make_success_qnode` tells.

    Raises:
        TypeError: ``circuit`` is not a Circuit.
        ValueError: no ancillas or postselect pattern; an unknown measurement name or a
            ``diff_method`` that is not exact here (the messages list the valid ones); a device
            with too few wires. When called: a measurement that reads an ancilla, bad inputs or
            params.

    Example:
        >>> import torch
        >>> from circuits import rbs_pyramid, two_design
        >>> from circuits.lcu import lcu, lcu_angles
        >>> c = lcu([two_design(2, 1), rbs_pyramid(2)])
        >>> params = torch.zeros(c.num_params, dtype=torch.float64)
        >>> params[:2] = torch.as_tensor(lcu_angles([1.0, 1.0]))  # (U_QNN + U_QA) / 2
        >>> make_postselected_qnode(c, measurement="probs")(params).shape
        torch.Size([4])
    """
    _check_postselected(circuit)
    _check_diff_method(diff_method)
    n = circuit.n_qubits
    system = list(circuit.system_wires)
    if isinstance(measurement, str):
        if measurement not in POSTSELECTED_MEASUREMENTS:
            raise ValueError(
                f"unknown measurement {measurement!r}; expected one of "
                f"{list(POSTSELECTED_MEASUREMENTS)} or a callable returning PennyLane measurements"
            )
        name = measurement

        def measure() -> Any:
            if name == "probs":
                return qml.probs(wires=system)
            return qml.density_matrix(wires=system)

    elif callable(measurement):
        measure = measurement
    else:
        raise ValueError(
            f"expected measurement in {list(POSTSELECTED_MEASUREMENTS)} or a callable; found "
            f"{measurement!r}"
        )
    device = _resolve_device(device, n)
    qfunc = postselected_qfunc(circuit)
    ancillas = set(circuit.ancillas)

    def circuit_fn(params: Any, inputs: Any = None) -> Any:
        qfunc(params, inputs)
        result = measure()
        touched = sorted(_measured_wires(result, n) & ancillas)
        if touched:
            raise ValueError(
                f"the measurement reads ancilla wires {touched}, which hold the postselect "
                f"pattern {list(circuit.postselect)} after postselection; expected a measurement "
                f"on the system wires {system} only"
            )
        return result

    qnode = qml.QNode(
        circuit_fn, device, interface="torch", diff_method=diff_method, mcm_method=mcm_method
    )
    if measurement != "state":
        return qnode

    def state(params: Any, inputs: Any = None) -> Any:
        return _pure_state(qnode(params, inputs))

    state.qnode = qnode  # type: ignore[attr-defined]
    return state


def make_success_qnode(
    circuit: Circuit, device: str | Any | None = None, *, diff_method: str = "backprop"
) -> Callable[..., Any]:
    """The probability that the ancillas of ``circuit`` read their postselect pattern.

    For an LCU this is ``‖Σ α_i U_i ψ‖² / ‖α‖₁²``
    (:func:`backends.postselection.success_probability` is its exact twin). No mid-circuit
    measurement: terminal ``qml.probs`` of the ancillas.

    Args:
        circuit: a circuit with ancillas and a postselect pattern.
        device: as in :func:`make_postselected_qnode`.
        diff_method: any method the device supports (shift rules are exact here).

    Returns:
        ``success(params, inputs=None)``: shape ``()`` or ``(N,)`` for a batch of inputs; the
        QNode it indexes is its ``.qnode`` attribute.

    Raises:
        TypeError: ``circuit`` is not a Circuit.
        ValueError: no ancillas or postselect pattern, a device with too few wires; when called,
            bad inputs or params.

    Example:
        >>> import torch
        >>> from circuits import rbs_pyramid, two_design
        >>> from circuits.lcu import lcu, lcu_angles
        >>> c = lcu([two_design(2, 1), rbs_pyramid(2)])
        >>> params = torch.zeros(c.num_params, dtype=torch.float64)
        >>> params[:2] = torch.as_tensor(lcu_angles([1.0, -1.0]))  # (U_QNN − U_QA) / 2
        >>> round(float(make_success_qnode(c)(params)), 12)  # at θ = 0 both fix |00>: A|00> = 0
        0.0
    """
    _check_postselected(circuit)
    device = _resolve_device(device, circuit.n_qubits)
    apply = to_pennylane(circuit)
    ancillas = list(circuit.ancillas)
    index = int("".join(str(v) for v in circuit.postselect), 2)

    def circuit_fn(params: Any, inputs: Any = None) -> Any:
        _prepare(circuit, inputs)
        apply(params)
        return qml.probs(wires=ancillas)

    qnode = qml.QNode(circuit_fn, device, interface="torch", diff_method=diff_method)

    def success(params: Any, inputs: Any = None) -> Any:
        return qnode(params, inputs)[..., index]

    success.qnode = qnode  # type: ignore[attr-defined]
    return success
