"""One batched build per forward pass for the adapters of a model that build alike.

Note [shared builds]
--------------------
A ``hamming`` or ``compound`` adapter turns its angles into matrices on every forward pass: its
*build* (weight-1 blocks, their compounds, the mixture over sub-adapters). That is a few
hundred tensor operations on small arrays, so its cost is mostly per operation, not per
float. The adapters of a model's layers of one shape and options have the same build on
different angles. One call on their stacked inputs (a leading axis over the layers) therefore
builds them all for about the price of a few. MiniLM's twelve q/v ``hamming`` adapters build in
about half the time of twelve separate builds.

:func:`link_builds` puts such adapters in a :class:`BuildGroup` (the model calls it whenever its
active adapters change). When a member asks for its matrices (:meth:`BuildGroup.outputs`),
the group builds for every member at once and hands each its slice. A slice serves one request,
and only while the build is still valid:

- it was built for the same request: dtype, device, grad mode, inference mode;
- every member's inputs are the same tensors at the same version (an optimizer step, or any
  in-place change, bumps ``Tensor._version``);
- the build's backward has not run. A hook on the stacked inputs notes it: autograd has then
  freed what the build kept, so a second backward through it would fail.

A member that asks again (the next forward pass, a layer called twice) starts a new build for
all. A training step thus builds once in its forward. Gradient accumulation and two forward
passes before one backward build once per forward pass, as separate builds would.

One difference remains: the members of a build share its autograd graph. Two backward passes
through disjoint sets of members of one forward pass need ``retain_graph=True`` on the first,
or ``QAdapterModel.share_builds = False``, which turns sharing off.

The slices are the separate builds' matrices. Only the summation order of batched products
may differ, at rounding level. Where sharing would change what autograd records, each adapter
builds alone (:func:`may_share`):

- under ``torch.compile``, tracing or function transforms;
- inside a backward pass, where reentrant checkpointing recomputes;
- while saved-tensor hooks are set. Non-reentrant checkpointing and offloading set them, and a
  recomputation must save exactly what its region saved in the forward.

A copy of a model (``copy.deepcopy``, pickle, ``torch.save`` of the whole model) links its own
adapters into groups of its own; a copy of one adapter, or a DataParallel replica, builds
alone, since no group counts it as a member.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


class SharesBuild(Protocol):
    """What a member of a :class:`BuildGroup` offers (the family adapters do)."""

    build_slot: BuildSlot | None

    def build_signature(self) -> Hashable | None:
        """Equal for adapters whose builds batch together; ``None``: never shared."""
        ...

    def build_inputs(self) -> tuple[Tensor, ...]:
        """The tensors the build reads (stacked over the group's members)."""
        ...

    def build_from(self, inputs: tuple[Tensor, ...], dtype: torch.dtype) -> list[Tensor]:
        """The build of a stack of members' inputs, each output with the same leading axis."""
        ...


@dataclass(frozen=True)
class BuildSlot:
    """A member's place in its group."""

    group: BuildGroup
    index: int


@dataclass
class _Flag:
    """Set by the backward hook; the hook keeps only this, never the build's outputs (which
    keep the autograd graph that keeps the hook)."""

    done: bool = False


@dataclass
class _Build:
    key: tuple[object, ...]
    inputs: list[tuple[Tensor, ...]]  # per member, the tensors it was built from
    versions: list[tuple[int, ...]]
    outputs: list[Tensor]  # each with a leading axis over the members
    backward_ran: _Flag
    served: set[int]  # the members handed their slice (shared with the stack's backward)


class _StackServed(torch.autograd.Function):
    """``torch.stack`` whose backward gives a gradient only to the members whose slice was
    served. A member that never asked gets none (``grad`` stays ``None``), as with a build of
    its own that never ran, rather than a zero that an optimizer would still step on."""

    @staticmethod
    def forward(ctx, served: set[int], *members: Tensor) -> Tensor:
        ctx.served = served
        return torch.stack(members)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        return (None, *(grad[i] if i in ctx.served else None for i in range(grad.shape[0])))


def may_share() -> bool:
    """Whether builds may be shared in the current context (Note [shared builds])."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if torch._C._are_functorch_transforms_active():
        return False
    if torch._C._current_graph_task_id() != -1:  # inside a backward pass
        return False
    return torch._C._autograd._top_saved_tensors_default_hooks(False) is None


def _request_key(dtype: torch.dtype, inputs: tuple[Tensor, ...]) -> tuple[object, ...]:
    meta = tuple((t.shape, t.dtype, t.device) for t in inputs)
    return dtype, meta, torch.is_grad_enabled(), torch.is_inference_mode_enabled()


def _versions(inputs: tuple[Tensor, ...]) -> tuple[int, ...]:
    return tuple(t._version for t in inputs)


class BuildGroup:
    """Adapters whose builds run as one batched call (Note [shared builds]).

    Holds its members weakly; a member that is gone, whose signature changed since it was
    linked, or whose inputs no longer match the others' shapes, dtypes and devices, makes every
    member build alone.
    """

    def __init__(self, members: Sequence[SharesBuild]) -> None:
        self._members = tuple(weakref.ref(m) for m in members)
        self._build: _Build | None = None

    def __len__(self) -> int:
        return len(self._members)

    def outputs(self, index: int, member: SharesBuild, dtype: torch.dtype) -> list[Tensor] | None:
        """Member ``index``'s build (for ``dtype``), from the group's batched build; ``None``
        where the group cannot serve it (the member then builds alone)."""
        if not 0 <= index < len(self._members) or self._members[index]() is not member:
            return None  # a copy of a member (deepcopy, DataParallel replicas)
        mine = member.build_inputs()
        key = _request_key(dtype, mine)
        build = self._build
        if build is None or not self._serves(build, index, key):
            build = self._build = self._new_build(member, key, dtype)
            if build is None:
                return None
        build.served.add(index)
        if len(build.served) == len(self._members):
            self._build = None  # every slice served: the next request builds anew
        return _slices(build.outputs, index)

    def _serves(self, build: _Build, index: int, key: tuple[object, ...]) -> bool:
        if build.key != key or index in build.served or build.backward_ran.done:
            return False
        for ref, then, version in zip(self._members, build.inputs, build.versions, strict=True):
            member = ref()
            if member is None:
                return False
            now = member.build_inputs()
            if len(now) != len(then) or any(a is not b for a, b in zip(now, then, strict=True)):
                return False
            if _versions(now) != version:
                return False
        return True

    def _new_build(
        self, member: SharesBuild, key: tuple[object, ...], dtype: torch.dtype
    ) -> _Build | None:
        members = [m for m in (ref() for ref in self._members) if m is not None]
        if len(members) < len(self._members):
            return None  # a member is gone
        signature = member.build_signature()
        if signature is None or any(m.build_signature() != signature for m in members):
            return None  # a member changed since it was linked (its compute path, or QAT)
        inputs = [m.build_inputs() for m in members]
        if any(_request_key(dtype, i) != key for i in inputs):
            return None
        served: set[int] = set()
        stacked = [
            _StackServed.apply(served, *ts) if any(t.requires_grad for t in ts) else torch.stack(ts)
            for ts in zip(*inputs, strict=True)
        ]
        flag = _Flag()
        tracked = next((t for t in stacked if t.requires_grad), None)
        if tracked is not None:
            tracked.register_hook(_marker(flag))
        outputs = member.build_from(tuple(stacked), dtype)
        return _Build(key, inputs, [_versions(i) for i in inputs], outputs, flag, served)


def _marker(flag: _Flag) -> Callable[[Tensor], None]:
    def mark(_: Tensor) -> None:
        flag.done = True

    return mark


def link_builds(adapters: Iterable[SharesBuild]) -> list[BuildGroup]:
    """Group ``adapters`` by :meth:`~SharesBuild.build_signature` and give each member of a
    group of two or more its :class:`BuildSlot`; every other adapter's slot is cleared.

    Returns:
        The groups formed.
    """
    by_signature: dict[Hashable, list[SharesBuild]] = {}
    for adapter in adapters:
        adapter.build_slot = None
        signature = adapter.build_signature()
        if signature is not None:
            by_signature.setdefault(signature, []).append(adapter)
    groups = []
    for members in by_signature.values():
        if len(members) < 2:
            continue
        group = BuildGroup(members)
        for i, adapter in enumerate(members):
            adapter.build_slot = BuildSlot(group, i)
        groups.append(group)
    return groups


def shared_or_own(member: SharesBuild, dtype: torch.dtype) -> list[Tensor]:
    """``member``'s build: its group's slice where one may serve (:func:`may_share`), else
    its own build (the same code on a stack of one)."""
    if may_share():  # first: a compiled forward must not read the slot (no guards on it)
        slot = member.build_slot
        shared = None if slot is None else slot.group.outputs(slot.index, member, dtype)
        if shared is not None:
            return shared
    own = member.build_from(tuple(t.unsqueeze(0) for t in member.build_inputs()), dtype)
    return _slices(own, 0)


def _slices(outputs: list[Tensor], index: int) -> list[Tensor]:
    """``[t[index] for t in outputs]``, one slice per distinct tensor (a build may return one
    tensor for two roles, and an ``autograd.Function`` under ``torch.compile`` must then
    receive it once)."""
    seen: dict[int, Tensor] = {}
    return [seen.setdefault(id(t), t[index]) for t in outputs]
