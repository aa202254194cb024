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
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import Any, Callable

import torch
from torch import nn

from bench.datasets import Dataset
from bench.errors import BenchError
from bench.plugins import DEFENSE_GROUP, with_plugins


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

    def options(self, data: Dataset, overrides: dict[str, Any] | None = None) -> dict:
        """Defaults for ``data`` updated with ``overrides`` (strings coerced to the default's type)."""
        options = dict(self.defaults(data))
        for key, value in (overrides or {}).items():
            if key not in options:
                known = ", ".join(sorted(options)) or "none"
                raise BenchError(f"defense {self.name!r} has no option {key!r}; its options: {known}")
            options[key] = coerce_option(key, value, options[key])
        return options


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
             "defenses.distillation")


def _load_registry() -> dict[str, Defense]:
    registry: dict[str, Defense] = {}
    for module_name in _BUILT_IN:
        module = importlib.import_module(module_name)
        for defense in getattr(module, "DEFENSES", None) or (module.DEFENSE,):
            registry[defense.name] = defense
    # Third-party defenses: entry points of group "bench.defenses" (see bench/plugins.py).
    return with_plugins(registry, DEFENSE_GROUP, Defense)


REGISTRY: dict[str, Defense] = _load_registry()


def get_defense(name: str) -> Defense:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BenchError(f"unknown defense {name!r}; choose one of: {', '.join(REGISTRY)}") from None
