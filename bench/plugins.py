"""Third-party defenses and attacks through Python entry points.

An installed distribution adds to the suite by declaring entry points in one
of two groups; each entry point loads to one registered object:

``bench.defenses``
    a :class:`defenses.Defense` (same contract as the built-in ones).
``bench.attacks``
    an :class:`attacks.AttackSpec` whose ``parameters`` field gives its
    constructor parameters per dataset family.

For example, in the plugin's ``pyproject.toml``::

    [project.entry-points."bench.defenses"]
    quantize = "bench_example_plugin:QUANTIZE"

Registered plugins get ``origin`` = their distribution's name, which ``bench
list`` shows.  A plugin that fails to import, loads to the wrong type, or
reuses a name already registered is skipped with a :class:`PluginWarning`
naming the distribution; the rest of the suite keeps working.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import warnings
from typing import TypeVar

DEFENSE_GROUP = "bench.defenses"
ATTACK_GROUP = "bench.attacks"

T = TypeVar("T")


class PluginWarning(UserWarning):
    """A third-party plugin was skipped (the message says which and why)."""


def with_plugins(registry: dict[str, T], group: str, kind: type[T]) -> dict[str, T]:
    """``registry`` followed by the ``kind`` objects the entry points of ``group`` load to.

    Each plugin's ``origin`` is set to its distribution's name; built-in names
    are never replaced.
    """
    merged = dict(registry)
    entry_points = importlib.metadata.entry_points(group=group)
    for entry_point in sorted(entry_points, key=lambda ep: (_distribution(ep), ep.name)):
        distribution = _distribution(entry_point)
        where = f"{group} plugin {entry_point.name!r} from distribution {distribution!r}"
        try:
            loaded = entry_point.load()
        except Exception as error:  # a plugin's import error must not take the suite down
            _skip(f"{where}: failed to load ({type(error).__name__}: {error})")
            continue
        if not isinstance(loaded, kind):
            _skip(f"{where}: expected a {kind.__name__}, got a {type(loaded).__name__}")
            continue
        if loaded.name in merged:
            _skip(f"{where}: the name {loaded.name!r} is taken by the {merged[loaded.name].origin} one")
            continue
        merged[loaded.name] = dataclasses.replace(loaded, origin=distribution)
    return merged


def _distribution(entry_point: importlib.metadata.EntryPoint) -> str:
    return entry_point.dist.name if entry_point.dist is not None else "an unknown distribution"


def _skip(message: str) -> None:
    warnings.warn(f"skipped {message}", PluginWarning, stacklevel=3)
