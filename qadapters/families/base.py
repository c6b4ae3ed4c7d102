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

Options: each family class names its options dataclass (``options_class``, a
:class:`.options.FamilyOptions`), the one place their defaults, types and value checks live. The
constructor ``Family(in_features, out_features, **options)`` and the classmethod
``Family.count(in_features, out_features, **options)`` (trainable parameters from sizes alone)
both go through :meth:`Adapter.layer_options`: the dataclass checks the values, then
:meth:`Adapter.check_layer` checks what depends on the layer's size, naming that size.

Cost: the classmethod ``Family.cost(in_features, out_features, **options)`` gives the
:class:`.cost.Cost` of the forward pass from sizes alone (multiply-adds per token and per build,
activation floats per token, bytes of the build; Note [what a cost counts]). The constructor
refuses, with the memory budget's ``MemoryError`` (:func:`backends.budget.check`), an adapter whose
build would need more than the budget, before it allocates anything.

Builds: a family whose matrices are built from its parameters on every forward pass may offer
that build as :meth:`Adapter.build_inputs` and :meth:`Adapter.build_from` (a stack of inputs in,
a stack of matrices out) with a :meth:`Adapter.build_signature`. The model then runs the builds
of all its adapters with one signature as one batched call (Note [shared builds] in
:mod:`.shared_builds`); :meth:`Adapter.built` is what the family's forward reads.

Note [mixed precision]
----------------------
Under ``torch.autocast`` (bf16 or fp16) a family builds its circuits' matrices or factors with
autocast off, in the parameters' dtype promoted with the input's (:func:`build_dtype`): the build
is tiny and once per step, and a rotation rounded to bf16 (8 bits of mantissa) is no longer
orthogonal. Only the per-token products follow autocast, in :func:`autocast_dtype`, as the frozen
layer's own product does. A custom ``autograd.Function`` sees its inputs cast to that one dtype
first, since its backward runs outside autocast and a product of a bf16 and a float32 tensor
fails there.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from backends import budget
from circuits import Circuit
from qadapters.families.cost import Cost
from qadapters.families.options import FamilyOptions, warn
from qadapters.families.shared_builds import BuildSlot, shared_or_own


def layer_text(in_features: int, out_features: int) -> str:
    """``"a 768 → 64 layer"``: how errors and warnings name the layer an option does not fit."""
    return f"a {in_features} → {out_features} layer"


def check_sizes(in_features: object, out_features: object) -> None:
    """Raise ``ValueError`` unless both widths are positive ints."""
    for name, v in (("in_features", in_features), ("out_features", out_features)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int; found {v!r}")


def autocast_dtype(x: Tensor) -> torch.dtype:
    """The dtype a product with activations ``x`` runs in: autocast's dtype when autocast is on
    for ``x``'s device (and ``x`` is not float64, which autocast leaves alone), else ``x.dtype``
    (Note [mixed precision]).

    Example:
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     autocast_dtype(torch.ones(2))
        torch.bfloat16
        >>> autocast_dtype(torch.ones(2))
        torch.float32
    """
    kind = x.device.type
    if (
        x.dtype != torch.float64
        and torch.amp.is_autocast_available(kind)
        and torch.is_autocast_enabled(kind)
    ):
        return torch.get_autocast_dtype(kind)
    return x.dtype


def build_dtype(param: Tensor, x: Tensor) -> torch.dtype:
    """The dtype of a build for activations ``x``: ``param``'s promoted with ``x``'s, so float64
    inputs build in float64 and bf16 activations of a float32 model still build in float32.

    Example:
        >>> build_dtype(torch.ones(1), torch.ones(1, dtype=torch.bfloat16))
        torch.float32
    """
    return torch.promote_types(param.dtype, x.dtype)


@contextlib.contextmanager
def no_autocast(x: Tensor) -> Iterator[None]:
    """Autocast off for ``x``'s device inside the block (the build of Note [mixed precision])."""
    kind = x.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        with torch.autocast(kind, enabled=False):
            yield
    else:
        yield


class Adapter(nn.Module, ABC):
    """Base class of the adapter families (see the module docstring for the contract).

    Args:
        in_features: input width of the adapted linear layer.
        out_features: output width of the adapted linear layer.
        **options: the family's options (fields of :attr:`options_class`); missing ones take
            their defaults. The checked options are kept in :attr:`options`.

    Raises:
        ValueError: bad sizes, an unknown option, a bad value, or an option that cannot act on a
            layer of this size (the message names the layer's size).

    Warns:
        UserWarning: an option set to a non-default value that has no effect (for example a
            compound order that only adds a constant block on this layer).
    """

    #: the family's options dataclass (set by every concrete family)
    options_class: ClassVar[type[FamilyOptions]] = FamilyOptions
    #: names of the parameters that are circuit angles
    angle_names: tuple[str, ...] = ()
    #: the family's recommended Adam(W) learning rate (measured: docs/accuracy.md), read by
    #: :func:`.optim.default_lr` and :func:`.optim.param_groups`
    default_lr: ClassVar[float] = 1e-2
    #: whether the family offers its build for sharing (:meth:`build_signature`); read by
    #: ``qadapters count``
    shares_builds: ClassVar[bool] = False
    #: this adapter's place in a group of shared builds, set by
    #: :func:`.shared_builds.link_builds` (never saved or copied)
    build_slot: BuildSlot | None = None

    def __init__(self, in_features: int, out_features: int, **options: Any) -> None:
        super().__init__()
        opts, notes = self.layer_options(in_features, out_features, options)
        layer = layer_text(in_features, out_features)
        budget.check(
            f"a {opts.family} adapter on {layer}",
            self.cost_of(opts, in_features, out_features).build_bytes,
        )
        for name, why in opts.inert_changes().items():
            notes.append(f"{opts.family} option {name!r} has no effect on {layer}: {why}")
        for note in notes:
            warn(note)
        self.in_features = in_features
        self.out_features = out_features
        self.options = opts

    @classmethod
    def layer_options(
        cls, in_features: int, out_features: int, options: Mapping[str, Any]
    ) -> tuple[FamilyOptions, list[str]]:
        """The typed options for a layer of shape ``(out_features, in_features)``.

        Returns:
            ``(options, warnings)``: the checked options, and the messages about options that
            are legal on this layer but partly inert (from :meth:`check_layer`).

        Raises:
            ValueError: as the class docstring says.
        """
        check_sizes(in_features, out_features)
        opts = cls.sized_options(cls.options_class.from_mapping(options), in_features, out_features)
        return opts, cls.check_layer(opts, in_features, out_features)

    @classmethod
    def sized_options(cls, options: Any, in_features: int, out_features: int) -> Any:
        """``options`` with the values that follow from the layer's size filled in (an option
        left to the layer, such as ``compound``'s ``blocks=None``); unchanged by default. Every
        reader of a layer's options (the constructor, :meth:`count`, :meth:`cost`,
        ``qadapters count``) sees the filled-in values."""
        return options

    @classmethod
    def check_layer(cls, options: Any, in_features: int, out_features: int) -> list[str]:
        """Checks of the options that depend on the layer's size (none by default).

        Returns:
            Warnings for options that act only in part on this layer.

        Raises:
            ValueError: an option that cannot act on this layer; the message names its size.
        """
        return []

    @classmethod
    @abstractmethod
    def count(cls, in_features: int, out_features: int, **options: Any) -> int:
        """Trainable parameters of ``cls(in_features, out_features, **options)``, from sizes
        alone (no tensors are built).

        Raises:
            ValueError: as the constructor.
        """

    @classmethod
    def cost(cls, in_features: int, out_features: int, **options: Any) -> Cost:
        """The cost of ``cls(in_features, out_features, **options)``'s forward pass, from sizes
        alone (see Note [what a cost counts] in :mod:`.cost`).

        Raises:
            ValueError: as the constructor (an adapter over the memory budget still has a cost:
                this does not check the budget).

        Example:
            >>> from qadapters.families.pauli import PauliAdapter
            >>> PauliAdapter.cost(768, 768, rank=4).forward_macs  # as LoRA of rank 4
            6144
        """
        opts = cls.layer_options(in_features, out_features, options)[0]
        return cls.cost_of(opts, in_features, out_features)

    @classmethod
    @abstractmethod
    def cost_of(cls, options: Any, in_features: int, out_features: int) -> Cost:
        """:meth:`cost` for options already checked by :meth:`layer_options`."""

    @property
    @abstractmethod
    def circuits(self) -> dict[str, Circuit]:
        """The adapter's circuits by name; ``getattr(self, name)`` is each one's parameter."""

    @abstractmethod
    def forward(self, x: Tensor, base_out: Tensor) -> Tensor:
        """The adapted output for input ``x`` and frozen output ``base_out``."""

    def weight_side(self, x: Tensor, weight: Tensor) -> bool:
        """Whether this call should go through :meth:`forward_with_weight` (applying the
        adapter on the frozen ``(out, in)`` weight instead of its output); never, by default."""
        return False

    def forward_with_weight(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The adapted layer's output from ``x`` and the frozen layer's ``(weight, bias)``, for
        families whose :meth:`weight_side` can say yes.

        Raises:
            NotImplementedError: the family has no weight-side path.
        """
        raise NotImplementedError(f"{type(self).__name__} has no weight-side path")

    @abstractmethod
    def merge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Weight ``(out, in)`` and bias of a plain linear layer equal to the adapted one."""

    @abstractmethod
    def unmerge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Inverse of :meth:`merge`."""

    def build_signature(self) -> Hashable | None:
        """Equal for adapters whose builds may run as one batched call; ``None`` (the default,
        and for any adapter under a parametrization such as quantization-aware training, whose
        parameters are recomputed on every read): never shared."""
        return None

    def build_inputs(self) -> tuple[Tensor, ...]:
        """The tensors :meth:`build_from` reads (none by default)."""
        return ()

    def build_from(self, inputs: tuple[Tensor, ...], dtype: torch.dtype) -> list[Tensor]:
        """The build of stacked :meth:`build_inputs` (a leading axis over adapters), in
        ``dtype``: a list of tensors with the same leading axis.

        Raises:
            NotImplementedError: the family builds nothing.
        """
        raise NotImplementedError(f"{type(self).__name__} has no build")

    def built(self, dtype: torch.dtype) -> list[Tensor]:
        """This adapter's build in ``dtype``: its group's slice where the group can serve it
        (Note [shared builds]), otherwise its own."""
        return shared_or_own(self, dtype)

    def _shareable(self) -> bool:
        """Whether :meth:`build_signature` may offer this adapter's build for sharing."""
        return not parametrize.is_parametrized(self)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("build_slot", None)  # a group holds live modules; a copy builds alone
        return state

    def num_trainable(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @torch.no_grad()
    def reset_away_from_identity(self, std: float = 0.1) -> None:
        """Randomise every parameter (tests use this so that merge checks cannot pass trivially)."""
        for p in self.parameters():
            p.normal_(0.0, std)
