"""QAdapterConfig: validation errors list valid values; JSON and file round trips; target rules."""

from __future__ import annotations

import os

import pytest

from qadapters.config import CONFIG_NAME, QAdapterConfig, target_matches

VALID = [
    dict(family="pauli", target_modules=["query", "value"]),
    dict(family="taylor", target_modules=r".*\.(q|v)_proj", options={"rank": 8, "order": 3}),
    dict(
        family="compound",
        target_modules=["query"],
        options={"blocks": 3, "orders": [1, 2]},
        quant_bits=4,
        quant_group=64,
    ),
    dict(
        family="hamming",
        target_modules=["c_attn"],
        options={"variant": "compound"},
        modules_to_save=["classifier"],
        init_seed=7,
    ),
]

INVALID = [
    (dict(family="lora", target_modules=["q"]), r"unknown family 'lora'; valid families: \["),
    (dict(family="pauli", target_modules=[]), "non-empty list"),
    (dict(family="pauli", target_modules=["q", ""]), "non-empty list"),
    (dict(family="pauli", target_modules="("), "regex '\\(' is invalid"),
    (
        dict(family="pauli", target_modules=["q"], options={"rnk": 2}),
        r"unknown option\(s\) \['rnk'\] for family 'pauli'; valid options: \[.*'rank'",
    ),
    (
        dict(family="compound", target_modules=["q"], options={"orders": [0, 1]}),
        "invalid options for family 'compound': orders must be distinct ints >= 1",
    ),
    (dict(family="compound", target_modules=["q"], options={"orders": [2, 2]}), "orders must be"),
    (
        dict(family="hamming", target_modules=["q"], options={"variant": "x"}),
        "variant must be one of 'hw', 'compound'",
    ),
    (dict(family="pauli", target_modules=["q"], options={"rank": 0}), "rank must be"),
    (dict(family="pauli", target_modules=["q"], options={"rank": object()}), "JSON-serialisable"),
    (dict(family="pauli", target_modules=["q"], quant_bits=16), r"one of \[1, 2, 3, 4, 8\]"),
    (dict(family="pauli", target_modules=["q"], quant_bits=True), "quant_bits"),
    (dict(family="pauli", target_modules=["q"], quant_group=0), "quant_group must be an int >= 1"),
    (dict(family="pauli", target_modules=["q"], init_seed=-1), "init_seed must be an int >= 0"),
    (dict(family="pauli", target_modules=["q"], modules_to_save="head"), "modules_to_save"),
]


@pytest.mark.parametrize("kwargs", VALID)
def test_json_and_file_round_trip(kwargs, tmp_path) -> None:
    cfg = QAdapterConfig(**kwargs)
    assert QAdapterConfig.from_json(cfg.to_json()) == cfg
    path = cfg.save(tmp_path)
    assert path == tmp_path / CONFIG_NAME
    assert QAdapterConfig.load(tmp_path) == cfg == QAdapterConfig.load(path)
    assert os.listdir(tmp_path) == [CONFIG_NAME]  # no temporary file left behind


@pytest.mark.parametrize(("kwargs", "match"), INVALID)
def test_invalid_configs(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        QAdapterConfig(**kwargs)


def test_options_normalised_and_resolved() -> None:
    cfg = QAdapterConfig("compound", ("query",), options={"orders": (1, 2)})
    assert cfg.options == {"orders": [1, 2]} and cfg.target_modules == ["query"]
    assert cfg.resolved_options()["blocks"] == 3


def test_from_dict_and_load_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['r'\]; valid keys"):
        QAdapterConfig.from_dict({"family": "pauli", "target_modules": ["q"], "r": 8})
    with pytest.raises(FileNotFoundError, match="no adapter config"):
        QAdapterConfig.load(tmp_path)


@pytest.mark.parametrize(
    ("name", "targets", "expected"),
    [
        ("encoder.layer.0.attention.self.query", ["query"], True),
        ("encoder.layer.0.attention.self.query", ["self.query"], True),
        ("encoder.layer.0.attention.self.query", ["encoder.layer.0.attention.self.query"], True),
        ("encoder.layer.0.attention.self.query_proj", ["query"], False),
        ("encoder.layer.0.attention.self.xquery", ["query"], False),
        ("query", ["query"], True),
        ("layers.3.self_attn.q_proj", r"layers\.\d+\.self_attn\.(q|v)_proj", True),
        ("layers.3.self_attn.q_proj", r"q_proj", False),  # fullmatch, not search
    ],
)
def test_target_matches(name, targets, expected) -> None:
    assert target_matches(name, targets) is expected
