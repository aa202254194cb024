"""A user's own trained model, benchmarked like a defense without writing a plugin.

``--model`` names the model in one of three ways (``--weights`` optionally adds
a state dict, loaded with ``load_state_dict(strict=True)``):

``path/to/net.pt``
    A TorchScript archive (``torch.jit.save(torch.jit.script(model), path)``),
    read with ``torch.jit.load``.
``package.module:callable`` or ``path/to/file.py:callable``
    A callable taking no arguments that returns an ``nn.Module`` (a class, a
    factory function). The module is imported from ``PYTHONPATH`` or the current
    directory; weights usually come with ``--weights``.
``memory:<Class>`` (Python API only)
    An ``nn.Module`` object passed to :func:`bench.benchmark`; it lives only in
    the process that passed it.

Weights files are read with ``torch.load(..., weights_only=True)``: a file
holding a pickled model object is refused, never unpickled.

A :class:`UserModel` is plain, picklable data (names, absolute paths and
sha256 hashes of the files), so a cell that carries it can rebuild the model
in any worker process; the hashes are in the model's cache key (a changed file
is a different model) and in the result row's ``defense_options``.
:func:`as_defense` turns it into a :class:`defenses.Defense` whose ``build``
loads the model and whose ``fit`` does nothing (the weights are given, not
trained), so the runner, its caches and the results treat it like any defense.

Before any attack, :func:`check_model` checks the model against the dataset,
as AutoAttack does: it must take ``N×C×H×W`` images in [0, 1] and return
``N×num_classes`` finite logits, differentiable in the input for white-box
attacks; outputs that look like probabilities, randomized outputs and zero
input gradients are warned about, since each can make a model look more
robust than it is.

Example::

    user = resolve("runs/my_net.pt")              # TorchScript
    user = resolve("mypkg.models:build", weights="w.pt", name="mine")
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import os
import pickle
import re
import sys
import warnings
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.datasets import Dataset
from bench.errors import BenchError
from bench.models import classify
from defenses import REGISTRY as DEFENSES
from defenses import Defense, FitContext

MEMORY_PREFIX = "memory:"
#: Test images forwarded to check shapes, output range, randomness and gradients.
PROBE_IMAGES = 16
_CALLABLE_SPEC = re.compile(r"(?P<target>.+):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")

#: In-memory models given to the Python API, by content hash: this process only, and only
#: while the caller holds them.
_IN_MEMORY: weakref.WeakValueDictionary[str, nn.Module] = weakref.WeakValueDictionary()


@dataclasses.dataclass(frozen=True)
class UserModel:
    """What identifies a user's model: everything a worker process needs to rebuild it.

    ``model`` is an absolute TorchScript path, ``module:callable``,
    ``/abs/file.py:callable`` or ``memory:<Class>``; ``model_sha256`` hashes the
    archive, the module's source file or (in memory) the module's structure
    and tensors; ``weights``/``weights_sha256`` are the state-dict file and its
    hash (``""`` without ``--weights``).
    """

    name: str
    model: str
    model_sha256: str
    weights: str = ""
    weights_sha256: str = ""

    def options(self) -> dict[str, str]:
        """What the result row's ``defense_options`` records: what was measured."""
        return {"model": self.model, "model_sha256": self.model_sha256,
                "weights": self.weights, "weights_sha256": self.weights_sha256}


@dataclasses.dataclass(frozen=True)
class ModelCheck:
    """The outcome of :func:`check_model` on one dataset."""

    name: str
    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int
    clean_accuracy: float
    n_eval: int
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        shape = "×".join(map(str, self.input_shape))
        return (f"model {self.name!r} on {self.dataset}: N×{shape} images -> {self.num_classes} logits; "
                f"clean accuracy {self.clean_accuracy:.3f} on {self.n_eval} test images")


def _one_line(error: BaseException, limit: int = 240, *, last: bool = False, typed: bool = False) -> str:
    """The error's message on one line; ``last``: only its last line (TorchScript puts
    its interpreter traceback first and the actual error last); ``typed``: led by its type."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    text = " ".join(" ".join(lines[-1:] if last else lines).split()) or type(error).__name__
    if typed and not text.startswith(type(error).__name__):
        text = f"{type(error).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes: what ``sha256sum`` prints."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def module_sha256(module: nn.Module) -> str:
    """sha256 of a module's class, layer structure (``repr``) and every parameter and buffer."""
    digest = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}\n{module!r}".encode())
    for key, tensor in module.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _existing_file(path: str | Path, what: str) -> Path:
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise BenchError(f"{what} {path}: no such file")
    return resolved


def _callable_target(spec: str) -> tuple[str, str] | None:
    """``(module or file.py, attribute)`` for a callable spec, ``None`` for a file path."""
    match = _CALLABLE_SPEC.fullmatch(spec)
    return (match["target"], match["attr"]) if match else None


def _import_file(path: Path) -> object:
    name = f"bench_user_model_{file_sha256(path)[:12]}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        # Registered before it runs, like any import, so classes defined there pickle and resolve.
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def _import_module(name: str) -> object:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        # `bench` is a console script, so unlike `python -m` the current directory is not
        # on sys.path; a user's package next to them is what they mean.
        cwd = os.getcwd()
        if error.name != name.partition(".")[0] or cwd in sys.path:
            raise
        sys.path.insert(0, cwd)
        return importlib.import_module(name)


def _resolve_callable(target: str, attr: str, spec: str) -> tuple[object, Path | None]:
    """The callable named by ``spec`` and the source file that defines it (to hash)."""
    try:
        if target.endswith(".py"):
            path = _existing_file(target, "--model")
            module = _import_file(path)
        else:
            module = _import_module(target)
            source = getattr(module, "__file__", None)  # None for namespace packages
            path = Path(source) if source else None
    except BenchError:
        raise
    except ModuleNotFoundError as error:
        raise BenchError(f"--model {spec}: cannot import {target!r} ({_one_line(error)}); give "
                         "package.module:callable importable from PYTHONPATH or the current directory, "
                         "or path/to/file.py:callable") from None
    except Exception as error:  # the user's module raised while importing
        raise BenchError(f"--model {spec}: importing {target!r} failed: "
                         f"{_one_line(error, typed=True)}") from None
    try:
        factory = functools.reduce(getattr, attr.split("."), module)
    except AttributeError:
        raise BenchError(f"--model {spec}: {target!r} has no {attr!r}") from None
    if not callable(factory):
        raise BenchError(f"--model {spec}: {attr!r} is a {type(factory).__name__}, not a callable "
                         "returning an nn.Module")
    return factory, path


def _call_factory(factory, spec: str) -> nn.Module:
    try:
        module = factory()
    except Exception as error:  # the user's code: its failure is theirs to read, in one line
        raise BenchError(f"--model {spec}: calling it failed ({_one_line(error, typed=True)}); "
                         "it must take no arguments and return an nn.Module") from None
    if not isinstance(module, nn.Module):
        raise BenchError(f"--model {spec}: returned a {type(module).__name__}, not a torch.nn.Module")
    return module


def _load_torchscript(path: Path) -> nn.Module:
    try:
        with warnings.catch_warnings():
            # torch deprecates TorchScript in favour of torch.export; archives still load.
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # any unreadable content gives the same advice
        raise BenchError(
            f"--model {path}: not a TorchScript archive (torch.jit.load: {_one_line(error, 120)}); save one "
            "with torch.jit.save(torch.jit.script(model), PATH), or give a state dict as "
            "--model package.module:callable --weights PATH"
        ) from None


def _describe(state: object) -> str:
    if isinstance(state, Mapping) and not state:
        return "an empty dict"
    if isinstance(state, Mapping):
        other = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
        return f"a dict with non-tensor entries {other[:5]}"
    return f"a {type(state).__name__}"


def load_weights(module: nn.Module, path: str | Path, spec: str) -> None:
    """Load the state dict at ``path`` into ``module`` (``weights_only=True``, ``strict=True``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's hint on TorchScript archives, answered below
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise BenchError(
            f"--weights {path}: not a state dict: it holds pickled Python objects (e.g. a whole model "
            "saved with torch.save(model)), which are never unpickled; save model.state_dict() instead"
        ) from None
    except RuntimeError as error:
        if "TorchScript" not in str(error):
            raise BenchError(f"--weights {path}: torch.load(weights_only=True) cannot read it "
                             f"({_one_line(error, 120)}); save model.state_dict() with torch.save") from None
        raise BenchError(f"--weights {path}: a TorchScript archive, not a state dict: pass it as "
                         f"--model {path}") from None
    except Exception as error:  # unreadable or truncated
        raise BenchError(f"--weights {path}: torch.load(weights_only=True) cannot read it "
                         f"({_one_line(error, 120)}); save model.state_dict() with torch.save") from None
    if not (isinstance(state, Mapping) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise BenchError(f"--weights {path}: holds {_describe(state)}, not a state dict (parameter names "
                         "-> tensors, as model.state_dict() gives); save model.state_dict() instead")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise BenchError(f"--weights {path} does not fit the model of --model {spec}: {_one_line(error)}") from None


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise BenchError(f"model name {name!r}: use letters, digits and _ . + - (it names the defense in "
                         "results); set it with --model-name")
    if name in DEFENSES:
        raise BenchError(f"model name {name!r} is a registered defense's (see `bench list`); choose another "
                         "with --model-name")
    return name


def resolve(spec: str, weights: str | Path | None = None, name: str | None = None) -> UserModel:
    """The :class:`UserModel` for ``--model spec [--weights PATH] [--model-name NAME]``.

    Files are made absolute and hashed now; the module is imported now, so a bad
    path or import gives a one-line :class:`BenchError` before anything runs.
    The default name is the archive's file stem or the callable's name.
    """
    if spec.startswith(MEMORY_PREFIX):
        raise BenchError(f"--model {spec}: in-memory models are passed as objects to bench.benchmark")
    target = _callable_target(spec)
    if target is None:
        path = _existing_file(spec, "--model")
        model, model_sha256, default_name = str(path), file_sha256(path), path.stem
    else:
        module_name, attr = target
        _, source = _resolve_callable(module_name, attr, spec)
        if module_name.endswith(".py"):
            model = f"{source}:{attr}"
        else:
            model = spec
        model_sha256 = file_sha256(source) if source else hashlib.sha256(spec.encode()).hexdigest()
        default_name = attr.rpartition(".")[2]
    weights_path = _existing_file(weights, "--weights") if weights else None
    return UserModel(
        name=_check_name(name or default_name),
        model=model,
        model_sha256=model_sha256,
        weights=str(weights_path) if weights_path else "",
        weights_sha256=file_sha256(weights_path) if weights_path else "",
    )


def in_memory(module: nn.Module, name: str | None = None) -> UserModel:
    """A :class:`UserModel` for an ``nn.Module`` object (runs in this process only)."""
    if not isinstance(module, nn.Module):
        raise BenchError(f"expected a torch.nn.Module, a TorchScript path or package.module:callable, "
                         f"got a {type(module).__name__}")
    digest = module_sha256(module)
    _IN_MEMORY[digest] = module
    return UserModel(name=_check_name(name or type(module).__name__),
                     model=f"{MEMORY_PREFIX}{type(module).__qualname__}", model_sha256=digest)


def _verify(path: str, recorded: str, what: str) -> None:
    try:
        digest = file_sha256(path)
    except OSError as error:
        raise BenchError(f"{what} {path} is no longer readable ({error.strerror}); on a cluster, every "
                         "worker needs the file at the same path") from None
    if digest != recorded:
        raise BenchError(f"{what} {path} changed since this run started (its sha256 is no longer "
                         f"{recorded[:12]}…); run again to benchmark the new file")


def load(options: dict) -> nn.Module:
    """Rebuild the model from :meth:`UserModel.options` (in this or any worker process)."""
    spec = options["model"]
    if spec.startswith(MEMORY_PREFIX):
        given = _IN_MEMORY.get(options["model_sha256"])
        if given is None:
            raise BenchError(f"model {spec} was passed as an object to bench.benchmark in another process; "
                             "in-memory models run only in that process: save it with torch.jit.save "
                             "(or as a state dict) and pass the path instead")
        if module_sha256(given) != options["model_sha256"]:
            raise BenchError(f"model {spec} changed (its weights or layers) since it was given to "
                             "bench.benchmark; call it again to benchmark the new state")
        # A copy: moving it to the device and to eval mode must not change the caller's object.
        module = copy.deepcopy(given)
    elif (target := _callable_target(spec)) is None:
        _verify(spec, options["model_sha256"], "--model")
        module = _load_torchscript(Path(spec))
    else:
        factory, source = _resolve_callable(*target, spec)
        if source is not None:
            _verify(str(source), options["model_sha256"], "--model source")
        module = _call_factory(factory, spec)
    if options["weights"]:
        _verify(options["weights"], options["weights_sha256"], "--weights")
        load_weights(module, options["weights"], spec)
    return module.eval()


def _build(data: Dataset, options: dict) -> nn.Module:
    return load(options)


def _fit(model: nn.Module, data: Dataset, options: dict, ctx: FitContext) -> None:
    """Nothing to train: a user's model comes with its weights."""


def _options(user: UserModel, data: Dataset) -> dict:
    return user.options()


@functools.lru_cache(maxsize=None)
def as_defense(user: UserModel) -> Defense:
    """The user's model as a defense plugin (built from ``user``'s options, never trained)."""
    return Defense(
        name=user.name,
        summary=f"user model {user.model}" + (f" with weights {user.weights}" if user.weights else ""),
        reference="user-supplied model",
        build=_build,
        fit=_fit,
        defaults=functools.partial(_options, user),
        origin="user",
    )


def check_model(model: nn.Module, data: Dataset, idx: np.ndarray, device: torch.device, name: str,
                *, gradients: bool = True) -> ModelCheck:
    """Check ``model`` against ``data`` on the test images ``idx``; raise :class:`BenchError` on a mismatch.

    Errors: it fails on ``N×C×H×W`` float images in [0, 1]; its output is not
    ``N×num_classes``; it gives non-finite values; with ``gradients``, its
    output is not differentiable in the input.  Warnings (in the returned
    check): probabilities instead of logits, different outputs for the same
    images (randomized), zero input gradients for some images.
    """
    model.eval()
    x = torch.as_tensor(data.x_test[idx], device=device)
    y = torch.as_tensor(data.y_test[idx], device=device)
    probe, probe_y = x[:PROBE_IMAGES], y[:PROBE_IMAGES]
    shape = "×".join(map(str, data.input_shape))
    expected = f"logits of shape ({len(probe)}, {data.num_classes}), one per {data.name} class"
    try:
        with torch.no_grad():
            logits, again = model(probe), model(probe)
    except Exception as error:  # the user's forward: whatever it raises means it cannot take these images
        raise BenchError(f"model {name!r} fails on {data.name} images ({len(probe)}×{shape} float32 in [0, 1]): "
                         f"{_one_line(error, last=True, typed=True)}") from None
    if not isinstance(logits, torch.Tensor):
        raise BenchError(f"model {name!r} returns a {type(logits).__name__}; expected {expected}")
    if tuple(logits.shape) != (len(probe), data.num_classes):
        raise BenchError(f"model {name!r} returns shape {tuple(logits.shape)} for {len(probe)} {data.name} "
                         f"images; expected {expected}")
    if not torch.isfinite(logits).all():
        raise BenchError(f"model {name!r} returns non-finite values (nan or inf) on {data.name} test images")
    found = []
    if (logits >= 0).all() and torch.allclose(logits.sum(1), torch.ones_like(logits[:, 0]), atol=1e-3):
        found.append(f"model {name!r} seems to output probabilities (rows non-negative, summing to 1), not "
                     "logits: attacks through a softmax can stall and overstate robustness; return the logits")
    if not torch.equal(logits, again):
        found.append(f"model {name!r} gives different outputs for the same images in eval mode: it is "
                     "randomized, and single-sample gradient attacks understate how vulnerable it is (use EOT)")
    if gradients:
        found += _gradient_warnings(model, probe, probe_y, name)
    clean = float((classify(model, data.x_test[idx], device) == data.y_test[idx]).mean())
    return ModelCheck(name, data.name, data.input_shape, data.num_classes, clean, len(idx), tuple(found))


def _gradient_warnings(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str) -> list[str]:
    """White-box attacks follow the input gradient of the cross-entropy: it must exist and move."""
    x = x.clone().requires_grad_(True)
    try:
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    except RuntimeError as error:
        raise BenchError(f"model {name!r} is not differentiable in its input ({_one_line(error, 120, last=True)}); "
                         "white-box attacks need input gradients (--threat-model transfer needs none)") from None
    size = grad.flatten(1).abs().sum(1)
    dead = int(((size == 0) | ~torch.isfinite(size)).sum())
    if dead:
        return [f"model {name!r} has zero or non-finite input gradients on {dead}/{len(x)} probe images: "
                "gradient attacks cannot move them, so its white-box robust accuracy may be overstated "
                "(gradient masking); compare with the transfer threat model"]
    return []
