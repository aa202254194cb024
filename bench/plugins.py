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

Entry points are only *loaded* (which imports the plugin, and usually torch)
when a registry is: :func:`installed` lists the plugins of a group from their
metadata alone, and :func:`declared` reads the ``name=``/``summary=`` literals
of the built-in modules' records from their source, so ``bench list`` and
name checks answer without importing torch.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os
import sys
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
    if not _declares(group):
        return merged
    import importlib.metadata
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


def _distribution(entry_point) -> str:
    return entry_point.dist.name if entry_point.dist is not None else "an unknown distribution"


def _skip(message: str) -> None:
    warnings.warn(f"skipped {message}", PluginWarning, stacklevel=3)


def _declares(group: str) -> bool:
    """Whether any installed distribution's ``entry_points.txt`` has a ``[group]`` section: a plain
    scan of the import path, so a suite without plugins never imports ``importlib.metadata``
    (a twentieth of a second, on every ``bench`` command)."""
    header = f"[{group}]"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(entry or ".", name, "entry_points.txt"), encoding="utf-8") as handle:
                        if header in handle.read():
                            return True
                except OSError:
                    continue
    return False


def installed(group: str) -> list[str]:
    """The entry-point names of ``group`` (``bench.defenses`` or ``bench.attacks``), from the
    installed distributions' metadata, without importing any plugin."""
    if not _declares(group):
        return []
    import importlib.metadata

    return sorted(entry_point.name for entry_point in importlib.metadata.entry_points(group=group))


def declared(module_name: str, constructor: str) -> list[dict[str, str]] | None:
    """The ``name`` and ``summary`` of every ``constructor(...)`` call in ``module_name``'s source,
    read without importing the module, in source order.

    ``None`` when the module cannot be found or a call's ``name``/``summary`` is
    not a plain string literal: the caller then imports the module.

    Example::

        declared("defenses.none", "Defense")   # [{'name': 'none', 'summary': 'undefended model ...'}]
    """
    try:
        spec = importlib.util.find_spec(module_name)
        source = spec.loader.get_source(module_name) if spec and spec.loader else None
    except (ImportError, AttributeError, ValueError):
        return None
    if source is None:
        return None
    records = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == constructor:
            fields = {keyword.arg: keyword.value for keyword in node.keywords if keyword.arg}
            values = {key: getattr(fields.get(key), "value", None) for key in ("name", "summary")}
            if not all(isinstance(value, str) for value in values.values()):
                return None
            records.append((node.lineno, node.col_offset, values))
    return [values for _, _, values in sorted(records, key=lambda record: record[:2])]
