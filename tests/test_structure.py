"""The code stays small and says what it means: no function over 60 lines in ``bench/``, ``attacks/``
and ``reports/``, one name for the undefended model, and the results columns written once (the
fields of ``bench.results.Row``, in the order every stored ``results.csv`` has)."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import defenses
from bench.metrics import RATES
from bench.results import COLUMNS, Row, read_results
from bench.spec import UNDEFENDED

ROOT = Path(__file__).resolve().parents[1]
#: ``defenses/`` is left out: its modules' source is part of the model cache key (editing one
#: retrains its models), so it is kept as it is.
PACKAGES = ("bench", "attacks", "reports")
MAX_LINES = 60
#: A results.csv written by a real run (docs/results), whose header is the stored column order.
STORED_RESULTS = ROOT / "docs" / "results" / "cifar10-subset-dundi-at-h200.csv"


def function_lengths(path: Path) -> list[tuple[str, int]]:
    """``(name:line, lines)`` of every function in ``path``: from its ``def`` to its last line,
    without its docstring (documentation, such as ``bench.benchmark``'s argument list, is not
    what makes a function long)."""
    lengths = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            doc = node.body[0]
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
                lines -= doc.end_lineno - doc.lineno + 1
            lengths.append((f"{path.name}:{node.lineno} {node.name}", lines))
    return lengths


def test_no_function_is_over_60_lines():
    long = [f"{path.parent.name}/{name} ({lines} lines)" for package in PACKAGES
            for path in sorted((ROOT / package).rglob("*.py"))
            for name, lines in function_lengths(path) if lines > MAX_LINES]
    assert not long, "split these functions (at most 60 lines, docstring not counted): " + "; ".join(long)


def test_function_lengths_count_code_not_docstrings(tmp_path):
    source = tmp_path / "example.py"
    source.write_text('def f():\n    """Doc,\n    more doc."""\n    return 1\n\n\ndef g():\n    x = 2\n    return x\n')
    assert function_lengths(source) == [("example.py:1 f", 2), ("example.py:7 g", 3)]


def _string_constants(path: Path, value: str) -> list[str]:
    """``path:line`` of each string constant ``value`` in ``path`` that is not a docstring."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value == value and id(node) not in docstrings]


def test_the_undefended_model_has_one_name():
    assert defenses.REGISTRY[UNDEFENDED].name == UNDEFENDED
    found = [place for package in ("bench", "reports") for path in sorted((ROOT / package).rglob("*.py"))
             for place in _string_constants(path, UNDEFENDED)]
    assert len(found) == 1 and found[0].startswith("bench/spec.py:"), \
        f"name the undefended model bench.spec.UNDEFENDED, not {UNDEFENDED!r}: {found}"


def test_results_columns_are_the_row_fields_in_the_stored_order():
    with STORED_RESULTS.open(newline="") as handle:
        assert next(csv.reader(handle)) == COLUMNS
    assert len(COLUMNS) == len(set(COLUMNS))
    intervals = [f"{rate}_{part}" for rate in RATES for part in ("count", "n", "ci_low", "ci_high")]
    assert COLUMNS[-len(intervals):] == intervals
    assert list(Row.__dataclass_fields__) == COLUMNS


def test_read_results_takes_a_run_folder_or_the_csv_itself(tmp_path):
    frame = read_results(STORED_RESULTS)
    assert list(frame.columns) == COLUMNS and len(frame)
    (tmp_path / "results.csv").write_bytes(STORED_RESULTS.read_bytes())
    assert read_results(tmp_path).equals(frame)
