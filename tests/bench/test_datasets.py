"""Datasets: real digits and the real MNIST subset, provenance and seeded splits."""

import numpy as np
import pytest

from bench.datasets import load_dataset, validate_dataset_name
from bench.errors import BenchError


def test_digits_split_is_disjoint_stratified_and_seeded(digits):
    assert digits.name == "digits" and digits.source == "sklearn" and not digits.is_subset
    assert digits.n_train + digits.n_val + digits.n_test == 1797
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    # Every class is present in validation (stratified), and the split repeats by seed.
    assert set(np.unique(digits.y_val)) == set(range(10))
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    assert again.fingerprint == digits.fingerprint
    assert other.fingerprint != digits.fingerprint
    # The test split is the same whatever the seed: only validation is drawn by it.
    np.testing.assert_array_equal(other.x_test, digits.x_test)
    rows = {row.tobytes() for row in digits.x_train}
    assert not any(row.tobytes() in rows for row in digits.x_test)


def test_mnist_subset_is_reported_as_a_subset(mnist_subset):
    data = load_dataset(f"npz:{mnist_subset}", seed=0)
    assert data.name == "mnist-subset" and data.source == "npz:mnist-subset.npz"
    assert data.is_subset and data.family == "mnist"
    assert data.n_train + data.n_val == 17_387 and data.n_test == 10_000
    assert data.input_shape == (1, 28, 28)


def test_unknown_name_and_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(BenchError, match="choose one of: digits, mnist"):
        validate_dataset_name("imagenet")
    with pytest.raises(BenchError, match="not found"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(BenchError, match="lacks keys"):
        load_dataset(f"npz:{bad}")


def test_official_name_offline_falls_back_to_a_labelled_subset(tmp_path, monkeypatch):
    """With no download possible, mnist-subset.npz in BENCH_DATA_DIR is used, named as a subset."""
    from bench import datasets

    def offline(*args, **kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(datasets, "_torchvision", offline)
    images = np.random.default_rng(0).integers(0, 255, (30, 28, 28), dtype=np.uint8)
    labels = np.arange(30) % 10
    np.savez(tmp_path / "mnist-subset.npz", x_train=images, y_train=labels, x_test=images[:10],
             y_test=labels[:10])
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="SUBSET"):
        data = datasets.load_dataset("mnist", 0, str(tmp_path / "empty"))
    assert data.name == "mnist-subset" and data.is_subset
    monkeypatch.delenv("BENCH_DATA_DIR")
    with pytest.raises(BenchError, match="looked in"):
        datasets.load_dataset("mnist", 0, str(tmp_path / "empty2"))


def test_validation_leaves_the_fingerprints_of_valid_data_as_they_were(digits, mnist_subset):
    """Model cache keys hash the fingerprint: validating the data must not move it (or every cached
    model would be retrained)."""
    assert digits.fingerprint == "7329c224d1226a16"
    assert load_dataset(f"npz:{mnist_subset}", seed=0).fingerprint == "b1194b8ce013dd63"


def test_out_of_range_pixels_and_unseen_test_labels_are_refused(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (20, 8, 8)).astype(np.int32)
    labels = np.arange(20) % 2
    path = tmp_path / "wide.npz"
    np.savez(path, x_train=images * 10, y_train=labels, x_test=images[:4], y_test=labels[:4])
    with pytest.raises(BenchError, match="integer pixels must be in 0..255"):
        load_dataset(f"npz:{path}")
    np.savez(path, x_train=images, y_train=labels, x_test=images[:4], y_test=np.array([0, 1, 0, 5]))
    with pytest.raises(BenchError, match="test label 5 never occurs in training"):
        load_dataset(f"npz:{path}")
