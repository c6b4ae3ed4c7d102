"""QuIC: quantum-inspired compound adapters (Raj & Coyle, arXiv 2502.06916), output-side.

``y = base_out · M`` with ``M = M_1 ⊕ … ⊕ M_r ⊕ I``: r blocks tiled along the output features and
identity on the remainder. Each block is ``M_b = ⊕_{k ∈ orders} A_b^(k)``, the Hamming-weight-k
blocks of one RBS pyramid on n wires (``A_b`` its weight-1 block, an SO(n) matrix); n is the
largest with ``Σ_k C(n,k) <= out_features / r`` (768 features, r = 3, orders (1, 2) → n = 22).
By default (``blocks=None``) r follows the width: as many blocks of 5 wires as fit (Note [block
size] in :mod:`.compound_tiling`).

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

Note [two compute paths]
------------------------
The order-2 block never needs forming: ``x · A^(2)`` is the strict upper triangle of ``Aᵀ X A``,
X the antisymmetric matrix of the pair-indexed ``x`` (Note [compound as a two-form] in
:mod:`backends.two_forms`): ``2n³`` multiply-adds per token and block instead of
``C(n,2)² ≈ n⁴/4``, ``5n³`` instead of ``3 C(n,2)²`` over forward and backward, and no
``A^(2)`` to build. :meth:`CompoundAdapter.mix` takes one of two paths:

- ``"dense"``: every order's ``A^(k)`` is built (:func:`backends.exact.compounds`), the
  adapters combined per order, and each block applied as a dense product;
- ``"two-form"``: the adapters' weight-1 blocks are composed first, ``R = A¹ A² ⋯`` (compounds
  are multiplicative, ``(A¹ A²)^(k) = A¹^(k) A²^(k)``, so ``R^(k)`` is the product's block for
  every k), order 1 is R itself, order 2 is applied as a two-form of R, and orders ``>= 3`` are
  ``compounds(R)`` applied densely. The inverse is ``Rᵀ``.

A ``"sum"`` of several adapters is not a compound of anything, so it always takes the dense
path. Otherwise :func:`order2_path` (the one place that decides; :meth:`CompoundAdapter.cost_of`
and ``qadapters count`` read it) compares the per-token work of a training step: ``3 C(n,2)²``
multiply-adds dense against ``5n³`` plus the two-form path's data movement,
``TWO_FORM_MOVES · n²`` floats at ``MOVE_MACS`` multiply-adds each (its scatters and gathers
are memory-bound; measured on a 2-core CPU, a training step of the adapter breaks even
between n = 25 and n = 30, and the rate puts the switch at n = 28). The build
favours the two-form path too (no ``A^(2)``, and one ``n³`` product per extra adapter instead
of ``C(n,k)³``), so it is left out of the comparison.

Several adapters (``num_adapters``): ``"product"`` chains them, ``M = M^1 M^2 ⋯`` (still
orthogonal, the natural composition of circuits and what keeps the orthogonality the paper finds
essential); ``"sum"`` averages them, ``M = (1/A) Σ_a M^a`` (identity at init, not orthogonal in
general; unmerge then solves with each block).

Magnitude (``magnitude=True``): a rotation keeps every output's norm, so it cannot strengthen or
silence a feature, which a new task often needs. The option adds one trainable gain per output,
``y = (base_out · M) ⊙ (1 + g)`` with ``g = 0`` at init (as DoRA adds a magnitude to a direction);
it costs ``out_features`` parameters and merges into the rows of ``Mᵀ W``.

Parameter counts: an RBS pyramid needs ``n(n−1)/2`` angles per block; the reference code stores a
full ``n × n`` matrix per block (Cayley map), ``n²``. :meth:`CompoundAdapter.parameter_counts`
reports both (DeBERTa-v3-base query+value, r = 3, orders (1, 2): 16,632 vs 34,848 ≈ 0.03M).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from backends import exact, subspace
from circuits import Circuit, rbs_pyramid
from qadapters.families.base import (
    Adapter,
    autocast_dtype,
    build_dtype,
    layer_text,
    no_autocast,
)
from qadapters.families.compound_options import Combine, CompoundOptions
from qadapters.families.cost import (
    Cost,
    Work,
    compounds_work,
    flush_work,
    to_cost,
    weight1_block_work,
    weight1_passes,
)
from qadapters.families.hamming import flush_subnormal
from qadapters.families.kernels import rotated_weight
from qadapters.families.kernels.block_mix import Form, block_mix

#: how ``x · M`` is computed (Note [two compute paths]): every order's block formed and applied
#: densely, or order 2 applied as a two-form of the composed rotation
Path = Literal["dense", "two-form"]
PATHS: tuple[Path, ...] = ("dense", "two-form")
#: floats the two-form path writes or reads per token and tile, in units of n², over a training
#: step's forward and backward (three n × n two-forms, each zero-filled and scattered, and the
#: pair vectors transposed in and gathered out)
TWO_FORM_MOVES = 8
#: multiply-adds one such float costs on a CPU (an exchange rate measured by
#: ``benchmarks/compound_apply.py``: the two-form path's scatters and gathers are memory-bound,
#: the dense path's products are not)
MOVE_MACS = 48


def order2_path(n: int, orders: Sequence[int], num_adapters: int, combine: str) -> Path:
    """The compute path of a compound adapter with blocks of n wires (Note [two compute paths]).

    Args:
        n: wires per block.
        orders: the orders of each block.
        num_adapters: adapters combined.
        combine: ``"product"`` or ``"sum"``.

    Returns:
        ``"two-form"`` when order 2 is present, M is a compound of one rotation per block (one
        adapter, or a product) and ``5n³ + MOVE_MACS · TWO_FORM_MOVES · n²`` is below the dense
        ``3 C(n,2)²``; else ``"dense"``.

    Example:
        >>> order2_path(15, (1, 2), 1, "product"), order2_path(38, (1, 2), 1, "product")
        ('dense', 'two-form')
    """
    if 2 not in orders or (num_adapters > 1 and combine == "sum"):
        return "dense"
    two_form = 5 * n**3 + MOVE_MACS * TWO_FORM_MOVES * n * n
    return "two-form" if two_form < 3 * comb(n, 2) ** 2 else "dense"


class CompoundAdapter(Adapter):
    """QuIC compound adapter: ``y = base_out · M`` (see the module docstring).

    Trainable parameters: ``num_adapters · blocks · n(n−1)/2`` (RBS pyramids), plus
    ``out_features`` gains with ``magnitude=True``.

    Args:
        in_features: input width.
        out_features: output width (the side M acts on).
        **options: :class:`CompoundOptions` — ``blocks`` (r, blocks tiled along the output
            features), ``orders`` (Hamming weights k whose compounds make each block, e.g.
            ``(1, 2)``), ``num_adapters`` (how many M's to combine), ``combine`` (``"product"``
            or ``"sum"`` (mean) of the adapters' M), ``magnitude`` (a trainable gain per
            output after M).

    Raises:
        ValueError: invalid options, out_features too small for the blocks, or every order
            ``k >= n`` (then each block is ``A^(n) = det A = 1`` and the adapter does nothing).

    Warns:
        UserWarning: some (not all) orders are ``>= n`` on this layer: they add constant blocks.

    Example:
        >>> a = CompoundAdapter(768, 768, blocks=3, orders=(1, 2))
        >>> a.n_qubits, a.parameter_counts(768, 768, blocks=3)
        (22, {'ours': 693, 'reference': 1452})
        >>> CompoundAdapter(768, 768).blocks  # by default: blocks of 5 wires (Note [block size])
        51
    """

    options_class = CompoundOptions
    shares_builds = True
    default_lr = 0.1
    angle_names = ("theta",)

    def __init__(self, in_features: int, out_features: int, **options: Any) -> None:
        super().__init__(in_features, out_features, **options)
        opts = cast(CompoundOptions, self.options)
        self.orders = opts.orders
        self.blocks = blocks = opts.block_count
        self.num_adapters = num_adapters = opts.num_adapters
        self.combine: Combine = opts.combine
        self.n_qubits = opts.block_wires(out_features)
        self.circuit = rbs_pyramid(self.n_qubits)
        self.sizes = [comb(self.n_qubits, k) for k in self.orders]
        shape = (num_adapters, blocks, self.circuit.num_params)
        self.theta = nn.Parameter(torch.zeros(shape))
        self.magnitude = opts.magnitude
        if self.magnitude:
            self.g = nn.Parameter(torch.zeros(out_features))
        #: ``"dense"`` or ``"two-form"`` (Note [two compute paths]); chosen by
        #: :func:`order2_path`, and may be set to either where both apply (tests, benchmarks)
        self.path: Path = order2_path(self.n_qubits, self.orders, num_adapters, self.combine)
        #: what training on the frozen weight keeps: ``"input"`` (as LoRA: its peak memory) or
        #: ``"output"`` (up to 12% faster, 6–9% more memory); Note [rotated weight]
        self.keep: rotated_weight.Keep = "input"

    @classmethod
    def sized_options(cls, options: Any, in_features: int, out_features: int) -> Any:
        """``blocks=None`` becomes :func:`fitting_blocks` of the output width
        (:meth:`CompoundOptions.sized`)."""
        return cast(CompoundOptions, options).sized(out_features)

    @classmethod
    def check_layer(cls, options: Any, in_features: int, out_features: int) -> list[str]:
        """The blocks must fit the output width, and some order must be below n.

        For a rotation A on n wires, ``A^(n) = det A = 1``: an order ``k >= n`` adds a constant
        1×1 block (and ``k > n`` none at all). Every order inert means trainable angles that do
        not move the output (up to rounding): refused. Some inert: a warning."""
        opts = cast(CompoundOptions, options)
        layer = layer_text(in_features, out_features)
        try:
            n = opts.block_wires(out_features)
        except ValueError as err:
            raise ValueError(f"compound options 'blocks', 'orders' on {layer}: {err}") from None
        inert = [k for k in opts.orders if k >= n]
        if len(inert) == len(opts.orders):
            raise ValueError(
                f"compound option 'orders': {list(opts.orders)} on {layer} gives blocks of "
                f"n = {n} wires, where A^({n}) = det A = 1 is constant: the adapter would not "
                f"change the output; expected an order below {n} (lower orders or fewer blocks)"
            )
        if n > subspace.MAX_WIRES:
            raise ValueError(
                f"compound options 'blocks', 'orders' on {layer}: blocks of n = {n} wires; "
                f"expected at most {subspace.MAX_WIRES} (use more blocks, or add order 2)"
            )
        if inert:
            return [
                f"compound option 'orders': order(s) {inert} on {layer} (blocks of n = {n} "
                f"wires) only add constant blocks A^({n}) = det A = 1"
            ]
        return []

    @classmethod
    def parameter_counts(
        cls, in_features: int, out_features: int, **options: Any
    ) -> dict[str, int]:
        """``{"ours": A·r·n(n−1)/2, "reference": A·r·n²}`` (RBS pyramid vs Cayley map).

        Raises:
            ValueError: as the constructor.
        """
        opts = cast(CompoundOptions, cls.layer_options(in_features, out_features, options)[0])
        n = opts.block_wires(out_features)
        per = opts.num_adapters * opts.block_count
        gains = out_features if opts.magnitude else 0
        return {"ours": per * n * (n - 1) // 2 + gains, "reference": per * n * n + gains}

    @classmethod
    def count(cls, in_features: int, out_features: int, **options: Any) -> int:
        """Trainable parameters, from sizes only."""
        return cls.parameter_counts(in_features, out_features, **options)["ours"]

    @classmethod
    def cost_of(cls, options: Any, in_features: int, out_features: int) -> Cost:
        """``x · M`` is one ``C(n,k) × C(n,k)`` product per order and block: ``r·Σ_k C(n,k)²``
        multiply-adds per token; the backward keeps the output, ``out`` floats per token (Note
        [orthogonal block mix]; a ``"sum"`` keeps the input ``base_out`` instead, as many). On
        the frozen weight it keeps only the layer input (Note [rotated weight]), which this
        per-token figure, counted on the activations, leaves out.

        The build, for ``A·r`` angle vectors: the weight-1 blocks of the pyramid
        (:func:`.cost.weight1_block_work`), their compounds up to the highest order
        (:func:`.cost.compounds_work`), the subnormal flush of each order, then ``A − 1``
        products ``C(n,k)³`` per order and block (``"product"``) or one mean (``"sum"``)."""
        opts = cast(CompoundOptions, options)
        n, r = opts.block_wires(out_features), opts.block_count
        if order2_path(n, opts.orders, opts.num_adapters, opts.combine) == "two-form":
            return cls._two_form_cost(opts, n, out_features)
        sizes = [comb(n, k) for k in opts.orders]
        batch = opts.num_adapters * r
        build = weight1_block_work(rbs_pyramid(n), batch)
        build = build + compounds_work(n, max(opts.orders), batch)
        for c in sizes:
            build = build + flush_work(batch * c * c)
            if opts.num_adapters > 1 and opts.combine == "product":
                build = build + Work((opts.num_adapters - 1) * r * c**3, 0)
                build = build + Work(0, (opts.num_adapters - 1) * r * c * c)
            elif opts.num_adapters > 1:
                build = build + Work(0, r * c * c)
        # the gain (``magnitude``) is a scaling, not counted; autograd keeps its input, the
        # mix's output, which an orthogonal mix keeps already (a "sum" keeps its input instead)
        orthogonal = opts.combine == "product" or opts.num_adapters == 1
        floats = out_features * (1 if orthogonal or not opts.magnitude else 2)
        return to_cost(r * sum(c * c for c in sizes), floats, build)

    @staticmethod
    def _two_form_cost(opts: CompoundOptions, n: int, out_features: int) -> Cost:
        """:meth:`cost_of` on the two-form path (Note [two compute paths]): per token and block
        ``n²`` (order 1), ``2n³`` (order 2) and ``C(n,k)²`` (orders >= 3); the build is the
        weight-1 blocks and their flush, ``A − 1`` products of ``n³`` per block, and the
        compounds of the composed rotations (batch r) for orders >= 3 with their flush."""
        r, adapters = opts.block_count, opts.num_adapters
        build = weight1_block_work(rbs_pyramid(n), adapters * r)
        build = build + flush_work(adapters * r * n * n)
        build = build + Work((adapters - 1) * r * n**3, (adapters - 1) * r * n * n)
        high = [k for k in opts.orders if k >= 3]
        if high:
            build = build + compounds_work(n, max(high), r)
            for k in high:
                build = build + flush_work(r * comb(n, k) ** 2)
        per_block = sum(
            n * n if k == 1 else 2 * n**3 if k == 2 else comb(n, k) ** 2 for k in opts.orders
        )
        return to_cost(r * per_block, out_features, build)

    @classmethod
    def path_text(cls, options: Any, in_features: int, out_features: int) -> str:
        """The compute path in words, for ``qadapters count`` (Note [two compute paths]).

        Example:
            >>> from qadapters.families import FAMILIES
            >>> opts = FAMILIES["compound"].layer_options(768, 2304, {"blocks": 3})[0]
            >>> CompoundAdapter.path_text(opts, 768, 2304)
            'n=38: weight-1 dense pass product, order 2 as a two-form (Aᵀ X A, 2n³/token); block mix on the outputs (keeps the output)'
        """  # noqa: E501
        opts = cast(CompoundOptions, options)
        n = opts.block_wires(out_features)
        dense = weight1_passes(rbs_pyramid(n)) * n * n <= subspace.DENSE_LIMIT
        weight1 = "dense pass product" if dense else "row passes"
        orthogonal = opts.num_adapters == 1 or opts.combine == "product"
        keeps = "keeps the output" if orthogonal else "keeps its input"
        if order2_path(n, opts.orders, opts.num_adapters, opts.combine) == "dense":
            build = f"minors to k={max(opts.orders)}"
        else:
            high = [k for k in opts.orders if k >= 3]
            build = "; ".join(
                (["rotations composed first"] if opts.num_adapters > 1 else [])
                + ["order 2 as a two-form (Aᵀ X A, 2n³/token)"]
                + ([f"minors to k={max(high)}"] if high else [])
            )
        where = f"block mix on the outputs ({keeps})"
        if orthogonal and not opts.magnitude and "two-form" not in build:
            where = (
                f"on the frozen weight when a call has over {in_features} tokens (keeps the "
                f"layer input, Note [rotated weight]), else {where}"
            )
        return f"n={n}: weight-1 {weight1}, {build}; {where}"

    @property
    def circuits(self) -> dict[str, Circuit]:
        """``{"theta": rbs_pyramid(n)}``; ``theta`` holds one angle vector per (adapter, block)."""
        return {"theta": self.circuit}

    def block_matrices(self, theta: Tensor | None = None) -> list[Tensor]:
        """``A^(k)`` for each order: shape ``(..., num_adapters, blocks, C(n,k), C(n,k))`` for
        angles ``theta`` of shape ``(..., num_adapters, blocks, P)`` (default: the adapter's).

        The pyramid is nearest-neighbour, so the weight-1 block is simulated once and every
        order up to the highest comes from one pass of :func:`backends.exact.compounds`
        (Cauchy–Binet; see Note [compound blocks])."""
        a = exact.hamming_block(self.circuit, self.theta if theta is None else theta, 1)
        every = exact.compounds(a, max(self.orders))
        return [every[k - 1] for k in self.orders]

    @property
    def orthogonal(self) -> bool:
        """Whether M is orthogonal: always, except for a ``"sum"`` of several adapters."""
        return self.combine == "product" or self.num_adapters == 1

    def order_blocks(
        self, dtype: torch.dtype, *, inverse: bool = False, theta: Tensor | None = None
    ) -> list[Tensor]:
        """Per order, the combined ``A^(k)`` (or its inverse) of every block:
        ``(..., blocks, C(n,k), C(n,k))``. M is block diagonal per order, so combining the
        adapters' M (product or mean) is done one order at a time."""
        out = []
        for m in self.block_matrices(theta):
            m = flush_subnormal(m.to(dtype))  # (..., A, r, C, C)
            if self.combine == "sum":
                mean = m.mean(-4)
                out.append(torch.linalg.inv(mean) if inverse else mean)
                continue
            if inverse:
                m = m.transpose(-1, -2).flip(-4)
            out.append(_chain(m))
        return out

    def rotations(
        self, dtype: torch.dtype, *, inverse: bool = False, theta: Tensor | None = None
    ) -> Tensor:
        """The composed weight-1 block of every tile, ``R = A¹ A² ⋯`` (or ``Rᵀ``):
        ``(..., blocks, n, n)``. For a product (or one adapter) ``M_b = ⊕_k R_b^(k)`` (Note [two
        compute paths]); for a ``"sum"`` there is no such R.

        Raises:
            ValueError: the adapters combine as a ``"sum"`` of several.
        """
        if not self.orthogonal:
            raise ValueError(
                "compound rotations: expected one adapter or combine='product'; found a sum of "
                f"{self.num_adapters}, which is not the compound of one rotation"
            )
        theta = self.theta if theta is None else theta
        prod = _chain(flush_subnormal(exact.hamming_block(self.circuit, theta, 1).to(dtype)))
        return prod.transpose(-1, -2) if inverse else prod

    def forms(self) -> tuple[Form, ...]:
        """Per order, how :meth:`path_blocks` gives its block on :attr:`path`.

        Raises:
            ValueError: :attr:`path` is not one of :data:`PATHS`.
        """
        if self.path not in PATHS:
            raise ValueError(f"compound path: expected one of {list(PATHS)}; found {self.path!r}")
        two_form = self.path == "two-form"
        return tuple("two-form" if two_form and k == 2 else "dense" for k in self.orders)

    def path_blocks(
        self, dtype: torch.dtype, *, inverse: bool = False, theta: Tensor | None = None
    ) -> tuple[list[Tensor], tuple[Form, ...]]:
        """What :meth:`mix` hands :func:`.kernels.block_mix.block_mix` on :attr:`path`: per
        order, the block (or, for order 2 on the two-form path, the rotation R), and the forms;
        for angles ``theta`` ``(..., num_adapters, blocks, P)`` (default: the adapter's).

        Raises:
            ValueError: :attr:`path` is not one of :data:`PATHS`, or is ``"two-form"`` for a
                ``"sum"`` of several adapters.
        """
        forms = self.forms()
        if self.path == "dense":
            return self.order_blocks(dtype, inverse=inverse, theta=theta), forms
        rot = self.rotations(dtype, inverse=inverse, theta=theta)
        high = [k for k in self.orders if k >= 3]
        every = exact.compounds(rot, max(high)) if high else []
        blocks = [rot if k <= 2 else flush_subnormal(every[k - 1]) for k in self.orders]
        return blocks, forms

    def build_signature(self) -> tuple[object, ...] | None:
        """The family, options, layer size and compute path."""
        if not self._shareable():
            return None
        return type(self), self.options, self.in_features, self.out_features, self.path

    def build_inputs(self) -> tuple[Tensor, ...]:
        """``(theta,)``."""
        return (self.theta,)

    def build_from(self, inputs: tuple[Tensor, ...], dtype: torch.dtype) -> list[Tensor]:
        """:meth:`path_blocks` of stacked angles ``(G, num_adapters, blocks, P)``."""
        (theta,) = inputs
        with no_autocast(theta):  # Note [mixed precision] in .base
            return self.path_blocks(dtype, theta=theta)[0]

    def block_diagonal(self, dtype: torch.dtype, *, inverse: bool = False) -> Tensor:
        """``M_b`` (or ``M_b⁻¹``) of every block as dense tiles: ``(blocks, W, W)``,
        ``W = Σ_k C(n,k)`` (for inspection; :meth:`mix` never forms it)."""
        per_order = self.order_blocks(dtype, inverse=inverse)
        return torch.stack([torch.block_diag(*t) for t in zip(*per_order, strict=True)])

    def mix(self, x: Tensor, *, inverse: bool = False) -> Tensor:
        """``x · M`` (or ``x · M⁻¹``) on the last axis: one batched product per order over the r
        blocks (order 2 as a two-form on the ``"two-form"`` path, Note [two compute paths]),
        the identity on the remaining features (see :func:`.kernels.block_mix.block_mix`; an
        orthogonal M keeps only its output for backward)."""
        dtype = build_dtype(self.theta, x)  # Note [mixed precision] in .base
        if inverse:
            with no_autocast(x):
                blocks, forms = self.path_blocks(dtype, inverse=True)
        else:
            blocks, forms = self.built(dtype), self.forms()
        dtype = autocast_dtype(x)
        return block_mix(
            x.to(dtype), [b.to(dtype) for b in blocks], orthogonal=self.orthogonal, forms=forms
        )

    def weight_side(self, x: Tensor, weight: Tensor) -> bool:
        """Whether :meth:`forward_with_weight` serves this call (Note [rotated weight]): an
        orthogonal M without ``magnitude`` on the dense path, a frozen weight of ``x``'s and the
        angles' dtype, no autocast, and more tokens than inputs
        (:func:`.rotated_weight.rotated_weight_pays`). The choice never depends on the grad
        mode, so a model computes the same floats training and in inference. Raises
        ``ValueError`` for a :attr:`keep` other than ``"input"`` or ``"output"``."""
        if self.keep not in (keeps := rotated_weight.KEEPS):
            raise ValueError(f"compound keep: expected one of {list(keeps)}; found {self.keep!r}")
        if not self.orthogonal or self.magnitude or self.path != "dense":
            return False  # a two-form order rotates a weight row no faster than a token
        if weight.requires_grad or weight.dtype != x.dtype or weight.dtype != self.theta.dtype:
            return False
        if torch.is_autocast_enabled(x.device.type):
            return False
        tokens = x.numel() // max(x.shape[-1], 1)
        return rotated_weight.rotated_weight_pays(tokens, self.in_features)

    def forward_with_weight(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """``(x Wᵀ + b) · M`` for the frozen layer ``(weight, bias)``, as ``x (Wᵀ M) + b M``
        (Note [rotated weight]); the layer calls it when :meth:`weight_side` says so."""
        blocks = self.built(self.theta.dtype)
        return rotated_weight.rotated_linear(x, weight, bias, blocks, self.forms(), self.keep)

    def gain(self, dtype: torch.dtype) -> Tensor | None:
        """``1 + g`` (``out_features``), or ``None`` without ``magnitude``."""
        return (1 + self.g).to(dtype) if self.magnitude else None

    def forward(self, x: Tensor, base_out: Tensor) -> Tensor:
        """``base_out · M`` (times ``1 + g`` with ``magnitude``)."""
        out = self.mix(base_out)
        gain = self.gain(out.dtype)
        return out if gain is None else out * gain

    def merge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(Mᵀ W, Mᵀ b)``: the rows of W mix exactly as the outputs do (then scale by
        ``1 + g`` with ``magnitude``)."""
        new_b = None if bias is None else self.mix(bias)
        new_w = self.mix(weight.T).T
        gain = self.gain(weight.dtype)
        if gain is not None:
            new_w = new_w * gain[:, None]
            new_b = None if new_b is None else new_b * gain
        return new_w, new_b

    def unmerge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(M⁻ᵀ W, M⁻ᵀ b)`` (after dividing by ``1 + g`` with ``magnitude``).

        Raises:
            ValueError: a gain ``1 + g`` is zero (that output was silenced, so the merged
                weight no longer holds its row).
        """
        gain = self.gain(weight.dtype)
        if gain is not None:
            if bool((gain == 0).any()):
                zero = torch.nonzero(gain == 0).flatten().tolist()
                raise ValueError(
                    f"compound unmerge: expected nonzero gains 1 + g; found 0 at outputs {zero}"
                )
            weight = weight / gain[:, None]
            bias = None if bias is None else bias / gain
        new_b = None if bias is None else self.mix(bias, inverse=True)
        return self.mix(weight.T, inverse=True).T, new_b


def _chain(m: Tensor) -> Tensor:
    """The product ``m¹ m² ⋯`` over the adapter axis of ``m`` ``(..., A, r, C, C)``."""
    prod = m.select(-4, 0)
    for a in range(1, m.shape[-4]):
        prod = prod @ m.select(-4, a)
    return prod
