"""``qadapters bp-study``: exact gradients, the decay fits, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from backends import exact
from backends.postselection import postselected_operator
from circuits import rbs_pyramid, two_design
from qadapters import files
from qadapters.cli import main
from qadapters.experiments import bp_study as bp

MODEL_SIZES = [(name, n) for name in bp.MODELS for n in (2, 3, 4)]


def _central_difference(model: bp.Model, params: torch.Tensor, kind: str) -> torch.Tensor:
    """∂L/∂θ by central differences, one angle at a time."""
    h = 1e-6
    grads = torch.zeros_like(params)
    for j in range(params.shape[1]):
        shift = torch.zeros_like(params)
        shift[:, j] = h
        plus = bp.costs(model, params + shift, [kind])[kind]
        minus = bp.costs(model, params - shift, [kind])[kind]
        grads[:, j] = (plus - minus) / (2 * h)
    return grads


@pytest.mark.parametrize(("name", "n"), MODEL_SIZES)
@pytest.mark.parametrize("kind", list(bp.COSTS))
def test_autograd_gradient_equals_finite_differences(name, n, kind):
    model = bp.build_model(name, n)
    params = bp.random_params(3, model.num_params, seed=n)
    grads = bp.gradients(model, params, [kind])[kind]
    assert grads.shape == (3, model.num_params)
    if name.startswith("hw") and n == 2 and kind == "local":
        # Z0 Z1 is the constant −1 on the weight-1 states |01>, |10>: no gradient at all
        assert grads.abs().max() == 0
    else:
        assert grads.abs().max() > 1e-3  # a gradient that is not identically zero
    torch.testing.assert_close(grads, _central_difference(model, params, kind), atol=1e-7, rtol=0)


# Parameter shift (Wierichs et al., general rule), exact for costs linear in |φ><φ| (no
# renormalisation, i.e. models without ancillas). A gate exp(θG) whose generator's eigenvalues
# differ by the integers 1..R makes f(θ) a trigonometric polynomial of degree R, and
#     f'(θ) = Σ_{μ=1}^{2R} (−1)^(μ−1) f(θ + x_μ) / (4R sin²(x_μ/2)),  x_μ = (2μ−1)π/(2R).
# RY(θ) = exp(−iθY/2): eigenvalues ±1/2, R = 1 (the familiar [f(θ+π/2) − f(θ−π/2)]/2).
# RBS(θ): eigenvalues 0 (|00>, |11>) and ±i (|01>, |10>), R = 2.
PARAMETER_SHIFT = [
    ("two-design", 3, "local", 1),
    ("two-design", 4, "global", 1),
    ("hw-k1", 4, "local", 2),
    ("hw-khalf", 4, "global", 2),
]


@pytest.mark.parametrize(("name", "n", "kind", "degree"), PARAMETER_SHIFT)
def test_autograd_gradient_equals_parameter_shift(name, n, kind, degree):
    model = bp.build_model(name, n)
    params = bp.random_params(4, model.num_params, seed=7)
    grads = bp.gradients(model, params, [kind])[kind]
    expected = torch.zeros_like(params)
    for j in range(model.num_params):
        for mu in range(1, 2 * degree + 1):
            x = (2 * mu - 1) * math.pi / (2 * degree)
            e = torch.zeros_like(params)
            e[:, j] = x
            weight = (-1) ** (mu - 1) / (4 * degree * math.sin(x / 2) ** 2)
            expected[:, j] += weight * bp.costs(model, params + e, [kind])[kind]
    torch.testing.assert_close(grads, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize(("n", "alpha"), [(2, (1.0, 1.0)), (3, (0.7, -0.3)), (4, (0.2, 1.5))])
def test_lcu_output_is_the_postselected_combination(n, alpha):
    model = bp.build_model("lcu-k1", n, alpha=alpha)
    params = bp.random_params(2, model.num_params, seed=n)
    phi = bp.output_states(model, params)
    by_operator = postselected_operator(model.circuit, params) @ model.state
    torch.testing.assert_close(phi, by_operator, atol=1e-12, rtol=0)
    qnn, adapter = two_design(n, n), rbs_pyramid(n)
    split = qnn.num_params
    direct = (
        alpha[0] * exact.apply(qnn, params[:, :split], model.state.expand(2, -1))
        + alpha[1] * exact.apply(adapter, params[:, split:], model.state.expand(2, -1))
    ) / sum(abs(a) for a in alpha)
    torch.testing.assert_close(phi, direct, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("name", "n", "weight", "params"),
    [
        ("two-design", 4, 0, 4 * 9 - 8),
        ("hw-k1", 5, 1, 10),
        ("hw-khalf", 5, 2, 10),
        ("hw-khalf", 6, 3, 15),
        ("lcu-k1", 3, 1, 15 + 3),
    ],
)
def test_models_have_the_documented_inputs_and_sizes(name, n, weight, params):
    model = bp.build_model(name, n)
    index = int(torch.nonzero(model.state).item())
    assert bin(index).count("1") == weight
    assert model.num_params == params
    assert float(model.state.norm()) == 1.0


@pytest.mark.parametrize(
    ("name", "n", "message"),
    [("nope", 4, "expected a model"), ("hw-k1", 1, "n >= 2"), ("lcu-k1", 3, "coefficients")],
)
def test_build_model_rejects_bad_input(name, n, message):
    with pytest.raises(ValueError, match=message):
        bp.build_model(name, n, alpha=(0.0, 0.0))


def test_random_params_are_seeded_and_in_range():
    a, b = bp.random_params(500, 3, seed=1), bp.random_params(500, 3, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, bp.random_params(500, 3, seed=2))
    assert a.dtype == torch.float64 and a.min() >= -math.pi and a.max() < math.pi
    assert a.min() < -3.0 and a.max() > 3.0


def test_chunked_sampling_equals_one_batch():
    model = bp.build_model("lcu-k1", 3)
    whole = bp.sample_gradients(model, 10, 3, ["local"], batch=10)["local"]
    chunked = bp.sample_gradients(model, 10, 3, ["local"], batch=3)["local"]
    torch.testing.assert_close(whole, chunked, atol=1e-14, rtol=0)


def test_variance_summary():
    grads = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]], dtype=torch.float64)
    s = bp.variance_summary(grads)
    assert s["var_first"] == pytest.approx(4.0) and s["mean_first"] == pytest.approx(3.0)
    assert s["var_per_param"] == pytest.approx([4.0, 4.0]) and s["var_mean"] == pytest.approx(4.0)
    blocks = bp.variance_summary(grads * torch.tensor([1.0, 2.0]), [("a", 0, 1), ("b", 1, 2)])
    assert blocks["var_mean_a"] == pytest.approx(4.0) and blocks["var_mean_b"] == pytest.approx(
        16.0
    )
    assert blocks["var_mean"] == pytest.approx(10.0)


def test_lcu_blocks_split_the_two_sub_circuits():
    model = bp.build_model("lcu-k1", 4, layers=2)
    assert model.blocks == (("qnn", 0, 16), ("adapter", 16, 22))  # (2L+1)n − 2L and n(n−1)/2
    assert model.num_params == 22


NS = [4, 6, 8, 10, 12]
# (variances, the decay that must win, fitted b or None, fitted p or None)
FIT_CASES = {
    "exponential b=2": ([3.0 * 2.0**-n for n in NS], "exponential", 2.0, None),
    "exponential b=1.5, noisy": (
        [0.8 * 1.5**-n * f for n, f in zip(NS, [1.05, 0.97, 1.02, 0.95, 1.01], strict=True)],
        "exponential", 1.5, None,
    ),
    "polynomial p=2": ([5.0 * n**-2.0 for n in NS], "polynomial", None, 2.0),
    "polynomial p=1": ([0.3 / n for n in NS], "polynomial", None, 1.0),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_decay_recovers_a_known_decay(case):
    variances, better, b, p = FIT_CASES[case]
    fit = bp.fit_decay(NS, variances)
    assert fit["better"] == better
    if b is not None:
        assert fit["b"] == pytest.approx(b, rel=0.02)
        assert fit["rss_exponential"] < fit["rss_polynomial"]
    if p is not None:
        assert fit["p"] == pytest.approx(p, rel=1e-9)
        assert fit["rss_polynomial"] == pytest.approx(0.0, abs=1e-20)


def test_fit_decay_edge_cases():
    assert bp.fit_decay([3, 4], [0.2, 0.1])["better"] == "tie"  # two points: both lines exact
    assert set(bp.fit_decay([2, 3], [0.1, 0.0]).values()) == {None}
    with pytest.raises(ValueError, match="2 distinct x"):
        bp.fit_decay([4, 4], [0.1, 0.2])
    with pytest.raises(ValueError, match="one variance per n"):
        bp.fit_decay([4, 5], [0.1])
    assert np.isclose(bp.fit_line([0, 1, 2], [1, 3, 5])[1], 2.0)


def test_cli_writes_json_and_png_atomically(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    written = []
    real = files.atomic_write

    def spy(path, data, **kwargs):
        written.append(path)
        return real(path, data, **kwargs)

    monkeypatch.setattr(files, "atomic_write", spy)
    out = tmp_path / "tmp"
    assert (
        main(["bp-study", "--qubits", "3,4", "--samples", "8", "--out", str(out), "--quiet"]) == 0
    )
    table = capsys.readouterr().out
    for text in ("cost: local", "cost: global", *bp.MODELS, "n=3", "n=4", "adapter "):
        assert text in table
    assert sorted(p.name for p in map(type(out), written)) == sorted(
        [bp.PLOT_NAME, bp.RESULTS_NAME]
    )
    names = sorted([bp.PLOT_NAME, bp.RESULTS_NAME])
    assert sorted(p.name for p in out.iterdir()) == names  # no temporary file left
    assert (out / bp.PLOT_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = json.loads((out / bp.RESULTS_NAME).read_text())
    assert payload["qubits"] == [3, 4] and payload["samples"] == 8 and payload["seed"] == 0
    assert list(payload["models"]) == list(bp.MODELS)
    for entry in payload["models"].values():
        for data in entry["costs"].values():
            assert [r["n"] for r in data["per_n"]] == [3, 4]
            assert {"b", "p", "better"} <= set(data["fit_mean"])
            if entry["blocks"]:
                assert {"b", "p", "better"} <= set(data["fit_mean_adapter"])
            for row in data["per_n"]:
                assert row["var_mean"] > 0 and len(row["var_per_param"]) >= row["n"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--qubits", "1,3"], "expected counts in 2..16"),
        (["--samples", "1"], "at least 2 samples"),
    ],
)
def test_cli_rejects_bad_values_in_one_line(tmp_path, capsys, argv, message):
    assert main(["bp-study", *argv, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv", [["--alpha", "1"], ["--alpha", "0,0"], ["--models", "two-design,nope"]]
)
def test_cli_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["bp-study", *argv])
    assert info.value.code == 2
    assert "expected" in capsys.readouterr().err


def test_a_models_numbers_do_not_depend_on_the_other_models_chosen(tmp_path):
    rows = []
    for models in ("hw-k1", "two-design,hw-k1"):
        out = tmp_path / models
        argv = ["bp-study", "--qubits", "3,4", "--samples", "4", "--models", models, "--quiet"]
        assert main([*argv, "--cost", "local", "--out", str(out)]) == 0
        payload = json.loads((out / bp.RESULTS_NAME).read_text())
        rows.append(payload["models"]["hw-k1"]["costs"]["local"]["per_n"])
    assert [r["var_per_param"] for r in rows[0]] == [r["var_per_param"] for r in rows[1]]
