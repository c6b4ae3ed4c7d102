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
        options={"variant": "single_order", "order": 3},
        modules_to_save=["classifier"],
        init_seed=7,
    ),
    dict(family="pauli", target_modules=["q"], options={"scale": -0.5, "layers": 0}),
]

#: option values: every family x option x kind of bad value is in tests/qadapters/families/
#: test_options.py; these are the other fields and the message layout
INVALID = [
    (dict(family="lora", target_modules=["q"]), r"unknown family 'lora'; valid families: \["),
    (dict(family="pauli", target_modules=[]), "non-empty list"),
    (dict(family="pauli", target_modules=["q", ""]), "non-empty list"),
    (dict(family="pauli", target_modules="("), "regex '\\(' is invalid"),
    (
        dict(family="pauli", target_modules=["q"], options={"rnk": 2}),
        r"unknown option\(s\) \['rnk'\] for family 'pauli'; valid options \(defaults\): "
        r"rank=4, layers=1, scale=1.0",
    ),
    (
        dict(family="compound", target_modules=["q"], options={"orders": [0, 1]}),
        r"compound option 'orders': expected a non-empty list of ints >= 1, e.g. \[1, 2\]; "
        r"found \[0, 1\] \(a list\)",
    ),
    (
        dict(family="compound", target_modules=["q"], options={"orders": [2, 2]}),
        r"compound option 'orders': expected distinct ints >= 1, e.g. \[1, 2\]; found \[2, 2\]",
    ),
    (
        dict(family="hamming", target_modules=["q"], options={"variant": "x"}),
        r"hamming option 'variant': expected one of 'hw', 'single_order'; found 'x' \(a str\)",
    ),
    (
        dict(family="pauli", target_modules=["q"], options={"rank": 0}),
        r"pauli option 'rank': expected an int >= 1; found 0 \(an int\)",
    ),
    (
        dict(family="hamming", target_modules=["q"], options={"order": 3}),
        "hamming option 'order' has no effect: variant='hw' acts on every Hamming weight",
    ),
    (dict(family="pauli", target_modules=["q"], options={"rank": object()}), "JSON-serialisable"),
    (
        dict(family="pauli", target_modules=["q"], quant_bits=16),
        r"quant_bits: expected None or an int in \[1, 2, 3, 4, 8\]; found 16 \(an int\)",
    ),
    (
        dict(family="pauli", target_modules=["q"], quant_bits=4.0),
        r"quant_bits: expected None or an int in \[1, 2, 3, 4, 8\]; found 4.0 \(a float\)",
    ),
    (dict(family="pauli", target_modules=["q"], quant_bits=True), r"found True \(a bool\)"),
    (
        dict(family="pauli", target_modules=["q"], quant_group=0),
        r"quant_group: expected an int >= 1; found 0",
    ),
    (dict(family="pauli", target_modules=["q"], quant_group=32.0), r"found 32.0 \(a float\)"),
    (dict(family="pauli", target_modules=["q"], init_seed=-1), "init_seed: expected an int >= 0"),
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
    cfg = QAdapterConfig("compound", ("query",), options={"orders": (2, 1)})
    assert cfg.options == {"orders": [2, 1]} and cfg.target_modules == ["query"]
    assert cfg.resolved_options() == {
        "blocks": 3, "orders": (1, 2), "num_adapters": 1, "combine": "product"
    }  # fmt: skip
    pauli = QAdapterConfig("pauli", ["q"], options={"scale": 2})
    assert pauli.options == {"scale": 2} and pauli.resolved_options()["scale"] == 2.0


def test_deprecated_variant_is_renamed_in_the_stored_options(tmp_path) -> None:
    with pytest.warns(DeprecationWarning, match="variant='compound' is deprecated; use "
                      "variant='single_order'"):  # fmt: skip
        cfg = QAdapterConfig("hamming", ["q"], options={"variant": "compound", "order": 3})
    assert cfg.options == {"variant": "single_order", "order": 3}
    cfg.save(tmp_path)
    assert QAdapterConfig.load(tmp_path) == cfg


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
