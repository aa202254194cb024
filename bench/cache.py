"""Content-addressed on-disk cache for trained models and adversarial examples.

Every entry is named by a hash of everything that determines it (see
:func:`config_hash`), so a changed option, seed, dataset or suite version is a
different entry and never a stale hit.  Writes go to a temporary file in the
same folder and are then renamed into place, so a reader never sees a half
written file, and a per-entry file lock makes concurrent workers (``--jobs``,
Dask) train or attack a given entry once and share the result.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import platformdirs
import torch
from filelock import FileLock

import bench

# Bump when a change alters what cached models or adversarial examples mean.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$BENCH_CACHE_DIR`` if set, else the user cache folder (e.g. ~/.cache/dundi-bench)."""
    env = os.environ.get("BENCH_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("dundi-bench"))


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float):
        return repr(obj)  # exact, so 0.1 and 0.1000001 differ
    if isinstance(obj, (np.integer, np.floating)):
        return _canonical(obj.item())
    return obj


def config_hash(*parts: Any) -> str:
    """A stable 16-hex-digit hash of dataclasses, dicts, enums and scalars."""
    payload = json.dumps(
        [CACHE_FORMAT, bench.__version__, *(_canonical(p) for p in parts)],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def array_fingerprint(*arrays: np.ndarray) -> str:
    """sha256 over the bytes (and shapes) of arrays: identifies data, not its name."""
    digest = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(str((contiguous.shape, contiguous.dtype.str)).encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()[:16]


def atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclasses.dataclass(frozen=True)
class Cache:
    """A cache rooted at one folder; ``kind`` is a sub-folder (``models``, ``adversarial``)."""

    root: Path

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return Path(self.root) / kind / f"{key}{suffix}"

    @contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        """Hold while computing an entry so parallel workers compute it once."""
        lock_path = self.path(kind, key, ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_path)):
            yield

    def load_state(self, kind: str, key: str) -> dict | None:
        path = self.path(kind, key, ".pt")
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def save_state(self, kind: str, key: str, state: dict, record: dict | None = None) -> Path:
        """Store a ``state_dict``; ``record`` (JSON: e.g. what training cost) goes beside it."""
        path = self.path(kind, key, ".pt")
        if record is not None:
            text = json.dumps(record, sort_keys=True).encode()
            atomic_write(self.path(kind, key, ".json"), lambda handle: handle.write(text))
        atomic_write(path, lambda handle: torch.save(state, handle))
        return path

    def load_record(self, kind: str, key: str) -> dict:
        """The record stored beside an entry by :meth:`save_state` (``{}`` when there is none)."""
        path = self.path(kind, key, ".json")
        return json.loads(path.read_text()) if path.exists() else {}

    def load_arrays(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        path = self.path(kind, key, ".npz")
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    def save_arrays(self, kind: str, key: str, **arrays: np.ndarray) -> Path:
        path = self.path(kind, key, ".npz")
        atomic_write(path, lambda handle: np.savez(handle, **arrays))
        return path
