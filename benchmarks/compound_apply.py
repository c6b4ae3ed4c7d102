"""``x · A^(k)`` for a batch of vectors: the two-form kernel vs the dense compound vs ffsim.

Run with ``python -m benchmarks.compound_apply [--quick] [--json PATH]``. For each n (k = 2,
2,048 vectors, one random rotation A in SO(n), float32 for the torch contenders):

- ``two-form``: :func:`backends.two_forms.apply_compound2` (``Aᵀ X A``, ``2n³`` multiply-adds
  per vector; Note [compound as a two-form]);
- ``dense``: the product with ``A^(2)`` already built (:func:`backends.compounds.compound`), and
  ``dense+build``: building it too, as a training step must;
- ``ffsim``: ffsim's ``apply_orbital_rotation`` (Qiskit's fixed-particle-number simulator) in
  complex128, the vectors batched as the beta strings of a ``(2, nb)``-electron state (``mat =
  (Aᵀ, None)`` rotates the alpha strings of every column at once; nb the smallest with
  ``C(n, nb) >= 2048``, its time scaled to 2,048 columns). Install it with the ``bench`` extra
  (``pip install -e .[bench]``); without it that column is skipped with a message.

Forward + backward (gradients of the vectors and of A): the two-form kernel's custom backward
(keeps only the output) vs the dense path of :mod:`qadapters.families.kernels.block_mix`
(``A^(2)`` built from A inside the step, kept-output backward).

Every row first checks that the contenders agree (float64; ffsim's determinants are ordered as
its bitstrings, orbital i as bit i, which this maps to ``itertools.combinations`` order
explicitly), then times them interleaved (:func:`benchmarks.timing.interleaved_samples`) and
prints medians with quartiles and the per-round ratios to the two-form kernel. The machine is
shared and noisy: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
from collections.abc import Callable
from math import comb
from typing import Any

import numpy as np
import torch

from backends.compounds import compound
from backends.two_forms import apply_compound2
from benchmarks.timing import Spread, fmt_seconds, interleaved_samples, load_average, ratio_spread
from qadapters import files
from qadapters.families.kernels.block_mix import block_mix

VECTORS = 2048
K = 2
INSTALL_HINT = "ffsim is not installed (pip install -e .[bench]): its column is skipped"


def rotation(n: int, seed: int = 0) -> np.ndarray:
    """A random matrix in SO(n) (float64)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def have_ffsim() -> bool:
    """Whether ffsim can be imported."""
    return importlib.util.find_spec("ffsim") is not None


def ffsim_order(n: int) -> np.ndarray:
    """ffsim's address of each pair ``(i, j)`` in ``itertools.combinations(range(n), 2)``
    order (its determinant strings have orbital i as bit i)."""
    import ffsim

    strings = [(1 << i) | (1 << j) for i, j in itertools.combinations(range(n), 2)]
    return np.asarray(ffsim.strings_to_addresses(strings, n, 2))


def ffsim_batch(n: int) -> int:
    """The smallest beta-electron count nb with ``C(n, nb) >= VECTORS`` (at most n // 2)."""
    return next((nb for nb in range(1, n // 2 + 1) if comb(n, nb) >= VECTORS), n // 2)


def ffsim_apply(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``x · A^(2)`` for the rows of ``x`` (``(B, C(n,2))``, combinations order), by ffsim:
    each row is one column of a ``(2, nb)``-electron state, ``C(n, nb) >= B`` columns, and only
    the alpha strings are rotated (by ``Aᵀ``: ffsim maps the amplitudes as ``A^(2) v``)."""
    import ffsim

    n = a.shape[0]
    nb = ffsim_batch(n)
    order = ffsim_order(n)
    cols = comb(n, nb)
    if x.shape[0] > cols:
        raise ValueError(f"expected at most {cols} vectors for n = {n}; found {x.shape[0]}")
    vec = np.zeros((comb(n, 2), cols), dtype=complex)
    vec[order, : x.shape[0]] = x.T
    out = ffsim.apply_orbital_rotation(vec.reshape(-1), (a.T, None), n, (2, nb))
    return out.reshape(comb(n, 2), cols)[order, : x.shape[0]].real.T


def check(n: int) -> dict[str, float]:
    """Largest differences (float64) of the dense product and ffsim from the two-form kernel."""
    a = rotation(n)
    x = np.random.default_rng(1).standard_normal((16, comb(n, 2)))
    at, xt = torch.from_numpy(a), torch.from_numpy(x)
    ours = apply_compound2(xt, at).numpy()
    diffs = {"dense": float(np.abs((xt @ compound(at, K)).numpy() - ours).max())}
    if have_ffsim():
        import ffsim

        diffs["ffsim"] = float(np.abs(ffsim_apply(x, a) - ours).max())
        order = ffsim_order(n)  # one vector, spinless: the same map
        v = np.zeros(comb(n, 2), dtype=complex)
        v[order] = x[0]
        one = ffsim.apply_orbital_rotation(v, a.T, n, 2)[order].real
        diffs["ffsim spinless"] = float(np.abs(one - ours[0]).max())
    return diffs


def contenders(n: int) -> tuple[dict[str, Callable[[], object]], dict[str, float]]:
    """name -> a callable to time, and name -> the factor its time is scaled by."""
    a = torch.from_numpy(rotation(n)).float()
    x = torch.randn(VECTORS, comb(n, 2), generator=torch.Generator().manual_seed(2))
    block = compound(a, K)
    xg, ag = x.clone().requires_grad_(), a.clone().requires_grad_()
    grad = torch.randn_like(x)

    def ours_fb() -> None:
        y = apply_compound2(xg, ag)
        torch.autograd.grad(y, (xg, ag), grad)

    def dense_fb() -> None:
        m = compound(ag.unsqueeze(0), K)
        y = block_mix(xg, [m], orthogonal=True)
        torch.autograd.grad(y, (xg, ag), grad)

    run: dict[str, Callable[[], object]] = {
        "two-form": lambda: apply_compound2(x, a),
        "dense": lambda: x @ block,
        "dense+build": lambda: x @ compound(a, K),
        "two-form fwd+bwd": ours_fb,
        "dense fwd+bwd": dense_fb,
    }
    scale = dict.fromkeys(run, 1.0)
    if have_ffsim():
        import ffsim

        nb = ffsim_batch(n)
        cols = comb(n, nb)
        vec = np.random.default_rng(3).standard_normal(comb(n, 2) * cols).astype(complex)
        a64 = a.double().numpy().T
        run["ffsim"] = lambda: ffsim.apply_orbital_rotation(vec, (a64, None), n, (2, nb))
        scale["ffsim"] = VECTORS / cols
    return run, scale


def _spread_text(s: Spread, digits: int = 2) -> str:
    return f"{s.median:.{digits}f} [{s.q1:.{digits}f}–{s.q3:.{digits}f}]"


def run_n(n: int, rounds: int) -> dict[str, Any]:
    """Check, time and print one n; return its figures (JSON-ready)."""
    diffs = check(n)
    run, scale = contenders(n)
    samples = interleaved_samples(run, rounds, warmup=2, rotate=True)
    samples = {k: [t * scale[k] for t in ts] for k, ts in samples.items()}
    row: dict[str, Any] = {"n": n, "pairs": comb(n, 2), "max_abs_diff": diffs, "times": {}}
    print(f"\nn = {n} (C(n,2) = {comb(n, 2)}), {VECTORS} vectors; max |diff| vs two-form (float64):"
          f" {', '.join(f'{k} {v:.1e}' for k, v in diffs.items())}")  # fmt: skip
    print(f"  {'contender':<17} {'median':>11} {'q1':>11} {'q3':>11}   ratio to two-form [q1–q3]")
    for name, ts in samples.items():
        s = Spread.of(ts)
        ref = "two-form fwd+bwd" if name.endswith("fwd+bwd") else "two-form"
        ratio = ratio_spread(ts, samples[ref])
        note = f" (scaled from {round(VECTORS / scale[name])} columns)" if scale[name] != 1 else ""
        print(f"  {name:<17} {fmt_seconds(s.median)} {fmt_seconds(s.q1)} {fmt_seconds(s.q3)}   "
              f"{_spread_text(ratio)}{note}")  # fmt: skip
        row["times"][name] = {"seconds": s.to_dict(), "ratio_to_two_form": ratio.to_dict()}
    if not have_ffsim():
        print(f"  {INSTALL_HINT}")
    return row


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m benchmarks.compound_apply``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per n (15)")
    parser.add_argument("--n", type=int, nargs="+", default=[15, 22], help="wires (15 22)")
    parser.add_argument("--json", default=None, help="also write the figures to this path")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    before = load_average()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average before: "
          f"{before}; float32 (ffsim complex128)")  # fmt: skip
    if not have_ffsim():
        print(INSTALL_HINT)
    rows = [run_n(n, rounds) for n in args.n]
    after = load_average()
    print(f"\nload average after: {after}")
    if args.json:
        payload = {
            "config": {"vectors": VECTORS, "k": K, "rounds": rounds, "dtype": "float32",
                       "threads": torch.get_num_threads(), "torch": torch.__version__,
                       "ffsim": have_ffsim()},
            "load_average": {"before": before, "after": after},
            "rows": rows,
        }  # fmt: skip
        print(f"wrote {files.write_json(args.json, payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
