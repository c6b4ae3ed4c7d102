"""Adapters on frozen bitsandbytes bases: recognition, dequantisation, training, merge, refusal.

One table of quantized layer kinds and one of families drive every check; a tiny two-layer
model has its linears replaced by bitsandbytes layers loaded from the float weights.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable

import pytest
import torch
from torch import nn

from qadapters.families import make_adapter
from qadapters.families.base import Adapter
from qadapters.quantized_bases import (
    _decode_4bit,
    dequantized_weight,
    describe,
    is_quantized_linear,
    merge_into,
    quantized_linear_shape,
    refusal_reason,
    restore,
    snapshot,
)

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None
needs_bnb = pytest.mark.skipif(
    not HAS_BNB, reason="bitsandbytes is not installed (it is pinned in requirements.lock)"
)
pytestmark = pytest.mark.filterwarnings("ignore:MatMul8bitLt:UserWarning")

#: kind -> (constructor kwargs, largest |dequantised − float| relative to max |W|, largest
#: relative Frobenius error of a requantised merge). The first bound is half the widest gap
#: between code levels, scaled to [-1, 1]: 1/254 for int8 rows, (1 − 0.696)/2 for nf4,
#: (1 − 2/3)/2 for fp4, plus 0.05 for 4-bit (bitsandbytes' CPU quantizer lands up to 3% of the
#: block absmax beyond the nearest level).
KINDS: dict[str, tuple[dict, float, float]] = {
    "int8": ({}, 0.005, 0.02),
    "nf4": ({"quant_type": "nf4"}, 0.2, 0.25),
    "fp4": ({"quant_type": "fp4"}, 0.22, 0.3),
    "nf4-flat-stats": ({"quant_type": "nf4", "compress_statistics": False}, 0.2, 0.25),
    "nf4-bf16-compute": ({"quant_type": "nf4", "compute_dtype": torch.bfloat16}, 0.2, 0.25),
}
FAMILIES: list[tuple[str, dict]] = [
    ("pauli", {"rank": 2}),
    ("taylor", {"rank": 2, "intrinsic_rank": 1}),
    ("compound", {"blocks": 2, "orders": (1, 2)}),
    ("hamming", {"num_adapters": 2}),
]
FAMILY_IDS = [f for f, _ in FAMILIES]
SIZES = [(64, 128), (128, 64)]  # (in, out) of the tiny model's two layers


def quantized(linear: nn.Linear, kind: str) -> nn.Module:
    """A bitsandbytes copy of ``linear`` (quantized on the CPU by ``.to("cpu")``)."""
    import bitsandbytes as bnb

    options = KINDS[kind][0]
    if kind == "int8":
        layer = bnb.nn.Linear8bitLt(
            linear.in_features, linear.out_features, has_fp16_weights=False, **options
        )
    else:
        options = {"compute_dtype": torch.float32, **options}
        layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features, **options)
    layer.load_state_dict(linear.state_dict())
    layer = layer.to("cpu")
    for p in layer.parameters():
        p.requires_grad_(False)
    return layer


def tiny_model(kind: str, seed: int = 0) -> tuple[nn.Sequential, nn.Sequential]:
    """``(float model, the same model with bitsandbytes linears)``."""
    torch.manual_seed(seed)
    float_model = nn.Sequential(nn.Linear(*SIZES[0]), nn.Tanh(), nn.Linear(*SIZES[1]))
    quant = nn.Sequential(
        quantized(float_model[0], kind), nn.Tanh(), quantized(float_model[2], kind)
    )
    return float_model, quant


def adapter_for(layer: nn.Module, family: str, options: dict, seed: int = 1) -> Adapter:
    torch.manual_seed(seed)
    adapter = make_adapter(family, *quantized_linear_shape(layer), **options)
    adapter.reset_away_from_identity(0.3)
    return adapter


class Adapted(nn.Module):
    """A frozen (quantized) layer with an adapter: ``adapter(x, base(x))``."""

    def __init__(self, base: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.base, self.adapter = base, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(x, self.base(x))


def inputs(n_in: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(6, n_in, generator=torch.Generator().manual_seed(seed))


# --- recognition and dequantisation ---------------------------------------------------------------
@needs_bnb
@pytest.mark.parametrize("kind", list(KINDS))
def test_recognised_with_shape_and_dequantised_weight(kind: str) -> None:
    float_model, quant = tiny_model(kind)
    tolerance = KINDS[kind][1]
    for ref, layer in ((float_model[0], quant[0]), (float_model[2], quant[2])):
        assert is_quantized_linear(layer) and not is_quantized_linear(ref)
        assert quantized_linear_shape(layer) == (ref.in_features, ref.out_features)
        w = dequantized_weight(layer)
        assert w.dtype == torch.float32 and w.shape == ref.weight.shape
        # each block (or row) is scaled by its own absmax, at most the whole weight's
        w0 = ref.weight.detach()
        err = float((w - w0).abs().max())
        assert 0 < err <= tolerance * float(w0.abs().max())
        x = inputs(ref.in_features)
        compute = layer(x)  # the layer computes with exactly this weight
        expected = x @ w.T + layer.bias.float()
        atol = 1e-5 if kind in ("int8", "nf4", "fp4", "nf4-flat-stats") else 5e-2
        torch.testing.assert_close(compute.float(), expected, atol=atol, rtol=0)
    assert not is_quantized_linear(quant) and not is_quantized_linear(quant[1])


@needs_bnb
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "int8"])
def test_dequantised_weight_survives_cpu_packing(kind: str) -> None:
    """An eval forward without gradient may repack a 4-bit weight for the CPU kernel; the
    dequantised weight is still the one the layer computes with."""
    _, quant = tiny_model(kind)
    layer = quant[2]
    before = dequantized_weight(layer)
    x = inputs(layer.in_features)
    layer.eval()
    with torch.no_grad():
        y = layer(x)
    after = dequantized_weight(layer)
    # packing stores the block absmax in bfloat16: a relative change of at most 2^-8
    torch.testing.assert_close(after, before, atol=float(before.abs().max()) * 2**-8, rtol=0)
    expected = x @ after.T + layer.bias.float()
    torch.testing.assert_close(y.float(), expected, atol=5e-2, rtol=0)


@needs_bnb
@pytest.mark.parametrize("in_features", [32, 96])
def test_4bit_rows_the_kernel_misreads_are_refused(in_features: int) -> None:
    """Rows that are not whole blocks of 64: where bitsandbytes' CPU kernel decodes them
    differently from the stored codes, reading and merging are refused; where it does not, the
    weight is read as usual."""
    torch.manual_seed(0)
    ref = nn.Linear(in_features, 64)
    with torch.no_grad():  # row scales over two decades, so a misplaced absmax shows
        ref.weight.mul_(torch.logspace(-2, 0, 64)[:, None] * 10)
    layer = quantized(ref, "nf4")
    x = inputs(in_features)
    with torch.no_grad():
        y = layer(x)
    try:
        w = dequantized_weight(layer)
    except ValueError as err:
        assert f"decodes this {in_features} → 64 weight wrongly" in str(err)
        # the claim holds: the stored codes mean a weight close to the float one, and the
        # layer's outputs are far from what they mean
        meant = _decode_4bit(layer.weight.data, layer.weight.quant_state)
        with torch.no_grad():
            rounding = float((x @ meant.T + layer.bias - ref(x)).abs().max())
            assert float((y - ref(x)).abs().max()) > 3 * rounding
        codes = layer.weight.data.clone()
        with pytest.raises(ValueError, match="wrongly"):
            merge_into(layer, ref.weight.detach(), ref.bias.detach())
        assert torch.equal(layer.weight.data, codes)
    else:
        torch.testing.assert_close(y, x @ w.T + layer.bias, atol=1e-4, rtol=0)


# --- training on a frozen quantized base ------------------------------------------------------
@needs_bnb
@pytest.mark.parametrize(("family", "options"), FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_adapters_train_on_quantized_model(kind: str, family: str, options: dict) -> None:
    _, quant = tiny_model(kind)
    model = nn.Sequential(
        Adapted(quant[0], adapter_for(quant[0], family, options)),
        nn.Tanh(),
        Adapted(quant[2], adapter_for(quant[2], family, options, seed=3)),
    )
    x = inputs(SIZES[0][0])
    base = quant(x)
    out = model(x)
    assert out.shape == base.shape and out.dtype == torch.float32
    assert float((out - base).detach().abs().max()) > 1e-3  # the adapters act
    (out.float() ** 2).sum().backward()
    for i in (0, 2):
        grads = [p.grad for p in model[i].adapter.parameters() if p.requires_grad]
        assert grads and all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
        # the first layer's gradient crossed the second, quantized, layer
        assert sum(float(g.abs().sum()) for g in grads) > 0
        for p in model[i].base.parameters():
            assert p.grad is None and not p.requires_grad


# --- merging: dequantise, merge, requantise ---------------------------------------------------
@needs_bnb
@pytest.mark.parametrize(("family", "options"), FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_merge_requantises_with_reported_error(kind: str, family: str, options: dict) -> None:
    _, quant = tiny_model(kind)
    layer = quant[2]
    adapter = adapter_for(layer, family, options)
    x = inputs(layer.in_features)
    with torch.no_grad():
        base_before = layer(x)
        adapted = adapter(x, base_before)
        weight_before = dequantized_weight(layer)
        exact_w, exact_b = adapter.merge(weight_before.clone(), layer.bias.detach().float().clone())
    saved = snapshot(layer)

    report = merge_into(layer, exact_w, exact_b)

    written = dequantized_weight(layer)
    assert report.layer == describe(layer)
    assert report.max_abs_error == pytest.approx(float((written - exact_w).abs().max()))
    relative = float(
        torch.linalg.vector_norm(written - exact_w) / torch.linalg.vector_norm(exact_w)
    )
    assert report.relative_error == pytest.approx(relative)
    assert 0 < report.relative_error <= KINDS[kind][2]
    assert "requantised" in str(report) and describe(layer) in str(report)
    # the merged layer's outputs differ from the adapted ones only by the reported rounding
    with torch.no_grad():
        merged = layer(x).float()
    bound = float(x.abs().sum(-1).max()) * report.max_abs_error
    kernel = 1e-4 if kind in ("int8", "nf4", "fp4", "nf4-flat-stats") else 0.1
    assert float((merged - adapted.float()).abs().max()) <= bound + kernel

    restore(layer, saved)
    assert torch.equal(dequantized_weight(layer), weight_before)
    with torch.no_grad():
        assert torch.equal(layer(x), base_before)


@needs_bnb
def test_restore_after_the_first_forward_moved_int8_state() -> None:
    """Linear8bitLt moves its codes and scales to ``layer.state`` on the first forward; a
    snapshot taken afterwards still restores them."""
    _, quant = tiny_model("int8")
    layer = quant[0]
    x = inputs(layer.in_features)
    before = layer(x)
    assert layer.weight.SCB is None and layer.state.SCB is not None
    saved = snapshot(layer)
    w = dequantized_weight(layer)
    merge_into(layer, w + 0.1, layer.bias)
    restore(layer, saved)
    assert torch.equal(layer(x), before)


# --- refusals -------------------------------------------------------------------------------------
def _foreign_layer(module_path: str, on_weight: bool) -> nn.Module:
    """A stand-in for another library's quantized linear: its class (or its weight's class) is
    declared in ``module_path``; nothing is imported."""
    if on_weight:
        weight_cls = type("Int8Tensor", (torch.Tensor,), {"__module__": module_path})
        layer = nn.Linear(4, 4)
        layer.__dict__["weight"] = weight_cls()  # what a tensor-subclass weight looks like
        del layer._parameters["weight"]
        return layer
    return type("QLinear", (nn.Linear,), {"__module__": module_path})(4, 4)


FOREIGN = [
    ("torchao.quantization.quantize_.workflows", True, "torchao"),
    ("optimum.quanto.nn.qlinear", False, "optimum-quanto"),
    ("hqq.core.quantize", False, "hqq"),
]


@pytest.mark.parametrize(("path", "on_weight", "library"), FOREIGN, ids=[f[2] for f in FOREIGN])
def test_other_libraries_are_named_and_refused(path: str, on_weight: bool, library: str) -> None:
    layer = _foreign_layer(path, on_weight)
    reason = refusal_reason(layer)
    assert reason is not None and library in reason and "bitsandbytes" in reason
    assert not is_quantized_linear(layer)
    for call in (quantized_linear_shape, dequantized_weight, snapshot):
        with pytest.raises(TypeError, match=library):
            call(layer)
    with pytest.raises(TypeError, match=library):
        merge_into(layer, torch.zeros(4, 4), torch.zeros(4))


@pytest.mark.parametrize(
    "module", [nn.Linear(3, 2), nn.Conv1d(2, 2, 1), _foreign_layer("torchaudio.models", False)]
)
def test_plain_layers_are_neither_supported_nor_refused(module: nn.Module) -> None:
    assert not is_quantized_linear(module) and refusal_reason(module) is None
    with pytest.raises(TypeError, match="expected a bitsandbytes Linear8bitLt or Linear4bit"):
        dequantized_weight(module)


def _nan_weight(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    w = dequantized_weight(layer)
    w[0, 0] = float("nan")
    return w, layer.bias


#: name -> (kind, (layer -> merge arguments), error message pattern)
BAD_MERGES: dict[str, tuple[str, Callable[[nn.Module], tuple], str]] = {
    "nan-weight": ("nf4", _nan_weight, "NaN or infinity; the layer is unchanged"),
    "inf-bias": ("int8", lambda q: (dequantized_weight(q), q.bias + float("inf")), "NaN or inf"),
    "transposed": ("int8", lambda q: (dequantized_weight(q).T, q.bias), r"\(out, in\)"),
    "bias-dropped": ("nf4", lambda q: (dequantized_weight(q), None), "has a bias; found none"),
    "bias-shape": ("fp4", lambda q: (dequantized_weight(q), q.bias[:-1]), "bias of shape"),
}


@needs_bnb
@pytest.mark.parametrize("case", list(BAD_MERGES))
def test_bad_merges_are_refused_and_change_nothing(case: str) -> None:
    kind, arguments, message = BAD_MERGES[case]
    _, quant = tiny_model(kind)
    layer = quant[2]
    before, bias = dequantized_weight(layer), layer.bias.detach().clone()
    with pytest.raises(ValueError, match=message):
        merge_into(layer, *arguments(layer))
    assert torch.equal(dequantized_weight(layer), before) and torch.equal(layer.bias, bias)


@needs_bnb
def test_layers_that_are_not_frozen_quantized_bases_are_refused() -> None:
    import bitsandbytes as bnb

    trainable_int8 = bnb.nn.Linear8bitLt(8, 8, has_fp16_weights=True).to("cpu")
    with pytest.raises(ValueError, match="has_fp16_weights=True"):
        dequantized_weight(trainable_int8)
    with pytest.raises(ValueError, match="has_fp16_weights=True"):
        merge_into(trainable_int8, torch.zeros(8, 8), torch.zeros(8))
    never_quantized = bnb.nn.Linear4bit(8, 64)  # not moved to a device yet
    with pytest.raises(ValueError, match="never quantized"):
        dequantized_weight(never_quantized)


# --- no import unless the model holds such a layer --------------------------------------------
def test_recognition_imports_no_quantization_library() -> None:
    code = (
        "import sys, torch\n"
        "from qadapters import quantized_bases as qb\n"
        "m = torch.nn.Linear(2, 2)\n"
        "assert not qb.is_quantized_linear(m) and qb.refusal_reason(m) is None\n"
        "loaded = [n for n in ('bitsandbytes', 'torchao', 'optimum', 'hqq') if n in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- end to end through get_qadapter_model ------------------------------------------------
@needs_bnb
@pytest.mark.parametrize(("family", "options"), FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("kind", ["int8", "nf4"])
@pytest.mark.filterwarnings("ignore:merged into bitsandbytes:UserWarning")
def test_injected_adapters_train_merge_unmerge_and_unload(kind, family, options) -> None:
    from qadapters import QAdapterConfig, get_qadapter_model
    from qadapters.layers import QAdapterLinear

    _, quant = tiny_model(kind)
    x = inputs(SIZES[0][0])
    with torch.no_grad():
        base_out = quant(x)
    bases = {i: quant[i] for i in (0, 2)}  # the injection wraps them in place
    weights = {i: dequantized_weight(b).clone() for i, b in bases.items()}
    model = get_qadapter_model(quant, QAdapterConfig(family, ["0", "2"], options=options))
    for layer in model.qadapter_layers().values():
        assert isinstance(layer, QAdapterLinear)
        layer.adapter.reset_away_from_identity(0.3)
    out = model(x)
    (out**2).sum().backward()
    assert all(
        p.grad is not None for n, p in model.named_parameters() if p.requires_grad
    ) and any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        adapted = model(x)
        model.merge()
        reports = [layer.merge_report for layer in model.qadapter_layers().values()]
        assert all(r is not None and 0 < r.relative_error <= KINDS[kind][2] for r in reports)
        assert float((model(x) - adapted).abs().max()) < float((adapted - base_out).abs().max())
        model.unmerge()
        for i, b in bases.items():
            assert torch.equal(dequantized_weight(b), weights[i])
        plain = model.unload()
        assert torch.equal(plain(x), base_out)
