"""Quantum-PEFT with the Pauli (two-design) parameterization: ``ΔW = U_K diag(s) V_Kᵀ · scale``.

``U_K`` (``out × K``) and ``V_K`` (``in × K``) are Stiefel matrices from two-design circuits
(:class:`.stiefel.TwoDesignStiefel`, any size). ``s`` starts at zero, so the model is
unchanged at step 0 even though the circuits start at random angles. The forward pass never forms
``ΔW``: it computes ``base_out + ((x V_K) ⊙ s) U_Kᵀ · scale``.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor, nn

from circuits import Circuit
from qadapters.families.base import Adapter
from qadapters.families.stiefel import TwoDesignStiefel, stiefel_num_params


def check_rank(rank: int, in_features: int, out_features: int) -> None:
    """Raise unless ``1 <= rank <= min(in_features, out_features)``."""
    limit = min(in_features, out_features)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= limit:
        raise ValueError(
            f"rank must be an int in 1..min(in_features, out_features) = 1..{limit}; found {rank!r}"
        )


class SVDFormAdapter(Adapter):
    """Shared body of the ``U_K diag(s) V_Kᵀ · scale`` families; subclasses give the factors."""

    def __init__(self, in_features: int, out_features: int, rank: int, scale: float) -> None:
        super().__init__(in_features, out_features)
        check_rank(rank, in_features, out_features)
        self.rank = rank
        self.scale = float(scale)
        self.s = nn.Parameter(torch.zeros(rank))

    @abstractmethod
    def factors(self) -> tuple[Tensor, Tensor]:
        """``(U_K, V_K)`` of shapes ``(out, K)`` and ``(in, K)``."""

    def delta_weight(self) -> Tensor:
        """The dense ``ΔW`` (``out × in``); for merging and tests, not for the forward pass."""
        u, v = self.factors()
        return (u * self.s.to(u.dtype)) @ v.T * self.scale

    def forward(self, x: Tensor, base_out: Tensor) -> Tensor:
        """``base_out + ((x V_K) ⊙ s) U_Kᵀ · scale``."""
        u, v = self.factors()
        u, v, s = u.to(x.dtype), v.to(x.dtype), self.s.to(x.dtype)
        return base_out + ((x @ v) * (s * self.scale)) @ u.T  # scale on K values, not the output

    def merge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(W + ΔW, b)``."""
        return weight + self.delta_weight().to(weight.dtype), bias

    def unmerge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(W − ΔW, b)``."""
        return weight - self.delta_weight().to(weight.dtype), bias


class PauliAdapter(SVDFormAdapter):
    """Quantum-PEFT adapter whose singular vectors are two-design circuits.

    Trainable parameters: ``K + P(out, K, L) + P(in, K, L)`` where ``P`` is
    :func:`.stiefel.stiefel_num_params` (``(2L+1)·n − 2L`` for ``d = 2^n``, plus the
    cosine–sine angles and extra blocks otherwise).

    Args:
        in_features: input width.
        out_features: output width.
        rank: K, the number of singular vectors.
        layers: two-design layers L.
        scale: constant factor on ``ΔW``.

    Initial circuit angles come from torch's global generator (seed it for reproducibility).

    Raises:
        ValueError: rank or layers out of range.

    Example:
        >>> a = PauliAdapter(10, 6, rank=2)
        >>> x = torch.randn(3, 10)
        >>> bool(torch.equal(a(x, torch.zeros(3, 6)), torch.zeros(3, 6)))  # s = 0 at init
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int = 4,
        layers: int = 1,
        scale: float = 1.0,
    ) -> None:
        super().__init__(in_features, out_features, rank, scale)
        self.layers = layers
        self.u_map = TwoDesignStiefel(out_features, rank, layers)
        self.v_map = TwoDesignStiefel(in_features, rank, layers)
        dtype = torch.get_default_dtype()
        self.u = nn.Parameter(self.u_map.init_params(None, dtype))
        self.v = nn.Parameter(self.v_map.init_params(None, dtype))
        self.angle_names = ("u", "v")

    @classmethod
    def count(
        cls, in_features: int, out_features: int, rank: int = 4, layers: int = 1, **_: object
    ) -> int:
        """Trainable parameters, from sizes only."""
        check_rank(rank, in_features, out_features)
        return (
            rank
            + stiefel_num_params(out_features, rank, layers)
            + stiefel_num_params(in_features, rank, layers)
        )

    @property
    def circuits(self) -> dict[str, Circuit]:
        """``{"u": circuit of U_K, "v": circuit of V_K}`` (each a cosine–sine composition)."""
        return {"u": self.u_map.circuit, "v": self.v_map.circuit}

    def factors(self) -> tuple[Tensor, Tensor]:
        if self.in_features == self.out_features:  # same circuits: one batched pass for both
            both = self.u_map.batched(torch.stack([self.u, self.v]))
            return both[0], both[1]
        return self.u_map(self.u), self.v_map(self.v)
