"""``qadapters export``: every circuit × format through the CLI, files written atomically, JSON and
QASM 3 read back, bad input gives exit code 2 and a message that says what was expected."""

from __future__ import annotations

import re

import numpy as np
import pytest

from circuits import Circuit, fbs_butterfly, rbs_brick, rbs_butterfly, rbs_pyramid, two_design
from qadapters.cli import main

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


def test_non_integer_qubits_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", "two_design", "--qubits", "three"])
    assert exc.value.code == 2
    assert "argument --qubits: invalid int value: 'three'" in capsys.readouterr().err
