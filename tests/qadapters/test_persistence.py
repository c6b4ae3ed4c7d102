"""Adapter directories as transactions: saving never loses the previous adapter, loading checks
everything before it touches the caller's model (Note [adapter directory as a transaction])."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from qadapters import files
from qadapters.config import CONFIG_NAME, QAdapterConfig
from qadapters.layers import QAdapterLinear
from qadapters.model import QAdapterModel, get_qadapter_model
from qadapters.serialization import WEIGHTS_NAME

D = 8


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(D, D)
        self.b = nn.Linear(D, D)
        self.head = nn.Linear(D, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.b(torch.tanh(self.a(x)))))


X = torch.randn(4, D, generator=torch.Generator().manual_seed(1))


def _trained(seed: int, family: str = "pauli", options: dict | None = None) -> QAdapterModel:
    cfg = QAdapterConfig(family, ["a", "b"], options=options or {"rank": 2}, init_seed=seed)
    model = get_qadapter_model(Net(), cfg)
    torch.manual_seed(seed)
    for layer in model.qadapter_layers().values():
        layer.adapter.reset_away_from_identity(0.3)
    return model


def _snapshot(model: nn.Module) -> tuple[list[tuple[str, type]], dict[str, bool], dict]:
    return (
        [(n, type(m)) for n, m in model.named_modules()],
        {n: p.requires_grad for n, p in model.named_parameters()},
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def _assert_untouched(model: nn.Module, before) -> None:
    modules, flags, state = _snapshot(model)
    assert modules == before[0]
    assert flags == before[1]
    assert state.keys() == before[2].keys()
    assert all(torch.equal(state[k], before[2][k]) for k in state)
    assert not any(isinstance(m, QAdapterLinear) for m in model.modules())


def _outputs(directory) -> torch.Tensor:
    with torch.no_grad():
        return QAdapterModel.from_pretrained(Net(), directory)(X)


def test_saving_after_merge_and_unload_is_an_error_and_keeps_the_old_adapter(tmp_path) -> None:
    model = _trained(1)
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        expected = model(X)
    model.merge_and_unload()
    with pytest.raises(ValueError, match="nothing to save: the model holds no adapter layers"):
        model.save_pretrained(tmp_path)
    assert torch.allclose(_outputs(tmp_path), expected, atol=1e-6)


#: (which write fails: 1 = weights, 2 = config; how it fails) -> which adapter must load after
FAULTS = [
    (1, "before_replace", "old"),
    (1, "replace", "old"),
    (2, "before_replace", "new"),
    (2, "replace", "new"),
]


@pytest.mark.parametrize(("failing_write", "how", "survivor"), FAULTS)
def test_a_failed_save_leaves_a_loadable_adapter(
    tmp_path, monkeypatch, failing_write, how, survivor
) -> None:
    old, new = _trained(1), _trained(2)
    old.save_pretrained(tmp_path)
    with torch.no_grad():
        want = (old if survivor == "old" else new)(X)
    calls = {"n": 0}
    real_write, real_replace = files.atomic_write, os.replace

    def failing(path, data, **kw):
        calls["n"] += 1
        if calls["n"] != failing_write:
            return real_write(path, data, **kw)
        if how == "before_replace":  # killed before anything of this file reached its name
            raise OSError("disk full")
        monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("EIO")))
        try:
            return real_write(path, data, **kw)
        finally:
            monkeypatch.setattr(os, "replace", real_replace)

    monkeypatch.setattr("qadapters.serialization.atomic_write", failing)
    monkeypatch.setattr("qadapters.config.atomic_write", failing)
    with pytest.raises(OSError):
        new.save_pretrained(tmp_path)
    monkeypatch.undo()
    if survivor == "new":
        with pytest.warns(UserWarning, match="differs from the config saved inside"):
            got = _outputs(tmp_path)
    else:
        got = _outputs(tmp_path)
    assert torch.allclose(got, want, atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == sorted([CONFIG_NAME, WEIGHTS_NAME])


def test_next_save_removes_temporaries_a_killed_save_left(tmp_path) -> None:
    model = _trained(1)
    model.save_pretrained(tmp_path)
    stale = tmp_path / f".{WEIGHTS_NAME}.k9x2.tmp"
    stale.write_bytes(b"\0" * 1024)
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([CONFIG_NAME, WEIGHTS_NAME, "notes.txt"])


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path) -> None:
    path.write_bytes(b"not a safetensors file at all")


def _nan(path) -> None:
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.endswith(".u"))
    tensors[key][0] = float("nan")
    save_file(tensors, str(path))  # no metadata: also exercises the config-file fallback


def _float64(path) -> None:
    tensors = load_file(str(path))
    tensors = {k: (v.double() if v.is_floating_point() else v) for k, v in tensors.items()}
    save_file(tensors, str(path))


def _bad_config_json(path) -> None:
    save_file(load_file(str(path)), str(path))  # drop the embedded config
    (path.parent / CONFIG_NAME).write_text("{")


def _no_config(path) -> None:
    save_file(load_file(str(path)), str(path))
    (path.parent / CONFIG_NAME).unlink()


def _wrong_family(path) -> None:
    save_file(load_file(str(path)), str(path))
    cfg = json.loads((path.parent / CONFIG_NAME).read_text())
    cfg["family"] = "taylor"
    (path.parent / CONFIG_NAME).write_text(json.dumps(cfg))


#: (damage done to a good adapter directory, error type, message pattern)
DAMAGE = [
    (_truncate, ValueError, rf"{WEIGHTS_NAME}: not a readable safetensors file"),
    (_garbage, ValueError, rf"{WEIGHTS_NAME}: not a readable safetensors file"),
    (_nan, ValueError, r"tensor 'a\.qadapter_pauli\.u' holds 1 non-finite value"),
    (_float64, ValueError, r"is torch\.float64 in the file but torch\.float32 in the model"),
    (_bad_config_json, ValueError, rf"{CONFIG_NAME}: not a valid adapter config"),
    (_no_config, FileNotFoundError, rf"no adapter config at .*{CONFIG_NAME}"),
    (_wrong_family, ValueError, r"adapter file does not fit the model"),
]


DAMAGE_IDS = [damage.__name__ for damage, _, _ in DAMAGE]


@pytest.mark.parametrize(("damage", "error", "match"), DAMAGE, ids=DAMAGE_IDS)
def test_a_failed_load_leaves_the_callers_model_as_it_was(tmp_path, damage, error, match) -> None:
    _trained(1).save_pretrained(tmp_path)
    damage(tmp_path / WEIGHTS_NAME)
    base = Net()
    base.head.weight.requires_grad_(False)  # a flag of the caller's that must survive
    before = _snapshot(base)
    with pytest.raises(error, match=match):
        QAdapterModel.from_pretrained(base, tmp_path)
    _assert_untouched(base, before)


def test_retry_after_a_failed_load_succeeds(tmp_path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    _trained(1).save_pretrained(good)
    _trained(1).save_pretrained(bad)
    _truncate(bad / WEIGHTS_NAME)
    base = Net()
    with pytest.raises(ValueError):
        QAdapterModel.from_pretrained(base, bad)
    assert isinstance(QAdapterModel.from_pretrained(base, good), QAdapterModel)


def test_shape_mismatch_found_after_injection_is_rolled_back(tmp_path) -> None:
    _trained(1).save_pretrained(tmp_path)

    class Wider(Net):
        def __init__(self) -> None:
            super().__init__()
            self.b = nn.Linear(D, 2 * D)
            self.head = nn.Linear(2 * D, 2)

    base = Wider()
    before = _snapshot(base)
    with pytest.raises(ValueError, match=r"layer 'b'.*\(8, 8\).*\(8, 16\)"):
        QAdapterModel.from_pretrained(base, tmp_path)
    _assert_untouched(base, before)


def test_an_option_that_does_not_fit_one_layer_names_it_and_leaves_the_model(tmp_path) -> None:
    class Mixed(Net):
        def __init__(self) -> None:
            super().__init__()
            self.b = nn.Linear(D, 2)  # rank 4 fits a (8 -> 8), not b (8 -> 2)
            self.head = nn.Linear(2, 2)

    base = Mixed()
    before = _snapshot(base)
    with pytest.raises(ValueError, match=r"^layer 'b' \(8 → 2\): .*rank"):
        get_qadapter_model(base, QAdapterConfig("pauli", ["a", "b"], options={"rank": 4}))
    _assert_untouched(base, before)


@pytest.mark.parametrize(
    ("family", "options"),
    [("pauli", {"rank": 2}), ("taylor", {"rank": 2}), ("compound", {"blocks": 1}),
     ("hamming", {"num_adapters": 2})],
)  # fmt: skip
def test_unmerge_after_the_adapter_changed_while_merged_restores_the_base(family, options) -> None:
    model = _trained(1, family, options)
    original = {n: p.detach().clone() for n, p in model.base_model.named_parameters()
                if "base_layer" in n}  # fmt: skip
    model.merge()
    with torch.no_grad():  # a training step taken while merged
        for layer in model.qadapter_layers().values():
            for p in layer.adapter.parameters():
                p.add_(0.5)
    changed = {n: p.detach().clone() for n, p in model.named_parameters() if "qadapter_" in n}
    model.unmerge()
    for n, p in model.base_model.named_parameters():
        if n in original:
            assert torch.allclose(p, original[n], atol=1e-6), n
    now = {n: p for n, p in model.named_parameters() if "qadapter_" in n}
    assert all(torch.equal(now[n], changed[n]) for n in changed)  # the adapter keeps its step
    with torch.no_grad():
        active = model(X)
        model.merge()
        assert torch.allclose(model(X), active, atol=1e-5)  # and merges as it now is


def test_merge_refuses_non_finite_weights_and_writes_nothing() -> None:
    model = _trained(1)
    layer = model.qadapter_layers()["a"]
    with torch.no_grad():
        layer.adapter.s.fill_(float("inf"))
    before = layer.base_layer.weight.detach().clone()
    with pytest.raises(ValueError, match=r"pauli adapter gives \d+ non-finite weight"):
        model.merge()
    assert torch.equal(layer.base_layer.weight, before) and not layer.merged


#: (which write of a two-adapter save fails: 3 = other's weights, 4 = other's config) -> which
#: "other" adapter must load after it
TWO_DIRECTORY_FAULTS = [(3, "old"), (4, "new")]


@pytest.mark.parametrize(("failing_write", "survivor"), TWO_DIRECTORY_FAULTS)
def test_each_adapter_directory_is_its_own_transaction(
    tmp_path, monkeypatch, failing_write, survivor
) -> None:
    def two(seed: int) -> QAdapterModel:
        model = _trained(seed)
        model.add_adapter("other", QAdapterConfig("compound", ["b"], options={"blocks": 1}))
        torch.manual_seed(seed + 10)
        model.qadapter_layers()["b"].get_adapter("other").reset_away_from_identity(0.3)
        return model

    old, new = two(1), two(2)
    old.save_pretrained(tmp_path)
    old.set_adapter("other")
    new.set_adapter("other")
    with torch.no_grad():
        assert (old(X) - new(X)).abs().max() > 1e-3  # the two saves are told apart
    old.set_adapter("default")
    new.set_adapter("default")
    want = {}
    with torch.no_grad():
        want["default"] = new(X)
        (old if survivor == "old" else new).set_adapter("other")
        want["other"] = (old if survivor == "old" else new)(X)
    calls = {"n": 0}
    real_write = files.atomic_write

    def failing(path, data, **kw):
        calls["n"] += 1
        if calls["n"] == failing_write:
            raise OSError("disk full")
        return real_write(path, data, **kw)

    monkeypatch.setattr("qadapters.serialization.atomic_write", failing)
    monkeypatch.setattr("qadapters.config.atomic_write", failing)
    with pytest.raises(OSError):
        new.save_pretrained(tmp_path)
    monkeypatch.undo()
    with torch.no_grad():
        assert torch.allclose(_outputs(tmp_path), want["default"], atol=1e-6)
        loaded = QAdapterModel.from_pretrained(Net(), tmp_path)
        loaded.load_adapter(tmp_path / "other", "other")  # both saves use one config
        loaded.set_adapter("other")
        assert torch.allclose(loaded(X), want["other"], atol=1e-6)


def test_an_adapter_over_the_memory_budget_names_the_layer_and_leaves_the_model() -> None:
    from backends import budget

    base = Net()
    before = _snapshot(base)
    with budget.limit(64), pytest.raises(MemoryError, match=r"^layer 'a': a hamming adapter"):
        get_qadapter_model(base, QAdapterConfig("hamming", ["a", "b"]))
    _assert_untouched(base, before)
