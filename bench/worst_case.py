"""Worst case per image over attacks: one robustness number per defense and budget.

A table of attacks side by side invites reading the best-looking column; a
defense is only as robust as the attack that breaks it, image by image.  So
for each dataset × defense × norm × ε, an image counts as **robust** only if
the defense classifies it correctly clean *and* after every attack that ran on
it at that budget (Croce & Hein 2020's AutoAttack rule), in two scopes:

``whitebox``
    every white-box attack of that norm and budget;
``any``
    every attack of that norm and budget under any threat model (white-box,
    transfer and black-box together).

Budgets are matched exactly: bounded attacks at their ε, and
minimal-perturbation attacks at each budget they are scored at (their rows with
``eps`` set; ``bench.runner.run_cell`` counts only perturbations within it).
Unbudgeted minimal-attack rows and the red-flag sanity cells take no part.

Everything is computed from the per-image predictions each cell stores
(``OUT/cells/<cell_key>.npz``: ``index``, ``y``, ``pred_clean``,
``pred_adv``; every cell of a run evaluates the same images).  The result is
one row per dataset × defense × norm × ε × scope (:data:`SUMMARY_COLUMNS`),
written to ``OUT/summary.csv``, with the worst-case accuracy's count,
denominator and 95% Wilson interval, and which attack broke how many images.

Example::

    from bench.results import ResultsStore
    from bench.worst_case import summary
    store = ResultsStore("runs/digits")
    summary(store.frame(), store.arrays)      # one row per defense, budget and scope
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from bench.cache import atomic_write
from bench.metrics import rate_columns

#: Scope -> the threat models whose attacks it takes together.
SCOPES = {"whitebox": ("whitebox",), "any": ("whitebox", "transfer", "blackbox")}
#: What identifies one defense configuration in a run folder.
DEFENSE_KEYS = ["dataset", "defense", "defense_options", "seed"]
#: The columns of summary.csv, in order.
SUMMARY_COLUMNS = [
    *DEFENSE_KEYS, "norm", "eps", "scope",
    "worst_case_accuracy", "worst_case_accuracy_count", "worst_case_accuracy_n",
    "worst_case_accuracy_ci_low", "worst_case_accuracy_ci_high",
    "clean_accuracy", "clean_accuracy_count", "clean_accuracy_n", "clean_accuracy_ci_low",
    "clean_accuracy_ci_high",
    "n_attacks", "attacks", "broken_by", "only_broken_by", "weakest_attack_accuracy", "cells",
]


@dataclasses.dataclass(frozen=True)
class WorstCase:
    """The worst case over some attacks on the same images.

    ``robust``: per image, correct clean and after every attack.  ``broken``:
    attack -> images it broke among those correct clean.  ``only``: attack ->
    images it broke and no other attack did.
    """

    robust: np.ndarray
    clean_correct: np.ndarray
    broken: dict[str, int]
    only: dict[str, int]

    @property
    def n(self) -> int:
        return len(self.robust)

    @property
    def count(self) -> int:
        return int(self.robust.sum())


def worst_case(y: np.ndarray, pred_clean: np.ndarray, predictions: Mapping[str, np.ndarray]) -> WorstCase:
    """The worst case over ``predictions`` (attack -> per-image predictions after it) of images
    with true labels ``y`` that the defense predicts ``pred_clean`` without attack.

    An image is robust when ``pred_clean`` and every prediction equal ``y``.
    """
    y = np.asarray(y)
    clean_correct = np.asarray(pred_clean) == y
    wrong = {name: (np.asarray(pred) != y) & clean_correct for name, pred in predictions.items()}
    broken_by_any = np.zeros(len(y), dtype=bool)
    for mask in wrong.values():
        broken_by_any |= mask
    only = {}
    for name, mask in wrong.items():
        others = np.zeros(len(y), dtype=bool)
        for other, theirs in wrong.items():
            if other != name:
                others |= theirs
        only[name] = int((mask & ~others).sum())
    return WorstCase(clean_correct & ~broken_by_any, clean_correct,
                     {name: int(mask.sum()) for name, mask in wrong.items()}, only)


def align(arrays: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(y, pred_clean, {cell: pred_adv})`` on the test images every cell of ``arrays``
    (cell -> its stored arrays) evaluated, in index order.

    Cells of one run evaluate the same images; a folder mixing sample sizes
    keeps only the images common to all.  ``pred_clean`` is correct only where
    every cell's clean prediction is (a randomized defense may differ).
    """
    common = None
    for stored in arrays.values():
        common = stored["index"] if common is None else np.intersect1d(common, stored["index"])
    y = pred_clean = None
    predictions = {}
    for name, stored in arrays.items():
        where = np.searchsorted(stored["index"], common)
        cell_y, cell_clean = stored["y"][where], stored["pred_clean"][where]
        if y is None:
            y, pred_clean = cell_y, cell_clean.copy()
        else:
            pred_clean = np.where(cell_clean == cell_y, pred_clean, cell_clean)
        predictions[name] = stored["pred_adv"][where]
    return y, pred_clean, predictions


def cell_label(row: Mapping) -> str:
    """``whitebox pgd@0.3``: a cell's threat model, attack and budget."""
    eps = row.get("eps")
    budget = "" if eps is None or pd.isna(eps) else f"@{eps:.3g}"
    return f"{row['threat_model']} {row['attack']}{budget}"


def _counts(counts: dict[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "; ".join(f"{name}: {count}" for name, count in ordered)


def budget_groups(frame: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """The asked-for rows of ``frame`` (results.csv) grouped by defense configuration, norm and ε
    (rounded to 6 decimals); unbudgeted rows and sanity cells are left out."""
    rows = frame[frame["eps"].notna()]
    if "check" in rows:
        rows = rows[rows["check"].fillna("").astype(str) == ""]
    rows = rows.assign(defense_options=rows["defense_options"].fillna("{}"), eps_key=rows["eps"].round(6))
    groups = []
    for key, group in rows.groupby([*DEFENSE_KEYS, "norm", "eps_key"], sort=True):
        groups.append((dict(zip([*DEFENSE_KEYS, "norm", "eps"], key)), group))
    return groups


def summary(frame: pd.DataFrame, arrays: Callable[[str], Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """One row per dataset × defense × norm × ε × scope of the worst case over the attacks of
    ``frame`` (rows of results.csv); ``arrays(cell_key)`` gives a cell's stored arrays
    (``ResultsStore.arrays``).  Columns: :data:`SUMMARY_COLUMNS`.

    ``broken_by`` lists, per attack, the images it broke among those correct
    clean; ``only_broken_by`` those no other attack of the scope broke;
    ``weakest_attack_accuracy`` is the lowest robust accuracy of any single
    attack of the scope, so the gap to ``worst_case_accuracy`` is what taking
    the worst case per image adds.
    """
    out = []
    for key, group in budget_groups(frame):
        stored = {row["cell_key"]: arrays(row["cell_key"]) for _, row in group.iterrows()}
        labels = {row["cell_key"]: cell_label(row) for _, row in group.iterrows()}
        for scope, threats in SCOPES.items():
            cells = group[group["threat_model"].isin(threats)]
            if cells.empty:
                continue
            y, pred_clean, predictions = align({k: stored[k] for k in cells["cell_key"]})
            result = worst_case(y, pred_clean, {labels[k]: p for k, p in predictions.items()})
            out.append({
                **key, "scope": scope,
                **rate_columns("worst_case_accuracy", result.count, result.n),
                **rate_columns("clean_accuracy", int(result.clean_correct.sum()), result.n),
                "n_attacks": len(cells),
                "attacks": "; ".join(labels[k] for k in cells["cell_key"]),
                "broken_by": _counts(result.broken),
                "only_broken_by": _counts({k: v for k, v in result.only.items() if v}),
                "weakest_attack_accuracy": float(cells["robust_accuracy"].min()),
                "cells": " ".join(cells["cell_key"]),
            })
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def headline_budget(summary_rows: pd.DataFrame, standard: float | None = None) -> tuple[str, float] | None:
    """The (norm, ε) one dataset's headline is read at: its standard L∞ budget ``standard`` when
    the run has it, else the largest L∞ budget below 1 (ε = 1 is a sanity check, not a budget),
    else the largest budget of the first norm; None when ``summary_rows`` is empty."""
    if summary_rows.empty:
        return None
    linf = summary_rows[(summary_rows["norm"] == "linf") & (summary_rows["eps"] < 1)]
    if standard is not None and np.isclose(linf["eps"], standard).any():
        return "linf", float(linf.loc[np.isclose(linf["eps"], standard), "eps"].iloc[0])
    if len(linf):
        return "linf", float(linf["eps"].max())
    norm = summary_rows["norm"].iloc[0]
    return norm, float(summary_rows.loc[summary_rows["norm"] == norm, "eps"].max())


def ranking(summary_rows: pd.DataFrame, flagged: set[tuple[str, str]] = frozenset(),
            standard: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per dataset, the defenses ranked by their worst case at the headline budget
    (:func:`headline_budget`), most robust first.

    The headline is the ``any`` scope (every attack that ran, under every threat
    model): never a white-box number alone, which a masked defense inflates.
    ``flagged`` holds the (dataset, defense) pairs with a red flag: they get
    ``flagged = True`` and, at equal headline, rank below unflagged ones.
    ``headline_scope`` says ``white-box only`` when no other threat model ran,
    so the headline of a flagged defense is then marked as untrusted.
    """
    rows = []
    for dataset, block in summary_rows.groupby("dataset", sort=False):
        budget = headline_budget(block, (standard or {}).get(dataset))
        if budget is None:
            continue
        norm, eps = budget
        at = block[(block["norm"] == norm) & np.isclose(block["eps"], eps)]
        for _, defense in at.groupby(DEFENSE_KEYS[1:], sort=False):
            scopes = {row["scope"]: row for _, row in defense.iterrows()}
            head = scopes.get("any", scopes.get("whitebox"))
            white = scopes.get("whitebox")
            only_white = white is not None and head["attacks"] == white["attacks"]
            rows.append({
                "dataset": dataset, "defense": head["defense"], "defense_options": head["defense_options"],
                "seed": head["seed"], "norm": norm, "eps": eps,
                "flagged": (dataset, head["defense"]) in flagged,
                "headline": head["worst_case_accuracy"],
                "headline_ci_low": head["worst_case_accuracy_ci_low"],
                "headline_ci_high": head["worst_case_accuracy_ci_high"],
                "headline_n": head["worst_case_accuracy_n"],
                "headline_scope": "white-box only" if only_white else "any threat model",
                "whitebox": np.nan if white is None else white["worst_case_accuracy"],
                "whitebox_ci_low": np.nan if white is None else white["worst_case_accuracy_ci_low"],
                "whitebox_ci_high": np.nan if white is None else white["worst_case_accuracy_ci_high"],
                "clean": head["clean_accuracy"], "clean_ci_low": head["clean_accuracy_ci_low"],
                "clean_ci_high": head["clean_accuracy_ci_high"],
                "attacks": head["n_attacks"], "broken_by": head["broken_by"],
            })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values(["dataset", "headline", "flagged", "whitebox"],
                              ascending=[True, False, True, False], kind="stable", ignore_index=True)
    table.insert(0, "rank", table.groupby("dataset").cumcount() + 1)
    return table


def write_summary(summary_rows: pd.DataFrame, run_dir: str | Path) -> Path:
    """Write ``summary_rows`` to ``run_dir/summary.csv`` (atomically) and return its path."""
    path = Path(run_dir) / "summary.csv"
    text = summary_rows.to_csv(index=False)
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path


def read_summary(run_dir: str | Path) -> pd.DataFrame | None:
    """``run_dir/summary.csv``, or None when the run has none."""
    path = Path(run_dir) / "summary.csv"
    return pd.read_csv(path) if path.exists() else None


def _interval(value: float, low: float, high: float) -> str:
    if value is None or pd.isna(value):
        return "-"
    return f"{value:.3f} [{low:.2f}, {high:.2f}]"


def lead_lines(summary_rows: pd.DataFrame, flagged: set[tuple[str, str]] = frozenset(),
               standard: Mapping[str, float] | None = None) -> dict[str, list[str]]:
    """Per dataset, the lines that open ``bench run``'s summary: the defenses ranked by their worst
    case over every threat model at the headline budget, with 95% intervals and n, their
    white-box worst case beside it, the other budgets, and ⚑ on flagged defenses."""
    table = ranking(summary_rows, flagged, standard)
    out = {}
    for dataset, block in (table.groupby("dataset", sort=False) if len(table) else ()):
        norm, eps = block["norm"].iloc[0], block["eps"].iloc[0]
        rows = summary_rows[(summary_rows["dataset"] == dataset) & (summary_rows["scope"] == "any")]
        others = sorted({(r.norm, r.eps) for r in rows.itertuples()} - {(norm, eps)},
                        key=lambda budget: (budget[0] != norm, budget))
        name = {"linf": "L∞", "l2": "L2", "l0": "L0"}.get(norm, norm)
        header = ["rank", "defense", f"any threat model @{eps:.3g}", "white-box", "clean",
                  *[f"any @{e:.3g}" + ("" if n == norm else f" ({n})") for n, e in others], "broken most by"]
        lines = []
        for _, row in block.iterrows():
            mine = rows[rows["defense"] == row["defense"]]
            other = []
            for n, e in others:
                match = mine[(mine["norm"] == n) & np.isclose(mine["eps"], e)]
                other.append(f"{match['worst_case_accuracy'].iloc[0]:.3f}" if len(match) else "-")
            first = row["broken_by"].split("; ")[0] if isinstance(row["broken_by"], str) else ""
            lines.append([str(row["rank"]), ("⚑ " if row["flagged"] else "") + str(row["defense"]),
                          _interval(row["headline"], row["headline_ci_low"], row["headline_ci_high"])
                          + (" (white-box only)" if row["headline_scope"] == "white-box only" else ""),
                          _interval(row["whitebox"], row["whitebox_ci_low"], row["whitebox_ci_high"]),
                          f"{row['clean']:.3f}", *other, first])
        widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
        text = ["  " + "  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *lines]]
        n = int(block["headline_n"].max())
        out[dataset] = [f"worst case per image at {name} ε = {eps:.3g} (robust = correct clean and after every "
                        f"attack; [95% interval], n = {n}"
                        + ("; ⚑ red flag raised, see below)" if block["flagged"].any() else ")"), *text]
    return out
