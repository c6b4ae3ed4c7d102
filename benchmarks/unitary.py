"""exact.unitary vs Qiskit's Operator and PennyLane's qml.matrix; hamming_block vs determinants.

Run with ``make bench-unitary`` or ``python -m benchmarks.unitary [--quick]``. Every row first
checks that the contenders give the same matrix, then times them interleaved (each round runs
every contender once, in rotated order) and prints medians and the quartiles of the per-round
ratios (this machine is shared and noisy: compare ratios, not absolute times). Beside each
unitary, ``write`` is the memory-bandwidth reference of the same run: filling a fresh
``2^n × 2^n`` buffer of the unitary's dtype, the least any method that returns the matrix pays.

Targets on a 2-core CPU: ``two_design(n, 2)`` ≥ 100× faster than Operator at n = 10 and within
3× of ``write`` at n = 12; hamming_block forward+backward ≥ 10× faster at n = 22, k ∈ {1, 2},
than the determinant method (dense Givens product for the weight-1 block, then one k×k
determinant per entry of the compound, as the QuIC reference code computes compounds).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from itertools import combinations

import numpy as np
import torch

from backends import exact
from benchmarks.timing import fmt_seconds, interleaved_medians, interleaved_samples, ratio_spread
from circuits import Circuit, rbs_pyramid, two_design


def _qiskit_operator(circuit: Circuit, theta: np.ndarray):
    from qiskit.quantum_info import Operator

    from backends.qiskit import to_qiskit

    qc = to_qiskit(circuit, theta)
    return lambda: Operator(qc).data


def _pennylane_matrix(circuit: Circuit, theta: np.ndarray):
    import pennylane as qml

    from backends.pennylane import to_pennylane

    fn = qml.matrix(to_pennylane(circuit), wire_order=range(circuit.n_qubits))
    return lambda: np.asarray(fn(theta))


def _settle(seconds: float = 1.0) -> None:
    """Let freed memory and idle worker threads settle before the next measurement."""
    gc.collect()
    time.sleep(seconds)


def _ratio(samples: dict[str, list[float]], num: str, den: str) -> tuple[float, str]:
    """Median per-round ratio ``num / den`` and its quartiles as text."""
    r = ratio_spread(samples[num], samples[den])
    return r.median, f"{r.median:7.1f}x [{r.q1:.1f}-{r.q3:.1f}]"


def bench_unitary(sizes: list[int], operator_only: list[int], rounds: int) -> list[dict]:
    rows = []
    print("two_design(n, 2): median time of the full 2^n x 2^n unitary (float64); per-round "
          "ratios, median [quartiles]")
    print(f"{'n':>3} {'exact':>11} {'Operator':>11} {'qml.matrix':>11} {'write':>11} "
          f"{'Operator/exact':>21} {'qml/exact':>10} {'exact/write':>18}")
    for n in sizes + operator_only:
        c = two_design(n, 2)
        theta = np.random.default_rng(n).uniform(-np.pi, np.pi, c.num_params)
        t = torch.tensor(theta)

        def ours(c=c, t=t):
            with torch.no_grad():
                return exact.unitary(c, t)

        reference = ours().numpy()
        dim, dtype = 2**n, ours().dtype

        def write(dim=dim, dtype=dtype):
            return torch.empty(dim, dim, dtype=dtype).fill_(1.0)

        contenders = {"exact": ours, "Operator": _qiskit_operator(c, theta), "write": write}
        slow = {"qml.matrix": _pennylane_matrix(c, theta)} if n in sizes else {}
        for name, fn in {**contenders, **slow}.items():
            if name == "write":
                continue
            err = np.abs(np.asarray(fn()) - reference).max()
            if err > 1e-10:
                raise AssertionError(f"{name} differs from exact.unitary at n={n}: {err:.2e}")
        _settle()
        reps = rounds if n <= 10 else max(3, rounds // 5)
        samples = interleaved_samples(contenders, reps, warmup=0 if n > 10 else 1, rotate=True)
        med = {name: statistics.median(ts) for name, ts in samples.items()}
        # qml.matrix is 100-1000x slower and leaves the allocator and the kernel reclaiming
        # gigabytes for a while after each call, which would slow whatever runs next; it is
        # timed in its own block, after the interleaved ones, with fewer repetitions.
        if slow:
            med.update(interleaved_medians(slow, max(1, reps // 4), warmup=0))
            _settle()
        r_op, op_text = _ratio(samples, "Operator", "exact")
        r_write, write_text = _ratio(samples, "exact", "write")
        r_pl = med.get("qml.matrix", float("nan")) / med["exact"]
        pl = fmt_seconds(med["qml.matrix"]) if "qml.matrix" in med else " " * 11
        print(f"{n:>3} {fmt_seconds(med['exact'])} {fmt_seconds(med['Operator'])} {pl} "
              f"{fmt_seconds(med['write'])} {op_text:>21} {r_pl:>9.1f}x {write_text:>18}")
        rows.append({"n": n, **med, "operator_ratio": r_op, "pennylane_ratio": r_pl,
                     "write_ratio": r_write})
    return rows


def _givens_weight_one(n: int, circuit: Circuit, theta: torch.Tensor) -> torch.Tensor:
    """Weight-1 block as a product of dense n×n Givens rotations, one per RBS gate."""
    a = torch.eye(n, dtype=theta.dtype)
    for op in circuit.ops:
        i, j = op.wires
        c, s = torch.cos(theta[op.param]), torch.sin(theta[op.param])
        g = torch.eye(n, dtype=theta.dtype)
        # RBS on (i, j): |01> (one on j) and |10> (one on i) mix as [[c, s], [-s, c]]
        g = g.index_put((torch.tensor([j, j, i, i]), torch.tensor([j, i, j, i])),
                        torch.stack([c, s, -s, c]))
        a = g @ a
    return a


def _compound_by_determinants(a: torch.Tensor, k: int) -> torch.Tensor:
    subsets = torch.tensor(list(combinations(range(a.shape[0]), k)))
    rows = a[subsets]  # (m, k, n)
    sub = rows[:, None, :, :].expand(-1, len(subsets), -1, -1)
    cols = subsets[None, :, None, :].expand(len(subsets), -1, k, -1)
    return torch.linalg.det(torch.gather(sub, 3, cols))


def bench_hamming(n: int, orders: list[int], rounds: int) -> list[dict]:
    c = rbs_pyramid(n)
    print(f"\nhamming_block(rbs_pyramid({n}), k): forward + backward, float64")
    print(f"{'k':>3} {'dim':>5} {'ours':>11} {'simulate':>11} {'determinants':>11} "
          f"{'det/ours':>19} {'det/simulate':>19}")
    rows = []
    for k in orders:
        theta = torch.tensor(np.random.default_rng(k).uniform(-np.pi, np.pi, c.num_params))

        def ours(k=k, theta=theta, method="auto"):
            t = theta.clone().requires_grad_()
            out = exact.hamming_block(c, t, k, method=method)
            out.sum().backward()
            return out.detach()

        def determinants(k=k, theta=theta):
            t = theta.clone().requires_grad_()
            out = _compound_by_determinants(_givens_weight_one(n, c, t), k)
            out.sum().backward()
            return out.detach()

        def simulate(k=k, theta=theta):
            return ours(k, theta, "simulate")

        want = determinants()
        for name, fn in {"ours": ours, "simulate": simulate}.items():
            err = (fn() - want).abs().max().item()
            if err > 1e-10:
                raise AssertionError(f"{name} differs from the determinant method: {err:.2e}")
        samples = interleaved_samples(
            {"ours": ours, "simulate": simulate, "determinants": determinants}, rounds,
            rotate=True,
        )
        med = {name: statistics.median(ts) for name, ts in samples.items()}
        r, text = _ratio(samples, "determinants", "ours")
        r_sim, sim_text = _ratio(samples, "determinants", "simulate")
        print(f"{k:>3} {want.shape[0]:>5} {fmt_seconds(med['ours'])} "
              f"{fmt_seconds(med['simulate'])} {fmt_seconds(med['determinants'])} "
              f"{text:>19} {sim_text:>19}")
        rows.append({"k": k, **med, "ratio": r, "simulate_ratio": r_sim})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    if args.quick:
        bench_unitary([4, 6], [], rounds=3)
        bench_hamming(8, [1, 2], rounds=3)
    else:
        bench_unitary([6, 8, 10], [12], rounds=args.rounds)
        bench_hamming(22, [1, 2], rounds=args.rounds)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
