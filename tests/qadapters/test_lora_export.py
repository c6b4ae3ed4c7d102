"""``save_as_lora``: circuit adapters exported as PEFT LoRA checkpoints and loaded by peft itself.

One table (every family × a plain ``nn.Sequential``, a tiny GPT-2 with ``Conv1D`` layers and a
tiny BERT) drives the checks: adapters are moved away from identity first, the checkpoint is
loaded with ``peft.PeftModel.from_pretrained`` on a fresh copy of the base model, and

- at the exact rank (``pauli`` / ``taylor``: ``r = K``; other families: full rank) the whole
  model's outputs agree to 1e-5;
- at a truncated rank each layer's update, read back from peft's layer by probing it with basis
  vectors, has exactly the reported relative error, and that error is the Eckart–Young optimum;
- ``rank=None`` on dense families stays within the tolerance.

A subprocess with ``qadapters``, ``circuits`` and ``backends`` blocked loads the checkpoints from
transformers and torch alone.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from qadapters.config import CONFIG_NAME, QAdapterConfig
from qadapters.families import FAMILIES
from qadapters.lora_export import (
    WEIGHTS_NAME,
    LoraExport,
    peft_target_modules,
    save_as_lora,
)
from qadapters.model import QAdapterModel, get_qadapter_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
safetensors_torch = pytest.importorskip("safetensors.torch")

#: family -> options small enough for 16-wide layers
FAMILY_OPTIONS: dict[str, dict[str, Any]] = {
    "pauli": {"rank": 2},
    "taylor": {"rank": 2, "intrinsic_rank": 1},
    "compound": {"blocks": 1, "orders": [1, 2]},
    "hamming": {"num_adapters": 2},
}
#: families whose update is U_K diag(s) V_Kᵀ, exported exactly at r = K
LOW_RANK = {"pauli": 2, "taylor": 2}

_GPT2 = {"n_embd": 16, "n_layer": 1, "n_head": 2, "vocab_size": 40, "n_positions": 16}
_GPT2 |= {"bos_token_id": 0, "eos_token_id": 0}
_BERT = {
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "vocab_size": 40,
    "max_position_embeddings": 16,
}


@dataclass(frozen=True)
class Kind:
    """A base model: how to build it (from torch / transformers only), what to adapt, an input."""

    name: str
    targets: list[str]
    config: dict[str, Any]
    full_rank: int  # max over the targets of min(in, out)

    def build(self) -> nn.Module:
        return build_base(self.name, self.config)

    def inputs(self) -> Tensor:
        g = torch.Generator().manual_seed(7)
        if self.name == "sequential":
            return torch.randn(5, self.config["sizes"][0], generator=g)
        return torch.randint(0, self.config["vocab_size"], (2, 6), generator=g)


def build_base(kind: str, config: dict[str, Any]) -> nn.Module:
    """The base model of ``kind`` (also run, as source, by the subprocess test)."""
    if kind == "sequential":
        a, b, c = config["sizes"]
        return nn.Sequential(nn.Linear(a, b), nn.Tanh(), nn.Linear(b, c))
    if kind == "gpt2":
        return transformers.GPT2Model(transformers.GPT2Config(**config))
    return transformers.BertModel(transformers.BertConfig(**config))


def run(kind: str, model: nn.Module, x: Tensor) -> Tensor:
    """The model's output tensor on ``x``."""
    with torch.no_grad():
        if kind == "sequential":
            return model(x)
        return model(input_ids=x).last_hidden_state


KINDS = [
    Kind("sequential", ["0", "2"], {"sizes": [16, 12, 8]}, 12),
    Kind("gpt2", ["c_attn", "c_fc"], _GPT2, 16),
    Kind("bert", ["query", "value"], _BERT, 16),
]
CASES = [(f, k) for f in FAMILY_OPTIONS for k in KINDS]
IDS = [f"{f}-{k.name}" for f, k in CASES]


def adapted(family: str, kind: Kind, **config: Any) -> tuple[QAdapterModel, nn.Module]:
    """``(adapted model away from identity, fresh copy of its base)``, both in eval mode."""
    torch.manual_seed(0)
    base = kind.build().eval()
    fresh = copy.deepcopy(base)
    cfg = QAdapterConfig(family, kind.targets, options=FAMILY_OPTIONS[family], **config)
    model = get_qadapter_model(base, cfg)
    torch.manual_seed(1)
    for layer in model.qadapter_layers().values():
        layer.adapter.reset_away_from_identity(0.3)
    return model, fresh


def load_peft(fresh: nn.Module, path: Path) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft's own notes (lora_bias on a layer, etc.)
        return peft.PeftModel.from_pretrained(copy.deepcopy(fresh), str(path)).eval()


def probe(layer: Callable[[Tensor], Tensor], in_features: int) -> tuple[Tensor, Tensor]:
    """``(A, c)`` with ``layer(x) = A x + c``, read from basis vectors (float64)."""
    with torch.no_grad():
        y = layer(torch.eye(in_features)).double()
        y0 = layer(torch.zeros(1, in_features)).double()
    return (y - y0).T, y0[0]


def updates(model: QAdapterModel, served: nn.Module) -> dict[str, tuple[Tensor, Tensor]]:
    """Per adapted layer: ``(ΔW of ours, ΔW of peft's)``, each probed minus its base's."""
    out = {}
    for name, layer in model.qadapter_layers().items():
        lora = served.base_model.model.get_submodule(name)
        base_w, _ = probe(layer.base_layer, layer.in_features)
        ours, _ = probe(layer, layer.in_features)
        theirs, _ = probe(lora, layer.in_features)
        out[name] = (ours - base_w, theirs - base_w)
    return out


def relative(a: Tensor, b: Tensor) -> float:
    return float(torch.linalg.matrix_norm(a - b) / torch.linalg.matrix_norm(a))


def test_table_covers_every_family() -> None:
    assert set(FAMILY_OPTIONS) == set(FAMILIES)


@pytest.mark.parametrize(("family", "kind"), CASES, ids=IDS)
def test_exact_rank_loads_in_peft_with_the_same_outputs(
    family: str, kind: Kind, tmp_path: Path
) -> None:
    model, fresh = adapted(family, kind)
    rank = None if family in LOW_RANK else kind.full_rank
    export = save_as_lora(model, tmp_path, rank=rank, verbose=False)
    assert export.rank == LOW_RANK.get(family, kind.full_rank)
    assert export.max_error <= 1e-5
    served = load_peft(fresh, tmp_path)
    x = kind.inputs()
    ours, theirs, plain = (
        run(kind.name, model, x),
        run(kind.name, served, x),
        run(kind.name, fresh, x),
    )
    assert (ours - plain).abs().max() > 1e-3  # the adapter changes the outputs
    assert (ours - theirs).abs().max() <= 1e-5


def test_the_model_method_writes_the_same_checkpoint(tmp_path: Path) -> None:
    model, _ = adapted("pauli", CASES[0][1])
    by_function = save_as_lora(model, tmp_path / "f", verbose=False)
    by_method = model.save_as_lora(tmp_path / "m", verbose=False)
    assert by_method.rank == by_function.rank
    assert (tmp_path / "m" / CONFIG_NAME).read_text() == (tmp_path / "f" / CONFIG_NAME).read_text()
    from safetensors.torch import load_file

    ours, theirs = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in "mf")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize(("family", "kind"), CASES, ids=IDS)
def test_truncated_rank_has_the_reported_optimal_error(
    family: str, kind: Kind, tmp_path: Path
) -> None:
    model, fresh = adapted(family, kind)
    export = save_as_lora(model, tmp_path, rank=1, verbose=False)
    assert export.rank == 1
    served = load_peft(fresh, tmp_path)
    for name, (ours, theirs) in updates(model, served).items():
        sigma = torch.linalg.svdvals(ours)
        optimum = float(sigma[1:].norm() / sigma.norm())  # Eckart–Young at rank 1
        assert export.errors[name] == pytest.approx(relative(ours, theirs), abs=1e-4), name
        assert export.errors[name] == pytest.approx(optimum, abs=1e-4), name
        assert export.errors[name] > 1e-3, name  # rank 1 really cuts these updates
    assert export.max_error == max(export.errors.values())


@pytest.mark.parametrize(
    ("family", "kind"), [c for c in CASES if c[0] not in LOW_RANK], ids=lambda c: str(c)
)
@pytest.mark.parametrize("tolerance", [1e-3, 0.3])
def test_automatic_rank_meets_the_tolerance(
    family: str, kind: Kind, tolerance: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, fresh = adapted(family, kind)
    export = save_as_lora(model, tmp_path, tolerance=tolerance)
    line = capsys.readouterr().out
    assert f"r={export.rank} " in line and f"{export.max_error:.3g}" in line
    assert "rank chosen" in line
    assert export.auto_rank and 1 <= export.rank <= kind.full_rank
    served = load_peft(fresh, tmp_path)
    for name, (ours, theirs) in updates(model, served).items():
        measured = relative(ours, theirs)
        assert measured <= tolerance + 1e-5, name
        assert export.errors[name] == pytest.approx(measured, abs=1e-4), name


@pytest.mark.parametrize(
    ("family", "rank", "expected_error"),
    [
        ("pauli", 5, 0.0),  # above K: zero padding, still exact
        ("taylor", 12, 0.0),
        ("hamming", 30, 0.0),  # above min(in, out): padded full rank
    ],
)
def test_rank_above_the_update_pads_with_zeros(
    family: str, rank: int, expected_error: float, tmp_path: Path
) -> None:
    kind = KINDS[0]
    model, fresh = adapted(family, kind)
    export = save_as_lora(model, tmp_path, rank=rank, verbose=False)
    assert export.rank == rank
    assert export.max_error == pytest.approx(expected_error, abs=1e-5)
    tensors = safetensors_torch.load_file(tmp_path / WEIGHTS_NAME)
    assert tensors["base_model.model.0.lora_A.weight"].shape == (rank, 16)
    assert tensors["base_model.model.2.lora_B.weight"].shape == (8, rank)
    x = kind.inputs()
    served = load_peft(fresh, tmp_path)
    assert (run(kind.name, model, x) - run(kind.name, served, x)).abs().max() <= 1e-5


# --- biases: the multiplicative family changes them -------------------------------------------


@pytest.mark.parametrize(
    ("family", "lora_bias", "writes_bias", "drops_bias"),
    [
        ("compound", None, True, False),  # Δb = (Mᵀ − I) b: written as lora_B.bias
        ("compound", True, True, False),
        ("compound", False, False, True),  # dropped and reported
        ("pauli", None, False, False),  # additive: the bias never changes
        ("pauli", True, True, False),  # zero lora_B.bias, still exact
        ("hamming", False, False, False),
    ],
)
def test_bias_updates(
    family: str, lora_bias: bool | None, writes_bias: bool, drops_bias: bool, tmp_path: Path
) -> None:
    kind = KINDS[0]
    model, fresh = adapted(family, kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export = save_as_lora(model, tmp_path, rank=12, lora_bias=lora_bias, verbose=False)
    assert export.lora_bias is writes_bias
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["lora_bias"] is writes_bias
    tensors = safetensors_torch.load_file(tmp_path / WEIGHTS_NAME)
    assert ("base_model.model.0.lora_B.bias" in tensors) is writes_bias
    assert bool(export.bias_errors) is drops_bias
    assert any("drops the bias update" in str(w.message) for w in caught) is drops_bias
    served = load_peft(fresh, tmp_path)
    for name, layer in model.qadapter_layers().items():
        _, ours = probe(layer, layer.in_features)  # the layer's bias: its output at x = 0
        _, theirs = probe(served.base_model.model.get_submodule(name), layer.in_features)
        measured = float((ours - theirs).norm() / ours.norm())
        assert measured == pytest.approx(export.bias_errors.get(name, 0.0), abs=1e-5), name
        if drops_bias:
            assert export.bias_errors[name] > 1e-3, name


def test_modules_to_save_travel_with_the_lora(tmp_path: Path) -> None:
    kind = Kind("sequential", ["0"], KINDS[0].config, 12)
    model, fresh = adapted("pauli", kind, modules_to_save=["2"])
    with torch.no_grad():
        model.base_model.get_submodule("2").weight.add_(0.5)  # a trained head
    export = save_as_lora(model, tmp_path, verbose=False)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["modules_to_save"] == ["2"]
    assert set(safetensors_torch.load_file(tmp_path / WEIGHTS_NAME)) == {
        "base_model.model.0.lora_A.weight",
        "base_model.model.0.lora_B.weight",
        "base_model.model.2.weight",
        "base_model.model.2.bias",
    }
    x = kind.inputs()
    served = load_peft(fresh, tmp_path)
    assert (run(kind.name, model, x) - run(kind.name, fresh, x)).abs().max() > 1e-2
    assert (run(kind.name, model, x) - run(kind.name, served, x)).abs().max() <= 1e-5
    assert export.max_error <= 1e-5


# --- the files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "targets", "fan_in_fan_out"),
    [
        (KINDS[0], ["0", "2"], False),
        (KINDS[1], ["c_attn", "c_fc"], True),
        (KINDS[2], ["query", "value"], False),
    ],
    ids=["sequential", "gpt2-conv1d", "bert"],
)
def test_config_is_a_plain_lora_config(
    kind: Kind, targets: list[str], fan_in_fan_out: bool, tmp_path: Path
) -> None:
    model, _ = adapted("pauli", kind)
    export = save_as_lora(model, tmp_path, verbose=False)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["peft_type"] == "LORA"
    assert config["r"] == config["lora_alpha"] == export.rank == 2  # scaling 1
    assert config["target_modules"] == targets
    assert config["fan_in_fan_out"] is fan_in_fan_out
    assert config["bias"] == "none"
    parsed = peft.LoraConfig.from_pretrained(str(tmp_path))
    assert parsed.r == 2 and parsed.lora_alpha == 2 and not parsed.use_dora
    with safetensors_torch.safe_open(str(tmp_path / WEIGHTS_NAME), "pt") as f:
        assert json.loads(f.metadata()["qadapters.lora_config"]) == config
        keys = set(f.keys())
    names = list(model.qadapter_layers())
    assert keys == {f"base_model.model.{n}.lora_{x}.weight" for n in names for x in "AB"}


@pytest.mark.parametrize(
    ("names", "all_names", "expected"),
    [
        (["a.q", "b.q"], ["a", "a.q", "a.k", "b", "b.q"], ["q"]),  # last components suffice
        (["a.q"], ["a", "a.q", "b", "b.q"], ["a.q"]),  # "q" would also take b.q
        (["0"], ["0", "1", "1.0"], r"0"),  # "0" would also take 1.0: a regex
        (["h.0", "x"], ["h", "h.0", "a", "a.h", "a.h.0", "x"], r"h\.0|x"),
    ],
)
def test_target_modules_select_exactly_the_adapted_layers(
    names: list[str], all_names: list[str], expected: list[str] | str
) -> None:
    assert peft_target_modules(names, all_names) == expected


def test_weights_are_written_before_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qadapters.lora_export as lora_export

    model, _ = adapted("pauli", KINDS[0])
    order: list[str] = []
    real_atomic, real_json = lora_export.atomic_write, lora_export.write_json

    def atomic(path: Path, data: bytes | str) -> Path:
        order.append(Path(path).name)
        return real_atomic(path, data)

    def crash(path: Path, payload: Any) -> Path:
        order.append(Path(path).name)
        raise OSError("disk full")

    monkeypatch.setattr(lora_export, "atomic_write", atomic)
    monkeypatch.setattr(lora_export, "write_json", crash)
    with pytest.raises(OSError, match="disk full"):
        save_as_lora(model, tmp_path, verbose=False)
    assert order == [WEIGHTS_NAME, CONFIG_NAME]
    assert not (tmp_path / CONFIG_NAME).exists()
    with safetensors_torch.safe_open(str(tmp_path / WEIGHTS_NAME), "pt") as f:  # self-describing
        assert json.loads(f.metadata()["qadapters.lora_config"])["r"] == 2
    monkeypatch.setattr(lora_export, "write_json", real_json)
    save_as_lora(model, tmp_path, verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([WEIGHTS_NAME, CONFIG_NAME])


# --- refusals ----------------------------------------------------------------------------------


def _merged(model: QAdapterModel) -> QAdapterModel:
    model.merge()
    return model


@pytest.mark.parametrize(
    ("prepare", "kwargs", "error", "match"),
    [
        (None, {"rank": 0}, ValueError, "rank: expected a positive int or None; found 0"),
        (None, {"rank": True}, ValueError, "rank: expected a positive int"),
        (None, {"rank": 2.0}, ValueError, "found 2.0"),
        (None, {"tolerance": 0.0}, ValueError, r"tolerance: expected a number in \(0, 1\)"),
        (None, {"tolerance": 1.5}, ValueError, "found 1.5"),
        (None, {"adapter_name": "other"}, ValueError, r"expected one of \['default'\]; found 'oth"),
        (_merged, {}, ValueError, r"found merged layer\(s\) \['0', '2'\]: call model.unmerge"),
    ],
)
def test_refusals_write_nothing(
    prepare: Callable[[QAdapterModel], QAdapterModel] | None,
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
    tmp_path: Path,
) -> None:
    model, _ = adapted("hamming", KINDS[0])
    if prepare is not None:
        model = prepare(model)
    out = tmp_path / "lora"
    with pytest.raises(error, match=match):
        save_as_lora(model, out, verbose=False, **kwargs)
    assert not out.exists()


def test_default_adapter_name_is_accepted(tmp_path: Path) -> None:
    model, _ = adapted("pauli", KINDS[0])
    named = save_as_lora(model, tmp_path / "a", adapter_name="default", verbose=False)
    plain = save_as_lora(model, tmp_path / "b", verbose=False)
    assert isinstance(named, LoraExport) and named.errors == plain.errors


def test_a_named_adapter_exports_alone(tmp_path: Path) -> None:
    if not hasattr(QAdapterModel, "add_adapter"):
        pytest.skip("this QAdapterModel holds one adapter")
    kind = KINDS[0]
    model, fresh = adapted("pauli", kind)
    second = QAdapterConfig("compound", ["2"], options=FAMILY_OPTIONS["compound"])
    model.add_adapter("second", second)
    torch.manual_seed(2)
    model.qadapter_layers()["2"].get_adapter("second").reset_away_from_identity(0.3)
    export = save_as_lora(model, tmp_path, rank=8, adapter_name="second", verbose=False)
    assert model.active_adapter == "default"  # exporting does not switch adapters
    assert set(export.errors) == {"2"} and export.lora_bias
    assert json.loads((tmp_path / CONFIG_NAME).read_text())["target_modules"] == ["2"]
    served = load_peft(fresh, tmp_path)
    x = kind.inputs()
    default_out = run(kind.name, model, x)
    model.set_adapter("second")
    ours = run(kind.name, model, x)
    assert (ours - default_out).abs().max() > 1e-3
    assert (ours - run(kind.name, served, x)).abs().max() <= 1e-5


def test_non_finite_update_is_refused(tmp_path: Path) -> None:
    model, _ = adapted("pauli", KINDS[0])
    with torch.no_grad():
        model.qadapter_layers()["2"].adapter.s[0] = float("inf")
    with pytest.raises(ValueError, match=r"layer '2': the pauli adapter's update holds \d+ non"):
        save_as_lora(model, tmp_path / "lora", verbose=False)
    assert not (tmp_path / "lora").exists()


# --- a LoRA server needs nothing of ours -------------------------------------------------------

_CHILD = r"""
import importlib.abc, json, sys
from pathlib import Path

BLOCKED = {"qadapters", "circuits", "backends"}


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is blocked in this process")
        return None


sys.meta_path.insert(0, Block())
repo = sys.argv[2]
sys.path[:] = [p for p in sys.path if p not in ("", ".", repo)]

from typing import Any

import torch
import transformers
from peft import PeftModel
from torch import Tensor, nn

exec(sys.argv[3])  # build_base and run, as source: plain torch / transformers code
for case in json.loads(Path(sys.argv[1]).read_text()):
    base = build_base(case["kind"], case["config"]).eval()
    base.load_state_dict(torch.load(case["state"], weights_only=True))
    served = PeftModel.from_pretrained(base, case["lora"]).eval()
    x = torch.load(case["inputs"], weights_only=True)
    torch.save(run(case["kind"], served, x), case["out"])
try:
    import qadapters  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("qadapters was importable")
loaded = sorted({m.partition(".")[0] for m in sys.modules} & BLOCKED)
if loaded:
    raise SystemExit(f"imported {loaded}")
print("ok")
"""


def test_peft_loads_the_export_without_qadapters(tmp_path: Path) -> None:
    import inspect

    source = "\n".join(inspect.getsource(f) for f in (build_base, run))
    cases, expected = [], {}
    for family, kind in [("pauli", KINDS[1]), ("compound", KINDS[0]), ("hamming", KINDS[2])]:
        tag = f"{family}-{kind.name}"
        model, fresh = adapted(family, kind)
        save_as_lora(model, tmp_path / tag, rank=kind.full_rank, verbose=False)
        torch.save(fresh.state_dict(), tmp_path / f"{tag}.state.pt")
        x = kind.inputs()
        torch.save(x, tmp_path / f"{tag}.inputs.pt")
        expected[tag] = run(kind.name, model, x)
        cases.append(
            {
                "kind": kind.name,
                "config": kind.config,
                "state": str(tmp_path / f"{tag}.state.pt"),
                "lora": str(tmp_path / tag),
                "inputs": str(tmp_path / f"{tag}.inputs.pt"),
                "out": str(tmp_path / f"{tag}.out.pt"),
            }
        )
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps(cases))
    repo = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(spec), repo, source],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
    for case, tag in zip(cases, expected, strict=True):
        theirs = torch.load(case["out"], weights_only=True)
        assert (expected[tag] - theirs).abs().max() <= 1e-5, tag
