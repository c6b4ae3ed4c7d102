"""The IR: validation, JSON round trip, transformations and the text diagram."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits import Circuit, Op, fbs_butterfly, rbs_brick, rbs_pyramid, two_design
from circuits.gates import GATES

BUILT = [two_design(3, 2), rbs_pyramid(5), rbs_brick(4, 3), fbs_butterfly(8)]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Circuit(2, [Op("ry", (2,), 0)]), r"uses wire\(s\) \[2\]; expected wires in 0..1"),
        (lambda: Op("cz", (1, 1)), "must be distinct; found wires"),
        (lambda: Op("x", (0,), controls=(0,)), "must be distinct"),
        (lambda: Op("cz", (0,)), r"acts on 2 wire\(s\); found wires \(0,\)"),
        (lambda: Op("ry", (0,)), "needs param = int index or float angle; found None"),
        (lambda: Op("cz", (0, 1), 0), "takes no parameter; found param=0"),
        (lambda: Op("ry", (0,), -1), "index must be >= 0; found -1"),
        (lambda: Op("ry", (0,), float("nan")), "must be finite"),
        (lambda: Op("ry", (0,), True), "found True"),
        (lambda: Op("nope", (0,)), "unknown gate 'nope'"),
        (lambda: Op("x", (0,), controls=(1,), control_values=(2,)), "must be 0 or 1"),
        (lambda: Circuit(2, [Op("ry", (0,), 3)], num_params=2), "num_params >= 4, found 2"),
        (lambda: Circuit(0, []), "n_qubits must be >= 1; found 0"),
        (lambda: Circuit(2, [], ancillas=(0,), postselect=(0, 1)), "one value per ancilla"),
    ],
)
def test_invalid_circuits_are_rejected_with_clear_messages(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("circuit", BUILT, ids=lambda c: c.name)
def test_json_round_trip(circuit: Circuit) -> None:
    text = circuit.to_json()
    again = Circuit.from_json(text)
    assert again == circuit
    assert json.loads(text)["format"] == "qadapters.circuit"


def test_from_dict_rejects_other_formats() -> None:
    with pytest.raises(ValueError, match=r"expected format 'qadapters\.circuit'"):
        Circuit.from_dict({"format": "other"})
    d = two_design(2, 1).to_dict()
    d["ops"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="unknown op field"):
        Circuit.from_dict(d)


_names = st.sampled_from(sorted(GATES))


@st.composite
def circuits(draw) -> Circuit:
    n = draw(st.integers(3, 5))
    ops = []
    for _ in range(draw(st.integers(0, 8))):
        gate = GATES[draw(_names)]
        wires = draw(st.permutations(range(n)))[: gate.num_wires + 1]
        targets, spare = tuple(wires[: gate.num_wires]), wires[gate.num_wires :]
        controls = tuple(spare[: draw(st.integers(0, len(spare)))])
        values = tuple(draw(st.integers(0, 1)) for _ in controls)
        param = None
        if gate.num_params:
            param = draw(st.one_of(st.integers(0, 4), st.floats(-3, 3, allow_nan=False)))
        ops.append(Op(gate.name, targets, param, controls, values, draw(st.booleans())))
    return Circuit(n, ops, num_params=5)


@settings(max_examples=60, deadline=None)
@given(circuits())
def test_json_round_trip_of_random_circuits(circuit: Circuit) -> None:
    assert Circuit.from_json(circuit.to_json()) == circuit
    assert Circuit.from_json(circuit.inverse().to_json()) == circuit.inverse()
    assert circuit.inverse().inverse() == circuit


def test_compose_shifts_parameters_unless_shared() -> None:
    a, b = two_design(3, 1), rbs_pyramid(3)
    ab = a.compose(b)
    assert ab.num_params == a.num_params + b.num_params
    assert ab.ops[len(a.ops)].param == a.num_params
    shared = a.compose(two_design(3, 1), share_params=True)
    assert shared.num_params == a.num_params
    with pytest.raises(ValueError, match="on 3 qubits; found 4"):
        a.compose(rbs_pyramid(4))


def test_compose_keeps_the_ancilla_register_of_either_side() -> None:
    prep = two_design(3, 1)
    with_anc = Circuit(3, [Op("h", (0,))], ancillas=(0,), postselect=(0,))
    for c in (prep.compose(with_anc), with_anc.compose(prep)):
        assert (c.ancillas, c.postselect) == ((0,), (0,))
    other = Circuit(3, [], ancillas=(1,), postselect=(0,))
    with pytest.raises(ValueError, match=r"different ancilla registers; found \(0,\)"):
        with_anc.compose(other)


def test_on_wires_and_controlled() -> None:
    c = rbs_pyramid(3).on_wires([1, 2, 3], 4).controlled([0], [0])
    assert c.n_qubits == 4
    assert all(op.controls == (0,) and op.control_values == (0,) for op in c.ops)
    assert {w for op in c.ops for w in op.wires} == {1, 2, 3}


@pytest.mark.parametrize(
    ("circuit", "preserves"),
    [(rbs_pyramid(4), True), (fbs_butterfly(4), True), (two_design(3, 1), False),
     (Circuit(2, [Op("cz", (0, 1)), Op("rz", (1,), 0.2)]), True)],
)
def test_preserves_hamming_weight(circuit: Circuit, preserves: bool) -> None:
    assert circuit.preserves_hamming_weight is preserves


def test_diagram_shows_every_gate_and_wire() -> None:
    c = Circuit(3, [Op("ry", (0,), 0), Op("cz", (0, 2)), Op("x", (1,), controls=(0,),
                                                             control_values=(0,))])
    text = str(c)
    assert "RY(θ0)" in text and "○" in text and "q2:" in text
    assert text.splitlines()[0].startswith("Circuit(3 qubits, 3 ops, 1 params)")
    wide = str(two_design(4, 6))
    assert max(len(line) for line in wide.splitlines()) <= 120


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", r"does not parse: Expecting property name .* at line 1, column 2"),
        ("[1, 2]", r"expected a JSON object for a circuit; found list"),
        ('{"format": "qiskit"}', r"expected format 'qadapters.circuit'; found 'qiskit'"),
        ('{"format": "qadapters.circuit", "version": 1}', r"lacks the field\(s\) \['n_qubits'"),
        (
            '{"format": "qadapters.circuit", "version": 1, "n_qubits": 2, "num_params": 0, '
            '"ops": [{"wires": [0]}]}',
            r"ops\[0\] of the circuit data is not a valid op: 'name'",
        ),
    ],
)
def test_from_json_errors_say_what_was_expected(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Circuit.from_json(text)
