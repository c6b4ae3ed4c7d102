"""``qadapters export``: every circuit × format through the CLI, files written atomically, JSON and
QASM 3 read back, bad input gives exit code 2 and a message that says what was expected."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

import circuits
from circuits import Circuit, fbs_butterfly, rbs_brick, rbs_butterfly, rbs_pyramid, two_design
from qadapters.cli import export, main

#: (CLI arguments, the circuit they must build)
CASES = [
    (["two_design", "--qubits", "3"], two_design(3, 1)),
    (["two_design", "--qubits", "4", "--layers", "2"], two_design(4, 2)),
    (["rbs_pyramid", "--qubits", "5"], rbs_pyramid(5)),
    (["rbs_brick", "--qubits", "4"], rbs_brick(4, 4)),
    (["rbs_brick", "--qubits", "6", "--depth", "2"], rbs_brick(6, 2)),
    (["rbs_butterfly", "--qubits", "4"], rbs_butterfly(4)),
    (["fbs_butterfly", "--qubits", "8"], fbs_butterfly(8)),
]
IDS = [" ".join(a) for a, _ in CASES]


@pytest.mark.parametrize(("args", "want"), CASES, ids=IDS)
def test_json_file_loads_back_as_the_same_circuit(tmp_path, args, want) -> None:
    out = tmp_path / "c.json"
    assert main(["export", *args, "--to", "json", "--output", str(out)]) == 0
    assert Circuit.from_json(out.read_text()) == want
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no temporary file left


@pytest.mark.parametrize(("args", "want"), CASES, ids=IDS)
def test_text_to_stdout_is_the_ir_diagram(capsys, args, want) -> None:
    assert main(["export", *args]) == 0
    assert capsys.readouterr().out == str(want) + "\n"


@pytest.mark.parametrize(("args", "want"), CASES[:3] + CASES[-1:], ids=IDS[:3] + IDS[-1:])
def test_qasm3_file_round_trips_to_the_same_operator(tmp_path, args, want) -> None:
    pytest.importorskip("qiskit")
    import qiskit.qasm3
    import torch
    from qiskit.quantum_info import Operator

    from backends import exact

    out = tmp_path / "c.qasm"
    assert main(["export", *args, "--to", "qasm3", "--params-seed", "7", "--output", str(out)]) == 0
    theta = np.random.default_rng(7).uniform(-np.pi, np.pi, want.num_params)
    got = Operator(qiskit.qasm3.loads(out.read_text())).data
    np.testing.assert_allclose(got, exact.unitary(want, torch.tensor(theta)).numpy(), atol=1e-10)


def test_symbolic_qasm3_declares_inputs(capsys) -> None:
    pytest.importorskip("qiskit")
    assert main(["export", "rbs_pyramid", "--qubits", "3", "--to", "qasm3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("OPENQASM 3.0;")
    assert "input float[64] _θ_0_;" in text and "gate rbs" in text


def test_qiskit_draw_with_measurements(capsys) -> None:
    pytest.importorskip("qiskit")
    assert main(["export", "two_design", "--qubits", "2", "--to", "qiskit-draw", "--measure"]) == 0
    text = capsys.readouterr().out
    assert "θ[0]" in text and "Ry" in text and "M" in text


def test_output_replaces_an_existing_file(tmp_path) -> None:
    out = tmp_path / "c.txt"
    out.write_text("old contents that are longer than the new ones" * 100)
    assert main(["export", "rbs_pyramid", "--qubits", "2", "--output", str(out)]) == 0
    assert out.read_text() == str(rbs_pyramid(2)) + "\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["foo", "--qubits", "3"], r"unknown circuit 'foo'; expected one of \['two_design', "
         r"'rbs_pyramid', 'rbs_brick', 'rbs_butterfly', 'fbs_butterfly'\]"),
        (["rbs_pyramid", "--qubits", "1"], r"expected n_qubits >= 2; found 1"),
        (["rbs_butterfly", "--qubits", "6"], r"power of two; found 6"),
        (["two_design", "--qubits", "3", "--layers", "-1"], r"expected layers >= 0; found -1"),
        (["rbs_brick", "--qubits", "3", "--depth", "0"], r"expected depth >= 1; found 0"),
        (["rbs_pyramid", "--qubits", "3", "--layers", "2"],
         r"--layers applies to two_design only; found it for rbs_pyramid"),
        (["two_design", "--qubits", "3", "--depth", "2"],
         r"--depth applies to rbs_brick only; found it for two_design"),
        (["two_design", "--qubits", "3", "--to", "pdf"],
         r"unknown format 'pdf'; expected one of \['text', 'qasm3', 'qiskit-draw', 'json'\]"),
        (["two_design", "--qubits", "3", "--to", "json", "--params-seed", "1"],
         r"--params-seed applies to --to qasm3 or qiskit-draw; found --to json"),
        (["two_design", "--qubits", "3", "--measure"],
         r"--measure applies to --to qasm3 or qiskit-draw; found --to text"),
        (["two_design", "--qubits", "3", "--output", "/nonexistent-dir/c.txt"],
         r"expected an existing directory to write /nonexistent-dir/c.txt into; "
         r"found no /nonexistent-dir"),
    ],
    ids=["name", "qubits", "butterfly", "layers", "depth", "layers-for-pyramid",
         "depth-for-2design", "format", "seed-for-json", "measure-for-text", "missing-dir"],
)
def test_bad_input_exits_2_with_a_clear_message(capsys, args, message: str) -> None:
    assert main(["export", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qadapters export: error: ")
    assert re.search(message, err), err


def test_output_that_is_a_directory_is_one_line_before_any_work(capsys, tmp_path) -> None:
    # the circuit is far too large to build: the directory must be refused first
    args = ["export", "rbs_pyramid", "--qubits", "100000", "--output", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == (
        f"qadapters export: error: expected a file path for --output; found the directory "
        f"{tmp_path}\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (["rbs_pyramid", "--qubits", "100000"],
         ["exporting rbs_pyramid on 100000 qubits as text (4999950000 ops in 199997 moments)",
          "TiB"]),
        (["two_design", "--qubits", "2000000", "--to", "json"], ["as json (7999997 ops"]),
        (["rbs_brick", "--qubits", "3000", "--depth", "3000", "--to", "qasm3"], ["as qasm3"]),
        (["fbs_butterfly", "--qubits", "4096", "--to", "qiskit-draw"], ["as qiskit-draw"]),
    ],
    ids=["pyramid-text", "two-design-json", "brick-qasm3", "butterfly-draw"],
)  # fmt: skip
def test_an_export_past_the_memory_budget_is_refused_before_building(
    capsys, tmp_path, monkeypatch, args, parts
) -> None:
    monkeypatch.delenv("QADAPTERS_MAX_BYTES", raising=False)
    out = tmp_path / "c.txt"
    start = time.perf_counter()
    assert main(["export", *args, "--output", str(out)]) == 2
    assert time.perf_counter() - start < 5  # nothing was built
    err = capsys.readouterr().err
    assert err.startswith("qadapters export: error: ") and err.count("\n") == 1
    for part in [*parts, "over the budget of 4.0 GiB", "QADAPTERS_MAX_BYTES"]:
        assert part in err, err
    assert not out.exists()


def test_the_budget_is_read_from_the_environment(capsys, monkeypatch) -> None:
    monkeypatch.setenv("QADAPTERS_MAX_BYTES", "1K")
    assert main(["export", "rbs_pyramid", "--qubits", "5"]) == 2
    assert "over the budget of 1.0 KiB" in capsys.readouterr().err
    monkeypatch.setenv("QADAPTERS_MAX_BYTES", "1M")
    assert main(["export", "rbs_pyramid", "--qubits", "5"]) == 0


@pytest.mark.parametrize(("args", "want"), CASES, ids=IDS)
def test_the_size_estimate_counts_the_ops_and_moments_it_builds(args, want) -> None:
    name, n = args[0], int(args[2])
    layers = int(args[4]) if "--layers" in args else None
    depth = int(args[4]) if "--depth" in args else None
    ops, moments = export._sizes(name, n, layers, depth)
    assert ops == len(want.ops)
    drawn = len(circuits.moments(want))
    assert moments == drawn if name != "fbs_butterfly" else moments >= drawn


def test_non_integer_qubits_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", "two_design", "--qubits", "three"])
    assert exc.value.code == 2
    assert "argument --qubits: invalid int value: 'three'" in capsys.readouterr().err
