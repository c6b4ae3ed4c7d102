"""Injection and lifecycle over ONE table of cases covering every family (PEFT's TEST_CASES idea).

Each case builds a tiny seeded model, adapts ``attn.query`` and ``attn.value`` and checks freezing,
identity at init, gradients, merge / unmerge / merge_and_unload (non-identity init), the save/load
round trip (bit-exact, adapter tensors only, small) with and without QAT, and the Conv1D path.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from torch import nn

from qadapters.config import QAdapterConfig
from qadapters.families import FAMILIES, trainable_count
from qadapters.layers import QAdapterLinear
from qadapters.model import QAdapterModel, get_qadapter_model

D = 16

#: (family, options) — every family, options small enough for a 16-wide layer
CASES = [
    ("pauli", {"rank": 2}),
    ("taylor", {"rank": 2, "intrinsic_rank": 1}),
    ("compound", {"blocks": 2, "orders": [1, 2]}),
    ("compound", {"blocks": 1, "orders": [1, 2], "num_adapters": 2, "combine": "sum"}),
    ("hamming", {"num_adapters": 2}),
    ("hamming", {"variant": "single_order", "order": 2, "num_adapters": 2}),
]
IDS = [f"{f}-{i}" for i, (f, _) in enumerate(CASES)]


def test_table_covers_every_family() -> None:
    assert {f for f, _ in CASES} == set(FAMILIES)


class Tiny(nn.Module):
    """attn.{query,key,value} (D→D) then a head (D→4)."""

    def __init__(self, conv1d: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        if conv1d:
            from transformers.pytorch_utils import Conv1D

            self.attn = nn.ModuleDict({k: Conv1D(D, D) for k in ("query", "key", "value")})
            for m in self.attn.values():
                nn.init.normal_(m.bias, std=0.1)
        else:
            self.attn = nn.ModuleDict({k: nn.Linear(D, D) for k in ("query", "key", "value")})
        self.head = nn.Linear(D, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn
        h = torch.tanh(a["query"](x)) * a["key"](x) + a["value"](x)
        return self.head(h)


def _x() -> torch.Tensor:
    return torch.randn(5, 3, D, generator=torch.Generator().manual_seed(1))


def _adapted(family, options, conv1d=False, quant_bits=None, nudge=True) -> QAdapterModel:
    cfg = QAdapterConfig(
        family, ["query", "value"], options=options, quant_bits=quant_bits, quant_group=8
    )
    model = get_qadapter_model(Tiny(conv1d), cfg)
    if nudge:
        torch.manual_seed(2)
        for layer in model.qadapter_layers().values():
            layer.adapter.reset_away_from_identity(0.3)
    return model


@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
def test_freezing_and_names(family, options) -> None:
    model = _adapted(family, options, nudge=False)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".qadapter_" in n for n in trainable)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "qadapter_" not in n)
    assert set(model.qadapter_layers()) == {"attn.query", "attn.value"}
    n_trainable, n_all = model.get_nb_trainable_parameters()
    assert n_trainable == 2 * trainable_count(family, D, D, **options)
    assert n_all == sum(p.numel() for p in Tiny().parameters()) + n_trainable


@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("conv1d", [False, True], ids=["linear", "conv1d"])
def test_identity_at_init_and_gradients(family, options, conv1d) -> None:
    model = _adapted(family, options, conv1d=conv1d, nudge=False)
    x = _x()
    y = model(x)
    torch.testing.assert_close(y, Tiny(conv1d)(x), atol=1e-6, rtol=0)
    y.square().sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert not torch.equal(model(x), y)  # the step moved the adapters, and only them


@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("conv1d", [False, True], ids=["linear", "conv1d"])
def test_merge_unmerge_and_unload(family, options, conv1d) -> None:
    model = _adapted(family, options, conv1d=conv1d)
    x = _x()
    y = model(x).detach()
    assert (y - Tiny(conv1d)(x)).abs().max() > 1e-3  # the init is not the identity
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    model.merge()
    torch.testing.assert_close(model(x), y, atol=1e-5, rtol=1e-5)
    changed = [
        n
        for n, p in model.named_parameters()
        if "base_layer.weight" in n and not torch.equal(p, before[n])
    ]
    assert len(changed) == 2
    model.unmerge()
    for n, p in model.named_parameters():
        if n in before:
            torch.testing.assert_close(p, before[n], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x), y, atol=1e-5, rtol=1e-5)
    plain = model.merge_and_unload()
    assert isinstance(plain, Tiny)
    assert not any(isinstance(m, QAdapterLinear) for m in plain.modules())
    assert all(p.requires_grad for p in plain.parameters())  # original flags restored
    torch.testing.assert_close(plain(x), y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("quant_bits", [None, 3], ids=["fp32", "qat3"])
def test_save_load_round_trip(family, options, quant_bits, tmp_path) -> None:
    model = _adapted(family, options, conv1d=quant_bits is not None, quant_bits=quant_bits)
    x = _x()
    y = model(x)
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["adapter_config.json", "adapter_model.safetensors"]
    weights = tmp_path / "adapter_model.safetensors"
    assert weights.stat().st_size < 16_000
    with safe_open(str(weights), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all(
        k.startswith(("attn.query.qadapter_", "attn.value.qadapter_")) for k in keys
    )
    loaded = QAdapterModel.from_pretrained(Tiny(conv1d=quant_bits is not None), tmp_path)
    assert torch.equal(loaded(x), y)
    assert loaded.qadapter_config == model.qadapter_config
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    trainable = QAdapterModel.from_pretrained(
        Tiny(conv1d=quant_bits is not None), tmp_path, is_trainable=True
    )
    assert {n for n, p in trainable.named_parameters() if p.requires_grad} == {
        n for n, p in model.named_parameters() if p.requires_grad
    }


def test_disable_adapter_and_print(capsys) -> None:
    model = _adapted("pauli", {"rank": 2})
    x = _x()
    with model.disable_adapter():
        torch.testing.assert_close(model(x), Tiny()(x))
    assert (model(x) - Tiny()(x)).abs().max() > 1e-3
    model.print_trainable_parameters()
    out = capsys.readouterr().out
    n = 2 * trainable_count("pauli", D, D, rank=2)
    assert f"trainable params: {n:,d} ||" in out and f"adapter bytes: {4 * n:,d}" in out


def test_regex_targets_and_modules_to_save(tmp_path) -> None:
    cfg = QAdapterConfig(
        "pauli", r"attn\.(query|key)", options={"rank": 2}, modules_to_save=["head"]
    )
    model = get_qadapter_model(Tiny(), cfg)
    assert set(model.qadapter_layers()) == {"attn.query", "attn.key"}
    assert all(p.requires_grad for p in model.head.parameters())  # attribute forwarding
    with torch.no_grad():
        model.head.weight.add_(1.0)
    x = _x()
    y = model(x)
    model.save_pretrained(tmp_path)
    assert torch.equal(QAdapterModel.from_pretrained(Tiny(), tmp_path)(x), y)


class WithConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Conv1d(D, D, 1)
        self.act = nn.ReLU()


@pytest.mark.parametrize(
    ("model", "targets", "error", "match"),
    [
        (Tiny, ["qeury"], ValueError, r"'qeury' matches no module.*attn\.query"),
        (Tiny, ["query", "vlaue"], ValueError, r"'vlaue' matches no module.*value"),
        (Tiny, r"attn\.nothing", ValueError, "matches no module"),
        (WithConv, ["query"], TypeError, r"torch\.nn\.modules\.conv\.Conv1d"),
        (WithConv, ["act"], TypeError, r"unsupported layer type .*ReLU"),
        (Tiny, ["attn"], TypeError, "ModuleDict"),
    ],
)
def test_bad_targets(model, targets, error, match) -> None:
    with pytest.raises(error, match=match):
        get_qadapter_model(model(), QAdapterConfig("pauli", targets, options={"rank": 2}))


def test_bad_loads(tmp_path) -> None:
    model = _adapted("pauli", {"rank": 2})
    with pytest.raises(ValueError, match="already holds qadapter layers"):
        get_qadapter_model(model.base_model, model.qadapter_config)
    with pytest.raises(FileNotFoundError):
        QAdapterModel.from_pretrained(Tiny(), tmp_path)
    model.save_pretrained(tmp_path)

    class Wider(Tiny):
        def __init__(self) -> None:
            super().__init__()
            self.attn["value"] = nn.Linear(D, 2 * D)

    with pytest.raises(ValueError, match=r"'attn\.value'.*\(16, 16\).*\(16, 32\)"):
        QAdapterModel.from_pretrained(Wider(), tmp_path)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_hugging_face_gpt2_conv1d(tmp_path) -> None:
    from transformers import GPT2Config, GPT2Model

    def base() -> nn.Module:
        torch.manual_seed(0)
        cfg = GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=50, n_positions=8)
        return GPT2Model(cfg).eval()

    cfg = QAdapterConfig("compound", ["c_attn"], options={"blocks": 3}, quant_bits=4)
    model = get_qadapter_model(base(), cfg)
    assert len(model.qadapter_layers()) == 2 and model.config.n_embd == 32  # attrs forwarded
    for layer in model.qadapter_layers().values():
        layer.adapter.reset_away_from_identity(0.3)
    ids = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    y = model(input_ids=ids).last_hidden_state
    model.save_pretrained(tmp_path)
    loaded = QAdapterModel.from_pretrained(base(), tmp_path)
    assert torch.equal(loaded(input_ids=ids).last_hidden_state, y)
    plain = loaded.merge_and_unload()
    torch.testing.assert_close(plain(input_ids=ids).last_hidden_state, y, atol=1e-5, rtol=1e-5)


def test_transformers_imported_lazily() -> None:
    code = (
        "import sys, qadapters.model, qadapters.cli.count, qadapters.serialization; "
        "sys.exit(any(m in sys.modules for m in ('transformers', 'peft', 'safetensors')))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(("family", "options"), CASES[::2], ids=IDS[::2])
def test_init_seed_reproducible_and_global_rng_untouched(family, options) -> None:
    def angles(seed: int) -> list[torch.Tensor]:
        base = Tiny()
        cfg = QAdapterConfig(family, ["query", "value"], options=options, init_seed=seed)
        torch.manual_seed(123)
        model = get_qadapter_model(base, cfg)
        assert torch.equal(torch.rand(3), torch.manual_seed(123) and torch.rand(3))
        return [p.detach() for p in model.parameters() if p.requires_grad]

    first = angles(0)
    assert all(torch.equal(a, b) for a, b in zip(first, angles(0), strict=True))
    if family != "compound":  # compound starts at θ = 0 whatever the seed
        assert not all(torch.equal(a, b) for a, b in zip(first, angles(1), strict=True))
