"""``CircuitLayer``: a circuit as a PyTorch layer (how a user "exports a unitary to a layer").

The module owns the circuit (``.circuit``) and its parameter vector (``.params``) and returns,
differentiably through :mod:`backends.exact`, one of:

- ``"unitary"`` — the full ``2^n × 2^n`` matrix;
- ``"columns"`` — its first k columns (``2^n × k``), without the full matrix;
- ``"hamming_block"`` — its weight-k block (``C(n,k) × C(n,k)``), simulated in that subspace;
- ``"apply"`` — its action on a batch of states ``x`` of shape ``(..., 2^n)``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from backends import exact
from circuits import Circuit

Output = Literal["unitary", "columns", "hamming_block", "apply"]
Init = Literal["uniform", "normal", "zeros"]

_OUTPUTS = ("unitary", "columns", "hamming_block", "apply")
_INITS = ("uniform", "normal", "zeros")


class CircuitLayer(nn.Module):
    """A parameterized circuit as an ``nn.Module``.

    Args:
        circuit: the circuit.
        output: what :meth:`forward` returns: ``"unitary"``, ``"columns"``, ``"hamming_block"``
            or ``"apply"``.
        k: number of columns (``"columns"``, ``1 <= k <= 2^n``) or Hamming weight
            (``"hamming_block"``, ``0 <= k <= n``); must be None for the other outputs.
        init: initial angles: ``"uniform"`` in ``[−π, π)``, ``"normal"`` (std 0.1), ``"zeros"``,
            or a tensor of shape ``(circuit.num_params,)``.
        dtype: dtype of the parameters (default: torch's default dtype).

    Raises:
        TypeError: ``circuit`` is not a :class:`circuits.Circuit`.
        ValueError: an invalid output, k or init (the message lists the valid values), or a
            Hamming block of a circuit that mixes weights.

    Example:
        >>> from circuits import rbs_pyramid
        >>> layer = CircuitLayer(rbs_pyramid(4), output="hamming_block", k=2)
        >>> layer().shape
        torch.Size([6, 6])
    """

    def __init__(
        self,
        circuit: Circuit,
        output: Output = "unitary",
        k: int | None = None,
        init: Init | Tensor = "uniform",
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(circuit, Circuit):
            raise TypeError(f"expected a circuits.Circuit; found {type(circuit).__name__}")
        if output not in _OUTPUTS:
            raise ValueError(
                f"output must be one of {', '.join(map(repr, _OUTPUTS))}; found {output!r}"
            )
        self.circuit = circuit
        self.output = output
        self.k = self._check_k(circuit, output, k)
        if output == "hamming_block" and not circuit.preserves_hamming_weight:
            raise ValueError(
                "output 'hamming_block' needs a Hamming-weight-preserving circuit (rbs, fbs, cz, "
                f"…); {circuit.name or 'this circuit'} has other gates"
            )
        self.params = nn.Parameter(self._init(circuit.num_params, init, dtype))

    @staticmethod
    def _check_k(circuit: Circuit, output: str, k: int | None) -> int | None:
        n = circuit.n_qubits
        if output in ("unitary", "apply"):
            if k is not None:
                raise ValueError(f"k must be None for output {output!r}; found k={k!r}")
            return None
        low, high = (1, 2**n) if output == "columns" else (0, n)
        if isinstance(k, bool) or not isinstance(k, int) or not low <= k <= high:
            raise ValueError(
                f"output {output!r} needs an int k in {low}..{high} for this {n}-qubit circuit; "
                f"found k={k!r}"
            )
        return k

    @staticmethod
    def _init(num: int, init: Init | Tensor, dtype: torch.dtype | None) -> Tensor:
        dtype = dtype or torch.get_default_dtype()
        if isinstance(init, Tensor):
            if init.shape != (num,):
                raise ValueError(f"init tensor must have shape ({num},); found {tuple(init.shape)}")
            return init.detach().to(dtype).clone()
        if init == "uniform":
            return (torch.rand(num, dtype=dtype) * 2 - 1) * math.pi
        if init == "normal":
            return torch.randn(num, dtype=dtype) * 0.1
        if init == "zeros":
            return torch.zeros(num, dtype=dtype)
        raise ValueError(
            f"init must be one of {', '.join(map(repr, _INITS))} or a tensor; found {init!r}"
        )

    def forward(self, x: Tensor | None = None) -> Tensor:
        """The selected output; ``x`` (states ``(..., 2^n)``) is required for ``"apply"`` only.

        Raises:
            ValueError: ``x`` missing for ``"apply"`` or given for another output.
        """
        if self.output == "apply":
            if x is None:
                raise ValueError("output 'apply' needs an input x of shape (..., 2^n)")
            return exact.apply(self.circuit, self.params, x)
        if x is not None:
            raise ValueError(f"output {self.output!r} takes no input; call the layer with no x")
        if self.output == "unitary":
            return exact.unitary(self.circuit, self.params)
        if self.output == "columns":
            return exact.columns(self.circuit, self.params, self.k)  # type: ignore[arg-type]
        return exact.hamming_block(self.circuit, self.params, self.k)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        k = "" if self.k is None else f", k={self.k}"
        return (
            f"{self.circuit.name or 'circuit'}, n_qubits={self.circuit.n_qubits}, "
            f"output={self.output!r}{k}, num_params={self.circuit.num_params}"
        )
