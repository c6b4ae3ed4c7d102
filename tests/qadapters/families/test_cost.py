"""Each family's cost model against measurements of its real forward pass.

Multiply-adds are measured with ``torch.utils.flop_counter.FlopCounterMode`` (matrix products) plus
a dispatch mode counting the elementwise products of two equal-shape float arrays (Note [what a
cost counts]): both exact, so the per-token and build figures must match exactly. Activations are
the tensors autograd saves (``saved_tensors_hooks``), also exact. Build bytes are the float tensors
the forward allocates on an empty batch; the model leaves out vectors the size of the angles
(their cosines, masks, gathered angle copies), so it may be low by that much: the test allows the
measurement to exceed the model by up to 15 %, never to fall below it.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from backends import budget
from qadapters.families import FAMILIES, make_adapter, trainable_count
from qadapters.families.cost import ZERO, Cost, lora_cost

CASES: list[tuple[str, int, int, dict]] = [
    ("pauli", 100, 100, {}),
    ("pauli", 40, 24, {"rank": 3, "layers": 2}),
    ("pauli", 12, 6, {"rank": 5}),
    ("pauli", 36, 5, {"rank": 5, "layers": 0}),
    ("taylor", 12, 20, {}),
    ("taylor", 12, 20, {"order": None}),
    ("taylor", 1, 5, {"rank": 1}),
    ("compound", 8, 20, {"blocks": 1, "orders": (1, 2, 3), "num_adapters": 2}),
    ("compound", 64, 64, {}),
    ("compound", 6, 13, {"blocks": 2, "orders": (1,), "num_adapters": 2, "combine": "sum"}),
    ("compound", 7, 12, {"blocks": 1, "orders": (1, 2), "magnitude": True}),
    ("compound", 7, 12, {"blocks": 1, "num_adapters": 2, "combine": "sum", "magnitude": True}),
    ("hamming", 5, 7, {}),
    ("hamming", 100, 300, {}),
    ("hamming", 6, 6, {"variant": "single_order", "order": 2}),
    ("hamming", 9, 6, {"layout": "brick", "depth": 3, "num_adapters": 1}),
    ("hamming", 10, 3, {"layout": "butterfly", "num_adapters": 3}),
]
IDS = [f"{f}-{i}x{o}-{'-'.join(f'{k}={v}' for k, v in opts.items())}" for f, i, o, opts in CASES]
TOKENS = 3


class _Meter(TorchDispatchMode):
    """Equal-shape float products, and bytes of the float tensors each op newly allocates."""

    def __init__(self) -> None:
        super().__init__()
        self.products = 0
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if (
            func is torch.ops.aten.mul.Tensor
            and out.is_floating_point()
            and out.numel() > 1
            and len(inputs) == 2
            and inputs[0].shape == inputs[1].shape == out.shape
        ):
            self.products += out.numel()
        old = {t.untyped_storage().data_ptr() for t in inputs}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                ptr = t.untyped_storage().data_ptr()
                if ptr not in old:
                    old.add(ptr)
                    self.bytes += t.untyped_storage().nbytes()
        return out


def _measure(adapter, tokens: int) -> tuple[int, int, int]:
    """(multiply-adds, float bytes allocated, activation floats saved) of one forward."""
    x = torch.randn(tokens, adapter.in_features, requires_grad=True)
    base = torch.randn(tokens, adapter.out_features)
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
    with hooks, FlopCounterMode(display=False) as flops, _Meter() as meter:
        adapter(x, base)
    skip = {x.untyped_storage().data_ptr()}
    activation = 0
    for t in saved:
        ptr = t.untyped_storage().data_ptr()
        if t.is_floating_point() and ptr not in skip:
            skip.add(ptr)
            activation += t.untyped_storage().nbytes() // t.element_size()
    return flops.get_total_flops() // 2 + meter.products, meter.bytes, activation


@pytest.fixture(params=CASES, ids=IDS)
def measured(request):
    family, d_in, d_out, options = request.param
    torch.manual_seed(0)
    adapter = make_adapter(family, d_in, d_out, **options)
    _measure(adapter, 0)  # fills the caches of index tables
    empty, full = _measure(adapter, 0), _measure(adapter, TOKENS)
    return FAMILIES[family].cost(d_in, d_out, **options), empty, full


def test_forward_macs_per_token(measured) -> None:
    cost, empty, full = measured
    assert (full[0] - empty[0]) == TOKENS * cost.forward_macs


def test_build_macs(measured) -> None:
    cost, empty, _ = measured
    assert empty[0] == cost.build_macs


def test_activation_floats_per_token(measured) -> None:
    cost, empty, full = measured
    assert (full[2] - empty[2]) == TOKENS * cost.activation_floats


def test_build_bytes(measured) -> None:
    cost, empty, _ = measured
    assert cost.build_bytes <= empty[1] <= 1.15 * cost.build_bytes


def test_cost_sums_and_lora() -> None:
    a = lora_cost(768, 768, 8)
    assert a == Cost(12_288, 0, 8, 0)
    assert a + a == 2 * a == a * 2 == Cost(24_576, 0, 16, 0)
    assert a + ZERO == a


def test_wide_hamming_head_refused_before_building() -> None:
    # a Llama-width LM head: 16 wires, of which the kept entries alone need over 4 GiB to build
    cost = FAMILIES["hamming"].cost(4096, 50257)
    assert cost.build_bytes > budget.max_bytes()
    match = r"a hamming adapter on a 4096 → 50257 layer needs .* GiB, over the budget of 4\.0 GiB"
    with pytest.raises(MemoryError, match=match):
        make_adapter("hamming", 4096, 50257)
    with budget.limit(cost.build_bytes):  # the figure is what the check uses
        assert trainable_count("hamming", 4096, 50257) == 242


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_budget_refuses_any_family_past_its_build(family: str) -> None:
    cost = FAMILIES[family].cost(64, 64)
    with budget.limit(cost.build_bytes):
        make_adapter(family, 64, 64)
    with budget.limit(cost.build_bytes - 1), pytest.raises(MemoryError, match="64 → 64 layer"):
        make_adapter(family, 64, 64)


NORMAL = [(384, 384), (384, 1536), (1536, 384), (768, 768), (768, 2304), (768, 3072), (3072, 768)]


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize(("d_in", "d_out"), NORMAL)
def test_normal_layers_fit_the_default_budget(family: str, d_in: int, d_out: int) -> None:
    """MiniLM, BERT and GPT-2 layers build under 4 GiB (checked from sizes, as the constructor
    checks them)."""
    assert FAMILIES[family].cost(d_in, d_out).build_bytes < budget.DEFAULT_MAX_BYTES / 4


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gpt2_widest_layer_builds(family: str) -> None:
    adapter = make_adapter(family, 768, 3072)
    assert adapter.num_trainable() == trainable_count(family, 768, 3072)


def test_cost_checks_options_like_the_constructor() -> None:
    with pytest.raises(ValueError, match=r"1\.\.8 for a 8 → 16 layer"):
        FAMILIES["pauli"].cost(8, 16, rank=9)
