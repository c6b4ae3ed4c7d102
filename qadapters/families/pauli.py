"""Quantum-PEFT with the Pauli (two-design) parameterization: ``ΔW = U_K diag(s) V_Kᵀ · scale``.

``U_K`` (``out × K``) and ``V_K`` (``in × K``) are Stiefel matrices from two-design circuits
(:class:`.stiefel.TwoDesignStiefel`, any size). ``s`` starts at zero, so the model is
unchanged at step 0 even though the circuits start at random angles. The forward pass never forms
``ΔW``: it computes ``base_out + ((x V_K) ⊙ s) U_Kᵀ · scale``.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from circuits import Circuit
from qadapters.families.base import Adapter, layer_text, no_autocast
from qadapters.families.cost import Cost, Work, to_cost
from qadapters.families.options import FamilyOptions, option
from qadapters.families.stiefel import TwoDesignStiefel, stiefel_num_params


@dataclass(frozen=True)
class PauliOptions(FamilyOptions):
    """Options of :class:`PauliAdapter` (checks: :mod:`qadapters.families.options`)."""

    family = "pauli"

    rank: int = option(4, "K, singular vectors of ΔW (at most min(in, out))", low=1)
    layers: int = option(1, "two-design layers L of each Stiefel circuit", low=0)
    scale: float = option(1.0, "constant factor on ΔW", nonzero=True)


class _RankAndScale(Protocol):
    family: str
    rank: int
    scale: float


def check_rank(options: _RankAndScale, in_features: int, out_features: int) -> None:
    """Raise unless ``options.rank <= min(in_features, out_features)`` (the message names the
    layer)."""
    limit = min(in_features, out_features)
    if options.rank > limit:
        raise ValueError(
            f"{options.family} option 'rank': expected an int in 1..min(in_features, "
            f"out_features) = 1..{limit} for {layer_text(in_features, out_features)}; "
            f"found {options.rank}"
        )


class SVDFormAdapter(Adapter):
    """Shared body of the ``U_K diag(s) V_Kᵀ · scale`` families; subclasses give the factors.

    Their options have ``rank`` and ``scale``."""

    def __init__(self, in_features: int, out_features: int, **options: Any) -> None:
        super().__init__(in_features, out_features, **options)
        opts = cast(_RankAndScale, self.options)
        self.rank = opts.rank
        self.scale = opts.scale
        self.s = nn.Parameter(torch.zeros(self.rank))

    @classmethod
    def check_layer(cls, options: Any, in_features: int, out_features: int) -> list[str]:
        """The rank must fit the layer."""
        check_rank(options, in_features, out_features)
        return []

    @classmethod
    def cost_of(cls, options: Any, in_features: int, out_features: int) -> Cost:
        """The forward ``((x V_K) ⊙ s) U_Kᵀ``: ``K·(in + out)`` multiply-adds per token, as
        LoRA of rank K; autograd keeps ``x V_K`` and its scaled copy, ``2K`` floats per token.
        The build is the two factors (:meth:`factor_work`)."""
        rank = cast(_RankAndScale, options).rank
        build = cls.factor_work(options, in_features, out_features)
        return to_cost(rank * (in_features + out_features), 2 * rank, build)

    @classmethod
    @abstractmethod
    def factor_work(cls, options: Any, in_features: int, out_features: int) -> Work:
        """Multiply-adds and floats of building ``(U_K, V_K)`` once."""

    @abstractmethod
    def factors(self) -> tuple[Tensor, Tensor]:
        """``(U_K, V_K)`` of shapes ``(out, K)`` and ``(in, K)``."""

    def delta_weight(self) -> Tensor:
        """The dense ``ΔW`` (``out × in``); for merging and tests, not for the forward pass."""
        u, v = self.factors()
        return (u * self.s.to(u.dtype)) @ v.T * self.scale

    def forward(self, x: Tensor, base_out: Tensor) -> Tensor:
        """``base_out + ((x V_K) ⊙ s) U_Kᵀ · scale`` (factors built with autocast off: Note
        [mixed precision] in :mod:`.base`)."""
        with no_autocast(x):
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
        **options: :class:`PauliOptions` — ``rank`` (K, singular vectors), ``layers`` (two-design
            layers L), ``scale`` (constant factor on ``ΔW``).

    Initial circuit angles come from torch's global generator (seed it for reproducibility).

    Raises:
        ValueError: an invalid option, or a rank above ``min(in_features, out_features)``.

    Example:
        >>> a = PauliAdapter(10, 6, rank=2)
        >>> x = torch.randn(3, 10)
        >>> bool(torch.equal(a(x, torch.zeros(3, 6)), torch.zeros(3, 6)))  # s = 0 at init
        True
    """

    options_class = PauliOptions
    default_lr = 0.2

    def __init__(self, in_features: int, out_features: int, **options: Any) -> None:
        super().__init__(in_features, out_features, **options)
        rank, layers = self.rank, cast(PauliOptions, self.options).layers
        self.layers = layers
        self.u_map = TwoDesignStiefel(out_features, rank, layers)
        self.v_map = TwoDesignStiefel(in_features, rank, layers)
        dtype = torch.get_default_dtype()
        self.u = nn.Parameter(self.u_map.init_params(None, dtype))
        self.v = nn.Parameter(self.v_map.init_params(None, dtype))
        self.angle_names = ("u", "v")

    @classmethod
    def count(cls, in_features: int, out_features: int, **options: Any) -> int:
        """Trainable parameters, from sizes only."""
        opts = cast(PauliOptions, cls.layer_options(in_features, out_features, options)[0])
        return (
            opts.rank
            + stiefel_num_params(out_features, opts.rank, opts.layers)
            + stiefel_num_params(in_features, opts.rank, opts.layers)
        )

    @classmethod
    def factor_work(cls, options: Any, in_features: int, out_features: int) -> Work:
        """Both Stiefel maps (:meth:`.stiefel.TwoDesignStiefel.work`); a square layer evaluates
        them as one batch of two, as :meth:`factors` does."""
        opts = cast(PauliOptions, options)
        if in_features == out_features:
            return TwoDesignStiefel(out_features, opts.rank, opts.layers).work(2)
        maps = (TwoDesignStiefel(d, opts.rank, opts.layers) for d in (out_features, in_features))
        return sum((m.work(1) for m in maps), Work())

    @property
    def circuits(self) -> dict[str, Circuit]:
        """``{"u": circuit of U_K, "v": circuit of V_K}`` (each a cosine–sine composition)."""
        return {"u": self.u_map.circuit, "v": self.v_map.circuit}

    def factors(self) -> tuple[Tensor, Tensor]:
        if self.in_features == self.out_features:  # same circuits: one batched pass for both
            both = self.u_map.batched(torch.stack([self.u, self.v]))
            return both[0], both[1]
        return self.u_map(self.u), self.v_map(self.v)
