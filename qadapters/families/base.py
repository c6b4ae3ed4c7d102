"""The contract every adapter family implements.

A family module adapts one frozen linear map ``y = W x + b`` (``W`` of shape ``(out, in)``). The
injection layer (:mod:`qadapters.layers`) owns the frozen base layer and asks the family for:

- ``forward(x, base_out)``: the adapted output, given the input ``x`` (…, in) and the frozen
  layer's output ``base_out`` (…, out), bias included;
- ``merge(weight, bias)``: the weight and bias of one plain linear layer with the same outputs;
- ``unmerge(weight, bias)``: the inverse of ``merge``.

Additive families (``pauli``, ``taylor``, ``hamming``) return ``base_out + ΔW x``; the
multiplicative ``compound`` family returns ``base_out · M`` (so merge gives ``Mᵀ W``, ``Mᵀ b``).
Each family owns its circuits (``.circuits``) and their parameter tensors, so the same adapter
can be exported with ``backends.qiskit.to_qiskit``. ``angle_names`` lists the parameters that are
circuit angles (what quantization-aware training quantizes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from circuits import Circuit


class Adapter(nn.Module, ABC):
    """Base class of the adapter families (see the module docstring for the contract).

    Args:
        in_features: input width of the adapted linear layer.
        out_features: output width of the adapted linear layer.
    """

    #: names of the parameters that are circuit angles
    angle_names: tuple[str, ...] = ()

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int; found {v!r}")
        self.in_features = in_features
        self.out_features = out_features

    @property
    @abstractmethod
    def circuits(self) -> dict[str, Circuit]:
        """The adapter's circuits by name; ``getattr(self, name)`` is each one's parameter."""

    @abstractmethod
    def forward(self, x: Tensor, base_out: Tensor) -> Tensor:
        """The adapted output for input ``x`` and frozen output ``base_out``."""

    @abstractmethod
    def merge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Weight ``(out, in)`` and bias of a plain linear layer equal to the adapted one."""

    @abstractmethod
    def unmerge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Inverse of :meth:`merge`."""

    def num_trainable(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @torch.no_grad()
    def reset_away_from_identity(self, std: float = 0.1) -> None:
        """Randomise every parameter (tests use this so that merge checks cannot pass trivially)."""
        for p in self.parameters():
            p.normal_(0.0, std)
