"""QuIC: quantum-inspired compound adapters (Raj & Coyle, arXiv 2502.06916), output-side.

``y = base_out · M`` with ``M = M_1 ⊕ … ⊕ M_r ⊕ I``: r blocks tiled along the output features and
identity on the remainder. Each block is ``M_b = ⊕_{k ∈ orders} A_b^(k)``, the Hamming-weight-k
blocks of one RBS pyramid on n wires (``A_b`` its weight-1 block, an SO(n) matrix); n is the
largest with ``Σ_k C(n,k) <= out_features / r`` (768 features, r = 3, orders (1, 2) → n = 22).

Note [compound blocks]
----------------------
An RBS pyramid preserves Hamming weight, so its ``2^n × 2^n`` unitary is block diagonal with one
``C(n,k) × C(n,k)`` block per weight k, and for nearest-neighbour RBS gates the weight-k block is
the k-th compound ``A^(k)`` (k×k minors) of the weight-1 block (Cauchy–Binet). Compounds of an
orthogonal matrix are orthogonal, so every ``M_b`` is orthogonal and ``M`` is the identity at
``θ = 0`` (every RBS is then the identity). :func:`backends.exact.hamming_block` builds the
weight-1 block ``A`` in its subspace only (batched over adapters and blocks), the higher orders
are :func:`backends.exact.compounds` of it, and ``M`` is applied as one batched product per order
over the r blocks (:mod:`.kernels.block_mix`) — neither a dense ``out × out`` matrix nor the
zero off-diagonal parts of a ``W × W`` tile (``W = Σ_k C(n,k)``) are formed, and since ``M`` is
orthogonal the backward keeps the output instead of the input (Note [orthogonal block mix]).

Several adapters (``num_adapters``): ``"product"`` chains them, ``M = M^1 M^2 ⋯`` (still
orthogonal, the natural composition of circuits and what keeps the orthogonality the paper finds
essential); ``"sum"`` averages them, ``M = (1/A) Σ_a M^a`` (identity at init, not orthogonal in
general; unmerge then solves with each block).

Parameter counts: an RBS pyramid needs ``n(n−1)/2`` angles per block; the reference code stores a
full ``n × n`` matrix per block (Cayley map), ``n²``. :meth:`CompoundAdapter.parameter_counts`
reports both (DeBERTa-v3-base query+value, r = 3, orders (1, 2): 16,632 vs 34,848 ≈ 0.03M).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from typing import Literal

import torch
from torch import Tensor, nn

from backends import exact
from circuits import Circuit, rbs_pyramid
from qadapters.families.base import Adapter
from qadapters.families.hamming import flush_subnormal
from qadapters.families.kernels.block_mix import block_mix

Combine = Literal["product", "sum"]


def block_qubits(features: int, blocks: int, orders: Sequence[int]) -> int:
    """The largest n >= 2 with ``blocks · Σ_{k∈orders} C(n,k) <= features``.

    Raises:
        ValueError: bad orders/blocks, or not even n = 2 fits.
    """
    orders = check_orders(orders)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be an int >= 1; found {blocks!r}")

    def size(n: int) -> int:
        return sum(comb(n, k) for k in orders)

    if blocks * size(max(2, max(orders))) > features:
        raise ValueError(
            f"{features} features cannot hold {blocks} block(s) of orders {list(orders)} "
            f"(the smallest, n = {max(2, max(orders))}, needs {size(max(2, max(orders)))} each)"
        )
    n = max(2, max(orders))
    while blocks * size(n + 1) <= features:
        n += 1
    return n


def check_orders(orders: Sequence[int]) -> tuple[int, ...]:
    """Orders as a sorted tuple of distinct ints >= 1 (raises ValueError otherwise)."""
    if isinstance(orders, int | str) or not all(
        isinstance(k, int) and not isinstance(k, bool) for k in orders
    ):
        raise ValueError(f"orders must be a sequence of ints >= 1, e.g. (1, 2); found {orders!r}")
    out = tuple(sorted(orders))
    if not out or out[0] < 1 or len(set(out)) != len(out):
        raise ValueError(f"orders must be distinct ints >= 1, e.g. (1, 2); found {orders!r}")
    return out


def _check_combine(num_adapters: int, combine: str) -> None:
    if isinstance(num_adapters, bool) or not isinstance(num_adapters, int) or num_adapters < 1:
        raise ValueError(f"num_adapters must be an int >= 1; found {num_adapters!r}")
    if combine not in ("product", "sum"):
        raise ValueError(f"combine must be one of 'product', 'sum'; found {combine!r}")


class CompoundAdapter(Adapter):
    """QuIC compound adapter: ``y = base_out · M`` (see the module docstring).

    Trainable parameters: ``num_adapters · blocks · n(n−1)/2`` (RBS pyramids).

    Args:
        in_features: input width.
        out_features: output width (the side M acts on).
        blocks: r, blocks tiled along the output features.
        orders: Hamming weights k whose compounds make each block, e.g. ``(1, 2)``.
        num_adapters: how many M's to combine.
        combine: ``"product"`` or ``"sum"`` (mean) of the adapters' M.

    Raises:
        ValueError: invalid options, or out_features too small for the blocks.

    Example:
        >>> a = CompoundAdapter(768, 768, blocks=3, orders=(1, 2))
        >>> a.n_qubits, a.parameter_counts(768, 768)
        (22, {'ours': 693, 'reference': 1452})
    """

    angle_names = ("theta",)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        blocks: int = 3,
        orders: Sequence[int] = (1, 2),
        num_adapters: int = 1,
        combine: Combine = "product",
    ) -> None:
        super().__init__(in_features, out_features)
        _check_combine(num_adapters, combine)
        self.orders = check_orders(orders)
        self.blocks = blocks
        self.num_adapters = num_adapters
        self.combine = combine
        self.n_qubits = block_qubits(out_features, blocks, self.orders)
        self.circuit = rbs_pyramid(self.n_qubits)
        self.sizes = [comb(self.n_qubits, k) for k in self.orders]
        shape = (num_adapters, blocks, self.circuit.num_params)
        self.theta = nn.Parameter(torch.zeros(shape))

    @classmethod
    def parameter_counts(
        cls,
        in_features: int,
        out_features: int,
        blocks: int = 3,
        orders: Sequence[int] = (1, 2),
        num_adapters: int = 1,
        **_: object,
    ) -> dict[str, int]:
        """``{"ours": A·r·n(n−1)/2, "reference": A·r·n²}`` (RBS pyramid vs Cayley map)."""
        n = block_qubits(out_features, blocks, orders)
        per = num_adapters * blocks
        return {"ours": per * n * (n - 1) // 2, "reference": per * n * n}

    @classmethod
    def count(cls, in_features: int, out_features: int, **options: object) -> int:
        """Trainable parameters, from sizes only."""
        _check_combine(
            options.get("num_adapters", 1),  # type: ignore[arg-type]
            options.get("combine", "product"),  # type: ignore[arg-type]
        )
        return cls.parameter_counts(in_features, out_features, **options)["ours"]  # type: ignore[arg-type]

    @property
    def circuits(self) -> dict[str, Circuit]:
        """``{"theta": rbs_pyramid(n)}``; ``theta`` holds one angle vector per (adapter, block)."""
        return {"theta": self.circuit}

    def block_matrices(self) -> list[Tensor]:
        """``A^(k)`` for each order: shape ``(num_adapters, blocks, C(n,k), C(n,k))``.

        The pyramid is nearest-neighbour, so the weight-1 block is simulated once and every
        order up to the highest comes from one pass of :func:`backends.exact.compounds`
        (Cauchy–Binet; see Note [compound blocks])."""
        a = exact.hamming_block(self.circuit, self.theta, 1)
        every = exact.compounds(a, max(self.orders))
        return [every[k - 1] for k in self.orders]

    @property
    def orthogonal(self) -> bool:
        """Whether M is orthogonal: always, except for a ``"sum"`` of several adapters."""
        return self.combine == "product" or self.num_adapters == 1

    def order_blocks(self, dtype: torch.dtype, *, inverse: bool = False) -> list[Tensor]:
        """Per order, the combined ``A^(k)`` (or its inverse) of every block:
        ``(blocks, C(n,k), C(n,k))``. M is block diagonal per order, so combining the adapters'
        M (product or mean) is done one order at a time."""
        out = []
        for m in self.block_matrices():
            m = flush_subnormal(m.to(dtype))  # (A, r, C, C)
            if self.combine == "sum":
                mean = m.mean(0)
                out.append(torch.linalg.inv(mean) if inverse else mean)
                continue
            if inverse:
                m = m.transpose(-1, -2).flip(0)
            prod = m[0]
            for a in range(1, self.num_adapters):
                prod = prod @ m[a]
            out.append(prod)
        return out

    def block_diagonal(self, dtype: torch.dtype, *, inverse: bool = False) -> Tensor:
        """``M_b`` (or ``M_b⁻¹``) of every block as dense tiles: ``(blocks, W, W)``,
        ``W = Σ_k C(n,k)`` (for inspection; :meth:`mix` never forms it)."""
        per_order = self.order_blocks(dtype, inverse=inverse)
        return torch.stack([torch.block_diag(*t) for t in zip(*per_order, strict=True)])

    def mix(self, x: Tensor, *, inverse: bool = False) -> Tensor:
        """``x · M`` (or ``x · M⁻¹``) on the last axis: one batched product per order over the r
        blocks, the identity on the remaining features (see :func:`.kernels.block_mix.block_mix`;
        an orthogonal M keeps only its output for backward)."""
        blocks = self.order_blocks(x.dtype, inverse=inverse)
        return block_mix(x, blocks, orthogonal=self.orthogonal)

    def forward(self, x: Tensor, base_out: Tensor) -> Tensor:
        """``base_out · M``."""
        return self.mix(base_out)

    def merge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(Mᵀ W, Mᵀ b)``: the rows of W mix exactly as the outputs do."""
        new_b = None if bias is None else self.mix(bias)
        return self.mix(weight.T).T, new_b

    def unmerge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(M⁻ᵀ W, M⁻ᵀ b)``."""
        new_b = None if bias is None else self.mix(bias, inverse=True)
        return self.mix(weight.T, inverse=True).T, new_b
