"""Named adapters and leaving cleanly, over the family table of ``test_model`` (PEFT's
TEST_CASES idea): every case is paired with an adapter of the next case's family on partly
different layers, both initialised away from identity, so that add / set / delete / save / load /
unload / merge-subset checks cannot pass trivially."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors import safe_open
from torch import nn

from qadapters.config import CONFIG_NAME, QAdapterConfig
from qadapters.layers import QAdapterLinear
from qadapters.model import QAdapterModel, get_qadapter_model
from qadapters.serialization import WEIGHTS_NAME
from tests.qadapters.test_model import CASES, IDS, D, Tiny, _x

#: each case with the next one's family as its second adapter ("other")
PAIRS = [(*CASES[i], *CASES[(i + 1) % len(CASES)]) for i in range(len(CASES))]
PAIR_IDS = [f"{IDS[i]}+{IDS[(i + 1) % len(IDS)]}" for i in range(len(CASES))]
FIRST = ["query", "value"]
SECOND = ["value", "key"]  # shares value with the first, adds key


def _nudge(model: QAdapterModel, name: str, seed: int) -> None:
    torch.manual_seed(seed)
    for layer in model.qadapter_layers().values():
        if name in layer.adapter_families:
            layer.get_adapter(name).reset_away_from_identity(0.3)


def _two(family, options, family2, options2, base: nn.Module | None = None) -> QAdapterModel:
    model = get_qadapter_model(base or Tiny(), QAdapterConfig(family, FIRST, options=options))
    _nudge(model, "default", 2)
    model.add_adapter("other", QAdapterConfig(family2, SECOND, options=options2, init_seed=5))
    _nudge(model, "other", 3)
    return model


def _only(name: str, model: QAdapterModel, family, options, targets) -> QAdapterModel:
    """A one-adapter model holding a copy of ``model``'s adapter ``name``."""
    ref = get_qadapter_model(Tiny(), QAdapterConfig(family, targets, options=options))
    for lname, layer in ref.qadapter_layers().items():
        src = model.qadapter_layers()[lname].get_adapter(name)
        layer.adapter.load_state_dict(src.state_dict())
    return ref


def _trainable(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(("family", "options", "family2", "options2"), PAIRS, ids=PAIR_IDS)
def test_adapters_side_by_side_only_the_active_one_computes_and_trains(
    family, options, family2, options2
) -> None:
    x = _x()
    alone = get_qadapter_model(Tiny(), QAdapterConfig(family, FIRST, options=options))
    _nudge(alone, "default", 2)
    y_default = alone(x)
    model = _two(family, options, family2, options2)
    assert model.active_adapter == "default" and list(model.peft_config) == ["default", "other"]
    assert set(model.qadapter_layers()) == {"attn.query", "attn.key", "attn.value"}
    assert model.qadapter_layers()["attn.value"].adapter_families == {
        "default": family,
        "other": family2,
    }
    assert torch.equal(model(x), y_default)  # adding an adapter changes nothing
    assert _trainable(model) and all(".default." in n for n in _trainable(model))

    model.set_adapter("other")
    assert model.active_adapter == "other" and model.qadapter_config.family == family2
    assert all(".other." in n for n in _trainable(model)) and _trainable(model)
    y_other = model(x)
    torch.testing.assert_close(
        y_other, _only("other", model, family2, options2, SECOND)(x), atol=1e-6, rtol=0
    )
    assert (y_other - y_default).abs().max() > 1e-3
    with model.disable_adapter():
        torch.testing.assert_close(model(x), Tiny()(x), atol=1e-6, rtol=0)
    model.set_adapter("default", inference_mode=True)
    assert not _trainable(model) and torch.equal(model(x), y_default)


def _err_unknown_set(m, tmp_path):
    m.set_adapter("nope")


def _err_add_existing(m, tmp_path):
    m.add_adapter("other", QAdapterConfig("pauli", ["key"], options={"rank": 2}))


def _err_bad_name(m, tmp_path):
    m.add_adapter("a.b", QAdapterConfig("pauli", ["key"], options={"rank": 2}))


def _err_delete_unknown(m, tmp_path):
    m.delete_adapter("nope")


def _err_save_unknown(m, tmp_path):
    m.save_pretrained(tmp_path, selected_adapters=["default", "nope"])


def _err_delete_merged(m, tmp_path):
    m.merge()
    m.delete_adapter("default")


def _err_merge_unknown(m, tmp_path):
    m.merge_and_unload(adapter_names=["nope"])


def _err_bad_target(m, tmp_path):
    m.add_adapter("third", QAdapterConfig("pauli", ["qeury"], options={"rank": 2}))


#: what is done wrong -> the ValueError's message
ERRORS = {
    _err_unknown_set: r"no adapter named 'nope'; adapters present: \['default', 'oth",
    _err_add_existing: r"an adapter named 'other' exists; adapters present",
    _err_bad_name: r"adapter_name: expected a non-empty str without '\.'",
    _err_delete_unknown: r"no adapter named 'nope'; adapters present",
    _err_save_unknown: r"no adapter named 'nope'; adapters present",
    _err_delete_merged: r"'default' is merged into layers .*call unmerge\(\)",
    _err_merge_unknown: r"no adapter named 'nope'; adapters present",
    _err_bad_target: r"'qeury' matches no module",
}


@pytest.mark.parametrize(("act", "match"), ERRORS.items(), ids=[a.__name__ for a in ERRORS])
def test_errors_name_what_is_there_and_change_nothing(act, match, tmp_path) -> None:
    model = _two(*PAIRS[0])
    x = _x()
    y = model(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        act(model, tmp_path)
    model.unmerge()
    assert list(model.peft_config) == ["default", "other"]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(model(x), y) and not os.listdir(tmp_path)


@pytest.mark.parametrize(("family", "options", "family2", "options2"), PAIRS, ids=PAIR_IDS)
def test_delete_the_active_adapter_then_the_last(family, options, family2, options2) -> None:
    model = _two(family, options, family2, options2)
    x = _x()
    model.set_adapter("other")
    y_other = model(x)
    model.set_adapter("default")
    with pytest.warns(UserWarning, match=r"'default' was active .* now 'other'"):
        model.delete_adapter("default")
    assert model.active_adapter == "other" and list(model.peft_config) == ["other"]
    assert type(model.base_model.attn["query"]) is nn.Linear  # left without adapters: plain
    assert set(model.qadapter_layers()) == {"attn.key", "attn.value"}
    assert torch.equal(model(x), y_other) and _trainable(model)
    model.delete_adapter("other")
    assert model.active_adapter is None and not model.qadapter_layers()
    assert all(p.requires_grad for p in model.parameters())  # the original flags
    torch.testing.assert_close(model(x), Tiny()(x), atol=0, rtol=0)
    with pytest.raises(ValueError, match="nothing to save"):
        model.save_pretrained("unused")
    model.add_adapter("again", QAdapterConfig(family, FIRST, options=options))  # a fresh start
    assert model.active_adapter == "again" and _trainable(model)


def _keys(directory) -> list[str]:
    with safe_open(str(directory / WEIGHTS_NAME), framework="pt") as f:
        return list(f.keys())


@pytest.mark.parametrize(("family", "options", "family2", "options2"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("is_trainable", [False, True], ids=["inference", "trainable"])
def test_save_both_and_load_them_back(
    family, options, family2, options2, is_trainable, tmp_path
) -> None:
    model = _two(family, options, family2, options2)
    x = _x()
    y_default = model(x)
    model.set_adapter("other")
    y_other = model(x)
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == [CONFIG_NAME, WEIGHTS_NAME, "other"]
    assert sorted(os.listdir(tmp_path / "other")) == [CONFIG_NAME, WEIGHTS_NAME]
    # each directory is a standalone adapter, keys as a one-adapter model writes them
    assert all(k.startswith((f"attn.query.qadapter_{family}.", f"attn.value.qadapter_{family}."))
               for k in _keys(tmp_path))  # fmt: skip
    assert all(k.startswith((f"attn.value.qadapter_{family2}.", f"attn.key.qadapter_{family2}."))
               for k in _keys(tmp_path / "other"))  # fmt: skip
    assert torch.equal(QAdapterModel.from_pretrained(Tiny(), tmp_path / "other")(x), y_other)

    loaded = QAdapterModel.from_pretrained(Tiny(), tmp_path, is_trainable=is_trainable)
    assert loaded.active_adapter == "default" and loaded.training == is_trainable
    assert bool(_trainable(loaded)) == is_trainable
    assert torch.equal(loaded(x), y_default)
    loaded.load_adapter(tmp_path / "other", "other", is_trainable=is_trainable)
    assert loaded.active_adapter == "default" and torch.equal(loaded(x), y_default)
    assert loaded.peft_config["other"] == model.peft_config["other"]
    loaded.set_adapter("other", inference_mode=not is_trainable)
    assert torch.equal(loaded(x), y_other) and bool(_trainable(loaded)) == is_trainable


def test_save_selected_adapters_and_a_non_default_first_adapter(tmp_path) -> None:
    model = _two(*PAIRS[1])
    model.save_pretrained(tmp_path, selected_adapters=["other"])
    assert os.listdir(tmp_path) == ["other"]
    named = get_qadapter_model(Tiny(), QAdapterConfig("pauli", FIRST, {"rank": 2}), "mine")
    assert named.active_adapter == "mine" and all(".mine." in n for n in _trainable(named))
    named.save_pretrained(tmp_path / "b")
    assert os.listdir(tmp_path / "b") == ["mine"]


def test_a_failed_load_adapter_leaves_the_model_as_it_was(tmp_path) -> None:
    _two(*PAIRS[0]).save_pretrained(tmp_path)
    (tmp_path / "other" / WEIGHTS_NAME).write_bytes(b"damaged")
    model = _two(*PAIRS[2])
    model.delete_adapter("other")
    before = ([n for n, _ in model.named_modules()], _trainable(model))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        model.load_adapter(tmp_path / "other", "other")

    class Wider(Tiny):
        def __init__(self) -> None:
            super().__init__()
            self.attn["key"] = nn.Linear(D, 2 * D)

    wider = get_qadapter_model(Wider(), QAdapterConfig("pauli", ["query"], options={"rank": 2}))
    _two(*PAIRS[0]).save_pretrained(tmp_path / "good")
    snapshot = ([n for n, _ in wider.named_modules()], _trainable(wider))
    with pytest.raises(ValueError, match=r"'attn\.key'.*\(16, 16\).*\(16, 32\)"):
        wider.load_adapter(tmp_path / "good" / "other", "other")
    assert ([n for n, _ in wider.named_modules()], _trainable(wider)) == snapshot
    assert ([n for n, _ in model.named_modules()], _trainable(model)) == before


@pytest.mark.parametrize(("family", "options", "family2", "options2"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("merged", [False, True], ids=["unmerged", "merged"])
def test_unload_gives_the_base_model_back_bit_for_bit(
    family, options, family2, options2, merged
) -> None:
    base = Tiny()
    base.attn["key"].bias.requires_grad_(False)  # a flag of the caller's that must survive
    original = {k: v.clone() for k, v in base.state_dict().items()}
    flags = {n: p.requires_grad for n, p in base.named_parameters()}
    model = _two(family, options, family2, options2, base=base)
    if merged:
        model.merge(["default", "other"])
    plain = model.unload()
    assert plain is base and not any(isinstance(m, QAdapterLinear) for m in plain.modules())
    assert {n: p.requires_grad for n, p in plain.named_parameters()} == flags
    assert all(torch.equal(v, original[k]) for k, v in plain.state_dict().items())


@pytest.mark.parametrize(("family", "options", "family2", "options2"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize(
    "names", [None, ["other"], ["default", "other"], ["other", "default"]], ids=str
)
def test_merge_and_unload_a_subset_folds_in_sequence(
    family, options, family2, options2, names
) -> None:
    model = _two(family, options, family2, options2)
    x = _x()
    folded = names or ["default"]
    expected_weights = {
        n: layer.merged_weights(folded) for n, layer in model.qadapter_layers().items()
    }
    if len(folded) == 1:
        model.set_adapter(folded[0])
        expected_out = model(x).detach()
    plain = model.merge_and_unload(adapter_names=names)
    assert not any(isinstance(m, QAdapterLinear) for m in plain.modules())
    for lname, (w, b) in expected_weights.items():
        layer = plain.get_submodule(lname)
        assert torch.equal(layer.weight, w) and torch.equal(layer.bias, b)
    if "default" not in folded:  # query carries only "default": dropped, not merged
        assert torch.equal(plain.attn["query"].weight, Tiny().attn["query"].weight)
    if "other" not in folded:  # key carries only "other"
        assert torch.equal(plain.attn["key"].weight, Tiny().attn["key"].weight)
    assert all(p.requires_grad for p in plain.parameters())
    if len(folded) == 1:
        torch.testing.assert_close(plain(x), expected_out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
def test_safe_merge_checks_every_layer_before_writing_any(family, options) -> None:
    model = _two(family, options, *CASES[0])
    x = _x()
    y = model(x)
    broken = model.qadapter_layers()["attn.value"].get_adapter("default")
    real_merge = broken.merge  # the last layer in module order merges to infinity

    def overflowing(weight, bias):
        w, b = real_merge(weight, bias)
        return w * float("inf"), b

    broken.merge = overflowing
    before = {n: p.clone() for n, p in model.named_parameters() if "base_layer" in n}
    with pytest.raises(ValueError, match=r"layer 'attn\.value': merging the .* non-finite.*no "
                       r"layer was changed"):  # fmt: skip
        model.merge_and_unload()
    assert not any(layer.merged for layer in model.qadapter_layers().values())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
    assert torch.equal(model(x), y)  # the wrapper still runs, as before
    plain = model.merge_and_unload(adapter_names=["other"])  # another adapter still merges
    assert not any(isinstance(m, QAdapterLinear) for m in plain.modules())


def test_trainer_checkpoints_resume_every_adapter_at_its_place(tmp_path) -> None:
    from qadapters.integrations.trainer import is_adapter_checkpoint, load_adapter_checkpoint

    model = _two(*PAIRS[3])
    model.set_adapter("other")  # training the second adapter
    x = _x()
    y = model(x)
    model.save_pretrained(tmp_path)
    assert is_adapter_checkpoint(tmp_path, "other") and not is_adapter_checkpoint(tmp_path, "x")
    fresh = _two(*PAIRS[3])
    _nudge(fresh, "other", 99)
    fresh.set_adapter("other")
    assert not torch.equal(fresh(x), y)
    load_adapter_checkpoint(fresh, tmp_path)
    assert torch.equal(fresh(x), y)
    (tmp_path / "other" / CONFIG_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="no adapter 'other' in checkpoint"):
        load_adapter_checkpoint(fresh, tmp_path)


@pytest.mark.parametrize(
    ("targets", "expected"),
    [(r".*value.*", ["attn.value"]), (["query", "key"], ["attn.query", "attn.key"])],
    ids=["regex", "list"],
)
def test_a_new_adapter_sees_adapted_layers_as_the_linears_they_wrap(targets, expected) -> None:
    model = _two(*PAIRS[0])
    model.add_adapter("third", QAdapterConfig("pauli", targets, options={"rank": 2}))
    carriers = [n for n, m in model.qadapter_layers().items() if "third" in m.adapter_families]
    assert sorted(carriers) == sorted(expected)
    assert all(type(m.base_layer) is nn.Linear for m in model.qadapter_layers().values())
