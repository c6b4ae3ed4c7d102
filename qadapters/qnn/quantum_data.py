"""Quantum data made by the package: labelled ground states of spin chains (exact diagonalisation).

Two Hamiltonian families on an open (or periodic) chain of ``n <= 10`` spins, ground states
computed with ``scipy.sparse`` and ``scipy.sparse.linalg.eigsh``:

- ``"tfim"``, the transverse-field Ising chain ``H = −Σ Z_i Z_{i+1} − h Σ X_i``; label 0 for the
  ferromagnetic phase ``h < 1``, label 1 for the paramagnetic phase ``h > 1``.
- ``"xxz"``, the XXZ chain ``H = Σ −(X_i X_{i+1} + Y_i Y_{i+1}) + Δ Z_i Z_{i+1}``; label 0 for the
  critical XY phase ``Δ < 1``, label 1 for the gapped Néel (antiferromagnetic) phase ``Δ > 1``.

:func:`make_order_dataset` mixes both families into one harder task, *ordered vs disordered*:
label 0 for a long-range ordered phase (TFIM ferromagnet, XXZ Néel antiferromagnet), label 1 for
a disordered or critical one (TFIM paramagnet, XXZ XY phase). A classifier of TFIM phases is right
on the TFIM half of it and has to learn the XXZ half, where the ordered phase is at *large*
coupling. ``QuantumDataset.groups`` records the family of each state.

States are real float64 vectors of length ``2^n`` in the IR's basis order (wire 0 = spin 0 = most
significant bit of the index), ready for :mod:`backends.exact`;
:mod:`circuits.state_prep` turns them into preparation circuits for Aer and IBM backends.

Note [ground states by Lanczos]
-------------------------------
Both Hamiltonians are *stoquastic* in the Z basis (every off-diagonal element is ≤ 0) and connect
every basis state of a symmetry sector, so by Perron–Frobenius each sector's ground state has
strictly positive amplitudes. The XXZ chain is written with ``−(XX + YY)``: conjugating every
other spin by ``Z`` maps the usual ``+(XX + YY)`` to it on an open chain (and on a periodic chain of
even length), so the spectrum and the phases are those of the standard antiferromagnetic chain.
``eigsh`` is started from the uniform state ``|+…+>``, which overlaps every positive vector and
is invariant under the global spin flip: the Krylov space never leaves the flip-even sector, so
the TFIM's nearly degenerate ferromagnetic pair (gap ~ h^n) cannot mix into a symmetry-broken
state. An *exactly* degenerate ground space (the XXZ chain with odd n: magnetisation ±1/2) makes
any returned eigenvector arbitrary, so the state is the uniform state projected on the ground
space (the eigenvectors within a relative 1e-9 of the lowest energy; dense ``eigh`` up to
dimension 256, else the 4 lowest by Lanczos): deterministic, and flip-symmetric. Signs are fixed
so that the amplitudes sum to a positive number.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

__all__ = [
    "CRITICAL",
    "MAX_QUBITS",
    "SPIN_CHAINS",
    "QuantumDataset",
    "ground_state",
    "hamiltonian",
    "make_dataset",
    "make_order_dataset",
    "phase_label",
    "train_test_split",
]

SpinChain = Literal["tfim", "xxz"]
#: The spin chains (Hamiltonian families) whose ground states make the data sets.
SPIN_CHAINS: tuple[str, ...] = ("tfim", "xxz")
#: The coupling where the phase changes: h = 1 (TFIM), Δ = 1 (XXZ).
CRITICAL: dict[str, float] = {"tfim": 1.0, "xxz": 1.0}
#: Largest chain diagonalised (a 2^10-dimensional sparse matrix).
MAX_QUBITS = 10
#: Chains up to this dimension are diagonalised densely (exact and deterministic).
_DENSE_MAX = 256
#: Relative energy window treated as one (degenerate) ground space.
_DEGENERATE = 1e-9
#: Default coupling ranges [low, high] sampled by :func:`make_dataset`.
DEFAULT_RANGE: dict[str, tuple[float, float]] = {"tfim": (0.05, 2.0), "xxz": (0.0, 2.0)}

_X = sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]]))
_Z = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, -1.0]]))
_IY = sp.csr_matrix(np.array([[0.0, 1.0], [-1.0, 0.0]]))  # i·Y is real; Y⊗Y = −(iY)⊗(iY)


def _check_family(family: object) -> SpinChain:
    if family not in SPIN_CHAINS:
        raise ValueError(f"unknown Hamiltonian family {family!r}; expected one of {SPIN_CHAINS}")
    return cast(SpinChain, family)


def _check_n(n_qubits: object) -> int:
    if isinstance(n_qubits, bool) or not isinstance(n_qubits, int | np.integer):
        raise ValueError(f"expected an int number of spins; found {n_qubits!r}")
    if not 2 <= n_qubits <= MAX_QUBITS:
        raise ValueError(
            f"exact diagonalisation supports 2 <= n_qubits <= {MAX_QUBITS} spins (a 2^n "
            f"Hilbert space); found n_qubits={n_qubits}"
        )
    return int(n_qubits)


def _check_coupling(g: object, name: str) -> float:
    try:
        value = float(g)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"expected a real {name}; found {g!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"expected a finite {name}; found {value}")
    return value


def _site(op: sp.csr_matrix, i: int, n: int) -> sp.csr_matrix:
    """``op`` on spin ``i`` (wire 0 = leftmost Kronecker factor = most significant bit)."""
    return sp.kron(sp.kron(sp.identity(2**i), op), sp.identity(2 ** (n - 1 - i)), format="csr")


def _bonds(n: int, periodic: bool) -> list[tuple[int, int]]:
    bonds = [(i, i + 1) for i in range(n - 1)]
    if periodic and n > 2:
        bonds.append((n - 1, 0))
    return bonds


def hamiltonian(
    family: SpinChain, n_qubits: int, coupling: float, *, periodic: bool = False
) -> sp.csr_matrix:
    """The sparse Hamiltonian of a chain (see the module docstring for both families).

    Args:
        family: ``"tfim"`` (``coupling`` = transverse field h) or ``"xxz"`` (``coupling`` = Δ).
        n_qubits: number of spins, ``2 <= n <= MAX_QUBITS``.
        coupling: h or Δ, finite.
        periodic: add the bond (n−1, 0) (for n > 2).

    Returns:
        A real symmetric ``2^n × 2^n`` CSR matrix in the IR basis order.

    Raises:
        ValueError: unknown family, n out of range, non-finite coupling.
    """
    family = _check_family(family)
    n = _check_n(n_qubits)
    g = _check_coupling(coupling, "h" if family == "tfim" else "Δ")
    fixed, scaled = _terms(family, n, bool(periodic))
    return (fixed + g * scaled).tocsr()


@lru_cache(maxsize=32)
def _terms(family: str, n: int, periodic: bool) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(H_0, H_1)`` with ``H = H_0 + coupling · H_1``, built once per chain."""
    dim = 2**n
    fixed = sp.csr_matrix((dim, dim))
    scaled = sp.csr_matrix((dim, dim))
    z = [_site(_Z, i, n) for i in range(n)]
    for i, j in _bonds(n, periodic):
        if family == "tfim":
            fixed = fixed - z[i] @ z[j]
        else:
            xx = _site(_X, i, n) @ _site(_X, j, n)
            yy = -(_site(_IY, i, n) @ _site(_IY, j, n))
            fixed = fixed - (xx + yy)
            scaled = scaled + z[i] @ z[j]
    if family == "tfim":
        for i in range(n):
            scaled = scaled - _site(_X, i, n)
    return fixed.tocsr(), scaled.tocsr()


def ground_state(
    family: SpinChain, n_qubits: int, coupling: float, *, periodic: bool = False
) -> tuple[float, np.ndarray]:
    """Ground energy and ground state by Lanczos (Note [ground states by Lanczos]).

    Returns:
        ``(energy, state)``: the state is real, unit norm, shape ``(2^n,)``, amplitudes summing
        to a positive number.

    Raises:
        ValueError: see :func:`hamiltonian`.
    """
    h = hamiltonian(family, n_qubits, coupling, periodic=periodic)
    dim = h.shape[0]
    v0 = np.full(dim, 1.0 / np.sqrt(dim))
    if dim <= _DENSE_MAX:
        values, vectors = np.linalg.eigh(h.toarray())
    else:
        values, vectors = eigsh(h, k=4, which="SA", v0=v0, tol=1e-12)
        order = np.argsort(values)
        values, vectors = values[order], vectors[:, order]
    ground = vectors[:, values - values[0] <= _DEGENERATE * max(1.0, abs(values[0]))]
    state = ground @ (ground.T @ v0)  # the uniform state projected on the ground space
    state = state / np.linalg.norm(state)
    if state.sum() < 0:
        state = -state
    return float(values[0]), state


def phase_label(family: SpinChain, coupling: float) -> int:
    """0 below the critical coupling (TFIM ferromagnet, XXZ XY phase), 1 above it.

    Raises:
        ValueError: unknown family, or a coupling exactly at the critical point.
    """
    family = _check_family(family)
    g = _check_coupling(coupling, "coupling")
    if g == CRITICAL[family]:
        raise ValueError(f"{family}: coupling {g} is the critical point; no phase label")
    return int(g > CRITICAL[family])


@dataclass(frozen=True)
class QuantumDataset:
    """Labelled ground states of one Hamiltonian family.

    Attributes:
        family: ``"tfim"`` or ``"xxz"``.
        n_qubits: spins per state.
        couplings: the h or Δ of each state, shape ``(N,)``.
        states: real unit vectors, shape ``(N, 2^n)``, IR basis order.
        labels: phase labels (:func:`phase_label`), int64, shape ``(N,)``.
        energies: ground energies, shape ``(N,)``.
        groups: index into ``family.split("+")`` of each state's Hamiltonian family, int64,
            shape ``(N,)`` (all 0 for a one-family dataset).
    """

    family: str
    n_qubits: int
    couplings: np.ndarray
    states: np.ndarray
    labels: np.ndarray
    energies: np.ndarray
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.groups is None:
            object.__setattr__(self, "groups", np.zeros(len(self.labels), dtype=np.int64))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray) -> QuantumDataset:
        """The states at ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        return QuantumDataset(
            self.family,
            self.n_qubits,
            self.couplings[index],
            self.states[index],
            self.labels[index],
            self.energies[index],
            self.groups[index],  # type: ignore[index]
        )


def make_dataset(
    family: SpinChain,
    n_qubits: int,
    num_states: int,
    *,
    seed: int = 0,
    low: float | None = None,
    high: float | None = None,
    margin: float = 0.1,
    periodic: bool = False,
) -> QuantumDataset:
    """Sample couplings, half per phase, and diagonalise each chain.

    Couplings are uniform in ``[low, critical − margin]`` (label 0) and
    ``[critical + margin, high]`` (label 1), ``num_states // 2`` and the rest; the margin keeps
    the finite-size crossover out of the labels. Sorted by coupling.

    Args:
        family: ``"tfim"`` or ``"xxz"``.
        n_qubits: spins, ``2 <= n <= MAX_QUBITS`` (checked before any diagonalisation).
        num_states: at least 2.
        seed: seeds the couplings; same seed, same dataset.
        low, high: the coupling range (default :data:`DEFAULT_RANGE`).
        margin: half-width of the excluded window around the critical coupling, ``>= 0``.
        periodic: periodic boundary conditions.

    Returns:
        A :class:`QuantumDataset`.

    Raises:
        ValueError: unknown family, n out of range, ``num_states < 2``, or a range that leaves
            no room on one side of the critical point.
    """
    family = _check_family(family)
    n = _check_n(n_qubits)
    if isinstance(num_states, bool) or not isinstance(num_states, int) or num_states < 2:
        raise ValueError(f"expected num_states >= 2 (one per phase at least); found {num_states!r}")
    lo_default, hi_default = DEFAULT_RANGE[family]
    low = lo_default if low is None else _check_coupling(low, "low")
    high = hi_default if high is None else _check_coupling(high, "high")
    margin = _check_coupling(margin, "margin")
    crit = CRITICAL[family]
    if margin < 0 or not low < crit - margin or not crit + margin < high:
        raise ValueError(
            f"{family}: expected low < {crit} − margin < {crit} + margin < high; found "
            f"low={low}, high={high}, margin={margin}"
        )
    rng = np.random.default_rng(seed)
    below = rng.uniform(low, crit - margin, size=num_states // 2)
    above = rng.uniform(crit + margin, high, size=num_states - num_states // 2)
    couplings = np.sort(np.concatenate([below, above]))
    pairs = [ground_state(family, n, g, periodic=periodic) for g in couplings]
    return QuantumDataset(
        family,
        n,
        couplings,
        np.stack([s for _, s in pairs]),
        np.array([phase_label(family, g) for g in couplings], dtype=np.int64),
        np.array([e for e, _ in pairs]),
    )


def make_order_dataset(
    n_qubits: int, num_states: int, *, seed: int = 0, margin: float = 0.1
) -> QuantumDataset:
    """Ordered (label 0) vs disordered (label 1) ground states of both families.

    ``num_states // 2`` TFIM chains (label = :func:`phase_label`: 1 for the paramagnet) and the
    rest XXZ chains (label = 1 − :func:`phase_label`: 1 for the XY phase, 0 for the Néel phase),
    each half made by :func:`make_dataset` with its default range and balanced by phase.

    Args:
        n_qubits: spins, ``2 <= n <= MAX_QUBITS``.
        num_states: at least 4 (two per family).
        seed: seeds both halves (different streams); same seed, same dataset.
        margin: see :func:`make_dataset`.

    Returns:
        A :class:`QuantumDataset` with family ``"tfim+xxz"`` and ``groups`` 0 (TFIM) / 1 (XXZ);
        ``couplings`` holds h or Δ; ``energies`` are each chain's own ground energy.

    Raises:
        ValueError: ``num_states < 4`` or the errors of :func:`make_dataset`.
    """
    if isinstance(num_states, bool) or not isinstance(num_states, int) or num_states < 4:
        raise ValueError(f"expected num_states >= 4 (two per family); found {num_states!r}")
    tfim = make_dataset("tfim", n_qubits, num_states // 2, seed=seed, margin=margin)
    xxz = make_dataset("xxz", n_qubits, num_states - num_states // 2, seed=seed + 7919,
                       margin=margin)  # fmt: skip
    parts = (tfim, xxz)
    return QuantumDataset(
        "tfim+xxz",
        tfim.n_qubits,
        np.concatenate([d.couplings for d in parts]),
        np.concatenate([d.states for d in parts]),
        np.concatenate([tfim.labels, 1 - xxz.labels]).astype(np.int64),
        np.concatenate([d.energies for d in parts]),
        np.repeat(np.arange(2, dtype=np.int64), [len(tfim), len(xxz)]),
    )


def train_test_split(
    data: QuantumDataset, test_fraction: float = 0.3, *, seed: int = 0
) -> tuple[QuantumDataset, QuantumDataset]:
    """A seeded split, stratified by label and family group (each stratum split alike).

    Args:
        data: the dataset.
        test_fraction: in (0, 1); at least one state of each class lands on each side.
        seed: same seed, same split.

    Returns:
        ``(train, test)``, each in the dataset's order (sorted by coupling for one family).

    Raises:
        ValueError: a fraction outside (0, 1), or a class with fewer than 2 states.
    """
    if not isinstance(test_fraction, float | int) or not 0 < test_fraction < 1:
        raise ValueError(f"expected 0 < test_fraction < 1; found {test_fraction!r}")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test: list[int] = []
    groups = np.asarray(data.groups)
    strata = {(int(g), int(y)) for g, y in zip(groups, data.labels, strict=True)}
    for group, label in sorted(strata):
        members = np.flatnonzero((data.labels == label) & (groups == group))
        if len(members) < 2:
            where = f" of group {group}" if groups.any() else ""
            raise ValueError(
                f"class {label}{where} has {len(members)} state(s); expected at least 2 to split"
            )
        members = rng.permutation(members)
        k = min(len(members) - 1, max(1, round(test_fraction * len(members))))
        test.extend(members[:k].tolist())
        train.extend(members[k:].tolist())
    return data.subset(np.sort(train)), data.subset(np.sort(test))


#: deprecated name -> (its replacement in this module, why)
_RENAMED = {"FAMILIES": ("SPIN_CHAINS", "adapter families are qadapters.families.FAMILIES")}


def __getattr__(name: str) -> object:
    if name not in _RENAMED:
        raise AttributeError(f"module 'qadapters.qnn.quantum_data' has no attribute {name!r}")
    new, why = _RENAMED[name]
    message = f"qadapters.qnn.quantum_data.{name} is deprecated; use {new} ({why})"
    warnings.warn(message, DeprecationWarning, stacklevel=2)
    return globals()[new]
