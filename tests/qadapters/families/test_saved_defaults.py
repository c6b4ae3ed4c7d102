"""A saved adapter keeps the defaults it was built with (Note [saved defaults])."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from qadapters.config import CONFIG_NAME, QAdapterConfig
from qadapters.families.saved_defaults import (
    DEFAULTS_BEFORE_RECORD,
    defaults_record,
    with_saved_defaults,
)
from qadapters.model import QAdapterModel, get_qadapter_model
from qadapters.serialization import WEIGHTS_NAME
from qadapters.weighted import WeightedConfig

D = 64  # compound: 3 blocks of 6 wires, or by default 4 blocks of 5


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(D, D)
        self.b = nn.Linear(D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


X = torch.randn(4, D, generator=torch.Generator().manual_seed(1))


def _trained(options: dict) -> QAdapterModel:
    model = get_qadapter_model(Net(), QAdapterConfig("compound", ["a", "b"], options=options))
    torch.manual_seed(2)
    for layer in model.qadapter_layers().values():
        layer.adapter.reset_away_from_identity(0.3)
    return model


def _as_written_before_records(directory) -> None:
    """Rewrite a saved directory as a save from before the defaults were recorded, when
    ``blocks`` was left out of the config and meant 3."""
    path = directory / WEIGHTS_NAME
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    del meta["qadapters.defaults"]
    config = json.loads(meta["qadapters.config"])
    del config["options"]["blocks"]
    meta["qadapters.config"] = json.dumps(config)
    save_file(load_file(str(path)), str(path), metadata=meta)
    (directory / CONFIG_NAME).write_text(json.dumps(config))


def test_a_file_from_before_the_records_loads_with_the_old_blocks(tmp_path) -> None:
    model = _trained({"blocks": DEFAULTS_BEFORE_RECORD["compound"]["blocks"]})
    model.save_pretrained(tmp_path)
    _as_written_before_records(tmp_path)
    loaded = QAdapterModel.from_pretrained(Net(), tmp_path)
    assert [lay.adapter.blocks for lay in loaded.qadapter_layers().values()] == [3, 3]
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=0)


def test_a_file_saved_now_keeps_the_width_default(tmp_path) -> None:
    model = _trained({})
    model.save_pretrained(tmp_path)
    loaded = QAdapterModel.from_pretrained(Net(), tmp_path)
    assert loaded.qadapter_config.options == {}
    assert [lay.adapter.blocks for lay in loaded.qadapter_layers().values()] == [4, 4]
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=0)


def _record(**changed: dict) -> str:
    """Today's defaults record with some families' defaults replaced."""
    record = json.loads(defaults_record())
    for family, options in changed.items():
        record[family].update(options)
    return json.dumps(record)


def _weighted(component: QAdapterConfig) -> WeightedConfig:
    return WeightedConfig(["x"], [1.0], [component.to_dict()], {"a": [0]})


#: (config, saved record, options expected after the load; None: the config itself comes back)
CASES = {
    "record-of-today": (QAdapterConfig("hamming", ["a"]), defaults_record(), None),
    "changed-default-made-explicit": (
        QAdapterConfig("hamming", ["a"]),
        _record(hamming={"num_adapters": 3}),
        {"num_adapters": 3},
    ),
    "given-option-wins": (
        QAdapterConfig("hamming", ["a"], options={"num_adapters": 5}),
        _record(hamming={"num_adapters": 3}),
        None,
    ),
    "inert-default-left-out": (  # 'order' does nothing for variant 'hw'
        QAdapterConfig("hamming", ["a"], options={"variant": "hw"}),
        _record(hamming={"order": 3}),
        None,
    ),
    "other-family-untouched": (QAdapterConfig("pauli", ["a"]), _record(hamming={"depth": 2}), None),
    "before-records": (QAdapterConfig("compound", ["a"]), None, {"blocks": 3}),
    "changed-wires-made-explicit": (
        QAdapterConfig("compound", ["a"]), _record(compound={"wires": 4}), {"wires": 4}
    ),
    "wires-left-out-when-blocks-given": (  # given blocks, the width sets the wires
        QAdapterConfig("compound", ["a"], options={"blocks": 3}),
        _record(compound={"wires": 4}),
        None,
    ),
    "before-records-blocks-given": (
        QAdapterConfig("compound", ["a"], options={"blocks": 7}),
        None,
        None,
    ),
}


@pytest.mark.parametrize(("config", "record", "expected"), CASES.values(), ids=CASES.keys())
def test_saved_defaults_fill_what_the_config_left_out(config, record, expected) -> None:
    data = config.to_dict()
    out = with_saved_defaults(data, record)
    if expected is None:
        assert out is data
    else:
        assert out == {**data, "options": {**config.options, **expected}}
        QAdapterConfig.from_dict(out)  # still a valid config
    nested = with_saved_defaults(_weighted(config).to_dict(), record)
    want = config.options if expected is None else {**config.options, **expected}
    assert nested["components"][0]["options"] == want


@pytest.mark.parametrize("record", ["[1, 2]", '{"compound": 3}', "{"])
def test_a_damaged_record_is_refused_naming_the_file(tmp_path, record) -> None:
    _trained({}).save_pretrained(tmp_path)
    path = tmp_path / WEIGHTS_NAME
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    meta["qadapters.defaults"] = record
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(ValueError, match=rf"{WEIGHTS_NAME}: damaged adapter metadata"):
        QAdapterModel.from_pretrained(Net(), tmp_path)
