"""Exact postselection of circuits with ancillas (LCU circuits) in PyTorch, differentiable.

- :func:`lcu_angles_torch` / :func:`lcu_params` — the torch twins of
  :func:`circuits.lcu.lcu_angles`: coefficients ``α`` (and sub-circuit parameters) → the LCU
  circuit's parameter vector, with gradients flowing back to ``α``. (``lcu_angles`` here is a
  deprecated alias of :func:`lcu_angles_torch`.)
- :func:`postselected_operator` — the system operator left after the ancillas are measured in the
  circuit's ``postselect`` pattern: ``Σ α_i U_i / ‖α‖₁`` for an LCU (Note [LCU postselection] in
  :mod:`circuits.lcu`).
- :func:`success_probability` — the probability of keeping a shot, ``‖Σ α_i U_i ψ‖² / ‖α‖₁²``
  for an LCU.
- :func:`postselect_counts` — the same postselection on measured counts (used by the Aer and IBM
  backends through :mod:`backends.sampling`), plain Python; :func:`kept_indices` — the basis
  indices it keeps.

Everything is simulated with :mod:`backends.exact` on the full register (system + ancillas), so
it works for any circuit that records ``ancillas`` and ``postselect``, wherever the ancillas sit.

A pattern the ancillas never read (success probability at most :data:`NEVER`) is not an error —
the values are exact — but it is never silent: :func:`success_probability` and
:func:`postselected_operator` warn with a ``UserWarning`` naming the pattern, and the sampled
counterpart (:func:`backends.sampling.postselected_sample`) returns NaN probabilities for a
parameter set that kept no shot.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from backends import budget, exact
from circuits import Circuit
from circuits.lcu import lcu_num_ancillas

Tensor = torch.Tensor

__all__ = [
    "NEVER",
    "kept_indices",
    "lcu_angles_torch",
    "lcu_params",
    "postselect_counts",
    "postselected_operator",
    "success_probability",
]


#: A success probability at most this is "never" (no realistic number of shots keeps one).
NEVER = 1e-12


def _warn_never(circuit: Circuit, what: str, stacklevel: int = 3) -> None:
    warnings.warn(
        f"{what}: the ancillas {list(circuit.ancillas)} never read the postselect pattern "
        f"{list(circuit.postselect)} (success probability <= {NEVER:g}); no shot would be kept",
        UserWarning,
        stacklevel=stacklevel,
    )


# ---------------------------------------------------------------------------- angles
def _as_real(x: Tensor | Sequence[float] | np.ndarray, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if x.is_complex() or not x.is_floating_point():
        raise ValueError(f"expected real floating-point {what}; found dtype {x.dtype}")
    return x


def lcu_angles_torch(coefficients: Tensor | Sequence[float]) -> Tensor:
    """PREPARE / un-PREPARE angles of an LCU, differentiable in the coefficients.

    Same values and layout as :func:`circuits.lcu.lcu_angles` (V tree in level order, then W's
    leaf angles). Gradients are finite wherever no coefficient is zero (``sqrt|α|`` is not
    differentiable at 0).

    Args:
        coefficients: shape ``(..., m)``, ``m >= 2``, real, finite, not all zero.

    Returns:
        Shape ``(..., lcu_num_angles(m))``, the dtype of ``coefficients``.

    Raises:
        ValueError: fewer than 2 coefficients, complex, non-finite or all-zero coefficients.

    Example:
        >>> lcu_angles_torch(torch.tensor([1.0, 1.0], dtype=torch.float64)).tolist()
        [1.5707963267948966, 1.5707963267948966]
    """
    alpha = _as_real(coefficients, "LCU coefficients")
    if alpha.ndim == 0:
        raise ValueError("expected LCU coefficients of shape (..., m); found a scalar")
    m = alpha.shape[-1]
    a = lcu_num_ancillas(m)
    if not bool(torch.isfinite(alpha).all()):
        raise ValueError(f"LCU coefficients must be finite; found {alpha.detach().tolist()}")
    if bool((alpha == 0).all(dim=-1).any()):
        raise ValueError(f"LCU coefficients must not all be zero; found {alpha.detach().tolist()}")
    size = 2**a
    batch = alpha.shape[:-1]
    pad = alpha.new_zeros(*batch, size - m)
    root = torch.sqrt(torch.abs(alpha))
    weights = torch.cat([torch.abs(alpha), pad], dim=-1)
    plain = torch.cat([root, pad], dim=-1)
    signed = torch.cat([torch.sign(alpha) * root, pad], dim=-1)

    def leaf_angles(amps: Tensor) -> Tensor:
        pairs = amps.reshape(*batch, size // 2, 2)
        return 2 * torch.atan2(pairs[..., 1], pairs[..., 0])

    tree = []
    for level in range(a - 1):
        sums = weights.reshape(*batch, 2**level, 2, size >> (level + 1)).sum(-1)
        tree.append(2 * torch.atan2(torch.sqrt(sums[..., 1]), torch.sqrt(sums[..., 0])))
    tree.append(leaf_angles(plain))
    tree.append(leaf_angles(signed))
    return torch.cat(tree, dim=-1)


def lcu_params(
    coefficients: Tensor | Sequence[float], *sub_params: Tensor | Sequence[float]
) -> Tensor:
    """The parameter vector of a (trainable-coefficient) :func:`circuits.lcu.lcu` circuit.

    Args:
        coefficients: ``α``, shape ``(..., m)``.
        *sub_params: one parameter vector per sub-circuit, in order, each ``(..., p_i)``; leading
            dimensions broadcast with those of ``coefficients``.

    Returns:
        ``[lcu_angles_torch(α) | sub_params[0] | sub_params[1] | …]`` of shape ``(..., P)``;
        differentiable in every input.

    Raises:
        ValueError: the number of sub-parameter vectors is not ``m``, or bad coefficients.
    """
    angles = lcu_angles_torch(coefficients)
    m = _as_real(coefficients, "LCU coefficients").shape[-1]
    if len(sub_params) != m:
        raise ValueError(
            f"expected one parameter vector per LCU term ({m}); found {len(sub_params)}"
        )
    parts = [angles] + [_as_real(p, "sub-circuit params").to(angles.dtype) for p in sub_params]
    for k, p in enumerate(parts[1:]):
        if p.ndim == 0:
            raise ValueError(f"sub_params[{k}] must be a vector (..., p); found a scalar")
    batch = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
    return torch.cat([p.expand(*batch, p.shape[-1]) for p in parts], dim=-1)


# ---------------------------------------------------------------------------- postselection
def check_postselected(circuit: object) -> None:
    """Raise unless ``circuit`` is a :class:`circuits.Circuit` with ancillas and a postselect
    pattern (what every postselected run needs).

    Raises:
        TypeError: ``circuit`` is not a Circuit.
        ValueError: no ancillas or no postselect pattern.
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a circuits.Circuit; found {type(circuit).__name__}")
    if not circuit.ancillas or not circuit.postselect:
        raise ValueError(
            "expected a circuit with ancillas and a postselect pattern (e.g. from "
            f"circuits.lcu.lcu); found ancillas={circuit.ancillas}, "
            f"postselect={circuit.postselect}"
        )


def kept_indices(circuit: Circuit) -> np.ndarray:
    """Full-register basis indices whose ancillas hold the postselect pattern.

    Args:
        circuit: a circuit with ``ancillas`` and ``postselect``.

    Returns:
        Shape ``(2^s,)`` (``s`` system wires), int: entry ``r`` is the index of the basis state
        whose system wires spell ``r`` (first system wire most significant) and whose ancillas
        hold the pattern.

    Raises:
        TypeError: ``circuit`` is not a Circuit.
        ValueError: no ancillas or no postselect pattern.

    Example:
        >>> from circuits import Circuit
        >>> kept_indices(Circuit(3, [], ancillas=(1,), postselect=(1,))).tolist()  # s = 2 wires
        [2, 3, 6, 7]
    """
    check_postselected(circuit)
    n = circuit.n_qubits
    system = circuit.system_wires
    base = sum(v << (n - 1 - w) for w, v in zip(circuit.ancillas, circuit.postselect, strict=True))
    s = np.arange(2 ** len(system))
    idx = np.full_like(s, base)
    for q, w in enumerate(system):
        idx |= ((s >> (len(system) - 1 - q)) & 1) << (n - 1 - w)
    return idx


def postselected_operator(circuit: Circuit, params: Tensor | Sequence[float]) -> Tensor:
    """The (non-unitary) system operator applied when the ancillas are postselected.

    ``A[r, c] = <r, pattern| U |c, pattern>`` over system basis states ``r, c``. For an LCU
    circuit with parameters ``lcu_params(α, θ_0, θ_1, …)`` this is ``Σ α_i U_i(θ_i) / ‖α‖₁``.

    Args:
        circuit: a circuit with ``ancillas`` and ``postselect`` (e.g. :func:`circuits.lcu.lcu`).
        params: shape ``(..., circuit.num_params)``.

    Returns:
        Shape ``(..., 2^s, 2^s)`` with ``s`` the number of system wires; real when every gate is.
        Differentiable in ``params``.

    Raises:
        ValueError: no ancillas or no postselect pattern; bad params (see ``exact.apply``).
        MemoryError: the register is too large for :mod:`backends.budget`.

    Warns:
        UserWarning: for some parameter set the operator is zero: no input is ever kept.
    """
    idx = kept_indices(circuit)
    params = exact._check_params(circuit, params)
    dim = 2**circuit.n_qubits
    budget.check(
        f"postselected_operator of a {circuit.n_qubits}-qubit circuit ({len(idx)} basis states "
        f"of 2^{circuit.n_qubits})",
        len(idx) * dim * params.dtype.itemsize,
    )
    basis = torch.zeros(len(idx), dim, dtype=params.dtype, device=params.device)
    basis[torch.arange(len(idx)), torch.as_tensor(idx)] = 1
    p = params if params.ndim == 1 else params.unsqueeze(-2)
    out = exact.apply(circuit, p, basis)  # (..., K, dim): row c = U |c, pattern>
    kept = out[..., torch.as_tensor(idx, device=out.device)]  # (..., c, r)
    # every input is lost exactly when all of the operator's entries vanish
    largest = (kept.detach().abs() ** 2).sum(-2).amax(-1)
    if bool((largest <= NEVER).any()):
        _warn_never(circuit, "postselected_operator")
    return kept.transpose(-1, -2)


def success_probability(
    circuit: Circuit, params: Tensor | Sequence[float], states: Tensor
) -> Tensor:
    """Probability that the ancillas are measured in the postselect pattern.

    For an LCU this is ``‖Σ α_i U_i ψ‖² / (‖α‖₁² ‖ψ‖²)``; states need not be normalised.

    Args:
        circuit: a circuit with ``ancillas`` and ``postselect``.
        params: shape ``(num_params,)`` or ``(*B, num_params)``.
        states: system states, shape ``(*S, 2^s)``; the ancillas start in the pattern.

    Returns:
        Shape ``(*S,)`` for unbatched params, else ``broadcast(B, S)``; differentiable.

    Raises:
        ValueError: no postselection recorded, states of the wrong size or of zero norm, bad
            params.

    Warns:
        UserWarning: some probability is at most :data:`NEVER` (the value is still returned).
    """
    idx = kept_indices(circuit)
    k = len(idx)
    if not isinstance(states, Tensor) or states.ndim == 0 or states.shape[-1] != k:
        found = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise ValueError(f"expected system states of shape (..., {k}); found {found}")
    norms = (states.abs() ** 2).sum(-1)
    if bool((norms == 0).any()):
        raise ValueError("expected non-zero system states; found a state of norm 0")
    full = states.new_zeros(*states.shape[:-1], 2**circuit.n_qubits)
    full[..., torch.as_tensor(idx)] = states
    out = exact.apply(circuit, params, full)
    kept = out[..., torch.as_tensor(idx, device=out.device)]
    probability = (kept.abs() ** 2).sum(-1) / norms
    if bool((probability.detach() <= NEVER).any()):
        _warn_never(circuit, "success_probability")
    return probability


def postselect_counts(circuit: Circuit, counts: dict[str, int]) -> dict[str, int]:
    """Keep the shots whose ancillas read the circuit's ``postselect`` pattern.

    Args:
        circuit: a circuit with ``ancillas`` and ``postselect``.
        counts: ``{bitstring: count}`` over all ``n_qubits`` wires in IR order (character ``w`` is
            wire ``w``), as returned by ``backends.aer.sample``.

    Returns:
        ``{system bitstring: count}`` of the kept shots (system wires in increasing order);
        ``sum(values) / shots`` is the kept fraction, and an empty dict means no shot was kept
        (:func:`backends.sampling.postselected_sample` warns about that).

    Raises:
        ValueError: no postselection recorded, or a bitstring of the wrong length.
    """
    kept_indices(circuit)  # validates the registers
    n = circuit.n_qubits
    system = circuit.system_wires
    kept: dict[str, int] = {}
    for bits, k in counts.items():
        if len(bits) != n:
            raise ValueError(f"expected {n}-bit strings; found {bits!r}")
        pattern = zip(circuit.ancillas, circuit.postselect, strict=True)
        if all(bits[a] == str(v) for a, v in pattern):
            key = "".join(bits[w] for w in system)
            kept[key] = kept.get(key, 0) + k
    return kept


def __getattr__(name: str) -> object:
    if name == "lcu_angles":
        warnings.warn(
            "backends.postselection.lcu_angles is deprecated; use lcu_angles_torch (the numpy "
            "version is circuits.lcu.lcu_angles)",
            DeprecationWarning,
            stacklevel=2,
        )
        return lcu_angles_torch
    raise AttributeError(f"module 'backends.postselection' has no attribute {name!r}")
