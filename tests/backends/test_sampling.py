"""backends.sampling against hand-computed counts: binding, counts → probabilities (bit order),
Z-string means, observable parsing, postselection (an impossible pattern included), and the one
result type that Aer and IBM share."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

pytest.importorskip("qiskit")

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp

from backends import sampling
from backends.qiskit import to_qiskit
from circuits import Circuit, Op, two_design

# ---------------------------------------------------------------------------- binding
SYMBOLIC = to_qiskit(Circuit(1, [Op("ry", (0,), k) for k in range(6)], 6))  # θ[0..5]
ROWS = np.arange(12, dtype=float).reshape(2, 6) / 10  # set b, parameter k: (6b + k) / 10


def _compiled(*indices: int) -> QuantumCircuit:
    """A circuit using only θ[k] for k in ``indices`` (as transpiling may leave it)."""
    qc = QuantumCircuit(1)
    for k in indices:
        qc.ry(SYMBOLIC.parameters[k], 0)
    return qc


@pytest.mark.parametrize(
    ("indices", "expected"),
    [
        ((0, 1, 2, 3, 4, 5), ROWS),
        ((4, 1), [[0.1, 0.4], [0.7, 1.0]]),  # Qiskit orders θ[1] before θ[4]
        ((5,), [[0.5], [1.1]]),
        ((), np.zeros((2, 0))),
    ],
)
def test_bindings_follow_the_compiled_parameters(indices, expected):
    np.testing.assert_allclose(sampling.bindings(SYMBOLIC, _compiled(*indices), ROWS), expected)


def test_bindings_errors():
    foreign = QuantumCircuit(1)
    foreign.ry(Parameter("φ"), 0)
    with pytest.raises(ValueError, match=r"among the symbolic ones; found \['φ'\]"):
        sampling.bindings(SYMBOLIC, foreign, ROWS)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 6\)"):
        sampling.bindings(SYMBOLIC, _compiled(0), ROWS[:, :5])


@pytest.mark.parametrize(
    ("compiled", "length"), [(_compiled(0), 2), (QuantumCircuit(2), 1)], ids=["bound", "fixed"]
)
def test_pub_binds_only_when_parameters_remain(compiled, length):
    assert len(sampling.pub(compiled, np.zeros((3, compiled.num_parameters)))) == length


# ---------------------------------------------------------------------------- counts
@pytest.mark.parametrize(
    ("counts", "n", "shots", "expected"),
    [
        ([{"0": 3, "1": 1}], 1, 4, [[0.75, 0.25]]),
        ([{"10": 3, "00": 1}], 2, 4, [[0.25, 0.0, 0.75, 0.0]]),  # "10": wire 0 set = index 2
        ([{"100": 2}], 3, 2, [[0, 0, 0, 0, 1, 0, 0, 0]]),  # leftmost character = wire 0
        ([{"001": 1, "011": 1}, {"111": 2}], 3, 2,
         [[0, 0.5, 0, 0.5, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]]),
        ([{"01": 1}], 2, 4, [[0, 0.25, 0, 0]]),  # shots is the denominator
    ],
)  # fmt: skip
def test_probabilities_from_counts(counts, n, shots, expected):
    np.testing.assert_allclose(sampling.probabilities_from_counts(counts, n, shots), expected)


@pytest.mark.parametrize("bad", ["1", "101", "1x", "2 "])
def test_probabilities_reject_bad_bitstrings(bad: str):
    with pytest.raises(ValueError, match=f"expected 2-bit strings of 0 and 1; found '{bad}'"):
        sampling.probabilities_from_counts([{bad: 1}], 2, 1)


class _Bits:
    """The two methods of a ``BitArray`` that ``counts_per_set`` reads."""

    def __init__(self, per_set: list[dict[str, int]], shape: tuple[int, ...]) -> None:
        self.per_set, self.shape = per_set, shape

    def get_counts(self, b: int | None = None) -> dict[str, int]:
        return self.per_set[0 if b is None else b]


@pytest.mark.parametrize(
    ("bits", "num_sets", "expected"),
    [
        (_Bits([{"0": 1}, {"1": 1}], (2,)), 2, [{"0": 1}, {"1": 1}]),
        (_Bits([{"1": 5}], ()), 3, [{"1": 5}] * 3),  # no parameters: one shapeless result
    ],
)
def test_counts_per_set(bits, num_sets, expected):
    assert sampling.counts_per_set(bits, num_sets) == expected


@pytest.mark.parametrize(
    ("counts", "single", "probabilities"),
    [([{"1": 4}], True, [0.0, 1.0]), ([{"1": 4}, {"0": 4}], False, [[0, 1], [1, 0]])],
)
def test_make_sample_drops_the_batch_axis_for_one_vector(counts, single, probabilities):
    s = sampling.make_sample(counts, 1, 4, single, "job-1")
    assert s.counts == (counts[0] if single else counts) and s.shots == 4 and s.job_id == "job-1"
    np.testing.assert_allclose(s.probabilities, probabilities)


@pytest.mark.parametrize(
    ("counts", "wires", "expected"),
    [
        ({"00": 3, "01": 1}, (1,), (0.5, 4)),
        ({"00": 3, "01": 1}, (0,), (1.0, 4)),
        ({"11": 2}, (0, 1), (1.0, 2)),  # two ones: even parity
        ({"10": 1, "01": 3}, (0, 1), (-1.0, 4)),
        ({"10": 1, "01": 3}, (), (1.0, 4)),  # the empty string is the identity
        ({}, (0,), (0.0, 0)),  # nothing kept: 0 by convention
    ],
)
def test_z_parity_mean(counts, wires, expected):
    assert sampling.z_parity_mean(counts, wires) == expected


# ---------------------------------------------------------------------------- observables
@pytest.mark.parametrize(
    ("observables", "labels", "single"),
    [
        ("ZI", [[("ZI", 1)]], True),
        (["ZI", "IX"], [[("ZI", 1)], [("IX", 1)]], False),
        (SparsePauliOp.from_list([("ZZ", 0.5), ("XI", 2)]), [[("ZZ", 0.5), ("XI", 2)]], True),
        ("-YZ", [[("YZ", -1)]], True),
    ],
)
def test_pauli_observables(observables, labels, single):
    ops, got_single = sampling.pauli_observables(observables, 2)
    assert got_single == single
    assert [[(lab, complex(c)) for lab, c in op.to_list()] for op in ops] == [
        [(lab, complex(c)) for lab, c in row] for row in labels
    ]


@pytest.mark.parametrize(
    ("observables", "match"),
    [
        ("ZQ", "expected a Pauli string of I, X, Y, Z such as 'ZI'; found 'ZQ'"),
        ("zz", "found 'zz'"),
        ("ZZZ", r"on 2 qubits; found 3 \(in 'ZZZ'\)"),
        ("", "on 2 qubits; found 0"),
        ([SparsePauliOp("X")], "on 2 qubits; found 1"),
        ([3], "found int"),
    ],
)
def test_bad_observables_are_clear_errors(observables, match: str):
    with pytest.raises(ValueError, match=match):
        sampling.pauli_observables(observables, 2)


# ---------------------------------------------------------------------------- postselection
# Wire 0 is the ancilla; X on it means it always reads 1: pattern (0,) is impossible.
IMPOSSIBLE = Circuit(2, [Op("x", (0,))], 0, ancillas=(0,), postselect=(0,))
# RY(θ) on the ancilla, kept on |1>: success probability sin²(θ/2).
HALF = Circuit(2, [Op("ry", (0,), 0)], 1, ancillas=(0,), postselect=(1,))


@pytest.mark.parametrize(
    ("circuit", "params", "counts", "kept", "fraction", "probs", "success"),
    [
        (IMPOSSIBLE, np.zeros((1, 0)), [{"10": 60, "11": 40}], [{}], [0.0],
         [[math.nan, math.nan]], [0.0]),
        (HALF, np.array([[math.pi / 2], [math.pi]]),
         [{"00": 30, "10": 50, "11": 20}, {"10": 100}],
         [{"0": 50, "1": 20}, {"0": 100}], [0.7, 1.0], [[5 / 7, 2 / 7], [1, 0]], [0.5, 1.0]),
    ],
    ids=["impossible", "half"],
)  # fmt: skip
def test_postselected_sample(circuit, params, counts, kept, fraction, probs, success):
    # a set that keeps no shot warns and has NaN probabilities, never a zero "distribution"
    none_kept = not all(kept)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ps = sampling.postselected_sample(circuit, params, counts, 100, single=False, job_id="j")
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert bool(messages) == none_kept
    if none_kept:
        assert "no shot of 100 kept" in messages[0] and "pattern [0]" in messages[0]
        assert "exact success probability 0" in messages[0] and "NaN" in messages[0]
    assert ps.counts == kept and ps.shots == 100 and ps.job_id == "j"
    np.testing.assert_allclose(ps.kept_fraction, fraction)
    np.testing.assert_allclose(ps.probabilities, probs)  # NaN where nothing was kept
    np.testing.assert_allclose(ps.success_probability, success, atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        one = sampling.postselected_sample(circuit, params[:1], counts[:1], 100, single=True)
    assert one.counts == kept[0] and one.kept_fraction == pytest.approx(fraction[0])
    assert one.probabilities.shape == (2,) and one.success_probability.shape == ()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sampling.postselected_sample(two_design(2, 0), np.zeros((1, 2)), [{}], 1,
                                              single=True), "ancillas and a postselect"),
        (lambda: sampling.postselected_sample(HALF, np.zeros((2, 1)), [{}], 1, single=False),
         r"one counts dict per parameter set \(2\); found 1"),
        (lambda: sampling.postselected_sample(HALF, np.zeros((1, 1)), [{"1": 1}], 1,
                                              single=True), "expected 2-bit strings"),
    ],
)  # fmt: skip
def test_postselection_errors(call, match: str):
    with pytest.raises(ValueError, match=match):
        call()


def test_transpile_needs_exactly_one_target():
    with pytest.raises(ValueError, match="exactly one of backend and basis_gates"):
        sampling.transpile(QuantumCircuit(1))
    out = sampling.transpile(_compiled(0), basis_gates=["ry", "rz", "sx", "cx"])
    assert out.num_parameters == 1


def test_aer_and_ibm_return_the_one_result_type():
    aer = pytest.importorskip("backends.aer")
    assert aer.Sample is sampling.Sample and aer.PostselectedSample is sampling.PostselectedSample
    s = aer.sample(HALF, [math.pi], shots=20, seed=0)
    assert isinstance(s, sampling.Sample) and s.job_id is None and s.counts == {"10": 20}
    ibm = pytest.importorskip("backends.ibm")
    assert ibm.IBMSample is sampling.Sample
    assert ibm.PostselectedSample is sampling.PostselectedSample


class _Device:
    def __init__(self, num_qubits: int, name: str | None) -> None:
        self.num_qubits, self.name = num_qubits, name


@pytest.mark.parametrize(
    ("device", "match"),
    [
        (_Device(1, "fake_one"), "the circuit needs 2 qubits; backend 'fake_one' has 1"),
        (_Device(0, None), "the circuit needs 2 qubits; the backend has 0"),
    ],
)
def test_check_qubits_names_both_sizes(device, match: str):
    sampling.check_qubits(two_design(2, 0), _Device(2, "fits"))  # exactly enough: no error
    with pytest.raises(ValueError, match=match):
        sampling.check_qubits(two_design(2, 0), device)
