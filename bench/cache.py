"""Content-addressed on-disk cache for trained models and adversarial examples.

Every entry is named by a hash of everything that determines it (see
:func:`config_hash`), so a changed option, seed, dataset or suite version is a
different entry and never a stale hit.  Writes go to a temporary file in the
same folder and are then renamed into place, so a reader never sees a half
written file, and a per-entry file lock makes concurrent workers (``--jobs``,
Dask) train or attack a given entry once and share the result.

Entries check themselves.  Beside each ``KEY.pt`` / ``KEY.npz`` a sidecar
``KEY.json`` holds the sha256 and size of its bytes, what the entry claims
(for adversarial examples: their shape, the [0, 1] box and the ε ball they
lie in) and a free ``record`` (e.g. what training cost)::

    {"format": 2, "sha256": "…", "bytes": 123, "claims": {…}, "record": {…}}

The sidecar is written before the content, so content that does not match
its sidecar is always detected.  A load verifies the checksum, that the
content parses (``weights_only=True``, ``allow_pickle=False``), the caller's
checks and the claims; a damaged or inconsistent entry is reported in one line
on stderr, deleted and treated as missing, so it is recomputed and the run
goes on.  Entries written before sidecars carried checksums (a flat
``record``, or none) are verified the same way except for the checksum and,
when they pass, get a checksummed sidecar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import errno
import hashlib
import io
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import bench
from bench.errors import BenchError

# Bump when a change alters what cached models or adversarial examples mean.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$BENCH_CACHE_DIR`` if set, else the user cache folder (e.g. ~/.cache/dundi-bench)."""
    env = os.environ.get("BENCH_CACHE_DIR")
    import platformdirs  # here, not at the top: `bench list` and name checks import this module

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


#: Mode bits the process creates files with (read once: ``os.umask`` can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
#: Sidecar format carrying a checksum (format 1: a flat record, no checksum).
SIDECAR_FORMAT = 2


def io_reason(error: OSError) -> str:
    """What an I/O failure means, in a few words."""
    return {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
              errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file, not a folder",
              errno.EISDIR: "it is a folder"}.get(error.errno, error.strerror or str(error))


def io_error(path: Path | str, error: OSError, doing: str = "write") -> BenchError:
    """A one-line error naming ``path`` for an I/O failure (disk full, permission, not a folder)."""
    reason = io_reason(error)
    where = error.filename if error.filename and str(error.filename) != str(path) else None
    return BenchError(f"cannot {doing} {path}: {reason}" + (f" ({where})" if where else ""))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place (mode 0666 less the
    umask, like any new file): readers see the old file or the new one, never half of one.  Disk
    full and permission errors become one :class:`BenchError` naming ``path``, and leave nothing."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise io_error(path, error) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, write) -> None:
    """``write(handle)`` into memory, then :func:`write_bytes_atomic` to ``path``."""
    buffer = io.BytesIO()
    write(buffer)
    write_bytes_atomic(Path(path), buffer.getvalue())


def ensure_writable(folder: str | Path, what: str) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it, before any work starts;
    else a one-line :class:`BenchError` naming it (a file in its place, read-only, disk full)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BenchError(f"{what} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        raise BenchError(f"{what} {folder} is not writable: {io_reason(error)}") from None
    return folder


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def report_damage(message: str) -> None:
    """One line on stderr (the run goes on)."""
    DAMAGED.append(message)
    print(f"warning: {message}", file=sys.stderr, flush=True)


#: The damage reports of this process, in order (for tests and summaries).
DAMAGED: list[str] = []


def state_problem(state: Any) -> str | None:
    """Why ``state`` is no trained ``state_dict``: not a dict of tensors, non-finite values, or a
    weight tensor that is all zeros (no trained layer has one); None when it looks sound."""
    import torch  # here, not at the top: `bench list` and name checks import this module

    if not isinstance(state, dict) or not state:
        return f"holds a {type(state).__name__}, not a state dict"
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            return f"{name} is a {type(value).__name__}, not a tensor"
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return f"{name} has NaN or infinite values"
        if value.is_floating_point() and value.dim() >= 2 and value.numel() and not bool(value.any()):
            return f"weights {name} are all zero"
    return None


def claims_problem(arrays: dict[str, np.ndarray], claims: dict, reference: np.ndarray | None) -> str | None:
    """Why ``arrays`` break ``claims`` (see :func:`adversarial_claims`), or None when they keep them."""
    name = claims.get("array", "x_adv")
    if name not in arrays:
        return f"no array {name!r}"
    x = arrays[name]
    if "shape" in claims and list(x.shape) != list(claims["shape"]):
        return f"{name} has shape {tuple(x.shape)}, not {tuple(claims['shape'])}"
    if x.dtype.kind != "f":
        return f"{name} has dtype {x.dtype}, not float"
    if not np.isfinite(x).all():
        return f"{name} has NaN or infinite values"
    low, high = claims.get("range", (-np.inf, np.inf))
    tolerance = claims.get("tolerance", 1e-5)
    if x.size and (x.min() < low - tolerance or x.max() > high + tolerance):
        return f"{name} leaves [{low:g}, {high:g}] ({x.min():g}..{x.max():g})"
    ball = claims.get("linf_ball")
    if ball is not None and reference is not None and x.size:
        distance = float(np.abs(x.astype(np.float64) - reference.astype(np.float64)).max())
        if distance > ball + tolerance:
            return f"{name} is {distance:g} from the clean images in L∞, outside the ε = {ball:g} ball"
    for scalar in claims.get("non_negative", ()):
        if scalar not in arrays:
            return f"no array {scalar!r}"
        value = np.asarray(arrays[scalar])
        if value.shape != () or not np.isfinite(value) or value < 0:
            return f"{scalar} is {value!r}, not a finite number >= 0"
    return None


def adversarial_claims(reference: np.ndarray, linf_eps: float | None) -> dict:
    """What an adversarial-example entry for clean images ``reference`` must satisfy: ``x_adv`` of
    their shape, finite, in [0, 1], within ``linf_eps`` of them in L∞ when the attack is bounded
    there, with a finite non-negative ``seconds`` and ``queries``."""
    return {"array": "x_adv", "shape": list(reference.shape), "range": [0.0, 1.0],
            "linf_ball": None if linf_eps is None else float(linf_eps), "tolerance": 1e-5,
            "non_negative": ["seconds", "queries"]}


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
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            from filelock import FileLock

            lock = FileLock(str(lock_path))
            lock.acquire()
        except OSError as error:
            raise io_error(lock_path, error) from None
        try:
            yield
        finally:
            lock.release()

    # -- sidecars ------------------------------------------------------------------------------

    def _sidecar(self, kind: str, key: str) -> dict | None:
        """The sidecar as written (``None`` when absent; ``{"damaged": reason}`` when unreadable)."""
        path = self.path(kind, key, ".json")
        if not path.exists():
            return None
        try:
            sidecar = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            return {"damaged": f"its sidecar {path.name} is unreadable ({type(error).__name__})"}
        if not isinstance(sidecar, dict):
            return {"damaged": f"its sidecar {path.name} is not a JSON object"}
        return sidecar

    def _write(self, kind: str, key: str, suffix: str, data: bytes, record: dict | None,
               claims: dict | None) -> Path:
        sidecar = {"format": SIDECAR_FORMAT, "sha256": _sha256(data), "bytes": len(data),
                   "claims": claims or {}, "record": record or {}}
        text = json.dumps(sidecar, sort_keys=True).encode()
        write_bytes_atomic(self.path(kind, key, ".json"), text)  # first: content never outlives it
        path = self.path(kind, key, suffix)
        write_bytes_atomic(path, data)
        return path

    def discard(self, kind: str, key: str, suffix: str, reason: str) -> None:
        """Report a damaged entry in one line and delete it (content and sidecar)."""
        path = self.path(kind, key, suffix)
        report_damage(f"cache entry {path} is damaged ({reason}); deleted, recomputing it")
        for victim in (path, self.path(kind, key, ".json")):
            try:
                victim.unlink(missing_ok=True)
            except OSError as error:
                raise io_error(victim, error, "delete damaged cache entry") from None

    def _load(self, kind: str, key: str, suffix: str, parse: Callable[[bytes], Any],
              check: Callable[[Any], str | None] | None, claims: dict | None) -> Any | None:
        """The parsed, verified entry, or None (absent, or damaged: then reported and deleted)."""
        path = self.path(kind, key, suffix)
        if not path.exists():
            return None
        try:
            data = path.read_bytes()
        except OSError as error:
            raise io_error(path, error, "read") from None
        sidecar = self._sidecar(kind, key)
        verified = sidecar is not None and sidecar.get("format") == SIDECAR_FORMAT
        if sidecar is not None and "damaged" in sidecar:
            self.discard(kind, key, suffix, sidecar["damaged"])
            return None
        if verified and (sidecar.get("bytes") != len(data) or sidecar.get("sha256") != _sha256(data)):
            size = sidecar.get("bytes")
            self.discard(kind, key, suffix, "checksum mismatch: " + (
                f"{len(data)} bytes, its sidecar says {size}" if size != len(data)
                else "same size as written, other content"))
            return None
        if verified and claims is not None and sidecar.get("claims") != json.loads(json.dumps(claims)):
            self.discard(kind, key, suffix, "it claims other properties than this run needs")
            return None
        try:
            value = parse(data)
        except Exception as error:  # truncated zip, pickle refused by weights_only, bad header, ...
            self.discard(kind, key, suffix, f"unreadable: {type(error).__name__}: "
                                            f"{(str(error).strip().splitlines() or [''])[0][:120]}")
            return None
        problem = check(value) if check is not None else None
        if problem:
            self.discard(kind, key, suffix, problem)
            return None
        if not verified:  # an entry from before checksums: sound, so adopt it with one
            legacy = {k: v for k, v in (sidecar or {}).items()}
            with contextlib.suppress(BenchError):
                self._write_sidecar_only(kind, key, data, legacy, claims)
        return value

    def _write_sidecar_only(self, kind: str, key: str, data: bytes, record: dict, claims: dict | None) -> None:
        sidecar = {"format": SIDECAR_FORMAT, "sha256": _sha256(data), "bytes": len(data),
                   "claims": claims or {}, "record": record}
        write_bytes_atomic(self.path(kind, key, ".json"), json.dumps(sidecar, sort_keys=True).encode())

    # -- models ------------------------------------------------------------------------------

    def load_state(self, kind: str, key: str,
                   check: Callable[[dict], str | None] | None = None) -> dict | None:
        """The stored ``state_dict`` (``weights_only=True``), verified: checksum, :func:`state_problem`
        and ``check`` (e.g. that it loads into the model); None when absent or damaged."""
        import torch

        def verify(state):
            return state_problem(state) or (check(state) if check is not None else None)

        return self._load(kind, key, ".pt",
                          lambda data: torch.load(io.BytesIO(data), map_location="cpu", weights_only=True),
                          verify, None)

    def save_state(self, kind: str, key: str, state: dict, record: dict | None = None) -> Path:
        """Store a ``state_dict``; ``record`` (JSON: e.g. what training cost) goes in its sidecar."""
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        return self._write(kind, key, ".pt", buffer.getvalue(), record, None)

    def load_record(self, kind: str, key: str) -> dict:
        """The record stored beside an entry by :meth:`save_state` (``{}`` when there is none)."""
        sidecar = self._sidecar(kind, key)
        if not sidecar or "damaged" in sidecar:
            return {}
        if sidecar.get("format") == SIDECAR_FORMAT:
            return dict(sidecar.get("record") or {})
        return sidecar  # format 1: the record itself

    # -- arrays ------------------------------------------------------------------------------

    def load_arrays(self, kind: str, key: str, claims: dict | None = None,
                    reference: np.ndarray | None = None) -> dict[str, np.ndarray] | None:
        """The stored arrays, verified (checksum, and ``claims`` against ``reference`` when given,
        see :func:`claims_problem`); None when absent or damaged."""
        def parse(data: bytes) -> dict[str, np.ndarray]:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}

        check = (lambda arrays: claims_problem(arrays, claims, reference)) if claims is not None else None
        return self._load(kind, key, ".npz", parse, check, claims)

    def save_arrays(self, kind: str, key: str, claims: dict | None = None, **arrays: np.ndarray) -> Path:
        """Store ``arrays`` with what they ``claims`` (checked on every load)."""
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return self._write(kind, key, ".npz", buffer.getvalue(), None, claims)
