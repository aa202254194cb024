"""Datasets: every malformed or wrong `npz:` file is one clear error before any work; accepted
inputs (floats already in [0, 1], bools) give the numbers of the same images stored as uint8."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.datasets import load_dataset

from .conftest import TINY, assert_one_line_error, bench, images, snapshot, write_npz

X, Y = images()


def _truncated(path):
    write_npz(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(1).bytes(3000))


def _text(path):
    path.write_text("x_train,y_train\n1,2\n")


def _npy(path):
    with open(path, "wb") as handle:
        np.save(handle, X)


def _objects(path):
    write_npz(path, y_train=np.array([object()] * len(Y), dtype=object))


#: case -> (how to write the file, what the one error line says)
BAD = {
    "float x100": (lambda p: write_npz(p, x_train=X / 255.0 * 100, x_test=X[:12] / 255.0 * 100),
                   "float pixels must be in [0, 1]"),
    "float 0-255": (lambda p: write_npz(p, x_train=X.astype(np.float32), x_test=X[:12].astype(np.float32)),
                    "float pixels must be in [0, 1]"),
    "int32 up to 2400": (lambda p: write_npz(p, x_train=X.astype(np.int32) * 10, x_test=X[:12].astype(np.int32)),
                         "integer pixels must be in 0..255"),
    "negative int16": (lambda p: write_npz(p, x_train=X.astype(np.int16) - 128, x_test=X[:12].astype(np.int16)),
                       "integer pixels must be in 0..255"),
    "NaN pixels": (lambda p: write_npz(p, x_test=np.where(X[:12] > 250, np.nan, X[:12] / 255.0)),
                   "NaN or infinite"),
    "inf pixels": (lambda p: write_npz(p, x_train=np.where(X > 250, np.inf, X / 255.0)), "NaN or infinite"),
    "string pixels": (lambda p: write_npz(p, x_test=X[:12].astype(str)), "images must be uint8"),
    "test label absent from training": (lambda p: write_npz(p, y_test=np.r_[Y[:11], 57]),
                                        "test label 57 never occurs in training"),
    "a single class": (lambda p: write_npz(p, y_train=np.zeros_like(Y), y_test=np.zeros(12, int)),
                       "at least two"),
    "float labels": (lambda p: write_npz(p, y_train=Y + 0.7), "whole class indices, found 0.7"),
    "string labels": (lambda p: write_npz(p, y_train=Y.astype(str)), "labels must be integer class indices"),
    "one-hot labels": (lambda p: write_npz(p, y_train=np.eye(4)[Y]), "one-hot"),
    "negative labels": (lambda p: write_npz(p, y_test=Y[:12] - 1), "labels must be 0..C-1, found -1"),
    "huge labels": (lambda p: write_npz(p, y_train=np.r_[Y[:-1], 10**12]), "not a class index"),
    "labels with a gap": (lambda p: write_npz(p, y_train=np.where(Y == 2, 9, Y), y_test=np.where(Y[:12] == 2, 9, Y[:12])),
                          "class 2 ('2') has no training images"),
    "a class with one image": (lambda p: write_npz(p, y_train=np.r_[Y[:-1], 4]),
                               "class 4 has 1 training image"),
    "classes key shorter than the labels": (lambda p: write_npz(p, classes=np.array(["a", "b", "c"])),
                                            "'classes' names only 3 classes"),
    "more labels than images": (lambda p: write_npz(p, y_train=np.r_[Y, 1]), "41 labels for 40 images"),
    "train and test shapes differ": (lambda p: write_npz(p, x_test=np.zeros((12, 9, 9), np.uint8)),
                                     "x_test images are 1×9×9"),
    "empty arrays": (lambda p: write_npz(p, x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, int)),
                     "no images"),
    "empty test set": (lambda p: write_npz(p, x_test=np.zeros((0, 8, 8), np.uint8), y_test=np.zeros(0, int)),
                       "x_test: no images"),
    "images without a batch axis": (lambda p: write_npz(p, x_test=X[0]), "must be N×H×W"),
    "missing key": (lambda p: write_npz(p, y_test=None), "lacks keys ['y_test']"),
    "truncated archive": (_truncated, "damaged .npz archive"),
    "random bytes": (_random_bytes, "not a NumPy .npz archive"),
    "text file": (_text, "not a NumPy .npz archive"),
    "0-byte file": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    ".npy, not .npz": (_npy, "single .npy array"),
    "pickled objects": (_objects, "never unpickled"),
    "a folder": (lambda p: p.mkdir(), "is a folder"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_dataset_file_is_one_error_before_any_work(case, tmp_path, cache_dir):
    write, expected = BAD[case]
    path = tmp_path / "data.npz"
    write(path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("a finished run lives here")
    before = snapshot(out)
    result = bench("run", "--dataset", f"npz:{path}", *TINY, "--out", out, "--cache-dir", cache_dir)
    line = assert_one_line_error(result, expected)
    assert "pickled data" not in line
    assert snapshot(out) == before, "nothing in --out was written, lost or changed"
    assert not cache_dir.exists() or not list(cache_dir.rglob("*.pt")), "nothing was trained"


def test_float_images_in_0_1_and_bools_are_taken_as_they_are(tmp_path):
    as_uint8 = load_dataset(f"npz:{write_npz(tmp_path / 'u8.npz')}")
    as_float = load_dataset(f"npz:{write_npz(tmp_path / 'f64.npz', x_train=X / 255.0, x_test=X[:12] / 255.0)}")
    np.testing.assert_allclose(as_float.x_train, as_uint8.x_train, atol=1e-7)
    np.testing.assert_allclose(as_float.x_test, as_uint8.x_test, atol=1e-7)
    assert as_float.x_train.max() > 0.9, "floats in [0, 1] are never divided by 255 again"
    binary = load_dataset(f"npz:{write_npz(tmp_path / 'b.npz', x_train=X > 127, x_test=X[:12] > 127)}")
    assert set(np.unique(binary.x_train)) == {0.0, 1.0}
    whole = load_dataset(f"npz:{write_npz(tmp_path / 'w.npz', y_train=Y.astype(float))}")
    np.testing.assert_array_equal(whole.y_train, as_uint8.y_train)  # 3.0 is the class index 3


def test_float_images_give_the_numbers_of_the_same_uint8_images(tmp_path, cache_dir):
    """End to end: the same images as uint8 and as floats in [0, 1] give equal rows (clean accuracy
    is no longer ~0.05 and mean_linf stays within ε = 0.3)."""
    rows = []
    for name, overrides in (("u8", {}), ("f32", {"x_train": (X / 255.0).astype(np.float32),
                                               "x_test": (X[:12] / 255.0).astype(np.float32)})):
        path = write_npz(tmp_path / f"{name}.npz", **overrides)
        out = tmp_path / f"out-{name}"
        result = bench("run", "--dataset", f"npz:{path}", *TINY, "--out", out, "--cache-dir", cache_dir)
        assert result.exit_code == 0, result.output
        rows.append(pd.read_csv(out / "results.csv").iloc[0])
    for column in ("clean_accuracy", "robust_accuracy", "mean_linf", "mean_l2", "n_train", "n_test"):
        assert rows[0][column] == pytest.approx(rows[1][column]), column
    assert rows[1]["mean_linf"] <= 0.3 + 1e-6


def test_class_names_are_part_of_the_model_cache_key(tmp_path):
    plain = load_dataset(f"npz:{write_npz(tmp_path / 'plain.npz')}")
    default = load_dataset(f"npz:{write_npz(tmp_path / 'default.npz', classes=np.array(['0', '1', '2', '3']))}")
    named = load_dataset(f"npz:{write_npz(tmp_path / 'named.npz', classes=np.array(['a', 'b', 'c', 'd']))}")
    assert named.classes == ("a", "b", "c", "d")
    assert default.fingerprint == plain.fingerprint, "default names keep existing cache keys"
    assert named.fingerprint != plain.fingerprint


@pytest.mark.parametrize("seed", ["-1", "99999999999"])
def test_out_of_range_seed_is_one_error(seed, tmp_path):
    result = bench("run", *TINY, "--seed", seed, "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache")
    assert_one_line_error(result, f"--seed {seed} is outside 0..4294967295")
