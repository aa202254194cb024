"""The end summary ``bench run`` prints: compact, worst case first, nothing that does not apply.

Per dataset, one block::

    digits: 200 test images per cell, seed 0; bounded attacks at L∞ ε = 0.3
    worst case per defense (lowest robust accuracy over its 10 cells)
      none          clean 0.985  worst 0.000  whitebox fgsm
    robust accuracy  clean   fgsm    bim    pgd  deepfool   jsma
      whitebox none  0.985  0.000  0.000  0.000     0.005  0.290
      transfer none  0.985  0.000  0.000  0.000     0.005  0.290

Columns are only the attacks that ran under a threat model, so a combination
that does not apply (``fgsm`` under ``blackbox``) leaves no empty column; a
missing value is ``-``.  An attack's budget is in its column name only when the
table holds it at more than one.  The lead block is a hook: callers with a
better worst case (per image, ``bench.worst_case``) pass its lines as ``lead``.

Example::

    from bench.results import read_results
    from bench.summary import format_summary
    print(format_summary(read_results("runs/default")))
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import pandas as pd


def _number(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _budget(eps: float) -> str:
    return "" if eps is None or pd.isna(eps) else f"{eps:.3g}"


def _columns(rows: pd.DataFrame) -> list[tuple[str, str, float]]:
    """``(column name, attack, eps)`` in the order attacks first appear; ``@eps`` only when an
    attack has several budgets here."""
    budgets: dict[str, list] = {}
    for attack, eps in zip(rows["attack"], rows["eps"]):
        seen = budgets.setdefault(attack, [])
        if not any((pd.isna(eps) and pd.isna(b)) or eps == b for b in seen):
            seen.append(eps)
    columns = []
    for attack, values in budgets.items():
        for eps in sorted(values, key=lambda v: (not pd.isna(v), 0 if pd.isna(v) else v)):
            name = attack if len(values) == 1 or pd.isna(eps) else f"{attack}@{_budget(eps)}"
            columns.append((name, attack, eps))
    return columns


def _same(a: float, b: float) -> bool:
    return (pd.isna(a) and pd.isna(b)) or (not pd.isna(a) and not pd.isna(b) and math.isclose(a, b))


def _grid(header: list[str], lines: list[list[str]]) -> list[str]:
    """Aligned columns: the first (labels, indented two spaces under the header) left, numbers right."""
    rows = [header, *(["  " + line[0], *line[1:]] for line in lines)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [" ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))
                     ).rstrip() for row in rows]


THREAT_ORDER = ("whitebox", "transfer", "blackbox")


def _ordered(rows: pd.DataFrame, attacks: list[str] | None) -> pd.DataFrame:
    """``rows`` by threat model (white-box first), attack (``attacks`` order, else as they come) and ε."""
    rank = {name: i for i, name in enumerate(attacks or dict.fromkeys(rows["attack"]))}
    keys = pd.DataFrame({
        "threat": rows["threat_model"].map(lambda t: THREAT_ORDER.index(t) if t in THREAT_ORDER else 9),
        "attack": rows["attack"].map(lambda a: rank.get(a, len(rank))),
        "eps": rows["eps"].fillna(-1.0)}, index=rows.index)
    return rows.loc[keys.sort_values(["threat", "attack", "eps"], kind="stable").index]


def worst_lines(rows: pd.DataFrame) -> list[str]:
    """Per defense of one dataset: its clean accuracy and its lowest robust accuracy over all its
    cells (any attack, threat model and budget), with the cell that left it (white-box first on
    ties)."""
    lines = []
    for defense, cells in rows.groupby("defense", sort=False):
        worst = cells.iloc[int(cells["robust_accuracy"].to_numpy().argmin())]
        budget = _budget(worst["eps"])
        lines.append([str(defense), f"clean {_number(cells['clean_accuracy'].mean())}",
                      f"worst {_number(worst['robust_accuracy'])}",
                      f"{worst['threat_model']} {worst['attack']}" + (f"@{budget}" if budget else "")])
    width = max(len(line[0]) for line in lines)
    head = f"worst case per defense (lowest robust accuracy over its {len(rows) // max(1, len(lines))} cells)"
    return [head, *(f"  {line[0]:<{width}}  {'  '.join(line[1:])}" for line in lines)]


def dataset_block(rows: pd.DataFrame, lead: Iterable[str] | None = None, value: str = "robust_accuracy",
                  attacks: list[str] | None = None) -> str:
    """The summary of one dataset's rows (see the module docstring)."""
    rows = _ordered(rows, attacks)
    first = rows.iloc[0]
    bounded = rows.loc[rows["norm"] == "linf", "eps"].dropna().unique()
    scale = f"; bounded attacks at L∞ ε = {bounded[0]:.3g}" if len(bounded) == 1 else ""
    out = [f"{first['dataset']}: {int(first['n_eval'])} test images per cell, seed {first['seed']}{scale}"]
    out += list(lead) if lead is not None else worst_lines(rows)
    # Threat models whose attacks are the same share one table (and one header).
    tables: dict[tuple, list[list[str]]] = {}
    for threat in dict.fromkeys(rows["threat_model"]):
        block = rows[rows["threat_model"] == threat]
        columns = _columns(block)
        lines = tables.setdefault(tuple(name for name, _, _ in columns), [])
        for defense, cells in block.groupby("defense", sort=False):
            line = [f"{threat} {defense}", _number(cells["clean_accuracy"].mean())]
            for _, attack, eps in columns:
                match = cells[(cells["attack"] == attack) & cells["eps"].map(lambda e: _same(e, eps))]
                line.append(_number(match[value].mean()) if len(match) else "-")
            lines.append(line)
    for names, lines in tables.items():
        out += _grid([value.replace("_", " "), "clean", *names], lines)
    return "\n".join(out)


def format_summary(table: pd.DataFrame, lead: Mapping[str, Iterable[str]] | Callable | None = None,
                   value: str = "robust_accuracy", attacks: list[str] | None = None) -> str:
    """The end summary of ``table`` (rows of results.csv; sanity cells are left out), one block
    per dataset.  ``lead`` maps a dataset to the lines that open its block (default:
    :func:`worst_lines`), or is a function of that dataset's rows returning them; ``attacks``
    orders the columns (default: as they come)."""
    if table.empty:
        return "no cells"
    if "check" in table:
        table = table[table["check"].isna() | (table["check"].astype(str) == "")]
    table = table.reset_index(drop=True)
    blocks = []
    for dataset, rows in table.groupby("dataset", sort=False):
        head = lead(rows) if callable(lead) else (lead or {}).get(dataset)
        blocks.append(dataset_block(rows, head, value, attacks))
    return "\n\n".join(blocks)
