"""Defense plugins: one module per defense, all with the same small interface.

A defense is a :class:`Defense` record of plain functions:

``build(data, options) -> nn.Module``
    The untrained model. Its ``forward(x)`` takes float ``N×C×H×W`` images in
    [0, 1] and returns logits ``N×num_classes``, differentiable end to end so
    white-box attacks can attack it. If the defense classifies differently from
    ``argmax(forward(x))`` (DunDi's two-step distance comparison), the module
    also has ``predict(x) -> LongTensor[N]``; the suite then uses ``predict``
    for every accuracy it reports.  Everything the trained model needs must be
    in its ``state_dict`` (parameters and buffers): that is what is cached.

``fit(model, data, options, ctx) -> None``
    Train ``model`` in place on ``data.x_train`` (choosing anything it chooses
    on ``data.x_val``, never on test). ``ctx`` gives the seed, the device, and
    ``ctx.undefended()``, the suite's trained ``none`` model of the same
    dataset and seed, for defenses that start from it.

``defaults(data) -> dict``
    The default options for that dataset; users override them with
    ``--defense-option KEY=VALUE`` (values are coerced to the default's type),
    and the resolved options are recorded in every result row.

The runner caches trained models by a hash of dataset, defense, options and
seed, so ``fit`` runs once per combination.

:func:`defenses.contract.check_defense` checks a defense against this contract
(run it in a plugin's tests; the suite runs it on every built-in).

Every option is validated in :meth:`Defense.options`, before any work starts
(one-line :class:`~bench.errors.BenchError` on failure): a value must have its
default's type (an ``int`` option takes whole numbers, a ``float`` one any
finite number), the counts in :data:`COUNTS` are at least 1, the numbers in
:data:`RANGES` lie in their range, and names with a known list of choices
(:data:`CHOICES`, or a defense's own ``choices``) are one of them; an
``architecture`` must also build and run on the dataset's images.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import math
from typing import TYPE_CHECKING, Any, Callable

from bench.errors import BenchError
from bench.names import unknown
from bench.plugins import DEFENSE_GROUP, declared, installed, with_plugins

# Only for annotations: importing this package must not import torch, so that ``bench list``
# and name checks (:func:`names`, :func:`check_name`) answer at once; the defense modules
# import torch when the registry is first used.
if TYPE_CHECKING:
    import torch
    from torch import nn

    from bench.datasets import Dataset


@dataclasses.dataclass(frozen=True)
class FitContext:
    """What a defense's ``fit`` may use besides the data and its options."""

    seed: int
    device: torch.device
    progress: bool
    undefended: Callable[[], nn.Module]


@dataclasses.dataclass(frozen=True)
class Defense:
    """A defense plugin (see the module docstring for the contract)."""

    name: str
    summary: str
    reference: str
    build: Callable[[Dataset, dict], nn.Module]
    fit: Callable[[nn.Module, Dataset, dict, FitContext], None]
    defaults: Callable[[Dataset], dict]
    origin: str = "built-in"
    #: Option -> the values it may take (for string options with a fixed list of names).
    choices: dict[str, tuple] | None = None

    def options(self, data: Dataset, overrides: dict[str, Any] | None = None) -> dict:
        """Defaults for ``data`` updated with ``overrides`` (strings coerced to the default's type),
        every value validated (see the module docstring)."""
        defaults = dict(self.defaults(data))
        options = dict(defaults)
        for key, value in (overrides or {}).items():
            if key not in options:
                known = ", ".join(sorted(options)) or "none"
                raise BenchError(f"defense {self.name!r} has no option {key!r}; its options: {known}")
            options[key] = coerce_option(key, value, options[key])
        for key, value in options.items():
            options[key] = validate_option(self, data, key, value, defaults[key])
        return options


#: Options that count something (epochs, batch size, attack steps, ...): whole numbers >= 1.
COUNTS = frozenset({"epochs", "batch_size", "steps", "gpu_steps", "embedding_dim", "k", "m",
                    "refs_per_class", "bits", "max_iter"})
#: Option -> (low, high, low included, high included) of the numeric options whatever the defense.
RANGES = {
    "lr": (0.0, math.inf, False, False),
    "weight_decay": (0.0, math.inf, True, False),
    "eps": (0.0, 1.0, False, True),
    "step_size": (0.0, 1.0, False, True),
    "gpu_step_size": (0.0, 1.0, False, True),
    "alpha": (0.0, 1.0, True, True),
    "beta": (0.0, math.inf, True, False),
    "temperature": (0.0, math.inf, False, False),
    "margin": (0.0, math.inf, False, False),
    "noise": (0.0, math.inf, True, False),
}


def _built_in_choices() -> dict[str, tuple]:
    """The string options of the built-in defenses that take one of a fixed list of names."""
    from bench.models import ZOO

    choices = {"architecture": ZOO}
    for module_name, option, attribute in (("defenses.dundi", "loss", "LOSSES"),
                                           ("defenses.robust_training", "init", "INITS")):
        module = importlib.import_module(module_name)
        choices[option] = tuple(getattr(module, attribute))
    return choices


#: Option -> its names, for every built-in defense (a plugin declares its own with ``choices``).
CHOICES: dict[str, tuple] = {}


def validate_option(defense: Defense, data: Dataset, key: str, value: Any, default: Any) -> Any:
    """``value`` checked against its default's type and the rules of the module docstring."""
    where = f"option {key}={value!r} of defense {defense.name!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise BenchError(f"{where}: expected true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise BenchError(f"{where}: expected a whole number like {default!r}")
        value = int(value)
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BenchError(f"{where}: expected a number like {default!r}")
        value = float(value)
        if not math.isfinite(value):
            raise BenchError(f"{where}: must be a finite number")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise BenchError(f"{where}: expected a name like {default!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key in COUNTS and value < 1:
            raise BenchError(f"{where}: must be a whole number >= 1")
        if key in RANGES:
            low, high, low_in, high_in = RANGES[key]
            if not ((low <= value if low_in else low < value) and (value <= high if high_in else value < high)):
                interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
                raise BenchError(f"{where}: must be in {interval}")
    names = (defense.choices or {}).get(key)
    if names is None and defense.origin == "built-in" and isinstance(value, str):
        if not CHOICES:
            CHOICES.update(_built_in_choices())
        names = CHOICES.get(key)
    if names is not None and value not in names:
        raise BenchError(f"{where}: choose one of {', '.join(map(str, names))}")
    if key == "architecture" and isinstance(value, str):
        _check_architecture(value, data.input_shape, data.num_classes, where)
    return value


@functools.lru_cache(maxsize=32)
def _check_architecture(name: str, shape: tuple, classes: int, where: str) -> None:
    """A zoo architecture must build and give ``classes`` logits for images of ``shape``."""
    from bench.models import ZOO, build_classifier

    if name not in ZOO:
        return  # not a zoo name: the defense's own (a plugin's)
    import torch

    probe = type("Probe", (), {"input_shape": shape, "num_classes": classes})()
    try:  # a forked generator: probing must not move the random stream training starts from
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            logits = build_classifier(probe, name).eval()(torch.zeros(2, *shape))
    except RuntimeError as error:
        raise BenchError(f"{where}: architecture {name!r} does not take {'×'.join(map(str, shape))} images "
                         f"({str(error).splitlines()[0]})") from None
    if tuple(logits.shape) != (2, classes):
        raise BenchError(f"{where}: architecture {name!r} gives {tuple(logits.shape)[1:]} outputs, "
                         f"not {classes} logits")


def coerce_option(key: str, value: Any, default: Any) -> Any:
    """Turn a command-line string into the type of the option's default."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(value)
            return value.lower() in {"true", "1", "yes"}
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return json.loads(value)
    except ValueError:
        raise BenchError(
            f"option {key}={value!r}: expected a {type(default).__name__} like {default!r}"
        ) from None


# Built-in defenses: module name -> it defines DEFENSE (or DEFENSES, a tuple of them).
_BUILT_IN = ("defenses.none", "defenses.dundi", "defenses.adversarial_training", "defenses.trades",
             "defenses.distillation", "defenses.dundi_at")


def _load_registry() -> dict[str, Defense]:
    registry: dict[str, Defense] = {}
    for module_name in _BUILT_IN:
        module = importlib.import_module(module_name)
        for defense in getattr(module, "DEFENSES", None) or (module.DEFENSE,):
            registry[defense.name] = defense
    # Third-party defenses: entry points of group "bench.defenses" (see bench/plugins.py).
    return with_plugins(registry, DEFENSE_GROUP, Defense)


def __getattr__(name: str):
    # ``REGISTRY`` (name -> Defense) is built on first use: it imports every defense module, and
    # with them torch.  ``from defenses import REGISTRY`` works as before.
    if name == "REGISTRY":
        registry = globals()["REGISTRY"] = _load_registry()
        return registry
    raise AttributeError(f"module 'defenses' has no attribute {name!r}")


def _registry() -> dict[str, Defense]:
    return globals().get("REGISTRY") or __getattr__("REGISTRY")


def _declared() -> list[dict[str, str]] | None:
    """Name and summary of the built-in defenses, read from their modules' source (no torch),
    or None when the registry must be loaded instead (a plugin is installed, or a module's
    records are not plain literals)."""
    if "REGISTRY" in globals() or installed(DEFENSE_GROUP):
        return None
    records = []
    for module_name in _BUILT_IN:
        found = declared(module_name, "Defense")
        if not found:
            return None
        records += found
    return records


def summaries() -> list[tuple[str, str, str]]:
    """``(name, summary, origin)`` of every defense, registry order (what ``bench list`` shows).

    Without third-party plugins this reads the built-in modules' source and
    imports no defense (and no torch); otherwise it loads the registry.
    """
    records = _declared()
    if records is None:
        return [(d.name, d.summary, d.origin) for d in _registry().values()]
    return [(record["name"], record["summary"], "built-in") for record in records]


def names() -> list[str]:
    """Every defense name, registry order, without importing torch when no plugin is installed."""
    return [name for name, _, _ in summaries()]


def check_name(name: str) -> str:
    """``name`` if it is a defense, else a one-line :class:`BenchError` with a "did you mean"."""
    known = names()
    if name not in known:
        raise unknown("defense", name, known)
    return name


def get_defense(name: str) -> Defense:
    registry = _registry()
    try:
        return registry[name]
    except KeyError:
        raise unknown("defense", name, registry) from None
