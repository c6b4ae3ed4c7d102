"""QML adapters (Raj & Coyle): additive ``h' = W x + Σ_{i<R} α_i ΔW_i x`` with RBS circuits.

Two variants:

- ``"hw"`` — ``ΔW_i`` is the whole unitary of an RBS circuit on ``q = ⌈log2 max(in, out)⌉`` qubits:
  block diagonal over all Hamming weights, ``⊕_{k=0}^{q} A_i^(k)``, with only ``O(q²)`` angles (an
  exponential compression). It is applied to activations one Hamming weight at a time, each
  group of input features multiplied by ``Σ_i α_i A_i^(k)`` (see Note [weight blocks]); circuits
  for which the compound identity fails are run on the zero-padded input as a state through
  :func:`backends.exact.apply`. The ``2^q × 2^q`` matrix is never formed in the forward pass.
- ``"single_order"`` — ``ΔW_i = A_i^(k)``, one order k, with n the smallest such that
  ``C(n, k) >= max(in, out)`` (padding/truncation as above); the block comes from
  :func:`backends.exact.hamming_block` and is ``C(n,k) × C(n,k)``, about the size of the layer,
  because that matrix *is* the variant's ``ΔW``. (``"compound"``, its former name, is accepted
  with a ``DeprecationWarning``.)

``α`` starts at zero, so the adapted layer equals the frozen one at init; circuit angles start
uniform in ``[−π, π)`` so the R sub-adapters differ. ``merge`` forms the dense ``ΔW``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from math import comb
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor, nn

from backends import exact
from backends.compounds import complementary_compound
from backends.prefix_compounds import prefix_compounds
from backends.subspace import compile_constant
from circuits import Circuit, build
from circuits.subspace import weight_indices
from qadapters.families.base import (
    Adapter,
    autocast_dtype,
    build_dtype,
    layer_text,
    no_autocast,
)
from qadapters.families.cost import (
    Cost,
    Work,
    complements_work,
    compounds_work,
    flush_work,
    prefix_compounds_work,
    to_cost,
    weight1_block_work,
)
from qadapters.families.kernels.permuted_blocks import (
    inverse_permutation,
    merged_block_linear,
    permuted_block_linear,
    weight_side_pays,
)
from qadapters.families.options import FamilyOptions, option

Variant = Literal["hw", "single_order"]
Layout = Literal["pyramid", "brick", "butterfly"]
#: layout option -> name of its builder in :data:`circuits.BUILDERS` (butterflies use FBS gates,
#: for which the compound identity holds on any wires)
LAYOUT_BUILDERS: dict[str, str] = {
    "pyramid": "rbs_pyramid",
    "brick": "rbs_brick",
    "butterfly": "fbs_butterfly",
}


@dataclass(frozen=True)
class HammingOptions(FamilyOptions):
    """Options of :class:`HammingAdapter` (checks: :mod:`qadapters.families.options`)."""

    family = "hamming"

    num_adapters: int = option(2, "R, sub-adapters in the linear combination (paper: 2)", low=1)
    variant: Variant = option(  # noqa: RUF009 (option() returns a dataclasses.field)
        "hw",
        "hw: every Hamming weight of the circuit; single_order: ΔW = A^(k) for one order k",
        deprecated={"compound": "single_order"},
    )
    layout: Layout = option(  # noqa: RUF009
        "pyramid", "RBS circuit of each sub-adapter: pyramid, brick, butterfly"
    )
    depth: int = option(4, "layers of the brick layout", low=1)
    order: int = option(2, "Hamming weight k of the single_order variant", low=1)

    def inert(self) -> dict[str, str]:
        """``order`` unless ``variant="single_order"``; ``depth`` unless ``layout="brick"``."""
        out = {}
        if self.variant == "hw":
            out["order"] = (
                "variant='hw' acts on every Hamming weight; order is read by "
                "variant='single_order' only"
            )
        if self.layout != "brick":
            out["depth"] = (
                f"layout={self.layout!r} has a fixed depth; depth is read by 'brick' only"
            )
        return out


def flush_subnormal(t: Tensor) -> Tensor:
    """Zero the subnormal entries of ``t`` (far corners of compounds of near-identity blocks are
    products of many small sines; float32 matmuls slow down ~50× on subnormal operands).

    The gradient passes through unchanged: ``masked_fill`` would zero it at the flushed entries,
    and at θ = 0 (or α = 0) those are all the off-diagonal ones, so training could never start.
    The subnormal part is found without autograd, so nothing of ``t`` is kept for backward."""
    with torch.no_grad():
        subnormal = torch.where(t.abs() < torch.finfo(t.dtype).tiny, t, 0.0)
    return t - subnormal


def mixture_of(alpha: Tensor, blocks: Tensor) -> Tensor:
    """``Σ_i α_i B_i`` for ``alpha`` ``(..., R)`` and ``blocks`` ``(..., R, rows, cols)``, as a
    broadcast product and a sum: autograd keeps ``blocks`` as they are (often a view of what
    the build keeps anyway) instead of the contiguous copy a batched product would make."""
    return (alpha[..., None, None].expand_as(blocks) * blocks).sum(-3)


# Note [weight blocks]
# ---------------------
# For a fermionic circuit (nearest-neighbour RBS or FBS gates) the weight-k block of the 2^q
# unitary is the k-th compound A^(k) of its weight-1 block A (Cauchy–Binet), so ΔW_i acts on
# the input as independent blocks: gather the inputs by Hamming weight of their basis index,
# multiply each group by Σ_i α_i A_i^(k) (only the rows < out and columns < in that the padding
# and truncation keep), scatter back. That is Σ_k C(q,k)² ≤ 4^q / √(πq/2) multiply-adds per
# token instead of a sweep of the 2^q state per gate, and only the layer's own input is kept for
# backward (gather, block products and scatter are one autograd Function,
# :mod:`qadapters.families.kernels.permuted_blocks`, Note [permuted block linear]). Since A is
# a rotation, every order comes from :func:`backends.exact.rotation_compounds`, which computes
# minors up to q/2 only (Note [complementary minors] in backends/subspace.py).


@dataclass(frozen=True)
class _Tables:
    perm_in: Tensor  # input features ordered by the Hamming weight of their index
    sizes_in: list[int]  # inputs of each weight
    local: list[tuple[Tensor, Tensor]]  # per weight: (kept rows, kept columns) of A^(k)
    inv_out: Tensor  # output position of each feature in the concatenated block outputs
    inverses: tuple[Tensor, Tensor]  # inverse permutations of perm_in and inv_out


@lru_cache(maxsize=64)
@compile_constant  # Note [constant plans] in backends/subspace.py
def _weight_tables(n: int, in_features: int, out_features: int) -> _Tables:
    perm_in, perm_out, sizes, local = [], [], [], []
    for k in range(n + 1):
        idx = weight_indices(n, k)
        cols, rows = np.flatnonzero(idx < in_features), np.flatnonzero(idx < out_features)
        perm_in.append(idx[cols])
        perm_out.append(idx[rows])
        sizes.append(len(cols))
        local.append((torch.from_numpy(rows), torch.from_numpy(cols)))
    order = np.concatenate(perm_out)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    p_in = torch.from_numpy(np.concatenate(perm_in))
    inverses = (inverse_permutation(p_in), torch.from_numpy(order))
    return _Tables(p_in, sizes, local, torch.from_numpy(inv), inverses)


def compounds(a: Tensor) -> list[Tensor]:
    """Deprecated: use :func:`backends.exact.rotation_compounds`.

    Warns:
        DeprecationWarning: always.
    """
    warnings.warn(
        "qadapters.families.hamming.compounds is deprecated; use "
        "backends.exact.rotation_compounds",
        DeprecationWarning,
        stacklevel=2,
    )
    return exact.rotation_compounds(a)


def register_size(in_features: int, out_features: int, variant: str, order: int) -> int:
    """Qubits n of the circuit: ``⌈log2 max⌉`` (``"hw"``) or the least n with
    ``C(n, order) >= max`` (``"single_order"``); at least 2 (and at least ``order``)."""
    d = max(in_features, out_features)
    if variant == "hw":
        return max(2, (d - 1).bit_length())
    n = max(2, order)
    while comb(n, order) < d:
        n += 1
    return n


def build_circuit(n: int, layout: str, depth: int) -> Circuit:
    """The sub-adapter circuit: RBS pyramid, brick of ``depth`` layers, or butterfly (FBS),
    built by :func:`circuits.build` from :data:`LAYOUT_BUILDERS`."""
    return build(LAYOUT_BUILDERS[layout], n, depth=depth)


@lru_cache(maxsize=256)
@compile_constant  # Note [constant plans] in backends/subspace.py
def hw_build_path(n: int, in_features: int, out_features: int, num_adapters: int) -> str:
    """How the ``"hw"`` variant builds its kept blocks: ``"prefix"`` (only the kept entries,
    :func:`backends.prefix_compounds.prefix_compounds`, Note [prefix closure]) or ``"rotation"``
    (every order in full by :func:`backends.exact.rotation_compounds`, then cut to the kept
    rows and columns), whichever moves fewer floats by :mod:`.cost`'s count (the full orders win
    when the layer fills most of the ``2^n`` states: their upper half is only gathered)."""
    sizes = (n, in_features, out_features, num_adapters)
    prefix, rotation = (_hw_build_work(*sizes, path).floats for path in ("prefix", "rotation"))
    return "prefix" if prefix < rotation else "rotation"


def _hw_build_work(n: int, in_features: int, out_features: int, r: int, path: str) -> Work:
    """The ``"hw"`` build after the weight-1 blocks, along ``path``: the kept entries of every
    order and their mixture (``"prefix"``), or the orders up to n/2 in full, their mixture, the
    upper orders as complements of the mixed ones, and the cut to kept entries (``"rotation"``;
    see :meth:`HammingAdapter._mixed`)."""
    tables = _weight_tables(n, in_features, out_features)
    if path == "prefix":
        work = prefix_compounds_work(n, out_features, in_features, r)
        for rows, cols in tables.local:
            kept = len(rows) * len(cols)
            work = work + mixture_work(r, kept) + flush_work(kept)
        return work
    work = compounds_work(n, n // 2, r)
    for k in range(n // 2 + 1):
        work = work + mixture_work(r, comb(n, k) ** 2) + flush_work(comb(n, k) ** 2)
    cut = sum(
        len(rows) * (comb(n, k) + len(cols))
        for k, (rows, cols) in enumerate(tables.local)
        if not _whole_block(n, k, rows, cols)  # a whole block is kept as it is
    )
    return work + complements_work(n, 1) + Work(0, cut)


def _whole_block(n: int, k: int, rows: Tensor, cols: Tensor) -> bool:
    """Whether the layer keeps every row and column of the weight-k block."""
    return len(rows) == len(cols) == comb(n, k)


@lru_cache(maxsize=256)
@compile_constant  # Note [constant plans] in backends/subspace.py
def _kept_macs(n: int, in_features: int, out_features: int) -> int:
    """Multiply-adds per token of the ``"hw"`` blocks: ``Σ_k rows_k·cols_k``."""
    tables = _weight_tables(n, in_features, out_features)
    return sum(len(rows) * len(cols) for rows, cols in tables.local)


def mixture_work(num_adapters: int, entries: int) -> Work:
    """:func:`mixture_of` over blocks of ``entries`` entries: ``R·entries`` multiply-adds (none
    for a single product, a scalar scaling: Note [what a cost counts]), and the scaled blocks
    and their sum, ``(R + 1)·entries`` floats."""
    products = num_adapters * entries
    return Work(products if products > 1 else 0, (num_adapters + 1) * entries)


class HammingAdapter(Adapter):
    """QML adapter: ``base_out + Σ_i α_i ΔW_i x`` (see the module docstring).

    Trainable parameters: ``R · (1 + P)`` with P the circuit's angles: ``n(n−1)/2`` (pyramid),
    ``Σ_{d<depth} ⌈(n − 1 − d mod 2)/2⌉`` (brick) or ``(n/2)·log2 n`` (butterfly).

    Args:
        in_features: input width.
        out_features: output width.
        **options: :class:`HammingOptions` — ``num_adapters`` (R, sub-adapters in the linear
            combination; paper: 2), ``variant`` (``"hw"``: all Hamming weights;
            ``"single_order"``: one order), ``layout`` (``"pyramid"``, ``"brick"`` or
            ``"butterfly"``), ``depth`` (layers of the brick layout), ``order`` (Hamming weight
            k of the ``"single_order"`` variant).

    Raises:
        ValueError: an invalid option (the message lists the valid values), or a butterfly on
            a register that is not a power of two (the message names the layer).

    Warns:
        UserWarning: ``order`` or ``depth`` set to a non-default value that the variant or
            layout ignores.
        DeprecationWarning: ``variant="compound"`` (now ``"single_order"``).

    Example:
        >>> a = HammingAdapter(784, 64, num_adapters=2)
        >>> a.n_qubits, a.num_trainable()
        (10, 92)
    """

    options_class = HammingOptions
    default_lr = 0.1
    shares_builds = True
    angle_names = ("theta",)

    def __init__(self, in_features: int, out_features: int, **options: Any) -> None:
        super().__init__(in_features, out_features, **options)
        opts = cast(HammingOptions, self.options)
        num_adapters, variant, order = opts.num_adapters, opts.variant, opts.order
        self.num_adapters, self.variant, self.layout = num_adapters, variant, opts.layout
        self.depth, self.order = opts.depth, order
        self.n_qubits = register_size(in_features, out_features, variant, order)
        self.circuit = build_circuit(self.n_qubits, opts.layout, opts.depth)
        dim = 2**self.n_qubits if variant == "hw" else comb(self.n_qubits, order)
        self.dim = dim
        init = (torch.rand(num_adapters, self.circuit.num_params) * 2 - 1) * math.pi
        self.theta = nn.Parameter(init)
        self.alpha = nn.Parameter(torch.zeros(num_adapters))

    @classmethod
    def check_layer(cls, options: Any, in_features: int, out_features: int) -> list[str]:
        """A butterfly needs a power-of-two register."""
        opts = cast(HammingOptions, options)
        n = register_size(in_features, out_features, opts.variant, opts.order)
        if opts.layout == "butterfly" and n & (n - 1):
            raise ValueError(
                f"hamming option 'layout': 'butterfly' needs a power-of-two number of qubits; "
                f"found n={n} for {layer_text(in_features, out_features)} (variant "
                f"{opts.variant!r}); use layout 'pyramid' or 'brick'"
            )
        return []

    @classmethod
    def count(cls, in_features: int, out_features: int, **options: Any) -> int:
        """Trainable parameters, from sizes only."""
        opts = cast(HammingOptions, cls.layer_options(in_features, out_features, options)[0])
        n = register_size(in_features, out_features, opts.variant, opts.order)
        return opts.num_adapters * (1 + build_circuit(n, opts.layout, opts.depth).num_params)

    @classmethod
    def cost_of(cls, options: Any, in_features: int, out_features: int) -> Cost:
        """The cost of :meth:`delta` (all three layouts are fermionic, so ``"hw"`` runs
        blockwise; Note [weight blocks]).

        - ``"hw"``: per token, one product per weight k with the kept rows and columns of
          ``A^(k)`` (``rows_k·cols_k``, Σ ≤ in·out); the kernel keeps only the layer input.
          The build, for R angle vectors: the weight-1 blocks
          (:func:`.cost.weight1_block_work`), then the kept entries of every order along
          :func:`hw_build_path` (:func:`_hw_build_work`): only those
          (:func:`.cost.prefix_compounds_work`) and their mixture ``Σ_i α_i A_i^(k)`` and
          subnormal flush; or the orders up to n/2 in full (the minors dominate,
          ``Σ_{k ≤ n/2} (4k−1)·R·C(n,k)²`` floats), their mixture and flush, the upper orders
          as complements of the mixed ones (:func:`.cost.complements_work`), and the cut to the
          kept rows and columns.
        - ``"single_order"``: per token ``x_pad ΔWᵀ``, ``C(n,k)²`` multiply-adds, keeping the
          padded input (``C(n,k)`` floats per token); the build is the weight-1 blocks, their
          compounds up to k, the mixture and its flush.
        """
        opts = cast(HammingOptions, options)
        n = register_size(in_features, out_features, opts.variant, opts.order)
        circuit = build_circuit(n, opts.layout, opts.depth)
        r = opts.num_adapters
        build = weight1_block_work(circuit, r)
        if opts.variant == "single_order":
            c = comb(n, opts.order)
            build = build + compounds_work(n, opts.order, r)
            build = build + mixture_work(r, c * c) + flush_work(c * c)
            return to_cost(c * c, c, build)
        path = hw_build_path(n, in_features, out_features, r)
        build = build + _hw_build_work(n, in_features, out_features, r, path)
        return to_cost(_kept_macs(n, in_features, out_features), 0, build)


    @property
    def circuits(self) -> dict[str, Circuit]:
        """``{"theta": circuit}``; ``theta`` holds one angle vector per sub-adapter."""
        return {"theta": self.circuit}

    def _pad(self, x: Tensor) -> Tensor:
        return torch.nn.functional.pad(x, (0, self.dim - x.shape[-1]))

    def delta(self, x: Tensor) -> Tensor:
        """``Σ_i α_i ΔW_i x`` for ``x`` of shape ``(..., in)``; never forms ``2^q × 2^q``."""
        dtype = build_dtype(self.theta, x)  # Note [mixed precision] in .base
        if self.variant == "single_order":
            (w,) = self.built(dtype)
            return (self._pad(x) @ w.T.to(x.dtype))[..., : self.out_features]
        if not exact.is_fermionic(self.circuit):  # the compound identity does not hold
            theta, alpha = self.theta.to(dtype), self.alpha.to(dtype)
            xp, out = self._pad(x).to(dtype), None
            for i in range(self.num_adapters):  # a state simulation: autocast would round it
                with no_autocast(x):
                    term = exact.apply(self.circuit, theta[i], xp) * alpha[i]
                out = term if out is None else out + term
            assert out is not None
            return out[..., : self.out_features].to(x.dtype)
        return self._blockwise(x, dtype)

    def _blockwise(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        """``Σ_i α_i ΔW_i x`` one Hamming weight at a time (see Note [weight blocks])."""
        tables = _weight_tables(self.n_qubits, self.in_features, self.out_features)
        mixed = self.built(dtype)
        dtype = autocast_dtype(x)  # one dtype into the kernel, whose backward has no autocast
        x, mixed = x.to(dtype), [m.to(dtype) for m in mixed]
        dev = x.device
        return permuted_block_linear(
            x,
            tables.perm_in.to(dev),
            tables.inv_out.to(dev),
            mixed,
            tuple(t.to(dev) for t in tables.inverses),  # type: ignore[arg-type]
        )

    def weight_side(self, x: Tensor, weight: Tensor) -> bool:
        """Whether :meth:`forward_with_weight` should serve this call: the ``"hw"`` variant on
        a fermionic circuit, a frozen float weight of ``x``'s dtype, no autocast, and enough
        tokens that the merged weight pays (:func:`.kernels.permuted_blocks.weight_side_pays`)."""
        if self.variant != "hw" or not exact.is_fermionic(self.circuit):
            return False
        if weight.requires_grad or weight.dtype != x.dtype or weight.dtype != self.theta.dtype:
            return False
        if torch.is_autocast_enabled(x.device.type):
            return False
        tokens = x.numel() // max(x.shape[-1], 1)
        macs = _kept_macs(self.n_qubits, self.in_features, self.out_features)
        return weight_side_pays(tokens, macs, self.in_features, self.out_features)

    def forward_with_weight(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """``x Wᵀ + b + Σ_i α_i ΔW_i x`` for the frozen layer ``(weight, bias)``, through the
        merged weight ``W + ΔW`` (Note [weight-side block linear]); the layer calls it when
        :meth:`weight_side` says so."""
        tables = _weight_tables(self.n_qubits, self.in_features, self.out_features)
        mixed = [m.to(x.dtype) for m in self.built(self.theta.dtype)]
        dev = x.device
        perm_out = tables.inverses[1].to(dev)
        return merged_block_linear(x, weight, bias, tables.perm_in.to(dev), perm_out, mixed)

    def build_signature(self) -> tuple[object, ...] | None:
        """The family, options and layer size, for the variants that build matrices
        (``"single_order"``, and ``"hw"`` on a fermionic circuit)."""
        if not self._shareable():
            return None
        if self.variant == "hw" and not exact.is_fermionic(self.circuit):
            return None
        return type(self), self.options, self.in_features, self.out_features

    def build_inputs(self) -> tuple[Tensor, ...]:
        """``(theta, alpha)``."""
        return self.theta, self.alpha

    def build_from(self, inputs: tuple[Tensor, ...], dtype: torch.dtype) -> list[Tensor]:
        """For stacked ``(theta, alpha)`` ``(G, R, P)``, ``(G, R)``: ``Σ_i α_i A_i^(k)`` per
        weight k at the kept rows and columns (``"hw"``, Note [weight blocks]), or the one
        block ``Σ_i α_i A_i^(order)`` (``"single_order"``), each ``(G, rows, cols)``."""
        theta, alpha = (t.to(dtype) for t in inputs)
        with no_autocast(theta):
            if self.variant == "single_order":
                m = exact.hamming_block(self.circuit, theta, self.order)  # (G, R, C, C)
                return [flush_subnormal(mixture_of(alpha, m))]
            a = exact.hamming_block(self.circuit, theta, 1)  # (G, R, n, n), each in SO(n)
            return self._mixed(a, alpha)

    def _mixed(self, a: Tensor, alpha: Tensor) -> list[Tensor]:
        """``Σ_i α_i A_i^(k)`` of the weight-1 blocks ``a`` at the kept rows and columns of
        every order, along :func:`hw_build_path`. On the full path the orders above n/2 follow
        from the mixed lower ones: the complement is linear (Note [complementary minors] in
        :mod:`backends.compounds`), so it is applied once to the mixture, not to each of the R
        sub-adapters' blocks."""
        n, r = self.n_qubits, self.num_adapters
        if hw_build_path(n, self.in_features, self.out_features, r) == "prefix":
            kept = prefix_compounds(a, self.out_features, self.in_features)
            return [flush_subnormal(mixture_of(alpha, b)) for b in kept]
        low = [flush_subnormal(mixture_of(alpha, b)) for b in prefix_compounds(a, top=n // 2)]
        every = low + [complementary_compound(low[n - k], n, k) for k in range(n // 2 + 1, n + 1)]
        tables = _weight_tables(n, self.in_features, self.out_features)
        kept = []
        for k, block in enumerate(every):
            rows, cols = tables.local[k]
            if _whole_block(n, k, rows, cols):
                kept.append(block)  # the layer fills the register: every entry is kept
                continue
            rows, cols = rows.to(a.device), cols.to(a.device)
            kept.append(block.index_select(-2, rows).index_select(-1, cols))
        return kept

    def delta_weight(self) -> Tensor:
        """The dense ``ΔW`` (``out × in``), for merging."""
        theta, alpha = self.theta, self.alpha
        if self.variant == "single_order":
            m = exact.hamming_block(self.circuit, theta, self.order)
        else:
            m = exact.columns(self.circuit, theta, self.in_features)  # (R, 2^q, in)
        w = torch.einsum("r,rij->ij", alpha.to(m.dtype), m)
        return w[: self.out_features, : self.in_features]

    def forward(self, x: Tensor, base_out: Tensor) -> Tensor:
        """``base_out + Σ_i α_i ΔW_i x``."""
        return base_out + self.delta(x)

    def merge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(W + ΔW, b)``."""
        return weight + self.delta_weight().to(weight.dtype), bias

    def unmerge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(W − ΔW, b)``."""
        return weight - self.delta_weight().to(weight.dtype), bias
