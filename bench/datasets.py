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

Every dataset, named or ``npz:``, goes through one validation step before its
split (:func:`_images`, :func:`_labels`, :func:`validate_raw`), each failure a
one-line :class:`BenchError`: pixels are integers in 0..255 (divided by 255
once) or floats already in [0, 1] (kept as they are) or bools, all finite;
train and test images have one shape; labels are 1-D whole numbers 0..C-1,
every test class occurs in training, there are at least two classes and at
least two training images per class (the stratified validation split); a
``classes`` key names at least C classes.

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
import hashlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from bench.cache import array_fingerprint
from bench.errors import BenchError
from bench.names import unknown

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
    import platformdirs

    return Path(platformdirs.user_cache_dir("dundi-bench")) / "data"


def dataset_choices() -> list[str]:
    return [d.value for d in DatasetName] + ["npz:PATH"]


def validate_dataset_name(spec: str) -> str:
    """Raise a one-line error for an unknown dataset name (files are checked at load)."""
    if spec.startswith("npz:") and len(spec) > 4:
        return spec
    if spec in {d.value for d in DatasetName}:
        return spec
    raise unknown("dataset", spec, dataset_choices())


#: The largest seed the seeded splits accept (NumPy's legacy RandomState range).
MAX_SEED = 2**32 - 1


def validate_seed(seed) -> int:
    """A seed the splits, NumPy and torch all accept (0..2**32-1), or a one-line error."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise BenchError(f"--seed {seed!r} is outside 0..{MAX_SEED}")
    return int(seed)


def _images(images, what: str) -> np.ndarray:
    """Validate ``images`` and return them float32 ``N×C×H×W`` in [0, 1].

    Accepted: integers in 0..255 (uint8 scale, divided by 255 once), floats
    already in [0, 1] (kept as they are, never rescaled), and bools (0 or 1).
    Anything else (other ranges, NaN or infinite pixels, strings, empty
    arrays, other shapes) is a one-line :class:`BenchError` naming ``what``.
    """
    images = np.asarray(images)
    if images.dtype.kind not in "buif":
        raise BenchError(f"{what}: images must be uint8 (0-255) or float in [0, 1], got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[:, None, :, :]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise BenchError(f"{what}: images must be N×H×W or N×H×W×3 (or N×H×W×1), got shape {images.shape}")
    if images.shape[0] == 0:
        raise BenchError(f"{what}: no images (shape {images.shape})")
    if min(images.shape[2:]) == 0:
        raise BenchError(f"{what}: images of size 0 (shape {images.shape})")
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images, dtype=np.float32) / 255.0
    if images.dtype.kind == "b":
        return np.ascontiguousarray(images, dtype=np.float32)
    if images.dtype.kind in "ui":
        low, high = images.min(), images.max()
        if low < 0 or high > 255:
            raise BenchError(f"{what}: integer pixels must be in 0..255 (uint8 scale), found {low}..{high}")
        return np.ascontiguousarray(images, dtype=np.float32) / 255.0
    finite = np.isfinite(images)
    if not finite.all():
        raise BenchError(f"{what}: {int(finite.size - finite.sum())} pixels are NaN or infinite")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise BenchError(f"{what}: float pixels must be in [0, 1], found {low:g}..{high:g} (store uint8 "
                         "0-255, or floats already divided by 255)")
    return np.ascontiguousarray(images, dtype=np.float32)


def _labels(labels, what: str, n_images: int) -> np.ndarray:
    """Validate ``labels`` as 1-D integer class indices (one per image); return them int64."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "uif":
        raise BenchError(f"{what}: labels must be integer class indices 0..C-1, got dtype {labels.dtype}"
                         + (" (class names go in 'classes')" if labels.dtype.kind in "USO" else ""))
    if labels.ndim != 1:
        hint = " (one-hot? store labels.argmax(1))" if labels.ndim == 2 else ""
        raise BenchError(f"{what}: labels must be 1-D class indices, got shape {labels.shape}{hint}")
    if len(labels) != n_images:
        raise BenchError(f"{what}: {len(labels)} labels for {n_images} images")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise BenchError(f"{what}: labels are NaN or infinite")
        fractional = labels[labels != np.round(labels)]
        if len(fractional):
            raise BenchError(f"{what}: labels must be whole class indices, found {fractional[0]:g}")
    if len(labels) and labels.min() < 0:
        raise BenchError(f"{what}: labels must be 0..C-1, found {labels.min():g}")
    if len(labels) and labels.max() > np.iinfo(np.int32).max:
        raise BenchError(f"{what}: label {labels.max():g} is not a class index 0..C-1")
    return labels.astype(np.int64)


def _class_names(classes, count: int, where: str) -> tuple[str, ...]:
    """``classes`` (or ``0..count-1``) as names, checked against the labels' range."""
    if classes is None:
        return tuple(str(c) for c in range(count))
    classes = np.asarray(classes)
    if classes.ndim != 1:
        raise BenchError(f"{where}: 'classes' must be a 1-D list of names, got shape {classes.shape}")
    names = tuple(str(c) for c in classes)
    if len(names) < count:
        raise BenchError(f"{where}: labels go up to {count - 1} but 'classes' names only {len(names)} classes")
    if len(set(names)) < len(names):
        raise BenchError(f"{where}: 'classes' repeats a name")
    return names


def _check_labels(y_train: np.ndarray, y_test: np.ndarray, classes: tuple[str, ...], where: str) -> None:
    """Every test class occurs in training, every class 0..C-1 has at least two training images
    (the stratified validation split takes one), and there are at least two classes."""
    present = np.unique(y_train)
    unseen = np.setdiff1d(np.unique(y_test), present)
    if len(unseen):
        raise BenchError(f"{where}: test label {unseen[0]} never occurs in training (a model cannot learn it)"
                         + (f", nor do {len(unseen) - 1} other test labels" if len(unseen) > 1 else ""))
    count = len(classes)
    if count < 2:
        raise BenchError(f"{where}: only {count} class; a classifier needs at least two")
    if len(present) < count:
        missing = next(c for c in range(count) if c >= len(present) or present[c] != c)
        raise BenchError(f"{where}: class {missing} ({classes[missing]!r}) has no training images; labels "
                         f"must be 0..C-1 with every class in training (C = {count})")
    counts = np.bincount(y_train, minlength=count)
    if counts.min() < 2:
        smallest = int(counts.argmin())
        raise BenchError(f"{where}: class {smallest} has {counts[smallest]} training image; the stratified "
                         "validation split needs at least 2 per class")


def validate_raw(raw: "_Raw") -> "_Raw":
    """The one validation step every dataset (named or ``npz:``) goes through before its split."""
    where = f"dataset {raw.name!r} ({raw.source})"
    for what, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if x.dtype != np.float32 or x.ndim != 4 or len(x) == 0:
            raise BenchError(f"{where}: {what} images must be a non-empty float32 N×C×H×W array")
        if len(x) != len(y):
            raise BenchError(f"{where}: {len(y)} {what} labels for {len(x)} images")
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise BenchError(f"{where}: {what} pixels must be finite and in [0, 1]")
    if raw.x_train.shape[1:] != raw.x_test.shape[1:]:
        raise BenchError(f"{where}: training images are {'×'.join(map(str, raw.x_train.shape[1:]))} but test "
                         f"images are {'×'.join(map(str, raw.x_test.shape[1:]))}")
    _check_labels(raw.y_train, raw.y_test, raw.classes, where)
    return raw


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


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, or a one-line error saying what the file is instead."""
    if path.is_dir():
        raise BenchError(f"dataset {path} is a folder, not an .npz file")
    if not path.is_file():
        raise BenchError(f"dataset file not found: {path}")
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise BenchError(f"cannot read dataset {path}: {error.strerror or error}") from None
    if not head:
        raise BenchError(f"{path} is empty (0 bytes); expected a NumPy .npz archive (numpy.savez)")
    if head.startswith(b"\x93NUMPY"):
        raise BenchError(f"{path} is a single .npy array, not an .npz archive; write one with "
                         "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    if not head.startswith(b"PK"):
        raise BenchError(f"{path} is not a NumPy .npz archive (not a zip file: text or other data?); write one "
                         "with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            if missing:
                raise BenchError(f"{path} lacks keys {sorted(missing)} (format: see README, 'Datasets')")
            return {key: archive[key] for key in archive.files}
    except BenchError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise BenchError(f"{path} holds Python objects (object arrays), which are never unpickled; store "
                             "numeric arrays (uint8 images, integer labels) and string class names") from None
        raise BenchError(f"{path} is not a readable .npz archive ({_one_line(error)})") from None
    except Exception as error:  # zipfile.BadZipFile, EOFError, zlib.error, OSError: truncated or damaged
        raise BenchError(f"{path} is a damaged .npz archive ({type(error).__name__}: {_one_line(error)})") from None


def _load_npz(path: Path) -> _Raw:
    arrays = _read_npz(path)
    where = str(path)
    x_train = _images(arrays["x_train"], f"{where}: x_train")
    x_test = _images(arrays["x_test"], f"{where}: x_test")
    y_train = _labels(arrays["y_train"], f"{where}: y_train", len(x_train))
    y_test = _labels(arrays["y_test"], f"{where}: y_test", len(x_test))
    count = int(max(y_train.max(), y_test.max())) + 1
    classes = _class_names(arrays.get("classes"), count, where)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise BenchError(f"{where}: x_train images are {'×'.join(map(str, x_train.shape[1:]))} but x_test "
                         f"images are {'×'.join(map(str, x_test.shape[1:]))}")
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
    from sklearn.datasets import load_digits  # scikit-learn loads in ~1 s: only when data is loaded
    from sklearn.model_selection import train_test_split

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
    x_train = _images(np.asarray(train.data), f"{name.value} training images")
    x_test = _images(np.asarray(test.data), f"{name.value} test images")
    return _Raw(
        x_train=x_train,
        y_train=_labels(np.asarray(train.targets), f"{name.value} training labels", len(x_train)),
        x_test=x_test,
        y_test=_labels(np.asarray(test.targets), f"{name.value} test labels", len(x_test)),
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
    from sklearn.model_selection import train_test_split

    n_val = min(max(int(round(VALIDATION_FRACTION * len(raw.y_train))), len(raw.classes)), VALIDATION_MAX)
    try:
        x_train, x_val, y_train, y_val = train_test_split(
            raw.x_train, raw.y_train, test_size=n_val, stratify=raw.y_train, random_state=seed,
        )
    except ValueError as error:
        raise BenchError(f"dataset {raw.name!r}: cannot split a stratified validation set of {n_val} images "
                         f"from {len(raw.y_train)} ({_one_line(error)})") from None
    fingerprint = array_fingerprint(x_train, y_train, x_val, y_val, raw.x_test, raw.y_test)
    if raw.classes != tuple(str(c) for c in range(len(raw.classes))):
        # Class names are part of what a model was trained on; the default 0..C-1 leaves the
        # fingerprint as it was before names were hashed, so existing cache entries stay valid.
        fingerprint = hashlib.sha256(f"{fingerprint} {json.dumps(raw.classes)}".encode()).hexdigest()[:16]
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
    seed = validate_seed(seed)
    root = Path(data_dir) if data_dir else default_data_dir()
    if spec.startswith("npz:"):
        raw = _load_npz(Path(spec[4:]).expanduser())
    elif spec == DatasetName.DIGITS.value:
        raw = _load_digits()
    else:
        raw = _load_official(DatasetName(spec), root)
    raw = validate_raw(raw)
    family = _family_from_shape(raw.x_train.shape[1:], raw.name if spec.startswith("npz:") else spec)
    return _split(raw, seed, family)
