"""backends.hardware: the best line, compiling onto it, freezing constant parameters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

pytest.importorskip("qiskit_ibm_runtime")

from qiskit import QuantumCircuit
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

from backends import exact
from backends.hardware import (
    best_line,
    compile_on_line,
    freeze_constants,
    gate_report,
    two_qubit_gates,
)
from backends.qiskit import to_qiskit
from circuits import two_design
from circuits.builders import rbs_pyramid
from circuits.lcu import lcu

MANILA = FakeManilaV2()  # a line of 5 qubits: 0-1-2-3-4


@pytest.mark.parametrize("length", [1, 2, 3, 5])
def test_best_line_is_a_path_of_the_device(length: int):
    line = best_line(MANILA, length)
    graph = MANILA.coupling_map.graph.to_undirected(multigraph=False)
    assert len(line) == len(set(line)) == length
    assert all(graph.has_edge(a, b) for a, b in itertools.pairwise(line))


@pytest.mark.parametrize(("length", "match"), [(0, "line length >= 1"), (6, "found none")])
def test_best_line_errors(length: int, match: str):
    with pytest.raises(ValueError, match=match):
        best_line(MANILA, length)


ADAPTER = lcu([two_design(3, 1), rbs_pyramid(3)])


@pytest.mark.parametrize("circuit", [two_design(3, 1), ADAPTER], ids=["two-design", "lcu"])
def test_compiled_on_line_stays_on_the_line_with_no_more_gates_than_preset(circuit):
    from backends.sampling import transpile

    qc = to_qiskit(circuit, np.linspace(0.1, 1.0, circuit.num_params), measure=True)
    line = best_line(MANILA, qc.num_qubits)
    compiled = compile_on_line(qc, MANILA, line=line, trials=2)
    report = gate_report(compiled)
    assert set(report.qubits) <= set(line)
    preset = transpile(qc, backend=MANILA, optimization_level=3)
    assert report.two_qubit_gates <= two_qubit_gates(preset)


def test_compile_on_line_keeps_the_measured_distribution():
    from qiskit_aer import AerSimulator

    c = ADAPTER
    theta = np.linspace(0.2, 1.4, c.num_params)
    compiled = compile_on_line(to_qiskit(c, theta, measure=True), MANILA, trials=1)
    shots = 20000
    counts = AerSimulator(seed_simulator=1).run(compiled, shots=shots).result().get_counts()
    probs = np.zeros(2**c.n_qubits)
    for bits, k in counts.items():
        probs[int(bits, 2)] += k / shots  # clbits read IR wire order (Note [Qiskit bit order])
    state = exact.columns(c, torch.as_tensor(theta), 1)[..., 0]
    np.testing.assert_allclose(probs, (state.abs() ** 2).numpy(), atol=0.02)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"line": (0, 2, 3)}, "neighbouring physical qubits"), ({"line": (0, 1)}, "at least 3"),
     ({"trials": 0}, "trials >= 1")],
)  # fmt: skip
def test_compile_on_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compile_on_line(QuantumCircuit(3), MANILA, **kwargs)


def test_freeze_constants_binds_the_shared_columns_and_keeps_the_states():
    c = two_design(3, 1)
    rng = np.random.default_rng(0)
    rows = np.tile(rng.uniform(-1, 1, c.num_params), (4, 1))
    rows[:, [0, 4]] = rng.uniform(-1, 1, (4, 2))
    frozen, kept = freeze_constants(c, rows)
    assert frozen.num_params == 2 and kept.shape == (4, 2)
    for full, short in zip(rows, kept, strict=True):
        np.testing.assert_allclose(
            exact.unitary(frozen, short).numpy(), exact.unitary(c, full).numpy(), atol=1e-12
        )


def test_freeze_constants_rejects_bad_rows():
    with pytest.raises(ValueError, match=r"rows of shape \(B, 7\)"):
        freeze_constants(two_design(3, 1), np.zeros((2, 3)))
