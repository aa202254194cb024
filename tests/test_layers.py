"""Imports go one way: low-level ``bench`` modules <- ``defenses/``, ``attacks/`` <- the runner <- the
entry points: the Python API (``bench.api``), ``bench.cli`` and ``reports/`` (docs/architecture.md).

The test reads every module's source (``ast``: imports at any depth, and ``bench.NAME`` attribute
uses after ``import bench``) and fails on a module that imports from a layer above its own, or
on a ``bench`` module that belongs to no layer (place a new one in ``LAYERS``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "defenses", "attacks", "reports")

#: Layer -> its modules, lowest first; a module may import its own layer and those below.
LAYERS = {
    "low-level": {f"bench.{name}" for name in (
        "errors", "names", "plugins", "devices", "cache", "datasets", "families", "models", "metrics", "parallel",
        "progress", "provenance", "results")} | {"bench.__version__"},
    "plugins": {"defenses", "attacks"},
    "runner": {f"bench.{name}" for name in (
        "spec", "runner", "user_model", "flags", "gate", "summary", "worst_case", "verdict")},
    "entry points": {"bench.api", "bench.cli", "reports"},
}
#: Names ``bench`` re-exports from :mod:`bench.api` (``bench.benchmark`` is the API, not the package).
API = {"bench.benchmark", "bench.load_dataset", "bench.report"}


def layer_of(name: str) -> int:
    """The index in ``LAYERS`` of module (or module member) ``name``; the package root ``bench``
    is low-level (it holds ``__version__``) but what it re-exports from the API is not."""
    name = "bench.api" if name in API else name
    for index, modules in enumerate(LAYERS.values()):
        if any(name == module or name.startswith(module + ".") for module in modules):
            return index
    if name == "bench":
        return 0
    raise AssertionError(f"{name} is in no layer of tests/test_layers.py: add it to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def own_imports(path: Path) -> set[str]:
    """What ``path`` imports from this repository's packages (modules and their members), at any
    depth; ``bench.NAME`` after ``import bench`` counts as importing ``bench.NAME``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):  # the packages are flat: a relative import is a sibling
            base = ".".join([path.parent.name] * bool(node.level) + [node.module] * bool(node.module))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "bench":
            found.add(f"bench.{node.attr}")
    return {name for name in found if name.split(".")[0] in PACKAGES}


def upward_imports() -> list[str]:
    """``module -> imported (its layer)`` for every import from a layer above the module's own."""
    found = []
    for package in ("bench", "defenses", "attacks"):
        for path in sorted((ROOT / package).glob("*.py")):
            name = module_name(path)
            if name == "bench":
                continue  # the package root re-exports the API (bench.benchmark, ...)
            for imported in sorted(own_imports(path)):
                if layer_of(imported) > layer_of(name):
                    found.append(f"{name} -> {imported} ({list(LAYERS)[layer_of(imported)]})")
    return found


def test_every_bench_module_has_a_layer():
    for path in (ROOT / "bench").glob("*.py"):
        layer_of(module_name(path))


def test_no_module_imports_upward():
    assert upward_imports() == []


def test_the_walk_sees_nested_imports_and_attribute_uses(tmp_path):
    source = tmp_path / "bench" / "cache.py"
    source.parent.mkdir()
    source.write_text("import bench\n\ndef f():\n    from bench.runner import run_grid\n    return bench.benchmark\n")
    assert own_imports(source) == {"bench", "bench.runner", "bench.runner.run_grid", "bench.benchmark"}
    assert [layer_of(name) for name in ("bench.cache", "bench.runner.run_grid", "bench.benchmark")] == [0, 2, 3]
