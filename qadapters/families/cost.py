"""What an adapter costs, from sizes alone: the :class:`Cost` of each family's forward pass.

Every family has a classmethod ``cost(in_features, out_features, **options) -> Cost`` beside its
``count``; the constructor checks :attr:`Cost.build_bytes` against the memory budget
(:func:`backends.budget.check`) before it builds anything, and ``qadapters count`` prints the
forward cost next to the parameters. The formulas follow each family's compute path and are
explained beside it (``cost`` of :mod:`.pauli`, :mod:`.taylor`, :mod:`.compound`,
:mod:`.hamming`); the helpers here cost the pieces two families share.

Note [what a cost counts]
-------------------------
A forward pass of an adapter has two parts: the *build* (the circuits' matrices or factors from
the angles, once per forward whatever the number of tokens) and the *per-token* part (those
matrices applied to the activations).

- **Multiply-adds** are the scalar products of matrix products (``mm``, ``bmm``, ``einsum``, which
  is what ``torch.utils.flop_counter.FlopCounterMode`` counts, at 2 FLOPs each) plus the
  elementwise products of two equal-shape arrays that stand for sums of products (the Laplace
  expansion of compounds, Kronecker factors). Scalings by a broadcast vector (``s``, cos/sin,
  signs) are O(output) and left out, as is ``torch.linalg.matrix_exp`` of the Taylor family's
  ``4r × 4r`` matrix (data-dependent, and independent of the layer's width).
- **Activation floats per token** are what autograd keeps for the backward of the adapter, per
  token, other than the layer input ``x`` (which the frozen layer's caller holds and every adapter
  on the same input shares, as LoRA shares it).
- **Build bytes** are the bytes of the floating-point tensors the build allocates, every
  intermediate counted as if none were freed (under autograd most of them are kept until the
  backward, so this is about the peak of a training step; without autograd it bounds it). The
  formulas count every tensor whose size is that of a matrix, a state or a table of gate
  matrices; vectors of angles, their cosines and the like are left out, so the figure is a few
  percent low on tiny layers and exact in its leading terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import torch

from backends.subspace import DENSE_LIMIT
from backends.torch_gates import TABLE_WIDTH
from circuits import Circuit


@dataclass(frozen=True)
class Cost:
    """The cost of one adapter's forward pass (see Note [what a cost counts]).

    Attributes:
        forward_macs: multiply-adds per token (the build excluded).
        build_macs: multiply-adds of the build, once per forward, independent of tokens.
        activation_floats: floats per token kept for backward, besides the layer input.
        build_bytes: bytes of the tensors the build allocates.

    Example:
        >>> lora_cost(768, 768, 8).forward_macs
        12288
        >>> (lora_cost(768, 768, 8) + lora_cost(768, 768, 8)).forward_macs
        24576
    """

    forward_macs: int
    build_macs: int
    activation_floats: int
    build_bytes: int

    def __add__(self, other: Cost) -> Cost:
        """The cost of both adapters (each field summed)."""
        return Cost(
            self.forward_macs + other.forward_macs,
            self.build_macs + other.build_macs,
            self.activation_floats + other.activation_floats,
            self.build_bytes + other.build_bytes,
        )

    def __mul__(self, times: int) -> Cost:
        """The cost of ``times`` adapters of this shape."""
        return Cost(
            self.forward_macs * times,
            self.build_macs * times,
            self.activation_floats * times,
            self.build_bytes * times,
        )

    __rmul__ = __mul__


ZERO = Cost(0, 0, 0, 0)


def lora_cost(in_features: int, out_features: int, r: int) -> Cost:
    """LoRA of rank r for comparison: ``B (A x)`` is ``r·(in + out)`` multiply-adds per token and
    keeps ``A x`` (r floats per token); nothing is built."""
    return Cost(r * (in_features + out_features), 0, r, 0)


def float_bytes() -> int:
    """Bytes of one float of the default dtype (what adapters are built in)."""
    return torch.empty((), dtype=torch.get_default_dtype()).element_size()


# ---------------------------------------------------------------------------- shared pieces
@dataclass(frozen=True)
class Work:
    """Multiply-adds and floats allocated by one piece of a build (summed into a :class:`Cost`)."""

    macs: int = 0
    floats: int = 0

    def __add__(self, other: Work) -> Work:
        return Work(self.macs + other.macs, self.floats + other.floats)


def flush_work(numel: int) -> Work:
    """:func:`.hamming.flush_subnormal` on ``numel`` entries: ``abs``, ``where`` and the
    difference, three floats per entry."""
    return Work(0, 3 * numel)


def weight1_passes(circuit: Circuit) -> int:
    """Passes of the weight-1 simulation of a Hamming-weight-preserving circuit.

    In weight 1 a two-wire gate changes the rows of its two wires; consecutive gates whose rows
    are disjoint share one pass (Note [Hamming-weight subspace] in :mod:`backends.subspace`),
    so the passes are the greedy moments of the gate list.
    """
    passes, rows = 0, set[int]()
    for op in circuit.ops:
        wires = set(op.all_wires)
        if not passes or rows & wires:
            passes, rows = passes + 1, set()
        rows |= wires
    return passes


def weight1_block_work(circuit: Circuit, batch: int) -> Work:
    """``backends.exact.hamming_block(circuit, θ, 1)`` for ``batch`` angle vectors.

    Either P dense ``n × n`` pass matrices multiplied in order (:func:`_dense_weight1_work`) or,
    past :data:`backends.subspace.DENSE_LIMIT`, the table of gate matrices (two rows of
    ``TABLE_WIDTH`` per op and vector: each gate's ``d × d`` matrix at ±θ built as
    ``F + cos·C + sin·S``, four arrays of ``d²``, then padded, written into the table and
    flattened, three arrays of the table) and P row updates (two gathered terms and their sum,
    then the new ``n × n`` block, per pass).
    """
    n, ops = circuit.n_qubits, len(circuit.ops)
    passes = weight1_passes(circuit)
    width = 2 * ops * TABLE_WIDTH
    gates = sum(2 * 4 ** len(op.wires) for op in circuit.ops)
    table = Work(0, batch * (4 * gates + 3 * width) + width)
    if not passes:
        return table
    if passes * n * n <= DENSE_LIMIT:
        return _dense_weight1_work(n, ops, passes, batch)
    return table + Work(0, passes * batch * (n * n + 3 * 2 * n))


def _dense_weight1_work(n: int, ops: int, passes: int, batch: int) -> Work:
    """The dense weight-1 path (Note [pass-product gradient] in :mod:`backends.subspace`): the
    ``E = 4`` entries per two-wire gate computed from the angles (five arrays of E per vector),
    P pass matrices and P − 1 running products of ``n × n`` (``(P − 1) n³`` multiply-adds), and
    for the backward the P + 1 kept products and one ``n × n`` seed; the plan's constants (the
    fixed parts of the entries and passes) are converted to the dtype once."""
    entries = 4 * ops
    per_vector = 5 * entries + (2 * passes - 1) * n * n + (passes + 1) * n * n
    constants = n * n + 5 * entries + passes * n * n
    return Work((passes - 1) * batch * n**3, batch * per_vector + constants)


def compounds_work(n: int, k: int, batch: int) -> Work:
    """``backends.exact.compounds(A, k)`` for ``batch`` matrices ``n × n``: the expansion of
    :func:`prefix_compounds_work` with every state kept, up to order k."""
    return prefix_compounds_work(n, None, None, batch, top=k)


def complements_work(n: int, batch: int) -> Work:
    """``backends.compounds.complementary_compound`` for every order above n // 2 of ``batch``
    blocks: each ``C(n,k)²`` gathered twice and signed twice (four arrays, no products)."""
    return Work(0, sum(4 * batch * comb(n, k) ** 2 for k in range(n // 2 + 1, n + 1)))


def prefix_compounds_work(
    n: int, rows: int | None, cols: int | None, batch: int, top: int | None = None
) -> Work:
    """``backends.prefix_compounds.prefix_compounds(A, rows, cols, top)`` for ``batch``
    matrices: per order j up to ``top`` (default n), ``j`` products over the kept
    ``rows_j × cols_j`` entries (two gathered factors, their product and the running sum per
    term, less the first sum), after gathering the first rows (``rows_j·n``) and the lower minors
    (``rows_j·cols_{j−1}``); order 1 is one gather, none when every state is kept."""
    from backends.prefix_compounds import kept_states

    def kept(j: int, limit: int | None) -> int:
        return comb(n, j) if limit is None else len(kept_states(n, j, limit))

    out = Work()
    if rows is not None or cols is not None:
        out = Work(0, batch * kept(1, rows) * (n + kept(1, cols)))
    for j in range(2, (n if top is None else top) + 1):
        r, c = kept(j, rows), kept(j, cols)
        if not r * c:
            continue  # nothing kept at this order (nor above it): no gathers either
        gathers = r * n + r * kept(j - 1, cols)
        out = out + Work(j * batch * r * c, batch * ((4 * j - 1) * r * c + gathers))
    return out


def to_cost(forward_macs: int, activation_floats: int, build: Work) -> Cost:
    """A :class:`Cost` from the per-token figures and the build's :class:`Work`."""
    return Cost(forward_macs, build.macs, activation_floats, build.floats * float_bytes())
