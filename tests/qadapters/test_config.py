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
    dict(
        family="pauli",
        target_modules="all-linear",
        exclude_modules=r".*\.lm_head",
        layers_to_transform=[0, 2],
        layers_pattern=["h", "layers"],
        options_pattern={"c_attn": {"layers": 2}, r"h\.0\..*": {"scale": 0.5}},
        rank_pattern={"c_proj": 8},
        clamp_rank_to_layer=True,
    ),
    dict(
        family="compound",
        target_modules="auto",
        exclude_modules=["layer.0.attention.self.query"],
        layers_to_transform=1,
        layers_pattern="layer",
        options_pattern={"value": {"orders": [1], "blocks": 2}},
    ),
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
    # targeting fields
    (
        dict(family="pauli", target_modules=["q"], exclude_modules="("),
        r"exclude_modules regex '\(' is invalid",
    ),
    (
        dict(family="pauli", target_modules=["q"], exclude_modules=["k", 3]),
        r"exclude_modules: expected None, a list of module names/suffixes or a regex string; "
        r"found \['k', 3\] \(a list\)",
    ),
    (
        dict(family="pauli", target_modules=["q"], layers_to_transform=-1),
        r"layers_to_transform: expected None \(every block\), an int >= 0 or a non-empty list "
        r"of ints >= 0; found -1 \(an int\)",
    ),
    (dict(family="pauli", target_modules=["q"], layers_to_transform=[]), r"found \[\] \(a list"),
    (dict(family="pauli", target_modules=["q"], layers_to_transform=1.0), r"found 1.0 \(a float"),
    (dict(family="pauli", target_modules=["q"], layers_to_transform=[0, True]), "found"),
    (
        dict(family="pauli", target_modules=["q"], layers_pattern="layers"),
        r"layers_pattern='layers' needs layers_to_transform",
    ),
    (
        dict(family="pauli", target_modules=["q"], layers_to_transform=0, layers_pattern=[""]),
        "layers_pattern: expected None, a module list name",
    ),
    (
        dict(family="pauli", target_modules=["q"], layers_to_transform=0, layers_pattern="(h"),
        "layers_pattern regex .* is invalid",
    ),
    (
        dict(family="pauli", target_modules=r".*\.q", layers_to_transform=0),
        r"layers_to_transform needs target_modules as a list of names, 'auto' or 'all-linear'; "
        r"found the regex '\.\*.*\.q' \(write the block numbers into the regex instead\)",
    ),
    (
        dict(family="pauli", target_modules=["q"], options_pattern={"v": {"rnk": 2}}),
        r"options_pattern\['v'\]: unknown option\(s\) \['rnk'\] for family 'pauli'",
    ),
    (
        dict(family="pauli", target_modules=["q"], options_pattern={"v": {"rank": 2.0}}),
        r"options_pattern\['v'\]: pauli option 'rank': expected an int >= 1; found 2.0",
    ),
    (
        dict(family="hamming", target_modules=["q"], options_pattern={"v": {"order": 3}}),
        r"options_pattern\['v'\]: hamming option 'order' has no effect",
    ),
    (
        dict(family="pauli", target_modules=["q"], options_pattern={"v": 2}),
        r"options_pattern\['v'\]: expected a dict \{option: value\}; found 2 \(an int\)",
    ),
    (
        dict(family="pauli", target_modules=["q"], options_pattern=[("v", {})]),
        "options_pattern: expected a dict pattern",
    ),
    (
        dict(family="pauli", target_modules=["q"], options_pattern={"(v": {"rank": 2}}),
        r"options_pattern pattern '\(v' is invalid",
    ),
    (
        dict(family="pauli", target_modules=["q"], rank_pattern={"v": 0}),
        r"rank_pattern\['v'\]: pauli option 'rank': expected an int >= 1; found 0",
    ),
    (
        dict(family="pauli", target_modules=["q"], rank_pattern={"": 2}),
        "rank_pattern: expected non-empty pattern strings as keys",
    ),
    (
        dict(family="compound", target_modules=["q"], rank_pattern={"v": 2}),
        r"rank_pattern: family 'compound' has no 'rank' option \(its options: \['blocks'",
    ),
    (
        dict(family="pauli", target_modules=["q"], clamp_rank_to_layer=1),
        r"clamp_rank_to_layer: expected True or False; found 1 \(an int\)",
    ),
    (
        dict(family="hamming", target_modules=["q"], clamp_rank_to_layer=True),
        "clamp_rank_to_layer has no effect: family 'hamming' has no 'rank' option",
    ),
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
        "blocks": None, "wires": 5, "orders": (1, 2), "num_adapters": 1, "combine": "product",
        "magnitude": False,
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


def test_configs_saved_before_the_targeting_fields_load_with_their_defaults() -> None:
    old = {
        "family": "pauli",
        "target_modules": ["query"],
        "options": {"rank": 2},
        "quant_bits": None,
        "quant_group": 32,
        "modules_to_save": [],
        "init_seed": 0,
    }
    cfg = QAdapterConfig.from_dict(old)
    assert (cfg.exclude_modules, cfg.layers_to_transform, cfg.layers_pattern) == (None,) * 3
    assert (cfg.options_pattern, cfg.rank_pattern, cfg.clamp_rank_to_layer) == ({}, {}, False)
    assert cfg.to_dict() == {
        **old, "exclude_modules": None, "layers_to_transform": None, "layers_pattern": None,
        "options_pattern": {}, "rank_pattern": {}, "clamp_rank_to_layer": False,
    }  # fmt: skip


def test_targeting_fields_normalised() -> None:
    with pytest.warns(DeprecationWarning, match="variant='compound' is deprecated"):
        cfg = QAdapterConfig(
            "hamming",
            ("q",),
            exclude_modules=("k",),
            layers_to_transform=(0, 1),
            layers_pattern=("h",),
            options_pattern={"v": {"variant": "compound", "order": 3, "layout": "brick"}},
        )
    assert (cfg.exclude_modules, cfg.layers_to_transform, cfg.layers_pattern) == (
        ["k"], [0, 1], ["h"]
    )  # fmt: skip
    assert cfg.options_pattern == {"v": {"variant": "single_order", "order": 3, "layout": "brick"}}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("encoder.layer.0.attention.self.query", {"rank": 2, "scale": 3.0}),
        ("encoder.layer.0.attention.self.value", {"rank": 6, "scale": 3.0}),
        ("encoder.layer.1.attention.self.value", {"rank": 5, "scale": 3.0, "layers": 2}),
        ("encoder.layer.1.attention.self.key", {"rank": 2, "scale": 3.0, "layers": 2}),
        ("encoder.layer.1.attention.self.xvalue", {"rank": 2, "scale": 3.0, "layers": 2}),
    ],
)
def test_options_for(name, expected) -> None:
    cfg = QAdapterConfig(
        "pauli",
        ["query", "value"],
        {"rank": 2, "scale": 3.0},
        options_pattern={r"layer\.1\..*": {"layers": 2}, "value": {"rank": 4}},
        rank_pattern={"layer.1.attention.self.value": 5, "value": 6},
    )
    assert cfg.options_for(name) == expected


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
