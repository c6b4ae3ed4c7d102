"""PennyLane QNodes of circuits with ancillas (LCUs), postselected by mid-circuit measurement.

- :func:`postselected_qfunc` — prepare the system, apply the circuit
  (:func:`backends.pennylane.to_pennylane`), then ``qml.measure(a, postselect=v)`` per ancilla.
- :func:`make_postselected_qnode` — a torch QNode measuring the renormalised system after that:
  its state, density matrix, probabilities, a Z string or any PennyLane measurement.
- :func:`make_success_qnode` — the probability of keeping a shot.
- :func:`make_postselected_layer` — the same as a ``qml.qnn.TorchLayer`` whose weights build the
  circuit's parameters (e.g. trainable LCU coefficients), for ``torch.nn`` models.

Each equals its exact twin in :mod:`backends.postselection` (state, success probability and
gradients, to 1e-10 in float64; ``tests/backends/test_pennylane_postselection.py``).

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

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from backends.extras import missing_extra
from backends.pennylane import resolve_device, to_pennylane
from backends.postselection import check_postselected
from circuits import Circuit

try:
    import pennylane as qml
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise missing_extra("backends.pennylane_postselection", "pennylane", "pennylane") from err

__all__ = [
    "POSTSELECTED_DIFF_METHODS",
    "POSTSELECTED_MEASUREMENTS",
    "make_postselected_layer",
    "make_postselected_qnode",
    "make_success_qnode",
    "postselected_qfunc",
]

PostselectedMeasurement = Literal["state", "density_matrix", "probs"]
#: Named measurements :func:`make_postselected_qnode` understands (all on the system wires).
POSTSELECTED_MEASUREMENTS: tuple[str, ...] = ("state", "density_matrix", "probs")
#: Gradient methods that are exact through postselection (Note [postselection in PennyLane]).
POSTSELECTED_DIFF_METHODS: tuple[str, ...] = ("backprop",)


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
        circuit: a circuit with ``ancillas`` and a ``postselect`` pattern (an LCU of ``m``
            terms from :func:`circuits.lcu.lcu`: ``⌈log2 m⌉`` ancillas first, pattern all 0).

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
    check_postselected(circuit)
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


def _postselected_measure(circuit: Circuit, measurement: Any) -> Callable[[], Any]:
    """The measurement function of a postselected QNode; it refuses to read an ancilla."""
    n, system = circuit.n_qubits, list(circuit.system_wires)
    if isinstance(measurement, str) and measurement in POSTSELECTED_MEASUREMENTS:
        name = measurement

        def named() -> Any:
            return qml.probs(wires=system) if name == "probs" else qml.density_matrix(system)

        inner = named
    elif (
        isinstance(measurement, tuple)
        and measurement
        and all(isinstance(w, int) for w in measurement)
    ):
        wires = measurement

        def z_string() -> Any:
            return qml.expval(qml.prod(*(qml.Z(w) for w in wires)))

        inner = z_string
    elif callable(measurement):
        inner = measurement
    else:
        raise ValueError(
            f"unknown measurement {measurement!r}; expected one of "
            f"{list(POSTSELECTED_MEASUREMENTS)}, a tuple of wires (the expectation of their Z "
            "string) or a callable returning PennyLane measurements"
        )

    def measure() -> Any:
        result = inner()
        touched = sorted(_measured_wires(result, n) & set(circuit.ancillas))
        if touched:
            raise ValueError(
                f"the measurement reads ancilla wires {touched}, which hold the postselect "
                f"pattern {list(circuit.postselect)} after postselection; expected a measurement "
                f"on the system wires {system} only"
            )
        return result

    return measure


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
            significant), a tuple of system wires (``<Z ⊗ … ⊗ Z>`` on them), or a callable
            returning PennyLane measurement(s) on system wires, e.g.
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
    check_postselected(circuit)
    _check_diff_method(diff_method)
    measure = _postselected_measure(circuit, measurement)
    device = resolve_device(device, circuit.n_qubits)
    qfunc = postselected_qfunc(circuit)

    def circuit_fn(params: Any, inputs: Any = None) -> Any:
        qfunc(params, inputs)
        return measure()

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
    check_postselected(circuit)
    device = resolve_device(device, circuit.n_qubits)
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


def make_postselected_layer(
    circuit: Circuit,
    weight_shapes: dict[str, int | tuple[int, ...]],
    build_params: Callable[..., Any],
    measurement: PostselectedMeasurement | tuple[int, ...] | Callable[[], Any],
    *,
    init: dict[str, Any],
    device: str | Any | None = None,
    mcm_method: str = "deferred",
) -> torch.nn.Module:
    """A postselected circuit as a ``qml.qnn.TorchLayer``: ``inputs`` in, a measurement out.

    The layer's QNode is ``qnode(inputs, **weights)``: it runs :func:`postselected_qfunc` on
    ``build_params(**weights)`` (torch code, e.g. :func:`backends.postselection.lcu_params` to
    train LCU coefficients) and measures as :func:`make_postselected_qnode`, by ``"backprop"``.

    Args:
        circuit: a circuit with ancillas and a postselect pattern.
        weight_shapes: the trainable tensors by name and shape (``TorchLayer``'s argument).
        build_params: ``build_params(**weights)`` → the circuit's parameter vector.
        measurement: as in :func:`make_postselected_qnode`, except ``"state"``.
        init: the initial value of each weight (its dtype is kept: float64 stays float64).
        device, mcm_method: as in :func:`make_postselected_qnode`.

    Returns:
        A ``torch.nn.Module``: ``layer(inputs)`` for inputs ``(2^s,)`` or ``(N, 2^s)``; its
        weights are ``nn.Parameter`` s named as in ``weight_shapes``.

    Raises:
        ValueError: ``init`` and ``weight_shapes`` name different weights; ``"state"``; the
            errors of :func:`make_postselected_qnode`.
    """
    check_postselected(circuit)
    if measurement == "state":
        raise ValueError("a layer cannot return 'state'; expected 'density_matrix' or 'probs'")
    if set(init) != set(weight_shapes):
        raise ValueError(
            f"expected an initial value for each weight {sorted(weight_shapes)}; found "
            f"{sorted(init)}"
        )
    measure = _postselected_measure(circuit, measurement)
    qfunc = postselected_qfunc(circuit)

    def layer(inputs: Any, **weights: Any) -> Any:
        qfunc(build_params(**weights), inputs)
        return measure()

    layer.__name__ = f"layer_{circuit.name or 'circuit'}"
    device = resolve_device(device, circuit.n_qubits)
    qnode = qml.QNode(
        layer, device, interface="torch", diff_method="backprop", mcm_method=mcm_method
    )
    return qml.qnn.TorchLayer(qnode, dict(weight_shapes), init_method=dict(init))
