"""Shared builds (Note [shared builds] in qadapters/families/shared_builds.py): the adapters of a
model's layers of one shape build in one batched call, with the outputs, gradients and training
steps of separate builds, and every context that must build alone does."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import qadapters
from qadapters.families.shared_builds import BuildGroup, link_builds, may_share

WIDTH = 16

#: case id -> (family, options): every family that builds matrices, on each of its build paths
CASES: dict[str, tuple[str, dict]] = {
    "hamming-hw": ("hamming", {}),
    "hamming-brick": ("hamming", {"layout": "brick", "depth": 2, "num_adapters": 3}),
    "hamming-butterfly": ("hamming", {"layout": "butterfly"}),
    "hamming-single-order": ("hamming", {"variant": "single_order"}),
    "compound": ("compound", {"blocks": 1}),
    "compound-two-blocks": ("compound", {"blocks": 2, "orders": (1,)}),
    "compound-sum": ("compound", {"blocks": 1, "num_adapters": 2, "combine": "sum"}),
    "compound-magnitude": ("compound", {"blocks": 1, "magnitude": True}),
}


class Stack(nn.Module):
    """Three hidden layers of one shape and a head of another."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(3))
        self.head = nn.Linear(WIDTH, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.tanh(layer(x))
        return self.head(x)


def _model(family: str, options: dict, **config) -> qadapters.QAdapterModel:
    torch.manual_seed(0)
    model = qadapters.get_qadapter_model(
        Stack().double(),
        qadapters.QAdapterConfig(family, "all-linear", options=options, **config),
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the identity init, so every gradient is nonzero
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model


def _adapters(model: qadapters.QAdapterModel) -> list:
    return [layer.get_adapter("default") for layer in model.qadapter_layers().values()]


def _pair(case: str) -> tuple[qadapters.QAdapterModel, qadapters.QAdapterModel]:
    """A model with shared builds and a copy of it whose adapters build alone."""
    model = _model(*CASES[case])
    alone = copy.deepcopy(model)
    alone.share_builds = False
    assert all(a.build_slot is None for a in _adapters(alone))
    return model, alone


@pytest.fixture
def builds(monkeypatch):
    """Counts calls of ``build_from`` per family class."""
    counts: dict[str, int] = {}
    for family, cls in qadapters.families.FAMILIES.items():
        original = cls.build_from

        def counted(self, inputs, dtype, _original=original, _family=family):
            counts[_family] = counts.get(_family, 0) + 1
            return _original(self, inputs, dtype)

        monkeypatch.setattr(cls, "build_from", counted)
    return counts


def _x() -> torch.Tensor:
    return torch.randn(5, WIDTH, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def _loss(out: torch.Tensor) -> torch.Tensor:
    return (out * torch.linspace(-1.0, 1.0, out.shape[-1], dtype=out.dtype)).sum()


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_groups_follow_shape_and_options():
    model = _model("hamming", {})
    hidden, head = _adapters(model)[:3], _adapters(model)[3]
    slots = [a.build_slot for a in hidden]
    assert all(s is not None and s.group is slots[0].group for s in slots)
    assert sorted(s.index for s in slots) == [0, 1, 2] and len(slots[0].group) == 3
    assert head.build_slot is None  # the only adapter of its shape


@pytest.mark.parametrize(
    "family, options, config",
    [
        pytest.param("pauli", {}, {}, id="pauli-builds-nothing"),
        pytest.param("taylor", {}, {}, id="taylor-builds-nothing"),
        pytest.param("hamming", {}, {"quant_bits": 4}, id="quantization-aware"),
    ],
)
def test_adapters_that_never_share(family, options, config):
    model = _model(family, options, **config)
    assert all(a.build_slot is None for a in _adapters(model))


@pytest.mark.parametrize("case", list(CASES))
def test_one_build_gives_the_separate_builds(case, builds):
    model, alone = _pair(case)
    family = CASES[case][0]
    x = _x()
    builds.clear()
    out = model(x)
    assert builds[family] == 2  # the hidden layers' group, and the head alone
    builds.clear()
    want = alone(x)
    assert builds[family] == 4
    torch.testing.assert_close(out, want, atol=1e-12, rtol=1e-12)
    _loss(out).backward()
    _loss(want).backward()
    got, expected = _grads(model), _grads(alone)
    assert got.keys() == expected.keys() and got
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=1e-12, rtol=1e-12, msg=name)


@pytest.mark.parametrize("case", ["hamming-hw", "compound"])
def test_training_steps_match_separate_builds(case):
    model, alone = _pair(case)
    optimizers = [
        torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=0.05)
        for m in (model, alone)
    ]
    for _ in range(3):
        for m, opt in zip((model, alone), optimizers, strict=True):
            opt.zero_grad()
            _loss(m(_x())).backward()
            opt.step()
    for (name, p), q in zip(model.named_parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-10, rtol=1e-10, msg=name)


def _accumulate(model: nn.Module) -> None:
    for _ in range(2):
        _loss(model(_x())).backward()


def _two_forwards_one_backward(model: nn.Module) -> None:
    _loss(model(_x()) + model(_x())).backward()


def _no_grad_first(model: nn.Module) -> None:
    with torch.no_grad():
        model(_x())
    _loss(model(_x())).backward()


def _layer_called_twice(model: nn.Module) -> None:
    layer = model.base_model.hidden[0]
    _loss(layer(torch.tanh(layer(_x())))).backward()


def _changed_between_members(model: nn.Module) -> None:
    hidden = model.base_model.hidden
    h = hidden[0](_x())  # builds for every member
    with torch.no_grad():
        hidden[1].get_adapter("default").build_inputs()[0].mul_(0.5)  # a newer version
    _loss(hidden[2](hidden[1](h))).backward()


def _after_partial_backward(model: nn.Module) -> None:
    hidden = model.base_model.hidden
    _loss(hidden[0](_x())).backward()  # the build's backward has run: its graph is freed
    _loss(hidden[1](_x())).backward()


def _checkpointed(reentrant: bool):
    def run(model: nn.Module) -> None:
        x = _x().requires_grad_(reentrant)
        for layer in model.base_model.hidden:
            x = checkpoint(lambda h, lay=layer: torch.tanh(lay(h)), x, use_reentrant=reentrant)
        _loss(model.base_model.head(x)).backward()

    return run


#: scenario id -> what it does to a model (then compared with separate builds)
SCENARIOS = {
    "gradient-accumulation": _accumulate,
    "two-forwards-one-backward": _two_forwards_one_backward,
    "no-grad-then-grad": _no_grad_first,
    "layer-called-twice": _layer_called_twice,
    "changed-between-members": _changed_between_members,
    "after-a-partial-backward": _after_partial_backward,
    "checkpoint": _checkpointed(False),
    "checkpoint-reentrant": _checkpointed(True),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("case", ["hamming-hw", "compound"])
def test_scenarios_match_separate_builds(case, scenario):
    model, alone = _pair(case)
    SCENARIOS[scenario](model)
    SCENARIOS[scenario](alone)
    got, want = _grads(model), _grads(alone)
    assert got.keys() == want.keys() and got
    for name, grad in want.items():
        torch.testing.assert_close(got[name], grad, atol=1e-12, rtol=1e-12, msg=name)


def test_contexts_that_build_alone(builds):
    model = _model("hamming", {})
    assert may_share()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        assert not may_share()
        builds.clear()
        model(_x())
        assert builds["hamming"] == 4


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_copies_share_among_themselves_and_agree(how):
    model = _model("hamming", {})
    if how == "deepcopy":
        copied = copy.deepcopy(model)
    elif how == "pickle":
        copied = pickle.loads(pickle.dumps(model))
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        copied = torch.load(buffer, weights_only=False)
    mine, theirs = _adapters(model), _adapters(copied)
    assert all(a.build_slot is not None for a in theirs[:3])
    groups = {id(a.build_slot.group) for a in mine[:3] + theirs[:3]}
    assert len(groups) == 2  # each model its own group
    torch.testing.assert_close(copied(_x()), model(_x()), atol=1e-12, rtol=1e-12)


def test_set_adapter_links_only_the_active_adapters():
    model = _model("hamming", {})
    model.add_adapter("other", qadapters.QAdapterConfig("hamming", "all-linear"))
    assert all(a.build_slot is not None for a in _adapters(model)[:3])
    others = [layer.get_adapter("other") for layer in model.qadapter_layers().values()]
    assert all(a.build_slot is None for a in others)
    model.set_adapter("other")
    assert all(a.build_slot is None for a in _adapters(model))
    assert all(a.build_slot is not None for a in others[:3])


def test_a_group_serves_only_its_members():
    model = _model("hamming", {})
    first = _adapters(model)[0]
    stranger = copy.deepcopy(first)
    group = first.build_slot.group
    assert group.outputs(first.build_slot.index, stranger, torch.float64) is None
    assert group.outputs(7, first, torch.float64) is None


def test_members_that_disagree_build_alone(builds):
    model = _model("hamming", {})
    hidden = _adapters(model)[:3]
    hidden[1].float()  # one member's inputs no longer stack with the others'
    builds.clear()
    for a in hidden:
        dtype = a.theta.dtype
        assert a.built(dtype)[0].dtype == dtype
    assert builds["hamming"] == 3


def test_link_builds_clears_and_regroups():
    model = _model("compound", {"blocks": 1})
    adapters = _adapters(model)
    groups = link_builds(adapters[:2])
    assert len(groups) == 1 and isinstance(groups[0], BuildGroup) and len(groups[0]) == 2
    assert adapters[2].build_slot is not None  # not passed: left as it was
    link_builds([adapters[0]])
    assert adapters[0].build_slot is None


def test_share_builds_switch():
    model = _model("hamming", {})
    model.share_builds = False
    assert not model.share_builds and all(a.build_slot is None for a in _adapters(model))
    hidden = model.base_model.hidden
    x = _x()
    first, second = hidden[0](x), hidden[1](x)
    _loss(first).backward()
    _loss(second).backward()  # separate graphs: no retain_graph needed
    model.share_builds = True
    assert all(a.build_slot is not None for a in _adapters(model)[:3])
    first, second = hidden[0](x), hidden[1](x)
    _loss(first).backward(retain_graph=True)  # one shared graph
    _loss(second).backward()


def test_a_member_whose_path_changed_builds_alone(builds):
    model, alone = _pair("compound")
    for m in (model, alone):
        m.base_model.hidden[1].get_adapter("default").path = "two-form"
    builds.clear()
    out = model(_x())
    assert builds["compound"] == 4  # the group no longer agrees: every member builds alone
    torch.testing.assert_close(out, alone(_x()), atol=1e-12, rtol=1e-12)


def test_quantization_enabled_after_linking_builds_alone(builds):
    from qadapters.quantization import enable_qat

    model = _model("hamming", {})
    hidden = _adapters(model)[:3]
    assert all(a.build_slot is not None for a in hidden)
    for a in hidden:
        enable_qat(a, 4, 8)  # parametrized angles are recomputed on every read
    builds.clear()
    model(_x())
    assert builds["hamming"] == 4
