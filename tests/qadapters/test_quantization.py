"""QAT: codes, packing, straight-through gradients, storage bytes, exact reload."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors import safe_open
from torch import nn

from backends import budget
from qadapters.config import QAdapterConfig
from qadapters.model import QAdapterModel, get_qadapter_model
from qadapters.quantization import (
    QAT_BYTES_PER_ANGLE,
    AngleQuantizer,
    Quantized,
    adapter_nbytes,
    dequantize,
    enable_qat,
    pack_codes,
    qat_nbytes,
    quantize,
    quantized_nbytes,
    quantizers,
    storage_bits,
    unpack_codes,
)

BITS = [1, 2, 3, 4, 8]
#: family, options, number of angles per layer (16 → 16 layers)
FAMILY_CASES = [
    ("pauli", {"rank": 2}),
    ("taylor", {"rank": 2, "intrinsic_rank": 1}),
    ("compound", {"blocks": 2, "orders": [1, 2]}),
    ("hamming", {"num_adapters": 2}),
]


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize(("n", "group"), [(1, 4), (7, 3), (64, 64), (100, 32)])
def test_quantize_grid_and_error(bits, n, group) -> None:
    x = torch.randn(n, generator=torch.Generator().manual_seed(bits * 100 + n)) * 2
    q = quantize(x, bits, group)
    assert q.codes.dtype == torch.int64 and q.codes.shape == (n,)
    assert int(q.codes.min()) >= 0 and int(q.codes.max()) <= 2**bits - 1
    assert q.scale.dtype == q.zero.dtype == torch.float16
    assert q.scale.numel() == math.ceil(n / group)
    err = (dequantize(q) - x).abs()
    step = q.scale.float().repeat_interleave(group)[:n]
    assert bool((err <= step / 2 + 2e-3 * x.abs().clamp(min=1)).all())
    assert q.nbytes == math.ceil(n * bits / 8) + 4 * math.ceil(n / group)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("n", [1, 5, 8, 13, 64])
def test_pack_round_trip(bits, n) -> None:
    codes = torch.randint(0, 2**bits, (n,), generator=torch.Generator().manual_seed(n))
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(n * bits / 8)
    assert torch.equal(unpack_codes(packed, bits, n), codes)


def test_pack_errors_and_bad_bits() -> None:
    with pytest.raises(ValueError, match="expected 2 packed uint8 bytes"):
        unpack_codes(torch.zeros(3, dtype=torch.uint8), 4, 4)
    with pytest.raises(ValueError, match=r"bits: expected an int in \[1, 2, 3, 4, 8\]; found 5"):
        quantize(torch.ones(3), 5, 4)
    with pytest.raises(ValueError, match=r"bits: .*; found 4.0 \(a float\)"):
        quantize(torch.ones(3), 4.0, 4)
    with pytest.raises(ValueError, match="group: expected a positive int; found 0"):
        AngleQuantizer(4, 0)
    with pytest.raises(ValueError, match=r"quant_bits: expected None or an int in \[1, 2, 3, 4, 8"):
        QAdapterConfig("pauli", ["q"], quant_bits=6)


@pytest.mark.parametrize(
    ("n", "bits", "group", "expected"),
    [(1, 1, 1, 1 + 4), (100, 4, 32, 50 + 16), (33, 3, 32, 13 + 8), (64, 8, 64, 64 + 4),
     (0, 2, 8, 0)],
)
def test_quantized_nbytes_is_the_one_storage_formula(n, bits, group, expected) -> None:
    assert quantized_nbytes(n, bits, group) == expected
    if n:  # what a quantized tensor occupies: its packed codes and an FP16 pair per group
        q = quantize(torch.linspace(-1, 1, n), bits, group)
        assert q.nbytes == expected == len(pack_codes(q.codes, bits)) + 4 * q.scale.numel()
    if n % group == 0 and n * bits % 8 == 0 and n:  # no rounding: exactly b + 32/g bits each
        assert 8 * expected / n == storage_bits(bits, group)


def test_constant_group_and_storage_bits() -> None:
    q = quantize(torch.full((5,), 0.25), 2, 4)
    assert torch.equal(dequantize(q), torch.full((5,), 0.25))
    assert storage_bits(4, 32) == 5.0 and storage_bits(1, 64) == 1.5


def test_straight_through_gradient() -> None:
    latent = torch.randn(10, requires_grad=True)
    out = AngleQuantizer(2, 4)(latent)
    assert torch.equal(out.detach(), dequantize(quantize(latent, 2, 4)))
    (out * torch.arange(10.0)).sum().backward()
    assert torch.equal(latent.grad, torch.arange(10.0))


def _model(family, options, bits, group=8) -> QAdapterModel:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16))
    cfg = QAdapterConfig(family, ["0", "2"], options=options, quant_bits=bits, quant_group=group)
    model = get_qadapter_model(base, cfg)
    torch.manual_seed(1)
    for layer in model.qadapter_layers().values():
        layer.adapter.reset_away_from_identity(0.4)
    return model


@pytest.mark.parametrize(("family", "options"), FAMILY_CASES, ids=[f for f, _ in FAMILY_CASES])
@pytest.mark.parametrize("bits", [3, 8])
def test_qat_families_save_codes_and_reload_exactly(family, options, bits, tmp_path) -> None:
    model = _model(family, options, bits)
    for layer in model.qadapter_layers().values():
        adapter = layer.adapter
        qs = quantizers(adapter)
        assert set(qs) == set(adapter.angle_names)
        for name, (_, latent) in qs.items():  # forward values lie on the b-bit grid
            value = getattr(adapter, name).detach().reshape(-1)
            assert torch.equal(value, dequantize(quantize(latent, bits, 8)).reshape(-1))
            for chunk in value.split(8):
                assert chunk.unique().numel() <= 2**bits
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    y = model(x)
    y.sum().backward()  # straight-through: every latent angle receives a gradient
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "adapter_model.safetensors"), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for layer_name, layer in model.qadapter_layers().items():
        for name, (_, latent) in quantizers(layer.adapter).items():
            key = f"{layer_name}.{layer.adapter_attr}.{name}"
            assert key not in tensors and key + ".parametrizations" not in str(tensors)
            assert tensors[key + ".qcodes"].dtype == torch.uint8
            assert tensors[key + ".qcodes"].numel() == math.ceil(latent.numel() * bits / 8)
            assert tensors[key + ".qscale"].dtype == tensors[key + ".qzero"].dtype == torch.float16
            assert tensors[key + ".qscale"].numel() == math.ceil(latent.numel() / 8)
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16))
    loaded = QAdapterModel.from_pretrained(base, tmp_path)
    assert torch.equal(loaded(x), y)
    torch.testing.assert_close(loaded.merge_and_unload()(x), y, atol=1e-5, rtol=1e-5)


def test_reload_is_exact_where_requantizing_is_not(tmp_path) -> None:
    # A group with a tiny range far from zero: FP16 rounding of `zero` moves codes on re-quantizing.
    x = 3.0 + torch.linspace(0, 2e-3, 16)
    q = quantize(x, 8, 16)
    deq = dequantize(q)
    assert not torch.equal(dequantize(quantize(deq, 8, 16)), deq)
    qz = AngleQuantizer(8, 16)
    qz.pin(q, deq)
    assert torch.equal(qz(deq.clone()), deq)  # pinned while the latent is unchanged
    assert not torch.equal(qz(deq + 1e-3), deq + 1e-3)  # a new latent unpins
    assert qz._pinned is None


def test_bytes_reported(capsys) -> None:
    model = _model("compound", {"blocks": 2, "orders": [1, 2]}, bits=4, group=8)
    (layer,) = list(model.qadapter_layers().values())[:1]
    n = layer.adapter.theta.numel()
    assert adapter_nbytes(layer.adapter) == math.ceil(n * 4 / 8) + 4 * math.ceil(n / 8)
    model.print_trainable_parameters()
    out = capsys.readouterr().out
    assert f"adapter bytes: {model.adapter_nbytes():,d} (QAT 4-bit, group 8: 8 bits/angle)" in out


def test_quantized_dataclass_shape() -> None:
    q = quantize(torch.arange(6.0).reshape(2, 3), 3, 4)
    assert isinstance(q, Quantized) and dequantize(q).shape == (2, 3)


@pytest.mark.parametrize("n", [1, 7, 64])
@pytest.mark.parametrize("bits", [2, 8])
def test_a_group_larger_than_the_tensor_is_one_unpadded_group(n, bits) -> None:
    x = torch.randn(n, generator=torch.Generator().manual_seed(n))
    huge, exact_fit = quantize(x, bits, 10**9), quantize(x, bits, n)
    assert huge.group == 10**9  # the group asked for is what gets saved
    assert torch.equal(huge.codes, exact_fit.codes)
    assert torch.equal(huge.scale, exact_fit.scale) and torch.equal(huge.zero, exact_fit.zero)
    assert torch.equal(dequantize(huge), dequantize(exact_fit))


def test_a_huge_group_trains_without_padding_memory() -> None:
    model = _model("pauli", {"rank": 2}, 4, group=10**9)  # would pad to 10^9 floats per tensor
    y = model(torch.randn(2, 16))
    y.sum().backward()
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    ("n", "group", "padded"),
    [(10, 3, 12), (10, 10, 10), (10, 10**9, 10), (1, 1, 1)],
)
def test_qat_bytes_count_the_padded_angles(n, group, padded) -> None:
    assert qat_nbytes(n, group) == padded * QAT_BYTES_PER_ANGLE


def test_qat_past_the_budget_names_the_angles_and_the_group() -> None:
    adapter = nn.Module()
    adapter.theta = nn.Parameter(torch.zeros(1000))
    adapter.angle_names = ("theta",)
    with budget.limit(1000), pytest.raises(MemoryError) as info:
        enable_qat(adapter, 4, 16, where="encoder.0.q")
    msg = str(info.value)
    assert "quantization-aware training of encoder.0.q.theta (1000 angles in groups of 16)" in msg
    assert "over the budget of 1000 B" in msg and "QADAPTERS_MAX_BYTES" in msg
    assert not quantizers(adapter)  # nothing was registered
