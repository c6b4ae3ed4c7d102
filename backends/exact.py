"""Exact, differentiable, batched simulation of :class:`circuits.Circuit` in PyTorch.

The workhorse for fine-tuning. Every function takes ``params`` of shape ``(..., num_params)``;
leading dimensions are a batch of parameter sets and appear in front of the result. Results are
real when every gate is real (``float32``/``float64`` follow ``params``), complex otherwise.

- :func:`unitary` — the full ``2^n × 2^n`` matrix.
- :func:`apply` — the circuit applied to state vectors ``(..., 2^n)`` without forming the matrix.
- :func:`columns` — the first k columns, without forming the matrix.
- :func:`hamming_block` — the ``C(n,k) × C(n,k)`` block of a Hamming-weight-preserving circuit,
  simulated in that subspace only; runs at n = 32.
- :func:`compound` — the k-th compound (matrix of k×k minors) of a matrix; :func:`compounds` every
  order up to k in one pass; :func:`rotation_compounds` every order of a rotation, the upper half
  by Jacobi's complementary minors.

The machinery lives in :mod:`backends.statevector` (fused sweeps over 2^n amplitudes),
:mod:`backends.subspace` (Hamming-weight subspaces, compounds) and :mod:`backends.torch_gates`;
this module validates input and is the one to import.

Memory: every function first counts what it would allocate (the result, the buffers of the
sweeps, what autograd keeps for the backward pass) from sizes alone and refuses with a
``MemoryError`` past :mod:`backends.budget` (4 GiB unless ``QADAPTERS_MAX_BYTES`` or
``backends.budget.limit(...)`` says otherwise) — before any allocation.

The exact LCU postselection functions of :mod:`backends.postselection` are re-exported here.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

import numpy as np
import torch

from backends import budget, subspace
from backends import compounds as compounds_module
from backends.compounds import compound, compounds, rotation_compounds
from backends.statevector import run, run_nbytes
from backends.subspace import circuit_cache, compile_constant, is_fermionic
from backends.torch_gates import gate_matrix
from circuits import Circuit, get_gate
from circuits.subspace import subspace_dim

Tensor = torch.Tensor
_F = TypeVar("_F", bound=Callable[..., Tensor])

#: A 2^14 × 2^14 float64 unitary is 2 GiB. Kept for callers that pass it as ``max_qubits``; the
#: default cap is the memory budget (:mod:`backends.budget`), not a qubit count.
MAX_UNITARY_QUBITS = 14
#: Kept for callers that pass it as ``max_qubits`` to :func:`apply` / :func:`columns`.
MAX_STATE_QUBITS = 26
#: how :func:`hamming_block` computes ("compound" is the deprecated spelling of "minors")
HammingMethod = Literal["auto", "simulate", "minors", "compound"]
_HAMMING_METHODS = ("auto", "simulate", "minors")


# ---------------------------------------------------------------------------- validation
def _check_params(circuit: Circuit, params: Tensor | Sequence[float] | np.ndarray) -> Tensor:
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a circuits.Circuit; found {type(circuit).__name__}")
    if params is None:
        raise TypeError(
            f"expected a parameter vector of length {circuit.num_params} (circuit.num_params) "
            "or a batch (..., num_params); found None"
        )
    if not isinstance(params, Tensor):
        params = torch.as_tensor(np.asarray(params, dtype=np.float64))
    if params.is_complex() or not params.is_floating_point():
        raise TypeError(f"expected real floating-point params; found dtype {params.dtype}")
    if params.ndim == 0 or params.shape[-1] != circuit.num_params:
        raise ValueError(
            f"expected params of shape (..., {circuit.num_params}) for this circuit; "
            f"found shape {tuple(params.shape)}"
        )
    # the finiteness check reads the values back to the host: eager runs only (a compiled graph
    # cannot branch on data, and a host sync per step would stall an accelerator's queue)
    if (
        params.numel()
        and not torch.compiler.is_compiling()
        and not bool(torch.isfinite(params).all())
    ):
        bad = (~torch.isfinite(params)).nonzero()[0].tolist()
        raise ValueError(f"params must be finite; found {params[tuple(bad)].item()} at {bad}")
    return params


def _check_qubits(circuit: Circuit, limit: int | None, what: str) -> None:
    if limit is not None and circuit.n_qubits > limit:
        raise ValueError(
            f"{what} needs 2^{circuit.n_qubits} amplitudes per column; expected n_qubits <= "
            f"{limit}, found {circuit.n_qubits} (raise max_qubits if you have the memory, or use "
            "columns/apply/hamming_block)"
        )


@compile_constant  # Note [constant plans] in backends/subspace.py
@circuit_cache(maxsize=256)
def _facts(circuit: Circuit) -> tuple[bool, bool, bool]:
    """(is_real, preserves_hamming_weight, is_fermionic) of a circuit: one lookup by identity
    per call instead of three walks over its ops."""
    return circuit.is_real, circuit.preserves_hamming_weight, is_fermionic(circuit)


def _dtypes(circuit: Circuit, params: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(real dtype, working dtype) for a circuit and its parameters."""
    real = params.dtype
    if _facts(circuit)[0]:
        return real, real
    return real, torch.complex128 if real == torch.float64 else torch.complex64

def _grad(*tensors: Tensor) -> bool:
    """Whether autograd will record work on these tensors."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _sizes(batch: int, dtype: torch.dtype, grad: bool) -> str:
    """``"batch 4, float64, with autograd"``: the words after a size in a budget message."""
    parts = [f"batch {batch}"] if batch != 1 else []
    parts.append(_dtype_name(dtype))
    if grad:
        parts.append("with autograd")
    return ", ".join(parts)


def _check_run(
    what: str, circuit: Circuit, batch: int, columns: int | None, dtype: torch.dtype,
    grad: bool, copies: int,
) -> None:
    """Refuse a state-vector run that would not fit the budget (Note [state-vector memory])."""
    nbytes = run_nbytes(circuit, batch, columns, dtype, grad=grad, copies=copies)
    if nbytes > budget.max_bytes():
        n = circuit.n_qubits
        shape = f"2^{n} × 2^{n}" if columns is None else f"2^{n} × {columns}"
        budget.check(
            f"exact.{what} of a {n}-qubit circuit ({shape} per parameter set, "
            f"{_sizes(batch, dtype, grad)})",
            nbytes,
        )


def _flat_batch(params: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    batch = tuple(params.shape[:-1])
    # an explicit batch size: reshape(-1, 0) is ambiguous for a circuit with no parameters
    return params.reshape(math.prod(batch), params.shape[-1]), batch


def _full_precision(fn: _F) -> _F:
    """Run ``fn`` with autocast off: an exact simulation keeps its inputs' dtype, where an
    ambient ``torch.autocast`` would round every product to bf16 (and a unitary so rounded is
    no longer unitary). Without autocast this adds nothing to the call."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> Tensor:
        if not (torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")):
            return fn(*args, **kwargs)
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------- public API
@_full_precision
def unitary(
    circuit: Circuit, params: Tensor | Sequence[float], *, max_qubits: int | None = None
) -> Tensor:
    """The full unitary of ``circuit``.

    Args:
        circuit: the circuit.
        params: shape ``(..., circuit.num_params)``.
        max_qubits: also refuse registers larger than this (``None``: only the memory budget
            limits the size; memory grows as 4^n).

    Returns:
        Shape ``(..., 2^n, 2^n)``; real when every gate is real.

    Raises:
        TypeError: ``params`` is None or not real floating point.
        ValueError: wrong parameter shape, non-finite parameters, or n > max_qubits.
        MemoryError: the matrices (with the sweeps' buffers, and what autograd keeps) would not
            fit :mod:`backends.budget`; the message names the size and how to raise the limit.

    Example:
        >>> import torch
        >>> from circuits import two_design
        >>> u = unitary(two_design(3, 1), torch.zeros(7, dtype=torch.float64))
        >>> u.shape
        torch.Size([8, 8])
    """
    params = _check_params(circuit, params)
    _check_qubits(circuit, max_qubits, "unitary")
    p, batch = _flat_batch(params)
    _, dtype = _dtypes(circuit, params)
    _check_run("unitary", circuit, p.shape[0], None, dtype, _grad(p), copies=0)
    dim = 2**circuit.n_qubits
    return run(circuit, p, None, dtype).reshape(*batch, dim, dim)


@_full_precision
def columns(
    circuit: Circuit,
    params: Tensor | Sequence[float],
    k: int,
    *,
    max_qubits: int | None = None,
) -> Tensor:
    """The first ``k`` columns of the unitary, computed from ``k`` basis states.

    Args:
        circuit: the circuit.
        params: shape ``(..., circuit.num_params)``.
        k: number of columns, ``1 <= k <= 2^n``.
        max_qubits: also refuse registers larger than this (``None``: only the memory budget).

    Returns:
        Shape ``(..., 2^n, k)``.

    Raises:
        TypeError: ``params`` is None or not real floating point.
        ValueError: bad params or k, or n > max_qubits.
        MemoryError: the states would not fit :mod:`backends.budget`.
    """
    params = _check_params(circuit, params)
    _check_qubits(circuit, max_qubits, "columns")
    dim = 2**circuit.n_qubits
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= dim:
        raise ValueError(f"expected 1 <= k <= 2^n = {dim}; found k={k!r}")
    p, batch = _flat_batch(params)
    _, dtype = _dtypes(circuit, params)
    _check_run("columns", circuit, p.shape[0], k, dtype, _grad(p), copies=1)
    x = torch.eye(dim, k, dtype=dtype, device=p.device).expand(p.shape[0], dim, k)
    return run(circuit, p, x, dtype).reshape(*batch, dim, k)


@_full_precision
def apply(
    circuit: Circuit,
    params: Tensor | Sequence[float],
    states: Tensor,
    *,
    max_qubits: int | None = None,
) -> Tensor:
    """Apply the circuit to state vectors without forming its matrix.

    Args:
        circuit: the circuit.
        params: shape ``(num_params,)`` — every state gets the same circuit — or
            ``(*B, num_params)``, broadcast against the states' leading dimensions.
        states: shape ``(*S, 2^n)``.
        max_qubits: also refuse registers larger than this (``None``: only the memory budget).

    Returns:
        Shape ``(*S, 2^n)`` for unbatched params, else ``(*broadcast(B, S), 2^n)``.

    Raises:
        TypeError: ``params`` is None or not real floating point.
        ValueError: bad params or states, or n > max_qubits.
        MemoryError: the states (copies, sweeps, what autograd keeps) would not fit
            :mod:`backends.budget`.
    """
    params = _check_params(circuit, params)
    _check_qubits(circuit, max_qubits, "apply")
    dim = 2**circuit.n_qubits
    if not isinstance(states, Tensor) or states.ndim == 0 or states.shape[-1] != dim:
        shape = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise ValueError(f"expected states of shape (..., {dim}); found {shape}")
    _, dtype = _dtypes(circuit, params)
    if states.is_complex() and not dtype.is_complex:
        dtype = torch.complex128 if params.dtype == torch.float64 else torch.complex64
    grad = _grad(params, states)
    if params.ndim == 1:
        lead = states.shape[:-1]
        _check_run("apply", circuit, 1, states.numel() // dim, dtype, grad, copies=2)
        x = states.reshape(-1, dim).to(dtype).T.unsqueeze(0)
        y = run(circuit, params.unsqueeze(0), x, dtype)
        return y[0].T.reshape(*lead, dim)
    batch = torch.broadcast_shapes(params.shape[:-1], states.shape[:-1])
    _check_run("apply", circuit, math.prod(batch), 1, dtype, grad, copies=2)
    p = params.expand(*batch, params.shape[-1]).reshape(-1, params.shape[-1])
    x = states.expand(*batch, dim).reshape(-1, dim, 1).to(dtype)
    return run(circuit, p, x, dtype).reshape(*batch, dim)


@_full_precision
def hamming_block(
    circuit: Circuit,
    params: Tensor | Sequence[float],
    k: int,
    *,
    method: HammingMethod = "auto",
) -> Tensor:
    """The block of a Hamming-weight-preserving circuit on the weight-k subspace.

    Simulated in that subspace only (see Note [Hamming-weight subspace]); never 2^n.

    Args:
        circuit: a circuit whose gates all preserve Hamming weight (RBS, FBS, CZ, RZ, …).
        params: shape ``(..., num_params)``.
        k: the Hamming weight, ``0 <= k <= n``.
        method: ``"simulate"`` runs every gate in the weight-k subspace; ``"minors"`` simulates
            weight 1 and returns its k×k minors (its k-th compound), which equal the weight-k
            block only for fermionic circuits (:func:`is_fermionic`); ``"auto"`` picks
            ``"minors"`` exactly when it is valid. ``"compound"`` is the deprecated name of
            ``"minors"``.

    Returns:
        Shape ``(..., C(n,k), C(n,k))``, rows and columns in ``itertools.combinations`` order.

    Raises:
        TypeError: ``params`` is None or not real floating point.
        ValueError: the circuit does not preserve Hamming weight (naming the first offending
            gate), k is out of range, ``method="minors"`` on a non-fermionic circuit, or bad
            params.
        MemoryError: the blocks (with the subspace plan and what autograd keeps, or the minors)
            would not fit :mod:`backends.budget`; checked from sizes before any work.

    Warns:
        DeprecationWarning: ``method="compound"`` (use ``"minors"``).
    """
    params = _check_params(circuit, params)
    n = circuit.n_qubits
    _, preserves, fermionic = _facts(circuit)
    if not preserves:
        bad = next(op for op in circuit.ops if not get_gate(op.name).preserves_hamming_weight)
        raise ValueError(
            "hamming_block expects a Hamming-weight-preserving circuit (gates such as rbs, fbs, "
            f"cz, rz, swap); found gate {bad.name!r} on wires {bad.wires}, which mixes weights"
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"expected 0 <= k <= n_qubits = {n}; found k={k!r}")
    if n > subspace.MAX_WIRES:
        raise ValueError(
            f"hamming_block expects a circuit on at most {subspace.MAX_WIRES} qubits (basis "
            f"states are indexed as 64-bit integers); found {n}"
        )
    if method == "compound":
        warnings.warn(
            "hamming_block(method='compound') is deprecated; use method='minors'",
            DeprecationWarning,
            stacklevel=2,
        )
        method = "minors"
    if method not in _HAMMING_METHODS:
        raise ValueError(f"expected method 'auto', 'simulate' or 'minors'; found {method!r}")
    if method == "minors" and not fermionic:
        raise ValueError(
            "method='minors' equals the weight-k block only for FBS gates and nearest-neighbour "
            "RBS gates; this circuit has other gates (use method='simulate')"
        )
    p, batch = _flat_batch(params)
    _, dtype = _dtypes(circuit, params)
    rows = subspace_dim(n, k)
    b, grad = p.shape[0], _grad(p)
    simulate = method == "simulate" or not fermionic or k <= 1
    if simulate:
        nbytes = subspace.simulate_nbytes(circuit, b, k, dtype, grad=grad)
    else:
        nbytes = subspace.simulate_nbytes(circuit, b, 1, dtype, grad=grad)
        nbytes += compounds_module.compounds_nbytes(n, k, b, dtype, grad=grad)
    budget.check(
        f"exact.hamming_block of a {n}-qubit circuit at weight {k} (a {rows} × {rows} block per "
        f"parameter set, {_sizes(b, dtype, grad)})",
        nbytes,
    )
    if simulate:
        out = subspace.simulate(circuit, p, k, dtype)
    else:
        out = compound(subspace.simulate(circuit, p, 1, dtype), k)
    return out.reshape(*batch, rows, rows)


# The exact LCU functions live beside the LCU maths in backends.postselection, which builds on
# this module; they are re-exported lazily so that either module may be imported first.
_POSTSELECTION = (
    "lcu_angles_torch",
    "lcu_params",
    "postselect_counts",
    "postselected_operator",
    "success_probability",
)


def __getattr__(name: str) -> object:
    if name in _POSTSELECTION:
        from backends import postselection

        return getattr(postselection, name)
    raise AttributeError(f"module 'backends.exact' has no attribute {name!r}")


__all__ = [
    "MAX_STATE_QUBITS",
    "MAX_UNITARY_QUBITS",
    "apply",
    "columns",
    "compound",
    "compounds",
    "gate_matrix",
    "hamming_block",
    "is_fermionic",
    "rotation_compounds",
    "unitary",
]
__all__ += list(_POSTSELECTION)
