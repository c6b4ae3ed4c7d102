"""``qadapters bp-study``: measure barren plateaus exactly — the variance of ∂L/∂θ vs qubits.

For each number of system qubits ``n`` and each model, ``--samples`` parameter vectors are drawn
uniformly from ``[−π, π)`` (seeded); every cost ``L(θ)`` is computed exactly on the state vector
(:func:`backends.exact.apply`, float64, one batched run per chunk of samples) and differentiated
by torch autograd. The sample variance of ``∂L/∂θ_j`` is reported for the first angle ``j = 0``
and as the mean over all angles (for the LCU also over its two-design angles and over its
pyramid angles separately). The models:

- ``two-design``: the RY/CZ simplified two-design :func:`circuits.two_design` with ``L = n``
  layers (``--layers`` fixes L), on ``|0…0>``.
- ``hw-k1``: the RBS pyramid :func:`circuits.rbs_pyramid` (Hamming-weight preserving) on the
  weight-1 basis state ``|10…0>``.
- ``hw-khalf``: the same pyramid on the weight-``⌊n/2⌋`` basis state ``|1010…>`` (ones on the
  even wires ``0, 2, …``: every nearest-neighbour gate of the first layer sees one excitation,
  so no angle is idle at the start).
- ``lcu-k1``: the postselected LCU ``(α1 U_two-design + α2 U_pyramid)/‖α‖₁``
  (:func:`circuits.lcu.lcu`, coefficients fixed at ``--alpha``), on ``|10…0>`` (the two-design
  half cares little about its input; on ``|0…0>`` the pyramid would do nothing). The cost is the
  renormalised postselected expectation ``<φ|O|φ>/<φ|φ>``, ``φ`` the system part of the output
  whose ancilla reads ``0``; gradients are wrt the circuit angles of both sub-circuits.

Costs (``--cost``): ``local`` = ``<Z_0 Z_1>``; ``global`` = the fidelity ``|<ψ0|φ>|²/<φ|φ>`` with
the model's own input ``ψ0`` (a global projector; the global ``Z^{⊗n}`` would be a constant on a
fixed-weight subspace).

Fits (Note [decay fits]): ``log Var = a − n·log b`` (exponential, rate ``b``) and
``log Var = c − p·log n`` (polynomial, power ``p``), each by least squares; the one with the
smaller residual is named. Prints a table, writes ``bp_study.json`` and ``bp_study.png`` into
``--out``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends import exact
from backends.postselection import kept_indices
from circuits import Circuit, rbs_pyramid, two_design
from circuits.lcu import lcu
from qadapters.experiments.console import (
    add_output_arguments,
    check_out_dir,
    name_list,
    positive_int,
    positive_int_list,
    progress,
)
from qadapters.experiments.core import pyplot, save_figure
from qadapters.files import write_json

Tensor = torch.Tensor

DEFAULT_OUT = "runs/bp-study"
DEFAULT_QUBITS = "4,6,8,10,12"
RESULTS_NAME = "bp_study.json"
PLOT_NAME = "bp_study.png"
#: model name -> one-line description (the order of the table and the plot)
MODELS: dict[str, str] = {
    "two-design": "RY/CZ two-design, L layers, on |0…0>",
    "hw-k1": "RBS pyramid on the weight-1 state |10…0>",
    "hw-khalf": "RBS pyramid on the weight-⌊n/2⌋ state |1010…>",
    "lcu-k1": "postselected LCU of two-design and pyramid on |10…0>",
}
COSTS: dict[str, str] = {
    "local": "<Z0 Z1>",
    "global": "fidelity |<ψ0|φ>|² with the input",
}
#: samples per batched simulation (memory: what autograd keeps grows with it)
DEFAULT_BATCH = 50
MAX_QUBITS = 16


@dataclass(frozen=True)
class Model:
    """One model of the study: a circuit, its input state, and how to read its output.

    Attributes:
        name: a key of :data:`MODELS`.
        n: system qubits.
        circuit: the circuit (with ancillas for the LCU, ancillas first).
        state: the system input ``ψ0``, shape ``(2^n,)``, float64, normalised.
        kept: for a circuit with ancillas, the full-register indices of the postselected system
            basis states (:func:`backends.postselection.kept_indices`); ``None`` otherwise.
        blocks: named ranges ``(name, start, stop)`` of the parameter vector whose gradient
            variances are also averaged separately (the LCU's two sub-circuits).
    """

    name: str
    n: int
    circuit: Circuit
    state: Tensor
    kept: Tensor | None = None
    blocks: tuple[tuple[str, int, int], ...] = ()

    @property
    def num_params(self) -> int:
        """Number of circuit angles."""
        return self.circuit.num_params


def basis_state(n: int, ones: Sequence[int]) -> Tensor:
    """The basis state with ones on ``ones`` (wire 0 the most significant bit), float64.

    Example:
        >>> basis_state(3, [0]).tolist()  # |100>
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    """
    state = torch.zeros(2**n, dtype=torch.float64)
    state[sum(1 << (n - 1 - w) for w in ones)] = 1.0
    return state


def build_model(
    name: str, n: int, *, layers: int | None = None, alpha: Sequence[float] = (1.0, 1.0)
) -> Model:
    """The circuit and input state of one model (module docstring).

    Args:
        name: a key of :data:`MODELS`.
        n: system qubits, at least 2.
        layers: two-design layers; ``None`` means ``L = n``.
        alpha: the two fixed LCU coefficients ``(α1, α2)`` of ``lcu-k1``.

    Returns:
        The :class:`Model`.

    Raises:
        ValueError: unknown model name, ``n < 2``, or bad coefficients.

    Example:
        >>> m = build_model("hw-k1", 4)
        >>> m.num_params, m.circuit.preserves_hamming_weight
        (6, True)
    """
    if name not in MODELS:
        raise ValueError(f"expected a model from {list(MODELS)}; found {name!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"expected n >= 2 system qubits; found {n!r}")
    depth = n if layers is None else layers
    if name == "two-design":
        return Model(name, n, two_design(n, depth), basis_state(n, []))
    if name == "hw-k1":
        return Model(name, n, rbs_pyramid(n), basis_state(n, [0]))
    if name == "hw-khalf":
        return Model(name, n, rbs_pyramid(n), basis_state(n, half_weight_ones(n)))
    qnn, adapter = two_design(n, depth), rbs_pyramid(n)
    circuit = lcu([qnn, adapter], list(alpha), fixed_coefficients=True)
    kept = torch.as_tensor(kept_indices(circuit))
    blocks = (("qnn", 0, qnn.num_params), ("adapter", qnn.num_params, circuit.num_params))
    return Model(name, n, circuit, basis_state(n, [0]), kept, blocks)


def half_weight_ones(n: int) -> list[int]:
    """The wires holding the ones of ``hw-khalf``'s input: ``0, 2, …``, ``⌊n/2⌋`` of them."""
    return list(range(0, 2 * (n // 2), 2))


def zz_diagonal(n: int) -> Tensor:
    """The diagonal of ``Z_0 Z_1`` on ``n`` qubits (wire 0 the most significant bit)."""
    index = torch.arange(2**n)
    z0 = 1 - 2 * ((index >> (n - 1)) & 1)
    z1 = 1 - 2 * ((index >> (n - 2)) & 1)
    return (z0 * z1).to(torch.float64)


def output_states(model: Model, params: Tensor) -> Tensor:
    """The (postselected, unnormalised) system output of every parameter set.

    Args:
        model: the model.
        params: shape ``(S, num_params)``, float64.

    Returns:
        Shape ``(S, 2^n)``: ``U(θ)ψ0``, or for the LCU the system amplitudes whose ancillas read
        the postselect pattern (``A(θ)ψ0``, ``A`` the postselected operator).
    """
    if model.kept is None:
        return exact.apply(model.circuit, params, model.state.expand(params.shape[0], -1))
    full = torch.zeros(2**model.circuit.n_qubits, dtype=torch.float64)
    full[model.kept] = model.state
    out = exact.apply(model.circuit, params, full.expand(params.shape[0], -1))
    return out[:, model.kept]


def costs(model: Model, params: Tensor, kinds: Sequence[str]) -> dict[str, Tensor]:
    """The costs of :data:`COSTS` for every parameter set, renormalised by ``<φ|φ>``.

    Args:
        model: the model.
        params: shape ``(S, num_params)``, float64.
        kinds: keys of :data:`COSTS`.

    Returns:
        ``{kind: shape (S,)}``, differentiable in ``params``.

    Raises:
        ValueError: an unknown cost.
    """
    unknown = [k for k in kinds if k not in COSTS]
    if unknown:
        raise ValueError(f"expected costs from {list(COSTS)}; found {unknown}")
    phi = output_states(model, params)
    norm = (phi**2).sum(-1)
    out: dict[str, Tensor] = {}
    for kind in kinds:
        if kind == "local":
            out[kind] = (zz_diagonal(model.n) * phi**2).sum(-1) / norm
        else:
            out[kind] = (phi @ model.state) ** 2 / norm
    return out


def gradients(model: Model, params: Tensor, kinds: Sequence[str]) -> dict[str, Tensor]:
    """``∂L/∂θ`` of every parameter set, by autograd through one batched simulation.

    The samples are independent, so the gradient of the summed cost is, row by row, the
    gradient of each sample's cost.

    Args:
        model: the model.
        params: shape ``(S, num_params)``, float64.
        kinds: keys of :data:`COSTS`.

    Returns:
        ``{kind: shape (S, num_params)}``.
    """
    theta = params.detach().clone().requires_grad_(True)
    values = costs(model, theta, kinds)
    out = {}
    for i, kind in enumerate(kinds):
        (grad,) = torch.autograd.grad(values[kind].sum(), theta, retain_graph=i < len(kinds) - 1)
        out[kind] = grad
    return out


def random_params(num: int, num_params: int, seed: int) -> Tensor:
    """``num`` parameter vectors uniform in ``[−π, π)``, float64, from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(num, num_params, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi


def sample_gradients(
    model: Model,
    samples: int,
    seed: int,
    kinds: Sequence[str],
    *,
    batch: int = DEFAULT_BATCH,
    step: Callable[[int], object] | None = None,
) -> dict[str, Tensor]:
    """Gradients at ``samples`` random initialisations, simulated ``batch`` at a time.

    Returns:
        ``{kind: shape (samples, num_params)}``.
    """
    params = random_params(samples, model.num_params, seed)
    parts: dict[str, list[Tensor]] = {k: [] for k in kinds}
    for start in range(0, samples, batch):
        chunk = params[start : start + batch]
        for kind, grad in gradients(model, chunk, kinds).items():
            parts[kind].append(grad)
        if step is not None:
            step(chunk.shape[0])
    return {k: torch.cat(v) for k, v in parts.items()}


def variance_summary(grads: Tensor, blocks: Sequence[tuple[str, int, int]] = ()) -> dict[str, Any]:
    """The sample variances of one model's gradients at one ``n``.

    Args:
        grads: shape ``(S, P)``.
        blocks: named parameter ranges ``(name, start, stop)`` (:attr:`Model.blocks`).

    Returns:
        ``var_first`` (of ``∂L/∂θ_0``), ``var_mean`` (mean of the per-angle variances),
        ``var_mean_<name>`` per block (the same mean over that block's angles), ``var_per_param``
        (all of them), ``mean_first`` (the mean of ``∂L/∂θ_0``, ≈ 0).
    """
    var = grads.var(dim=0, unbiased=True)
    out = {
        "var_first": float(var[0]),
        "var_mean": float(var.mean()),
        **{f"var_mean_{name}": float(var[a:b].mean()) for name, a, b in blocks},
        "mean_first": float(grads[:, 0].mean()),
        "var_per_param": var.tolist(),
    }
    return out


# Note [decay fits]
# -----------------
# A barren plateau is Var[∂L] ∈ O(b^−n) for some b > 1. Taking logs, an exponential decay is a
# straight line in n, log Var = a − n·log b; a polynomial one, Var ∝ n^−p, is a straight line in
# log n, log Var = c − p·log n. Both are ordinary least squares on (x, log Var) with x = n or
# x = log n; the residual sum of squares of log Var (same data, same number of parameters) says
# which straight line fits better. With few, small n the two can be close: the residuals are
# reported next to the verdict.
def fit_line(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> tuple[float, float, float]:
    """Least-squares ``y ≈ intercept + slope·x``.

    Returns:
        ``(intercept, slope, residual sum of squares)``.

    Raises:
        ValueError: fewer than two distinct ``x``, or lengths differ.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or len(np.unique(xs)) < 2:
        raise ValueError(
            f"expected at least 2 distinct x and as many y; found x={xs.tolist()}, y={ys.tolist()}"
        )
    design = np.stack([np.ones_like(xs), xs], axis=1)
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    residual = float(((design @ coef - ys) ** 2).sum())
    return float(coef[0]), float(coef[1]), residual


def _better(rss_exponential: float, rss_polynomial: float) -> str:
    if abs(rss_exponential - rss_polynomial) <= 1e-12:  # e.g. two n: both lines pass exactly
        return "tie"
    return "exponential" if rss_exponential < rss_polynomial else "polynomial"


def fit_decay(ns: Sequence[int], variances: Sequence[float]) -> dict[str, Any]:
    """Fit ``Var ∝ b^−n`` and ``Var ∝ n^−p`` to variances at several ``n`` (Note [decay fits]).

    Args:
        ns: the qubit counts, at least two distinct.
        variances: the variance at each, all positive.

    Returns:
        ``b`` and ``a`` (``log Var = a − n·log b``), ``p`` and ``c`` (``log Var = c − p·log n``),
        ``rss_exponential``, ``rss_polynomial`` (of log Var) and ``better`` (``"exponential"``,
        ``"polynomial"``, or ``"tie"`` when the residuals agree to 1e-12, as with two ``n``);
        ``None`` values when a variance is not positive.

    Raises:
        ValueError: fewer than two distinct ``n`` or lengths differ.

    Example:
        >>> fit = fit_decay([4, 6, 8], [2.0**-4, 2.0**-6, 2.0**-8])
        >>> round(fit["b"], 6), fit["better"]
        (2.0, 'exponential')
    """
    v = np.asarray(variances, dtype=np.float64)
    n = np.asarray(ns, dtype=np.float64)
    if v.shape != n.shape:
        raise ValueError(f"expected one variance per n; found {len(v)} for {len(n)} n")
    if not np.all(v > 0):
        return dict.fromkeys(
            ("a", "b", "c", "p", "rss_exponential", "rss_polynomial", "better"), None
        )
    a, slope_e, rss_e = fit_line(n, np.log(v))
    c, slope_p, rss_p = fit_line(np.log(n), np.log(v))
    return {
        "a": a,
        "b": float(np.exp(-slope_e)),
        "c": c,
        "p": -slope_p,
        "rss_exponential": rss_e,
        "rss_polynomial": rss_p,
        "better": _better(rss_e, rss_p),
    }


# ------------------------------------------------------------------------------- the command
def _alpha(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 2 or not all(math.isfinite(v) for v in values) or not any(values):
        raise argparse.ArgumentTypeError(
            f"expected two finite LCU coefficients, not both zero, as 'a1,a2'; found {text!r}"
        )
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``qadapters bp-study``."""
    parser.add_argument(
        "--qubits", type=positive_int_list, default=positive_int_list(DEFAULT_QUBITS),
        help=f"comma-separated system qubit counts, 2..{MAX_QUBITS} (default {DEFAULT_QUBITS})",
    )  # fmt: skip
    parser.add_argument(
        "--samples", type=positive_int, default=200,
        help="random initialisations per model and n (default 200)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the angles (default 0)")
    parser.add_argument(
        "--layers", type=positive_int, default=None,
        help="two-design layers L (default L = n, so the circuit approaches a 2-design)",
    )  # fmt: skip
    parser.add_argument(
        "--models", type=name_list(MODELS, "models"), default=list(MODELS),
        help=f"comma-separated, from {', '.join(MODELS)} (default all)",
    )  # fmt: skip
    parser.add_argument(
        "--cost", type=name_list(COSTS, "costs"), default=list(COSTS),
        help="local (<Z0 Z1>) and/or global (fidelity with the input); default both",
    )  # fmt: skip
    parser.add_argument(
        "--alpha", type=_alpha, default=[1.0, 1.0],
        help="fixed LCU coefficients a1,a2 of two-design and pyramid (default 1,1)",
    )  # fmt: skip
    parser.add_argument(
        "--batch", type=positive_int, default=DEFAULT_BATCH,
        help=f"samples per batched simulation (default {DEFAULT_BATCH})",
    )  # fmt: skip
    add_output_arguments(parser, DEFAULT_OUT)


def _check_args(args: argparse.Namespace) -> None:
    check_out_dir(args.out)
    bad = [n for n in args.qubits if not 2 <= n <= MAX_QUBITS]
    if bad:
        raise ValueError(f"--qubits: expected counts in 2..{MAX_QUBITS}; found {bad}")
    if args.samples < 2:
        raise ValueError(f"--samples: a variance needs at least 2 samples; found {args.samples}")


def study(args: argparse.Namespace, step: Callable[[int], object]) -> dict[str, Any]:
    """Every model's gradient variances at every ``n`` and their fits.

    Returns:
        ``{model: {"description", "num_params": [...], "costs": {cost: {"per_n": [...],
        "fit_first": ..., "fit_mean": ...}}}}``, ``per_n`` one :func:`variance_summary` per n
        (with ``n`` and ``seconds``). The angles of model ``k`` (its place in :data:`MODELS`) at
        ``n`` qubits come from seed ``args.seed + 1000·k + n``.
    """
    results: dict[str, Any] = {}
    for name in args.models:
        k = list(MODELS).index(name)  # seeds do not depend on which models were chosen
        entry: dict[str, Any] = {"description": MODELS[name], "num_params": [],
                                 "costs": {c: {"per_n": []} for c in args.cost}}  # fmt: skip
        for n in args.qubits:
            model = build_model(name, n, layers=args.layers, alpha=args.alpha)
            t0 = time.perf_counter()
            grads = sample_gradients(
                model, args.samples, args.seed + 1000 * k + n, args.cost, batch=args.batch,
                step=step,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
            entry["num_params"].append(model.num_params)
            for cost, g in grads.items():
                row = {"n": n, "seconds": seconds, **variance_summary(g, model.blocks)}
                entry["costs"][cost]["per_n"].append(row)
            entry["blocks"] = [block for block, _, _ in model.blocks]
        for data in entry["costs"].values():
            if len(args.qubits) >= 2:
                for which in ("first", "mean", *(f"mean_{b}" for b in entry["blocks"])):
                    data[f"fit_{which}"] = fit_decay(
                        args.qubits, [r[f"var_{which}"] for r in data["per_n"]]
                    )
        results[name] = entry
    return results


def _fmt(x: float | None, spec: str) -> str:
    width = int(spec.split(".")[0])
    return f"{'-':>{width}}" if x is None else format(x, spec)


def format_table(results: dict[str, Any], qubits: Sequence[int], cost: str) -> str:
    """One table per cost: the variance of ``∂L/∂θ_0`` and the mean over angles at each n, fits."""
    width = 10
    head = f"{'model':<12}{'Var of':<8}" + "".join(f"{'n=' + str(n):>{width}}" for n in qubits)
    head += f"{'b':>7}{'p':>7}{'rss exp':>9}{'rss poly':>9}  decay"
    lines = [f"cost: {cost} = {COSTS[cost]}", head, "-" * len(head)]
    for name, entry in results.items():
        data = entry["costs"][cost]
        rows = [("first", "∂θ0"), ("mean", "mean")]
        rows += [(f"mean_{b}", b) for b in entry.get("blocks", [])]
        for which, label in rows:
            cells = "".join(f"{r[f'var_{which}']:>{width}.3e}" for r in data["per_n"])
            fit = data.get(f"fit_{which}") or {}
            lines.append(
                f"{name:<12}{label:<8}{cells}{_fmt(fit.get('b'), '7.3f')}"
                f"{_fmt(fit.get('p'), '7.2f')}{_fmt(fit.get('rss_exponential'), '9.3f')}"
                f"{_fmt(fit.get('rss_polynomial'), '9.3f')}  {fit.get('better') or '-'}"
            )
    lines.append(
        "Var of ∂θ0: variance of ∂L/∂θ_0; mean: mean over angles of the per-angle variance;"
    )
    lines.append("qnn / adapter: the same mean over the LCU's two-design / pyramid angles only;")
    lines.append(
        "b: fitted Var ∝ b^-n; p: fitted Var ∝ n^-p; rss: residual of log Var; decay: better fit"
    )
    return "\n".join(lines)


def write_plot(path: Path, results: dict[str, Any], qubits: Sequence[int]) -> Path:
    """Log-scale variance of ``∂L/∂θ_0`` (solid) and mean over angles (dashed) vs n, per cost.

    For the LCU, a dotted line is the mean over its adapter (pyramid) angles alone.

    Returns:
        The PNG's path (written atomically by :func:`qadapters.experiments.core.save_figure`).

    Raises:
        ImportError: matplotlib is missing.
    """
    plt = pyplot("the barren-plateau plot")
    cost_names = list(next(iter(results.values()))["costs"])
    fig, axes = plt.subplots(1, len(cost_names), figsize=(5.5 * len(cost_names), 4), squeeze=False)
    for ax, cost in zip(axes[0], cost_names, strict=True):
        for k, (name, entry) in enumerate(results.items()):
            rows = entry["costs"][cost]["per_n"]
            color = f"C{k}"
            fit = entry["costs"][cost].get("fit_first") or {}
            label = name if fit.get("b") is None else f"{name} (b={fit['b']:.2f})"
            ax.plot(qubits, [max(r["var_first"], 1e-300) for r in rows], "o-", color=color,
                    label=label)  # fmt: skip
            ax.plot(qubits, [max(r["var_mean"], 1e-300) for r in rows], "x--", color=color,
                    alpha=0.6)  # fmt: skip
            if "adapter" in entry.get("blocks", []):
                adapter = [max(r["var_mean_adapter"], 1e-300) for r in rows]
                ax.plot(qubits, adapter, "^:", color=color, alpha=0.6,
                        label=f"{name}: adapter angles")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xticks(list(qubits))
        ax.set_xlabel("system qubits n")
        ax.set_ylabel("Var[∂L/∂θ]")
        ax.set_title(f"{cost} cost: {COSTS[cost]}")
        ax.legend(fontsize=8)
    fig.suptitle("gradient variance (solid: θ0, dashed: mean over angles)", fontsize=10)
    return save_figure(fig, path)


def run(args: argparse.Namespace) -> int:
    """Validate, sample every model at every n, fit, print the tables, write JSON and PNG."""
    wall = time.perf_counter()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    _check_args(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    total = len(args.models) * len(args.qubits) * args.samples
    bar = progress(total, "sample", args.quiet)

    def step(count: int) -> None:
        bar.update(count)

    try:
        results = study(args, step)
    finally:
        bar.close()
    payload = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                   if k != "func"},
        "qubits": args.qubits,
        "samples": args.samples,
        "seed": args.seed,
        "layers": "n" if args.layers is None else args.layers,
        "angles": "uniform in [-pi, pi), float64, torch.Generator seeded per model and n",
        "costs": COSTS,
        "models": results,
        "environment": {"python": platform.python_version(), "torch": torch.__version__},
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    plot = write_plot(args.out / PLOT_NAME, results, args.qubits)
    payload["wall_seconds"] = time.perf_counter() - wall
    path = write_json(args.out / RESULTS_NAME, payload)
    layers = "L = n" if args.layers is None else f"L = {args.layers}"
    print(f"gradient variance over {args.samples} initialisations (seed {args.seed}); "
          f"two-design {layers}; LCU alpha = {args.alpha}")  # fmt: skip
    for cost in args.cost:
        print()
        print(format_table(results, args.qubits, cost))
    say(f"wrote {path}, {plot} in {payload['wall_seconds']:.1f} s")
    return 0
