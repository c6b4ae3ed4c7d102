"""``backends.prefix_compounds``: the compounds' entries at the first basis states of each weight
equal the k×k minors (an independent numpy reference) read there; gradients in float64; the
``"hw"`` hamming adapter gives the same blocks, outputs and gradients along either build path,
and compiles with ``fullgraph=True`` along the prefix one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backends.prefix_compounds import kept_states, prefix_compounds, prefix_compounds_products
from qadapters.families import hamming
from qadapters.families.hamming import HammingAdapter, hw_build_path
from tests.reference import compound_by_minors

#: (n, rows, cols): square and rectangular prefixes, whole registers, a single state
PREFIXES = {
    "n3-5x3": (3, 5, 3),
    "n4-all": (4, 16, 16),
    "n5-20x7": (5, 20, 7),
    "n6-head-64x5": (6, 64, 5),
    "n7-100x33": (7, 100, 33),
    "n5-1x32": (5, 1, 32),
}


@pytest.mark.parametrize("n, rows, cols", PREFIXES.values(), ids=PREFIXES.keys())
def test_kept_entries_equal_the_minors(n: int, rows: int, cols: int) -> None:
    a = torch.randn(2, n, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    got = prefix_compounds(a, rows, cols)
    assert len(got) == n + 1
    for k, block in enumerate(got):
        r, c = kept_states(n, k, rows), kept_states(n, k, cols)
        assert block.shape == (2, len(r), len(c))
        for b in range(2):
            want = compound_by_minors(a[b].numpy(), k)[np.ix_(r, c)] if k else np.ones((1, 1))
            np.testing.assert_allclose(block[b].numpy(), want, atol=1e-12)


def test_products_count_the_kept_entries() -> None:
    # n = 3, rows < 5, cols < 3: order 2 keeps 1 row (index 3) and no column
    assert prefix_compounds_products(3, 5, 3) == 0
    assert prefix_compounds_products(4, 16, 16) == sum(k * (6, 4, 1)[k - 2] ** 2 for k in (2, 3, 4))


@pytest.mark.parametrize("n, rows, cols", [(3, 8, 8), (4, 11, 6)])
def test_gradients_in_float64(n: int, rows: int, cols: int) -> None:
    a = torch.randn(n, n, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(t.shape, dtype=torch.float64) for t in prefix_compounds(a, rows, cols)]

    def loss(m: torch.Tensor) -> torch.Tensor:
        blocks = prefix_compounds(m, rows, cols)
        return sum((w * t).sum() for w, t in zip(weights, blocks, strict=True))

    assert torch.autograd.gradcheck(loss, (a,))


BAD = {
    "not square": (torch.zeros(3, 4), 2, 2, r"expected square matrices \(\.\.\., n, n\); found"),
    "rows 0": (torch.zeros(3, 3), 0, 2, r"expected 1 <= rows <= 2\^3 = 8; found 0"),
    "cols past 2^n": (torch.zeros(3, 3), 2, 9, r"expected 1 <= cols <= 2\^3 = 8; found 9"),
}


@pytest.mark.parametrize("matrix, rows, cols, match", BAD.values(), ids=BAD.keys())
def test_bad_input_names_what_was_expected(matrix, rows, cols, match) -> None:
    with pytest.raises(ValueError, match=match):
        prefix_compounds(matrix, rows, cols)


#: (in, out, R) -> the path the cost model picks: full orders where the layer fills the register
PATHS = {
    "64x64": ((64, 64, 2), "rotation"),
    "16x16": ((16, 16, 1), "rotation"),
    "mnist head 64x5": ((64, 5, 2), "prefix"),
    "gpt2 c_attn 768x2304": ((768, 2304, 2), "prefix"),
    "minilm 384x384": ((384, 384, 2), "rotation"),  # a close call: measured within noise
}


@pytest.mark.parametrize("sizes, path", PATHS.values(), ids=PATHS.keys())
def test_the_cost_model_picks_the_build_path(sizes, path) -> None:
    d_in, d_out, r = sizes
    n = hamming.register_size(d_in, d_out, "hw", 2)
    assert hw_build_path(n, d_in, d_out, r) == path


def _outputs_and_grads(adapter: HammingAdapter, x: torch.Tensor) -> list[torch.Tensor]:
    adapter.zero_grad()
    y = adapter.delta(x)
    (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).sum().backward()
    return [y.detach(), adapter.theta.grad.clone(), adapter.alpha.grad.clone()]


@pytest.mark.parametrize(
    "d_in, d_out, options",
    [(64, 5, {}), (100, 37, {"num_adapters": 3}), (40, 64, {"layout": "brick", "depth": 3}),
     (16, 16, {"layout": "butterfly"})],
)  # fmt: skip
def test_both_build_paths_agree(monkeypatch, d_in: int, d_out: int, options: dict) -> None:
    adapter = HammingAdapter(d_in, d_out, **options).double()
    adapter.reset_away_from_identity(1.0)
    x = torch.randn(5, d_in, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = {}
    for path in ("prefix", "rotation"):
        monkeypatch.setattr(hamming, "hw_build_path", lambda *_, p=path: p)
        got[path] = _outputs_and_grads(adapter, x)
    for a, b in zip(got["prefix"], got["rotation"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    want = x @ adapter.delta_weight().T
    torch.testing.assert_close(got["prefix"][0], want, atol=1e-12, rtol=0)


def test_prefix_path_compiles_fullgraph() -> None:
    torch.manual_seed(0)
    adapter = HammingAdapter(12, 5)
    adapter.reset_away_from_identity(1.0)
    n = adapter.n_qubits
    assert hw_build_path(n, 12, 5, adapter.num_adapters) == "prefix"
    x = torch.randn(3, 12)
    compiled = torch.compile(adapter.delta, fullgraph=True)
    torch.testing.assert_close(compiled(x), adapter.delta(x), atol=1e-5, rtol=1e-5)
