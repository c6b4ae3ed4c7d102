"""Quantum-PEFT with the Lie-algebra (Taylor) map: ``ΔW = U_K diag(s) V_Kᵀ · scale``.

``U_K`` and ``V_K`` are the first K columns of ``exp(L − Lᵀ)`` with ``L`` strictly lower triangular
and nonzero only in its first ``intrinsic_rank`` columns (:func:`.stiefel.lie_stiefel`): the
exact exponential (``order=None``, the default: computed through a ``4r × 4r`` matrix exponential
in float64, never ``d × d``, so the factors stay orthonormal however large a step makes ``L``) or
the paper's Taylor series of order P (``order=P``, orthonormal only up to its truncation error,
which grows as ``‖L‖^(P+1)/(P+1)!``: large learning rates break it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from circuits import Circuit
from qadapters.families.cost import Work
from qadapters.families.options import FamilyOptions, option
from qadapters.families.pauli import SVDFormAdapter
from qadapters.families.stiefel import lie_indices, lie_num_params, lie_stiefel


@dataclass(frozen=True)
class TaylorOptions(FamilyOptions):
    """Options of :class:`TaylorAdapter` (checks: :mod:`qadapters.families.options`)."""

    family = "taylor"

    rank: int = option(4, "K, singular vectors of ΔW (at most min(in, out))", low=1)
    intrinsic_rank: int = option(
        2, "r, trainable columns of each generator L (capped at d − 1)", low=1
    )
    order: int | None = option(
        None,
        "None: the exact exponential (orthonormal for any L); P: the Taylor series of order P "
        "(the paper's; orthonormal only while ‖L‖ is small)",
        low=1,
    )
    scale: float = option(1.0, "constant factor on ΔW", nonzero=True)


class TaylorAdapter(SVDFormAdapter):
    """Quantum-PEFT adapter whose singular vectors come from the Lie (Taylor) map.

    Trainable parameters: ``K + P(out) + P(in)`` with ``P(d) = r·d − r(r+1)/2`` and
    ``r = min(intrinsic_rank, d − 1)`` (the strictly lower entries of the first r columns).
    Generators start at ``N(0, (0.5/√d)²)`` so that ``‖L − Lᵀ‖`` is O(1) and the Taylor series is
    accurate; ``s = 0`` keeps the model unchanged at init.

    Args:
        in_features: input width.
        out_features: output width.
        **options: :class:`TaylorOptions` — ``rank`` (K, singular vectors), ``intrinsic_rank``
            (trainable columns r of each generator L), ``order`` (Taylor order P, or None for the
            exact exponential), ``scale`` (constant factor on ``ΔW``).

    Raises:
        ValueError: an invalid option, or a rank above ``min(in_features, out_features)``.

    Example:
        >>> a = TaylorAdapter(12, 20, rank=3, intrinsic_rank=2)
        >>> a.num_trainable() == 3 + (2 * 20 - 3) + (2 * 12 - 3)
        True
    """

    options_class = TaylorOptions
    default_lr = 0.15

    def __init__(self, in_features: int, out_features: int, **options: Any) -> None:
        super().__init__(in_features, out_features, **options)
        opts = cast(TaylorOptions, self.options)
        intrinsic_rank = self.intrinsic_rank = opts.intrinsic_rank
        self.order = opts.order
        dtype = torch.get_default_dtype()
        for name, d in (("u", out_features), ("v", in_features)):
            r = min(intrinsic_rank, d - 1)
            rows, cols = lie_indices(d, r)
            self.register_buffer(f"_{name}_rows", rows, persistent=False)
            self.register_buffer(f"_{name}_cols", cols, persistent=False)
            init = torch.randn(lie_num_params(d, r), dtype=dtype) * (0.5 / math.sqrt(d))
            self.register_parameter(name, nn.Parameter(init))
        self.angle_names = ("u", "v")

    @classmethod
    def count(cls, in_features: int, out_features: int, **options: Any) -> int:
        """Trainable parameters, from sizes only."""
        opts = cast(TaylorOptions, cls.layer_options(in_features, out_features, options)[0])
        return opts.rank + sum(
            lie_num_params(d, min(opts.intrinsic_rank, d - 1)) for d in (out_features, in_features)
        )

    @classmethod
    def factor_work(cls, options: Any, in_features: int, out_features: int) -> Work:
        """Per factor of ``d`` rows (``r = min(intrinsic_rank, d − 1)``, nothing for ``d = 1``),
        from :func:`.stiefel.lie_stiefel`:

        - Taylor order P: each term is ``L_r X[:r] − E_r (L_rᵀ X)``, ``2·d·r·K`` multiply-adds,
          and allocates the two products, the zero rows, the concatenation, the difference, the
          division by p and the running sum (``6·d·K`` floats, less ``r·K`` for the small product
          and the zero rows);
        - exact (``order=None``): ``Bᵀ A`` (``4r²d``), ``Bᵀ E_K`` and ``A (φ ·)`` (``2rdK``
          each), ``φ ·`` (``4r²K``); ``matrix_exp`` of ``4r × 4r`` is not counted; its floats
          are float64 (each counted twice) until the ``d × K`` result is cast back.

        Both start from the generator scattered into ``d × r`` zeros and its lower triangle."""
        opts = cast(TaylorOptions, options)
        k, out = opts.rank, Work()
        for d in (out_features, in_features):
            if d == 1:
                continue
            r = min(opts.intrinsic_rank, d - 1)
            start = 3 * d * r + d * k  # zeros, scatter, tril; E_K
            if opts.order is not None:
                per = 2 * d * r * k, 5 * d * k + r * k + (d - r) * k
                out = out + Work(opts.order * per[0], start + opts.order * per[1])
                continue
            macs = 4 * r * r * d + 4 * r * d * k + 4 * r * r * k
            wide = d * r + d * k  # float64 copies of L_r and E_K
            wide += d * r * 2 + 2 * d * 2 * r  # E_r, −E_r; A and B
            wide += 3 * (2 * r) ** 2 + 2 * 2 * r * 4 * r + 2 * (4 * r) ** 2  # M, 0, I; rows; exp
            wide += 2 * r * k * 2 + 2 * d * k  # Bᵀ E_K, φ ·; A (φ ·), + E_K
            # float64 (two float32s each), then the cast back to the layer's dtype
            out = out + Work(macs, start + 2 * wide + d * k)
        return out

    @property
    def circuits(self) -> dict[str, Circuit]:
        """None: the Lie map is a matrix exponential, not a gate sequence."""
        return {}

    def generator(self, name: str) -> Tensor:
        """``L_r`` (``d × r``) of ``"u"`` or ``"v"``, scattered from the packed parameter."""
        p: Tensor = getattr(self, name)
        rows, cols = getattr(self, f"_{name}_rows"), getattr(self, f"_{name}_cols")
        d = self.out_features if name == "u" else self.in_features
        r = min(self.intrinsic_rank, d - 1)
        return p.new_zeros(d, r).index_put((rows, cols), p)

    def _factor(self, name: str) -> Tensor:
        d = self.out_features if name == "u" else self.in_features
        p: Tensor = getattr(self, name)
        if d == 1:
            return torch.ones(1, 1, dtype=p.dtype, device=p.device)
        method: Literal["exp", "taylor"] = "exp" if self.order is None else "taylor"
        return lie_stiefel(self.generator(name), self.rank, method=method, order=self.order or 1)

    def factors(self) -> tuple[Tensor, Tensor]:
        return self._factor("u"), self._factor("v")

    def orthonormality_error(self) -> float:
        """``max |U_KᵀU_K − I|`` over both factors (0 up to rounding when ``order=None``)."""
        errs = []
        with torch.no_grad():
            factors = self.factors()
        for f in factors:
            eye = torch.eye(f.shape[1], dtype=f.dtype, device=f.device)
            errs.append(float((f.T @ f - eye).abs().max()))
        return max(errs)
