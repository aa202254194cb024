"""Datasets: loading, provenance and the seeded train/validation/test split.

Names users pass to ``--dataset``:

* ``digits`` — scikit-learn's embedded UCI 8x8 handwritten digits (1,797 images,
  no download). The default.
* ``mnist``, ``fashion-mnist``, ``cifar10`` — the official datasets through
  torchvision (download with checksum verification), looked up in this order:
  1. a torchvision copy already under ``--data-dir``;
  2. a complete local copy: for Fashion-MNIST Debian's
     ``/usr/share/datasets/fashion-mnist/``; for any of them ``NAME.npz`` in
     ``--data-dir`` or ``$BENCH_DATA_DIR``;
  3. torchvision's download into ``--data-dir``;
  4. ``NAME-subset.npz`` in ``--data-dir`` or ``$BENCH_DATA_DIR`` — reported as
     dataset ``NAME-subset``, never as ``NAME``.
* ``npz:PATH`` — any NumPy archive with ``x_train, y_train, x_test, y_test``
  (uint8 images ``N×H×W`` or ``N×H×W×3``, int labels) and optional ``classes``,
  read with ``allow_pickle=False``.

Every :class:`Dataset` records where it came from (``source``), whether it is a
subset of an official dataset, and its sizes, so result rows can say exactly
what was measured.  Images are float32 ``N×C×H×W`` in [0, 1].
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import gzip
import io
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import platformdirs
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from bench.cache import array_fingerprint
from bench.errors import BenchError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
VALIDATION_FRACTION = 0.1
VALIDATION_MAX = 5000
DIGITS_TEST_FRACTION = 0.2


class DatasetName(str, enum.Enum):
    """The named datasets; ``npz:PATH`` is accepted besides these."""

    DIGITS = "digits"
    MNIST = "mnist"
    FASHION_MNIST = "fashion-mnist"
    CIFAR10 = "cifar10"


@dataclasses.dataclass(frozen=True)
class Official:
    """What the official release of a dataset looks like (to tell a subset)."""

    torchvision_class: str
    torchvision_folder: str
    n_train: int
    n_test: int
    shape: tuple[int, int, int]


OFFICIAL = {
    DatasetName.MNIST: Official("MNIST", "MNIST", 60_000, 10_000, (1, 28, 28)),
    DatasetName.FASHION_MNIST: Official("FashionMNIST", "FashionMNIST", 60_000, 10_000, (1, 28, 28)),
    DatasetName.CIFAR10: Official("CIFAR10", "cifar-10-batches-py", 50_000, 10_000, (3, 32, 32)),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset with its seeded split and its provenance.

    ``family`` picks per-dataset defaults (model architecture, training and
    attack budgets): ``digits``, ``mnist``, ``fashion-mnist`` or ``cifar10``,
    inferred from the image shape for ``npz:`` files.
    """

    name: str
    source: str
    family: str
    is_subset: bool
    classes: tuple[str, ...]
    seed: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    fingerprint: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_val(self) -> int:
        return len(self.y_val)

    @property
    def n_test(self) -> int:
        return len(self.y_test)


@dataclasses.dataclass(frozen=True)
class _Raw:
    """Images before the validation split: float32 NCHW in [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    name: str
    source: str
    is_subset: bool


def default_data_dir() -> Path:
    return Path(platformdirs.user_cache_dir("dundi-bench")) / "data"


def dataset_choices() -> list[str]:
    return [d.value for d in DatasetName] + ["npz:PATH"]


def validate_dataset_name(spec: str) -> str:
    """Raise a one-line error for an unknown dataset name (files are checked at load)."""
    if spec.startswith("npz:") and len(spec) > 4:
        return spec
    if spec in {d.value for d in DatasetName}:
        return spec
    raise BenchError(f"unknown dataset {spec!r}; choose one of: {', '.join(dataset_choices())}")


def _to_float_nchw(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None, :, :]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise BenchError(f"images must be N×H×W or N×H×W×3, got shape {images.shape}")
    return np.ascontiguousarray(images, dtype=np.float32) / 255.0


def _family_from_shape(shape: tuple[int, ...], stem: str) -> str:
    if shape == (1, 8, 8):
        return "digits"
    if shape == (1, 28, 28):
        return "fashion-mnist" if "fashion" in stem.lower() else "mnist"
    if shape == (3, 32, 32):
        return "cifar10"
    raise BenchError(
        f"no defaults for images of shape {shape} in {stem!r}; the suite knows "
        "1×8×8 (digits), 1×28×28 (mnist, fashion-mnist) and 3×32×32 (cifar10)"
    )


def _looks_like_subset(family: str, n_train: int, n_test: int, stem: str) -> bool:
    try:
        official = OFFICIAL[DatasetName(family)]
    except (ValueError, KeyError):
        return stem.endswith("-subset")
    return stem.endswith("-subset") or n_train < official.n_train or n_test < official.n_test


def _load_npz(path: Path) -> _Raw:
    if not path.is_file():
        raise BenchError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            if missing:
                raise BenchError(f"{path} lacks keys {sorted(missing)} (format: see README, 'Datasets')")
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as error:
        raise BenchError(f"{path} is not a readable .npz archive without pickles: {error}") from None
    y_train = arrays["y_train"].astype(np.int64)
    y_test = arrays["y_test"].astype(np.int64)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    classes = tuple(str(c) for c in arrays.get("classes", np.arange(num_classes)))
    if len(arrays["x_train"]) != len(y_train) or len(arrays["x_test"]) != len(y_test):
        raise BenchError(f"{path}: images and labels differ in length")
    x_train, x_test = _to_float_nchw(arrays["x_train"]), _to_float_nchw(arrays["x_test"])
    family = _family_from_shape(x_train.shape[1:], path.stem)
    return _Raw(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=classes,
        name=path.stem,
        source=f"npz:{path.name}",
        is_subset=_looks_like_subset(family, len(y_train), len(y_test), path.stem),
    )


def _load_digits() -> _Raw:
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    # The UCI digits have no official test split: carve one, stratified, with a
    # fixed seed so every run and every --seed evaluates the same test images.
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=DIGITS_TEST_FRACTION,
        stratify=digits.target, random_state=0,
    )
    return _Raw(x_train, y_train, x_test, y_test, tuple(str(c) for c in range(10)),
                "digits", "sklearn", False)


def _torchvision(name: DatasetName, root: Path, download: bool) -> _Raw:
    import torchvision

    cls = getattr(torchvision.datasets, OFFICIAL[name].torchvision_class)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    return _Raw(
        x_train=_to_float_nchw(np.asarray(train.data)),
        y_train=np.asarray(train.targets, dtype=np.int64),
        x_test=_to_float_nchw(np.asarray(test.data)),
        y_test=np.asarray(test.targets, dtype=np.int64),
        classes=tuple(train.classes),
        name=name.value,
        source="torchvision",
        is_subset=False,
    )


def _debian_fashion_mnist(root: Path) -> _Raw:
    """Decompress Debian's IDX files where torchvision looks, then load without download.

    Debian's gzip files differ byte-wise from the ones torchvision checksums, so
    torchvision would ignore them and try the network; the decompressed IDX
    content is the official data.
    """
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in DEBIAN_FASHION_MNIST.glob("*.gz"):
        target = raw / gz.name[:-3]
        if not target.exists():
            with gzip.open(gz, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    loaded = _torchvision(DatasetName.FASHION_MNIST, root, download=False)
    return dataclasses.replace(loaded, source=f"debian:{DEBIAN_FASHION_MNIST}")


def _npz_dirs(data_dir: Path) -> list[Path]:
    dirs = [data_dir]
    if os.environ.get("BENCH_DATA_DIR"):
        dirs.append(Path(os.environ["BENCH_DATA_DIR"]))
    return dirs


def _load_official(name: DatasetName, data_dir: Path) -> _Raw:
    looked: list[str] = []
    try:
        return _torchvision(name, data_dir, download=False)
    except (RuntimeError, OSError):
        looked.append(f"torchvision copy under {data_dir}")
    if name is DatasetName.FASHION_MNIST:
        if len(list(DEBIAN_FASHION_MNIST.glob("*.gz"))) == 4:
            return _debian_fashion_mnist(data_dir)
        looked.append(f"{DEBIAN_FASHION_MNIST} (apt-get install dataset-fashion-mnist)")
    for folder in _npz_dirs(data_dir):
        candidate = folder / f"{name.value}.npz"
        if candidate.is_file():
            return _load_npz(candidate)
        looked.append(str(candidate))
    try:
        return _torchvision(name, data_dir, download=True)
    except (RuntimeError, OSError) as error:
        download_error = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    for folder in _npz_dirs(data_dir):
        candidate = folder / f"{name.value}-subset.npz"
        if candidate.is_file():
            warnings.warn(
                f"{name.value}: download failed, using the local SUBSET {candidate}; results are "
                f"reported as dataset {candidate.stem!r}, not {name.value!r}",
                stacklevel=2,
            )
            return _load_npz(candidate)
        looked.append(str(candidate))
    raise BenchError(
        f"dataset {name.value!r} not found and its download failed ({download_error}); looked in: "
        f"{'; '.join(looked)}. Provide it with --data-dir DIR or BENCH_DATA_DIR=DIR holding "
        f"{name.value}.npz or {name.value}-subset.npz (keys x_train, y_train, x_test, y_test), "
        f"or use --dataset npz:PATH"
    )


def _split(raw: _Raw, seed: int, family: str) -> Dataset:
    n_val = min(max(int(round(VALIDATION_FRACTION * len(raw.y_train))), len(raw.classes)), VALIDATION_MAX)
    x_train, x_val, y_train, y_val = train_test_split(
        raw.x_train, raw.y_train, test_size=n_val, stratify=raw.y_train, random_state=seed,
    )
    fingerprint = array_fingerprint(x_train, y_train, x_val, y_val, raw.x_test, raw.y_test)
    return Dataset(
        name=raw.name,
        source=raw.source,
        family=family,
        is_subset=raw.is_subset,
        classes=raw.classes,
        seed=seed,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=raw.x_test,
        y_test=raw.y_test,
        fingerprint=fingerprint,
    )


@functools.lru_cache(maxsize=8)
def load_dataset(spec: str, seed: int = 0, data_dir: str | Path | None = None) -> Dataset:
    """Load ``spec`` (a :class:`DatasetName` value or ``npz:PATH``) and split it by ``seed``.

    The test split is the official one (or, for digits, a fixed stratified
    20%); the validation split (10% of train, at most 5,000, stratified) is
    drawn from the training images with ``seed``. Hyper-parameters are chosen
    on validation, never on test.

    Example::

        data = load_dataset("digits", seed=0)
        data.x_train.shape   # (1293, 1, 8, 8)
    """
    validate_dataset_name(spec)
    root = Path(data_dir) if data_dir else default_data_dir()
    if spec.startswith("npz:"):
        raw = _load_npz(Path(spec[4:]).expanduser())
    elif spec == DatasetName.DIGITS.value:
        raw = _load_digits()
    else:
        raw = _load_official(DatasetName(spec), root)
    family = _family_from_shape(raw.x_train.shape[1:], raw.name if spec.startswith("npz:") else spec)
    return _split(raw, seed, family)
