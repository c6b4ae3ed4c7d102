"""backends.mitigation: options, moments of a postselected Z string, folding, extrapolation."""

from __future__ import annotations

import numpy as np
import pytest

from backends.mitigation import Mitigation, extrapolate, moments
from circuits import two_design
from circuits.lcu import lcu


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", Mitigation()),
        ("readout", Mitigation(readout=True)),
        ("twirl8", Mitigation(twirls=8)),
        ("readout+zne3_5", Mitigation(readout=True, zne_scales=(1, 3, 5))),
        ("zne", Mitigation(zne_scales=(1, 3))),
        ("twirl2+dd", Mitigation(twirls=2, dynamical_decoupling=True)),
    ],
)
def test_parse_and_label_round_trip(text: str, expected: Mitigation):
    got = Mitigation.parse(text)
    assert got == expected
    assert Mitigation.parse(got.label) == got
    assert got.active == (text != "none")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"twirls": -1}, "twirls >= 0"), ({"calibration_shots": 0}, "calibration_shots >= 1"),
     ({"zne_scales": (1, 2)}, "odd zne_scales"), ({"zne_scales": (3,)}, "starting at 1")],
)  # fmt: skip
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Mitigation(**kwargs)


def test_parse_names_an_unknown_part():
    with pytest.raises(ValueError, match="unknown mitigation 'magic'"):
        Mitigation.parse("readout+magic")


LCU = lcu([two_design(2, 0), two_design(2, 0)])  # ancilla wire 0, postselect 0


@pytest.mark.parametrize(
    ("counts", "numer", "kept"),
    [
        ({"000": 6, "001": 2, "100": 2}, (6 + 2) / 10, 0.8),  # Z on system wire 0 = char 1
        ({"010": 3, "000": 1, "110": 4}, (1 - 3) / 8, 0.5),
        ({"100": 5}, 0.0, 0.0),  # nothing kept
    ],
)
def test_moments_postselect_then_weight(counts, numer, kept):
    n, k = moments(LCU, [counts], (0,))
    np.testing.assert_allclose([n[0], k[0]], [numer, kept])


class _SwapReadout:
    """A stand-in mitigator that 'corrects' by moving every shot to one string."""

    def apply_correction(self, counts, qubits):
        class _Quasi(dict):
            def nearest_probability_distribution(self):
                return self

        return _Quasi({"000": 1.0})


def test_moments_use_the_mitigated_distribution_over_all_bits():
    n, k = moments(LCU, [{"100": 7}], (0,), _SwapReadout(), (0, 1, 2))
    np.testing.assert_allclose([n[0], k[0]], [1.0, 1.0])


@pytest.mark.parametrize(
    ("scales", "values", "expected"),
    [((1, 3), (0.6, 0.2), 0.8), ((1, 3, 5), (0.9, 0.7, 0.5), 1.0), ((1, 3, 5), (1, 9, 25), 0.0)],
)
def test_richardson_extrapolation_is_exact_for_polynomials(scales, values, expected):
    got = extrapolate(scales, [np.array(v, dtype=float) for v in values])
    assert float(got) == pytest.approx(expected)


def test_fold_keeps_the_unitary_and_multiplies_two_qubit_gates():
    pytest.importorskip("qiskit")
    from qiskit.quantum_info import Operator

    from backends.hardware import two_qubit_gates
    from backends.mitigation import fold
    from backends.qiskit import to_qiskit

    qc = to_qiskit(two_design(3, 1), np.linspace(0.1, 0.7, 7))
    for scale in (1, 3, 5):
        folded = fold(qc, scale)
        assert two_qubit_gates(folded) == scale * two_qubit_gates(qc)
        assert Operator(folded).equiv(Operator(qc))
    with pytest.raises(ValueError, match="odd noise scale"):
        fold(qc, 2)


@pytest.mark.slow
def test_readout_mitigation_on_a_noisy_device_moves_z_towards_exact():
    pytest.importorskip("mthree")
    pytest.importorskip("qiskit_ibm_runtime")
    from backends.executors import resolve

    c = two_design(2, 0)
    params = np.array([[0.0, 0.0], [np.pi, 0.0]])  # <Z_0> = +1, −1 exactly
    raw = resolve("aer-noisy:fake_manila", shots=4000).z_expectation(c, params, (0,))
    mit = resolve("aer-noisy:fake_manila", shots=4000, mitigation=Mitigation(readout=True))
    fixed = mit.z_expectation(c, params, (0,))
    exact = np.array([1.0, -1.0])
    assert np.abs(fixed.values - exact).sum() < np.abs(raw.values - exact).sum()
    assert fixed.calibration_shots > 0
