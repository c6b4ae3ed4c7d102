"""``qadapters count``: LoRA counts equal the real ``peft`` library's, family counts equal the
trainable parameters of real adapted models, layer names equal Hugging Face's, anchor numbers."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from qadapters.cli import count as calc
from qadapters.cli import main
from qadapters.config import QAdapterConfig
from qadapters.families import FAMILIES
from qadapters.model import get_qadapter_model
from qadapters.quantization import quantized_nbytes

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
    pytest.mark.filterwarnings("ignore:fan_in_fan_out is set to False:UserWarning"),
]

#: tiny Hugging Face models built from configs (no download): (name, config kwargs)
TINY = [
    (
        "bert",
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
    ),
    (
        "deberta-v2",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            vocab_size=100,
        ),
    ),
    ("gpt2", dict(n_embd=32, n_layer=2, n_head=4, vocab_size=100, n_positions=16)),
    (
        "llama",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=48,
            vocab_size=100,
        ),
    ),
]
TARGETS = {
    "bert": [["query", "value"], ["dense"], ["key", "intermediate.dense"]],
    "deberta-v2": [["query_proj", "value_proj"], ["dense"]],
    "gpt2": [["c_attn"], ["c_attn", "c_proj", "c_fc"]],
    "llama": [["q_proj", "v_proj"], ["k_proj", "gate_proj", "down_proj"]],
}


def _tiny(model_type: str, kwargs: dict) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    return AutoModel.from_config(AutoConfig.for_model(model_type, **kwargs))


@pytest.fixture(scope="module", params=TINY, ids=[t[0] for t in TINY])
def tiny(request, tmp_path_factory):
    model_type, kwargs = request.param
    model = _tiny(model_type, kwargs)
    path = tmp_path_factory.mktemp(model_type) / "config.json"
    path.write_text(model.config.to_json_string())
    return model_type, kwargs, model, calc.model_linears(calc.load_model_config(str(path)))


def test_layer_names_and_shapes_match_transformers(tiny) -> None:
    from transformers.pytorch_utils import Conv1D

    _, _, model, specs = tiny
    real = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            real[name] = (m.in_features, m.out_features)
        elif isinstance(m, Conv1D):
            real[name] = tuple(m.weight.shape)
    assert {s.name: (s.in_features, s.out_features) for s in specs} == real


@pytest.mark.parametrize("r", calc.LORA_RANKS)
def test_lora_counts_equal_peft(tiny, r) -> None:
    from peft import LoraConfig, get_peft_model

    model_type, kwargs, _, specs = tiny
    for targets in TARGETS[model_type]:
        peft_model = get_peft_model(
            _tiny(model_type, kwargs), LoraConfig(r=r, target_modules=targets)
        )
        trainable, _ = peft_model.get_nb_trainable_parameters()
        assert calc.lora_count(calc.select(specs, targets), r) == trainable


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_counts_equal_adapted_model(tiny, family) -> None:
    model_type, kwargs, _, specs = tiny
    targets = TARGETS[model_type][0]
    model = get_qadapter_model(_tiny(model_type, kwargs), QAdapterConfig(family, targets))
    trainable, _ = model.get_nb_trainable_parameters()
    assert calc.family_count(calc.select(specs, targets), family) == trainable


def _preset_count(preset, targets, family=None, r=None):
    specs = calc.select(calc.model_linears(calc.PRESETS[preset]), targets)
    return calc.lora_count(specs, r) if family is None else calc.family_count(specs, family)


@pytest.mark.parametrize(
    ("preset", "targets", "r", "expected"),
    [
        ("minilm-l6", ["query", "value"], 8, 73_728),  # measured with peft 0.21
        ("bert-base", ["query", "value"], 8, 294_912),
        ("deberta-v3-base", ["query", "value"], 8, 294_912),
        ("deberta-v3-base", ["query_proj", "value_proj"], 8, 294_912),
        ("gpt2-medium", ["c_attn"], 4, 393_216),  # LoRA paper's GPT-2 M setting: 0.35M
        ("vit-b16", ["query", "value"], 16, 589_824),
        ("llama-2-7b", ["q_proj", "v_proj"], 8, 4_194_304),  # the well-known 4.19M
        ("llama-2-7b", ["up_proj"], 1, 32 * (4096 + 11008)),
    ],
)
def test_preset_lora_counts(preset, targets, r, expected) -> None:
    assert _preset_count(preset, targets, r=r) == expected


def test_quic_anchor_deberta() -> None:
    specs = calc.select(calc.model_linears(calc.PRESETS["deberta-v3-base"]), ["query", "value"])
    assert len(specs) == 24
    assert calc.family_count(specs, "compound", blocks=3, orders=[1, 2]) == 24 * 3 * 231
    ref = calc.reference_count(specs, blocks=3, orders=[1, 2])
    assert ref == 24 * 3 * 22 * 22 == 34_848 and round(ref / 1e6, 2) == 0.03  # QuIC: 0.03M


def test_cli_table(capsys) -> None:
    assert main(["count", "--model", "deberta-v3-base", "--targets", "query,value"]) == 0
    out = capsys.readouterr().out
    assert "24 layers: 12× query 768→768, 12× value 768→768" in out
    # compound by default: 51 blocks of 5 wires per 768-wide layer, 10 angles each (n² = 25)
    for text in ("36,864", "294,912", "589,824", "12,240", "30,600", "compound (QuIC ref. n²)"):
        assert text in out
    assert {line.split("|")[0].strip() for line in out.splitlines()[3:]} >= set(FAMILIES)


def test_cli_options_quant_and_config_file(tmp_path, capsys) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(calc.PRESETS["minilm-l6"]))
    argv = [
        "count",
        "--model",
        str(cfg),
        "--targets",
        r"re:.*\.(query|value)",
        "--family",
        "compound",
        "--option",
        "compound.blocks=2",
        "--quant-bits",
        "4",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    specs = calc.select(calc.model_linears(calc.PRESETS["minilm-l6"]), ["query", "value"])
    n = calc.family_count(specs, "compound", blocks=2)
    assert f"{n:,d}" in out and "bytes 4-bit/g32" in out and "73,728" in out
    assert f"{quantized_nbytes(n, 4, 32):,d}" in out and "pauli" not in out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--model", "gpt5", "--targets", "q"], "not a preset"),
        (["--model", "bert-base", "--targets", "qeury"], r"selects no layer; close: \['query'"),
        (["--model", "bert-base", "--targets", "query", "--option", "pauli.rnk=2"], "no option"),
        (["--model", "bert-base", "--targets", "query", "--option", "x"], "KEY=VALUE"),
        (["--model", "bert-base", "--targets", "query", "--option", "pauli.rank=4.0"],
         r"pauli option 'rank': expected an int >= 1; found 4.0 \(a float\)"),
        (["--model", "bert-base", "--targets", "query", "--option", "scale=NaN"],
         r"pauli option 'scale': expected a finite nonzero float; found nan"),
        (["--model", "bert-base", "--targets", "query", "--option", "hamming.order=3"],
         "hamming option 'order' has no effect: variant='hw'"),
        (["--model", "bert-base", "--targets", "query", "--option", "compound.orders=[700]",
          "--option", "compound.blocks=3"],
         r"compound option 'orders': \[700\] on a 768 → 768 layer .* constant"),
        (["--model", "bert-base", "--targets", "query", "--option", "pauli.rank=1000"],
         r"1\.\.768 for a 768 → 768 layer; found 1000"),
        (["--model", "bert-base", "--targets", "query", "--quant-bits", "4", "--quant-group", "0"],
         r"--quant-group: expected an int >= 1; found 0"),
        (["--model", "bert-base", "--targets", "query", "--quant-group", "-3"],
         r"--quant-group: expected an int >= 1; found -3"),
        (["--model", "bert-base", "--targets", "re:("], r"target regex '\(' does not compile"),
        (["--model", "bert-base", "--targets", "re:"], "expected a regular expression after"),
        (["--model", "bert-base", "--targets", ""],
         r"no target given: .* layers: \['attention.output.dense', .* roles: \['query'"),
        (["--model", "bert-base", "--targets", " , "], "no target given"),
        (["--model", "bert-base", "--targets", "query", "--family", "nope"],
         "unknown adapter family 'nope'"),
    ],
)
def test_cli_errors(argv, match, capsys) -> None:
    assert main(["count", *argv]) == 2
    err = capsys.readouterr().err
    assert "qadapters count: error:" in err and re.search(match, err)


def test_unprefixed_options_reach_the_families_where_they_act(capsys) -> None:
    argv = ["count", "--model", "bert-base", "--targets", "query", "--option", "order=3"]
    assert main(argv) == 0
    rows = {line.split("|")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert "order=3" in rows["taylor"] and "defaults" in rows["hamming"]  # inert with hw
    specs = calc.select(calc.model_linears(calc.PRESETS["bert-base"]), ["query"])
    assert f"{calc.family_count(specs, 'taylor', order=3):,d}" in rows["taylor"]
    assert calc._parse_options(["variant=single_order", "order=3"])["hamming"] == {
        "variant": "single_order", "order": 3
    }  # fmt: skip


def test_help_lists_every_option_from_the_dataclasses(capsys) -> None:
    from qadapters.families import options_class

    with pytest.raises(SystemExit):
        main(["count", "--help"])
    out = capsys.readouterr().out
    for family in FAMILIES:
        for name, text in options_class(family).help().items():
            assert f"{family}.{name}=" in out and text in out


def test_unsupported_model_type() -> None:
    with pytest.raises(ValueError, match="unsupported model_type 't5'"):
        calc.model_linears({"model_type": "t5"})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", r"config\.json: expected a Hugging Face config\.json; found bad JSON"),
        ("[1]", r"config\.json: expected a JSON object; found list"),
        ('{"model_type": "bert", "hidden_size": 8}', "has no field 'intermediate_size'"),
        (
            '{"model_type": "bert", "hidden_size": "768", "num_hidden_layers": 2, '
            '"intermediate_size": 8}',
            r"field 'hidden_size': expected a positive int; found '768'",
        ),
    ],
)
def test_cli_bad_config_files(tmp_path, capsys, text, match) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    assert main(["count", "--model", str(path), "--targets", "query"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(match, err)


def test_cli_prints_costs_and_marks_builds_over_budget(capsys) -> None:
    from backends import budget
    from qadapters.families.cost import lora_cost

    argv = ["count", "--model", "minilm-l6", "--targets", "query,value"]
    with budget.limit(50 * 1024**2):
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "MACs/token" in out and "act floats/token" in out and "build bytes" in out
    rows = {line.split("|")[0].strip(): line.split("|") for line in out.splitlines()}
    specs = calc.select(calc.model_linears(calc.PRESETS["minilm-l6"]), ["query", "value"])
    lora8 = sum(lora_cost(384, 384, 8).forward_macs for _ in specs)
    for family in FAMILIES:
        cost, largest = calc.family_cost(specs, family)
        cells = [c.strip() for c in rows[family]]
        assert cells[6] == f"{cost.forward_macs:,d}"
        assert cells[7] == f"{cost.forward_macs / lora8:.2f}"
        assert cells[8] == f"{cost.activation_floats:,d}"
        assert cells[10].endswith("(over budget)") == (largest > 50 * 1024**2)
    assert rows["lora"][7].strip() in {"0.12", "1.00", "2.00"}


def test_count_shows_the_cost_of_a_head_it_would_refuse(capsys) -> None:
    cfg = {"model_type": "gpt2", "n_embd": 4096, "n_layer": 1, "n_inner": 50257}
    specs = calc.select(calc.model_linears(cfg), ["mlp.c_fc"])
    cost, largest = calc.family_cost(specs, "hamming")
    assert calc.family_count(specs, "hamming") == 242 and largest == cost.build_bytes > 4 * 1024**3


def test_all_linear_counts_equal_peft(tiny) -> None:
    from peft import LoraConfig, get_peft_model

    model_type, kwargs, _, specs = tiny
    peft_model = get_peft_model(
        _tiny(model_type, kwargs), LoraConfig(r=4, target_modules="all-linear")
    )
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert calc.lora_count(calc.select(specs, ["all-linear"]), 4) == trainable


def test_cli_prints_each_layer_shapes_cost_and_compute_path(capsys) -> None:
    from qadapters.families.cost import lora_cost

    argv = ["count", "--model", "bert-base", "--targets", "query,intermediate.dense"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = out[out.index("cost of one adapter per layer shape") :].splitlines()[1:]
    assert table[0].split("|")[0].strip() == "layer" and table[0].endswith("compute path")
    cells = [[c.strip() for c in line.split("|")] for line in table[2:]]
    shapes = {(768, 768): "12× 768→768", (768, 3072): "12× 768→3072"}
    assert [row[0] for row in cells] == [t for t in shapes.values() for _ in range(5)]
    for (d_in, d_out), layer in shapes.items():
        rows = {row[1]: row for row in cells if row[0] == layer}
        assert list(rows) == ["lora r=8", *FAMILIES]
        lora = lora_cost(d_in, d_out, 8).forward_macs
        assert rows["lora r=8"][2] == f"{lora:,d}" and rows["lora r=8"][3] == "1.00"
        for family in FAMILIES:
            cost = FAMILIES[family].cost(d_in, d_out)
            assert rows[family][2] == f"{cost.forward_macs:,d}"
            assert rows[family][3] == f"{cost.forward_macs / lora:.2f}"
            assert rows[family][4] == f"{cost.activation_floats:,d}"
            assert rows[family][5] == f"{cost.build_macs:,d}"
            shares = FAMILIES[family].shares_builds
            shared = "; one batched build for the 12 layers" if shares else ""
            assert rows[family][7] == calc.compute_path(family, d_in, d_out) + shared


@pytest.mark.parametrize(
    ("family", "shape", "options", "expected"),
    [
        ("pauli", (768, 768), {}, "U, V in one batch"),
        ("pauli", (768, 3072), {}, "U, V apart"),
        ("taylor", (384, 384), {}, "matrix_exp"),
        ("taylor", (384, 384), {"order": 3}, "factors by order 3"),
        ("compound", (768, 768), {"blocks": 3}, "n=22: weight-1 dense pass product, minors to k=2"),
        ("compound", (768, 768), {}, "n=5: weight-1 dense pass product, minors to k=2"),
        ("compound", (768, 768), {"orders": [1, 2, 3]}, "minors to k=3"),
        ("compound", (768, 768), {"num_adapters": 2, "combine": "sum"}, "keeps its input"),
        ("compound", (768, 768), {"num_adapters": 2}, "keeps the output"),
        ("compound", (768, 768), {}, "on the frozen weight when a call has over 768 tokens"),
        ("hamming", (768, 768), {}, "on the merged weight with enough tokens"),
        ("hamming", (768, 768), {}, "n=10: only the kept minors"),
        ("hamming", (64, 64), {}, "n=6: every weight's compound, then cut"),
        ("hamming", (768, 768), {"variant": "single_order", "order": 2},
         "n=40: the weight-2 block"),
    ],
)  # fmt: skip
def test_compute_path(family, shape, options, expected) -> None:
    assert expected in calc.compute_path(family, *shape, **options)


def test_compute_path_checks_options_as_the_family_does() -> None:
    with pytest.raises(ValueError, match=r"1\.\.16 for a 16 → 16 layer; found 99"):
        calc.compute_path("pauli", 16, 16, rank=99)
