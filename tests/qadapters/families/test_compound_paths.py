"""The compound family's two compute paths (Note [two compute paths]): the two-form path equals
the dense one in output, gradients, merge and unmerge; the cost model picks the path, and its
figures match a measurement of the two-form forward; the two-form path compiles whole."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import qadapters
from qadapters.cli.count import compute_path
from qadapters.families import FAMILIES
from qadapters.families.compound import CompoundAdapter, order2_path
from qadapters.families.compound_tiling import block_qubits
from tests.qadapters.families.test_cost import _measure

#: id -> (out_features, options) where both paths apply (one adapter, or a product)
CASES: dict[str, tuple[int, dict]] = {
    "single-two-blocks": (40, {"blocks": 2}),
    "product-of-3": (40, {"blocks": 1, "num_adapters": 3}),
    "orders-1-2-3-product-magnitude": (
        30, {"blocks": 1, "orders": (1, 2, 3), "num_adapters": 2, "magnitude": True},
    ),
    "order-2-only-padded": (23, {"blocks": 2, "orders": (2,)}),
    "single-magnitude": (36, {"blocks": 3, "magnitude": True}),
}  # fmt: skip
D_IN = 6


def _adapter(out_features: int, options: dict) -> CompoundAdapter:
    torch.manual_seed(0)
    a = CompoundAdapter(D_IN, out_features, **options).double()
    with torch.no_grad():  # off the identity init, so that every check means something
        for p in a.parameters():
            p.normal_(0, 0.5)
    return a


def _run(a: CompoundAdapter, path: str, out_features: int) -> dict[str, torch.Tensor]:
    a.path = path
    a.zero_grad(set_to_none=True)
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(2, 5, out_features, generator=gen, dtype=torch.float64)
    base.requires_grad_()
    y = a(None, base)
    (y * torch.randn(y.shape, generator=gen, dtype=torch.float64)).sum().backward()
    w = torch.randn(out_features, D_IN, generator=gen, dtype=torch.float64)
    b = torch.randn(out_features, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        mw, mb = a.merge(w, b)
        uw, ub = a.unmerge(mw, mb)
    out = {"y": y.detach(), "base.grad": base.grad, "merged w": mw, "merged b": mb}
    out |= {"unmerged w - w": uw - w, "unmerged b - b": ub - b}
    return out | {f"{n}.grad": p.grad for n, p in a.named_parameters()}


@pytest.mark.parametrize(("out_features", "options"), CASES.values(), ids=CASES.keys())
def test_two_form_path_equals_dense(out_features, options) -> None:
    a = _adapter(out_features, options)
    dense, two = _run(a, "dense", out_features), _run(a, "two-form", out_features)
    assert dense.keys() == two.keys()
    for name, want in dense.items():
        assert want is not None
        torch.testing.assert_close(two[name], want, atol=1e-10, rtol=1e-10, msg=name)
    assert float(dense["y"].sub(_run(_adapter(out_features, options), "dense", out_features)["y"])
                 .abs().max()) == 0  # fmt: skip
    torch.testing.assert_close(dense["unmerged w - w"], torch.zeros_like(dense["merged w"]),
                               atol=1e-10, rtol=0)  # fmt: skip


def test_merge_uses_the_inverse_rotation_on_the_two_form_path() -> None:
    a = _adapter(40, {"blocks": 1, "num_adapters": 2})
    a.path = "two-form"
    x = torch.randn(3, 40, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(a.mix(a.mix(x), inverse=True), x, atol=1e-12, rtol=0)
        m = a.block_diagonal(torch.float64)[0]
        torch.testing.assert_close(a.mix(x)[:, : m.shape[0]], x[:, : m.shape[0]] @ m,
                                   atol=1e-12, rtol=0)  # fmt: skip


def test_a_sum_keeps_the_dense_path() -> None:
    a = _adapter(40, {"blocks": 1, "num_adapters": 2, "combine": "sum"})
    assert a.path == "dense"
    a.path = "two-form"
    with pytest.raises(ValueError, match="expected one adapter or combine='product'"):
        a(None, torch.randn(2, 40, dtype=torch.float64))
    a.path = "neither"
    with pytest.raises(ValueError, match="expected one of"):
        a(None, torch.randn(2, 40, dtype=torch.float64))


#: id -> (out_features, options, path): the cost model's choice (Note [two compute paths])
CHOICES = {
    "minilm-384": (384, {}, "dense"),
    "bert-768": (768, {}, "dense"),
    "gpt2-qkv-2304": (2304, {}, "dense"),  # 153 blocks of 5 wires
    "gpt2-qkv-2304-r3": (2304, {"blocks": 3}, "two-form"),
    "gpt2-qkv-product": (2304, {"blocks": 3, "num_adapters": 2}, "two-form"),
    "gpt2-qkv-sum": (2304, {"blocks": 3, "num_adapters": 2, "combine": "sum"}, "dense"),
    "order-1-only": (2304, {"orders": (1,), "blocks": 48}, "dense"),
    "3072-ffn-r3": (3072, {"blocks": 3}, "two-form"),
}


@pytest.mark.parametrize(("out_features", "options", "path"), CHOICES.values(), ids=CHOICES.keys())
def test_cost_model_choice(out_features, options, path) -> None:
    opts = FAMILIES["compound"].layer_options(768, out_features, options)[0]
    n = block_qubits(out_features, opts.blocks, opts.orders)
    assert order2_path(n, opts.orders, opts.num_adapters, opts.combine) == path
    assert ("two-form" in compute_path("compound", 768, out_features, **options)) == (
        path == "two-form"
    )


@pytest.mark.parametrize(
    ("out_features", "options"), [(384, {}), (2304, {}), (2304, {"blocks": 3})], ids=repr
)
def test_cost_of_follows_the_path(out_features, options) -> None:
    """Per token: ``r (n² + C(n,2)²)`` dense, ``r (n² + 2n³)`` on the two-form path."""
    a = CompoundAdapter(768, out_features, **options)
    n, r = a.n_qubits, a.blocks
    order2 = 2 * n**3 if a.path == "two-form" else (n * (n - 1) // 2) ** 2
    assert CompoundAdapter.cost(768, out_features, **options).forward_macs == r * (n * n + order2)


#: (d_in, d_out, options) whose default path is the two-form one (n >= 28)
TWO_FORM_LAYERS = [(8, 406, {"blocks": 1}), (8, 420, {"blocks": 1, "num_adapters": 2})]


@pytest.mark.parametrize(("d_in", "d_out", "options"), TWO_FORM_LAYERS)
def test_cost_model_matches_a_measured_two_form_forward(d_in, d_out, options) -> None:
    torch.manual_seed(0)
    adapter = CompoundAdapter(d_in, d_out, **options)
    assert adapter.path == "two-form"
    cost = CompoundAdapter.cost(d_in, d_out, **options)
    _measure(adapter, 0)  # fills the caches of index tables
    empty, full = _measure(adapter, 0), _measure(adapter, 3)
    assert full[0] - empty[0] == 3 * cost.forward_macs
    assert empty[0] == cost.build_macs
    assert full[2] - empty[2] == 3 * cost.activation_floats
    assert cost.build_bytes <= empty[1] <= 1.15 * cost.build_bytes


def _model(options: dict, path: str) -> nn.Module:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16))
    model = qadapters.get_qadapter_model(
        base, qadapters.QAdapterConfig("compound", ["0", "2"], options=options)
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
    for m in model.modules():
        if isinstance(m, CompoundAdapter):
            m.path = path
    return model


def _step(model: nn.Module, x: torch.Tensor, run=None):
    for p in model.parameters():
        p.grad = None
    out = (model if run is None else run)(x)
    (out * torch.linspace(-1.0, 1.0, out.shape[-1])).sum().backward()
    return out.detach(), {
        n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }


COMPILED = {"single": {"blocks": 1}, "product": {"blocks": 1, "num_adapters": 2, "magnitude": True}}


@pytest.mark.parametrize("options", COMPILED.values(), ids=COMPILED.keys())
def test_two_form_path_compiles_fullgraph(options) -> None:
    torch._dynamo.reset()
    model = _model(options, "two-form")
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(2))
    want, want_grads = _step(model, x)
    got, got_grads = _step(model, x, torch.compile(model, fullgraph=True, backend="inductor"))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert got_grads.keys() == want_grads.keys() and want_grads
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-4, rtol=1e-4, msg=name)


def test_two_form_path_under_bf16_autocast() -> None:
    model = _model({"blocks": 1}, "two-form")
    x = torch.randn(6, 16, generator=torch.Generator().manual_seed(3))
    want, want_grads = _step(model, x)
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16
    (out.float() * torch.linspace(-1.0, 1.0, 16)).sum().backward()
    assert float((out.detach().float() - want).norm() / want.norm()) < 3e-2
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert p.grad.dtype == torch.float32
            assert float((p.grad - want_grads[name]).norm() / want_grads[name].norm()) < 1e-1
