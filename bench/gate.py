"""``bench check``: compare a run's metrics with a committed baseline (the CI regression gate).

A baseline is a readable JSON file (``tests/baselines/digits.json``)::

    {
     "run": "--dataset digits --defense {built-in} ...",  # the `bench run` grid (kept on --update)
     "tolerance": {"clean_accuracy": 0.03, "robust_accuracy": 0.06, "defense_rate": 0.1},
     "generated_from": {...},            # versions, device, seed of the run written
     "cells": [{"dataset": "digits", "defense": "none", "attack": "fgsm",
                "threat_model": "whitebox", "eps": 0.3, "seed": 0, "n_eval": 200,
                "clean_accuracy": 0.98, "robust_accuracy": 0.12, "defense_rate": 0.0, ...}]
    }

A cell is identified by :data:`IDENTITY` (dataset, defense, attack, threat
model, ε; ``eps`` is ``null`` for minimal-perturbation attacks), not by its
``cell_key``: a weakened defense (other options) must be compared with the
cell it replaces.  Every metric in :data:`METRICS` of every cell must be within
its tolerance of the baseline.  A move beyond tolerance is reported in *either*
direction, because the two directions mean different things and both need a
human: a fall in robust accuracy or defense rate means the defense got weaker
(or the attack stronger); a rise means the attack got weaker (or the defense
stronger) — the classic sign of a broken attack or of gradient masking.
Cells missing from the run or from the baseline, and cells evaluated with a
different seed or number of images, are findings too.  A deliberate change is
recorded with ``bench check RUN --baseline FILE --update``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from bench.cache import io_error, write_bytes_atomic
from bench.errors import BenchError
from bench.results import read_results
from defenses import REGISTRY as DEFENSES

#: What names a cell across runs (``cell_key`` also hashes options, which a weakened defense changes).
IDENTITY = ("dataset", "defense", "attack", "threat_model", "eps")
#: The metrics the gate compares.
METRICS = ("clean_accuracy", "robust_accuracy", "defense_rate")
#: Settings that must match for the numbers to be comparable at all.
SETTINGS = ("seed", "n_eval")
#: Kept in the baseline for the reader; not compared.
CONTEXT = ("n_adversarial", "defense_options")

FINDING_COLUMNS = ["cell", "metric", "baseline", "now", "delta", "tolerance", "finding"]
_SLACK = 1e-9  # float noise: a delta exactly at the tolerance passes


#: In a baseline's ``run`` arguments: every registered defense whose origin is "built-in".
BUILT_IN = "{built-in}"


def run_arguments(baseline: dict, seed: int | None = None) -> list[str]:
    """The ``bench run`` arguments of the grid the baseline records (its ``run`` entry).

    ``{built-in}`` becomes every built-in defense registered now, so a new
    defense joins the gate (and shows up as "not in baseline" until the
    baseline is updated); ``seed`` overrides the grid's seed.
    """
    built_in = ",".join(name for name, defense in DEFENSES.items() if defense.origin == "built-in")
    arguments = [part.replace(BUILT_IN, built_in) for part in shlex.split(baseline["run"])]
    return arguments + (["--seed", str(seed)] if seed is not None else [])


def cell_name(row) -> str:
    """``digits/none/fgsm@0.3/whitebox``: the readable name of a cell's identity."""
    eps = row["eps"]
    attack = row["attack"] if eps is None or pd.isna(eps) else f"{row['attack']}@{eps:g}"
    return f"{row['dataset']}/{row['defense']}/{attack}/{row['threat_model']}"


def identify(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """``frame`` indexed by cell name; one row per identity or a clear error."""
    frame = frame.assign(cell=frame.apply(cell_name, axis=1) if len(frame) else pd.Series(dtype=str))
    repeated = frame["cell"][frame["cell"].duplicated()]
    if len(repeated):
        raise BenchError(f"{what} has several rows for {repeated.iloc[0]} (different defense options "
                         "or seeds in one run folder); check one configuration per run folder")
    return frame.set_index("cell")


def parse_tolerance(text: str) -> dict[str, float]:
    """``"0.05"`` (every metric) or ``"robust_accuracy=0.05,defense_rate=0.1"`` -> per-metric tolerance."""
    try:
        if "=" not in text:
            return dict.fromkeys(METRICS, _non_negative(float(text)))
        pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
        tolerance = {key.strip(): _non_negative(float(value)) for key, value in pairs}
    except ValueError:
        raise BenchError(f"--tolerance {text!r}: give a number like 0.05 or METRIC=NUMBER pairs "
                         f"like robust_accuracy=0.05,defense_rate=0.1") from None
    unknown = sorted(set(tolerance) - set(METRICS))
    if unknown:
        raise BenchError(f"--tolerance: unknown metric {unknown[0]!r}; choose from: {', '.join(METRICS)}")
    return tolerance


def _non_negative(value: float) -> float:
    if not value >= 0:
        raise ValueError(value)
    return value


def read_baseline(path: str | Path) -> dict:
    """The baseline file as a dict whose ``cells`` is a DataFrame."""
    path = Path(path)
    if not path.exists():
        raise BenchError(f"baseline {path} not found; create it with `bench check RUN_DIR --baseline {path} "
                         "--update --tolerance T`")
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
        cells = pd.DataFrame(baseline["cells"], columns=[*IDENTITY, *SETTINGS, *METRICS, *CONTEXT])
        tolerance = {metric: float(baseline["tolerance"][metric]) for metric in METRICS}
        cells["eps"] = pd.to_numeric(cells["eps"])
    except OSError as error:
        raise io_error(path, error, "read") from None
    except (ValueError, KeyError, TypeError) as error:
        raise BenchError(f"baseline {path} is not a bench baseline ({type(error).__name__}: {error}); "
                         "it needs 'tolerance' for each of " + ", ".join(METRICS) + " and 'cells'") from None
    return {**baseline, "cells": cells, "tolerance": tolerance}


def write_baseline(path: str | Path, frame: pd.DataFrame, tolerance: dict[str, float] | None) -> dict:
    """Write the run's cells as the new baseline, keeping the old file's other keys (``run``, notes).

    ``tolerance`` overrides the old file's per metric; a new file needs one for every metric.
    """
    path = Path(path)
    try:
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except OSError as error:
        raise io_error(path, error, "read") from None
    except ValueError as error:
        raise BenchError(f"baseline {path} is not JSON ({type(error).__name__}); move it away or fix it "
                         "before --update") from None
    if not isinstance(old, dict):
        raise BenchError(f"baseline {path} is not a bench baseline (a JSON object); move it away first")
    merged = {**old.get("tolerance", {}), **(tolerance or {})}
    missing = [metric for metric in METRICS if metric not in merged]
    if missing:
        raise BenchError(f"no tolerance for {', '.join(missing)}: give --tolerance "
                         "(docs/regression-gate.md says how to measure it)")
    frame = identify(frame, "run").sort_index()
    cells = []
    for _, row in frame.iterrows():
        cell = {key: _plain(row[key]) for key in IDENTITY}  # eps exact: 8/255 must match itself
        cell |= {key: _plain(row[key], digits=6) for key in METRICS}
        cell |= {key: int(row[key]) for key in (*SETTINGS, "n_adversarial")}
        cell["defense_options"] = json.loads(row["defense_options"])
        cells.append(cell)
    baseline = {
        **old,
        "tolerance": {metric: merged[metric] for metric in METRICS},
        "generated_from": {
            "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **{column: ", ".join(sorted({str(v) for v in frame[column].dropna()}))
               for column in ("suite_version", "torch_version", "art_version", "device", "seed")},
        },
        "cells": cells,
    }
    text = _dump(baseline)
    write_bytes_atomic(path, text.encode("utf-8"))
    return baseline


def _dump(baseline: dict) -> str:
    """Indented JSON with one line per cell, so a baseline update reads as a short diff."""
    head = json.dumps({key: value for key, value in baseline.items() if key != "cells"}, indent=1,
                      ensure_ascii=False)
    cells = ",\n".join("  " + json.dumps(cell, ensure_ascii=False) for cell in baseline["cells"])
    return head[:-2] + ',\n "cells": [\n' + cells + "\n ]\n}\n"


def _plain(value, digits: int | None = None):
    """JSON-friendly scalar: numpy -> Python, NaN -> None, floats rounded to ``digits`` if given."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else (value if digits is None else round(value, digits))
    return value


def compare(frame: pd.DataFrame, baseline: pd.DataFrame, tolerance: dict[str, float]) -> pd.DataFrame:
    """Findings of the run ``frame`` against ``baseline`` cells (columns :data:`FINDING_COLUMNS`).

    An empty result means every cell is present in both and within tolerance.
    """
    now, then = identify(frame, "run"), identify(baseline, "baseline")
    findings = []
    for cell in then.index.difference(now.index):
        findings.append(_finding(cell, "-", None, None, None, "missing from run"))
    for cell in now.index.difference(then.index):
        findings.append(_finding(cell, "-", None, None, None, "not in baseline"))
    for cell in then.index.intersection(now.index, sort=True):
        different = [s for s in SETTINGS if _float(then.at[cell, s]) != _float(now.at[cell, s])]
        for setting in different:
            findings.append(_finding(cell, setting, _float(then.at[cell, setting]),
                                     _float(now.at[cell, setting]), None,
                                     "different setting: numbers not comparable"))
        if different:
            continue
        for metric in METRICS:
            before, after = _float(then.at[cell, metric]), _float(now.at[cell, metric])
            verdict = _verdict(metric, before, after, tolerance[metric])
            if verdict:
                delta = None if math.isnan(before) or math.isnan(after) else after - before
                findings.append(_finding(cell, metric, before, after, delta, verdict, tolerance[metric]))
    return pd.DataFrame(findings, columns=FINDING_COLUMNS)


def _float(value) -> float:
    return float("nan") if value is None or pd.isna(value) else float(value)


def _finding(cell, metric, baseline, now, delta, finding, tolerance=None) -> dict:
    return dict(cell=cell, metric=metric, baseline=baseline, now=now, delta=delta, tolerance=tolerance,
                finding=finding)


def _verdict(metric: str, before: float, after: float, tolerance: float) -> str | None:
    """Why ``before -> after`` is a finding, or None when it is within tolerance."""
    if math.isnan(before) and math.isnan(after):
        return None
    if math.isnan(before) or math.isnan(after):
        return "undefined now" if math.isnan(after) else "undefined in baseline"
    delta = after - before
    if abs(delta) <= tolerance + _SLACK:
        return None
    if metric == "clean_accuracy":
        return "model less accurate" if delta < 0 else "model more accurate: update baseline?"
    return "defense weaker (or attack stronger)" if delta < 0 else "attack weaker (or defense stronger)"


def largest_moves(frame: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Per metric, the cell that moved most (to see how close a passing run came to the tolerance)."""
    now, then = identify(frame, "run"), identify(baseline, "baseline")
    common = then.index.intersection(now.index)
    rows = []
    for metric in METRICS:
        delta = (pd.to_numeric(now.loc[common, metric]) - pd.to_numeric(then.loc[common, metric])).abs()
        delta = delta.dropna()
        if len(delta):
            rows.append({"metric": metric, "largest_delta": delta.max(), "cell": delta.idxmax()})
    return pd.DataFrame(rows, columns=["metric", "largest_delta", "cell"])


def readable(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings with numbers as text (3 decimals, signed delta, "-" for none), for printing."""
    def text(value, row, sign=""):
        if value is None or pd.isna(value):
            return "-"
        return f"{value:.0f}" if row.metric in SETTINGS else f"{value:{sign}.3f}"

    rows = [{**row._asdict(), "baseline": text(row.baseline, row), "now": text(row.now, row),
             "delta": text(row.delta, row, "+"), "tolerance": text(row.tolerance, row)}
            for row in findings.itertuples(index=False)]
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def check_run(run_dir: str | Path, baseline_path: str | Path,
              tolerance: dict[str, float] | None = None) -> tuple[bool, str]:
    """``(passed, readable report)`` of the run in ``run_dir`` against the baseline file."""
    frame, baseline = read_results(run_dir), read_baseline(baseline_path)
    tolerance = {**baseline["tolerance"], **(tolerance or {})}
    findings = compare(frame, baseline["cells"], tolerance)
    limits = ", ".join(f"{metric} ±{tolerance[metric]:g}" for metric in METRICS)
    lines = [f"bench check: {len(frame)} cells of {run_dir} against {len(baseline['cells'])} in "
             f"{baseline_path} (tolerance: {limits})"]
    if findings.empty:
        lines.append("OK: every cell is within tolerance.")
    else:
        counts = findings["finding"].value_counts()
        lines.append(f"FAILED: {len(findings)} findings ("
                     + ", ".join(f"{n} {what}" for what, n in counts.items()) + ")")
        with pd.option_context("display.width", 250, "display.max_colwidth", 80):
            table = readable(findings)
            left = {column: (lambda text, width=table[column].str.len().max(): text.ljust(width))
                    for column in table.columns}
            lines.append(table.to_string(index=False, formatters=left, justify="left"))
    moves = largest_moves(frame, baseline["cells"])
    if len(moves):
        lines.append("largest moves: " + "; ".join(
            f"{row.metric} {row.largest_delta:.3f} ({row.cell})" for row in moves.itertuples()))
    changed = _changed_options(frame, baseline["cells"])
    if changed:
        lines.append("defense options differ from the baseline: " + "; ".join(changed))
    if not findings.empty:
        lines.append(f"If the change is deliberate: bench check {run_dir} --baseline {baseline_path} "
                     "--update")
    return findings.empty, "\n".join(lines)


def _changed_options(frame: pd.DataFrame, baseline: pd.DataFrame) -> list[str]:
    """``dundi: epochs 30 -> 0`` for each defense whose options differ from the baseline's."""
    then = {row.defense: row.defense_options for row in baseline.itertuples() if row.defense_options}
    notes = {}
    for row in frame.itertuples():
        old, new = then.get(row.defense), json.loads(row.defense_options)
        if old is None or row.defense in notes:
            continue
        moved = [f"{key} {old.get(key)} -> {new.get(key)}" for key in sorted({*old, *new})
                 if old.get(key) != new.get(key)]
        if moved:
            notes[row.defense] = f"{row.defense}: " + ", ".join(moved)
    return list(notes.values())
