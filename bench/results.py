"""The results store of one run folder.

Each finished cell is kept as ``OUT/cells/<cell_key>.json`` (its row) and
``OUT/cells/<cell_key>.npz`` (per-image predictions, norms and a few gallery
images), written atomically; ``OUT/results.csv`` is rebuilt from them after
every cell.  An interrupted run therefore resumes where it stopped, and the CSV
always holds exactly the finished cells.

A damaged cell (a row that is not JSON or not a row of its key, arrays that do
not load) is reported in one line and set aside in ``OUT/cells/quarantine/``
(:meth:`ResultsStore.audit` before a run, and :meth:`ResultsStore.frame`), so
the run recomputes it and every other cell stays.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.cache import atomic_write, io_error, report_damage
from bench.errors import BenchError
from bench.metrics import with_intervals

@dataclasses.dataclass(frozen=True)
class Row:
    """One row of ``results.csv``: a finished cell, as ``bench.runner.run_cell`` scores it.

    Its fields are the columns, in order (:data:`COLUMNS`): the first 17 are the
    documented core, then provenance and detail, the red-flag evidence, and each
    rate's count, denominator and 95% Wilson interval (``bench.metrics``).
    ``eps`` is NaN for an unbudgeted minimal-perturbation attack; ``queries_per_image``
    is NaN outside ``blackbox``.
    """

    dataset: str
    dataset_source: str
    n_train: int
    n_eval: int
    defense: str
    attack: str
    threat_model: str
    eps: float
    clean_accuracy: float
    robust_accuracy: float
    attack_success_rate: float
    defense_rate: float
    mean_l2: float
    mean_linf: float
    attack_seconds: float
    seed: int
    device: str
    # provenance and detail
    norm: str
    dataset_is_subset: bool
    n_val: int
    n_test: int
    n_adversarial: int
    mean_l0: float
    source_model: str
    attack_params: str  # JSON
    defense_options: str  # JSON
    model_cached: bool
    adv_cached: bool
    train_seconds: float
    train_device: str
    suite_version: str
    torch_version: str
    art_version: str
    cell_key: str
    finished_at: str
    # red-flag evidence and black-box provenance (bench/flags.py, attacks/art_adapter.py)
    check: str
    forward_predict_agreement: float
    queries_per_image: float
    blackbox_output: str
    # each rate's count, denominator and 95% Wilson interval (bench/metrics.py RATES, rate_columns)
    clean_accuracy_count: int
    clean_accuracy_n: int
    clean_accuracy_ci_low: float
    clean_accuracy_ci_high: float
    robust_accuracy_count: int
    robust_accuracy_n: int
    robust_accuracy_ci_low: float
    robust_accuracy_ci_high: float
    attack_success_rate_count: int
    attack_success_rate_n: int
    attack_success_rate_ci_low: float
    attack_success_rate_ci_high: float
    defense_rate_count: int
    defense_rate_n: int
    defense_rate_ci_low: float
    defense_rate_ci_high: float

    def as_dict(self) -> dict:
        """The row as stored (``OUT/cells/<cell_key>.json``), column -> value."""
        return dataclasses.asdict(self)


#: The columns of results.csv, in order: the fields of :class:`Row`.
COLUMNS = [field.name for field in dataclasses.fields(Row)]


class ResultsStore:
    """Rows of finished cells under ``out_dir`` (see the module docstring)."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.cells_dir = self.out_dir / "cells"

    @property
    def csv_path(self) -> Path:
        return self.out_dir / "results.csv"

    def has(self, cell_key: str) -> bool:
        return (self.cells_dir / f"{cell_key}.json").exists()

    def row(self, cell_key: str) -> dict:
        return json.loads((self.cells_dir / f"{cell_key}.json").read_text())

    @property
    def quarantine_dir(self) -> Path:
        return self.cells_dir / "quarantine"

    def _read_row(self, path: Path) -> tuple[dict | None, str | None]:
        """``(row, None)`` or ``(None, why it is damaged)`` for one ``cells/*.json``."""
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            return None, f"not a JSON row ({type(error).__name__})"
        if not isinstance(row, dict):
            return None, "not a JSON object"
        if row.get("cell_key") != path.stem:
            return None, f"its cell_key {row.get('cell_key')!r} is not its file name"
        missing = [column for column in ("dataset", "defense", "attack", "threat_model") if column not in row]
        if missing:
            return None, f"no {missing[0]!r}"
        return row, None

    def set_aside(self, cell_key: str, reason: str) -> None:
        """Move a damaged cell's files to ``cells/quarantine/`` (recomputed by the next run)."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        for suffix in (".json", ".npz"):
            source = self.cells_dir / f"{cell_key}{suffix}"
            if source.exists():
                target = self.quarantine_dir / f"{cell_key}{suffix}"
                if target.exists():
                    target = self.quarantine_dir / f"{cell_key}.{stamp}{suffix}"
                os.replace(source, target)
        report_damage(f"run folder cell {self.cells_dir / cell_key}.json is damaged ({reason}); set aside in "
                      f"{self.quarantine_dir}, recomputing it")

    def audit(self) -> list[str]:
        """Set aside every damaged cell (its row, or its arrays) before a run; their keys."""
        damaged = []
        for path in sorted(self.cells_dir.glob("*.json")) if self.cells_dir.is_dir() else []:
            row, problem = self._read_row(path)
            if problem is None:
                try:
                    self.arrays(path.stem)
                except FileNotFoundError:
                    problem = "its arrays .npz is missing"
                except BenchError:
                    problem = "its arrays .npz does not load"
            if problem is not None:
                self.set_aside(path.stem, problem)
                damaged.append(path.stem)
        return damaged

    def save(self, row: Row | dict, arrays: dict[str, np.ndarray]) -> None:
        row = row.as_dict() if isinstance(row, Row) else row
        key = row["cell_key"]
        # Arrays first: a row on disk means its arrays are there too.
        atomic_write(self.cells_dir / f"{key}.npz", lambda handle: np.savez_compressed(handle, **arrays))
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        text = json.dumps(clean, indent=1, sort_keys=True)
        atomic_write(self.cells_dir / f"{key}.json", lambda handle: handle.write(text.encode()))

    def arrays(self, cell_key: str) -> dict[str, np.ndarray]:
        """The cell's per-image arrays (FileNotFoundError when absent; one-line error when damaged)."""
        path = self.cells_dir / f"{cell_key}.npz"
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except FileNotFoundError:
            raise
        except Exception as error:  # truncated zip, bad CRC, pickled objects, not an archive
            raise BenchError(f"cell file {path} is damaged ({type(error).__name__}); `bench run --out "
                             f"{self.out_dir}` sets it aside and recomputes it") from None

    def frame(self) -> pd.DataFrame:
        rows = []
        for path in sorted(self.cells_dir.glob("*.json")):
            row, problem = self._read_row(path)
            if problem is None:
                rows.append(row)
            else:
                self.set_aside(path.stem, problem)
        frame = pd.DataFrame(rows)
        for column in COLUMNS:
            if column not in frame:
                frame[column] = pd.Series(dtype=object)
        frame = with_intervals(frame)  # rows written before the interval columns existed
        extra = [c for c in frame.columns if c not in COLUMNS]
        order = ["dataset", "defense", "threat_model", "attack", "eps"]
        return frame[COLUMNS + extra].sort_values(order, na_position="first", kind="stable",
                                                 ignore_index=True)

    def write_csv(self) -> Path:
        frame = self.frame()
        text = frame.to_csv(index=False)
        atomic_write(self.csv_path, lambda handle: handle.write(text.encode()))
        return self.csv_path


#: Columns ``bench check`` and ``bench report`` cannot do without (``bench.gate``'s identity,
#: settings and metrics, and ``cell_key``); a results.csv without one is damaged.
REQUIRED = ("dataset", "defense", "attack", "threat_model", "eps", "seed", "n_eval",
            "clean_accuracy", "robust_accuracy", "defense_rate", "cell_key")
#: Of those, the numbers (a non-number there is damage).
NUMERIC = ("clean_accuracy", "robust_accuracy", "defense_rate", "seed", "n_eval", "eps")


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """``RUN_DIR/results.csv`` (or a results CSV file named directly) as a DataFrame, or one clear
    error line naming it when the folder holds no run or the file is damaged (binary, truncated,
    not a results table, incomplete rows)."""
    run_dir = Path(run_dir)
    path = run_dir if run_dir.suffix == ".csv" and not run_dir.is_dir() else run_dir / "results.csv"
    run_dir = path.parent
    if not path.exists():
        raise BenchError(f"{path} not found; is {run_dir} a `bench run --out` folder?")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise io_error(path, error, "read") from None
    problem, frame = _results_problem(data)
    if problem:
        raise BenchError(f"{path} is damaged ({problem}); `bench run --out {run_dir}` with the run's options "
                         "rewrites it from the finished cells in cells/")
    return frame


def _results_problem(data: bytes) -> tuple[str | None, pd.DataFrame | None]:
    """``(why the bytes are no results.csv, None)`` or ``(None, the table)``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data, not UTF-8 text", None
    if "\0" in text:
        return "binary data, not text", None
    if not text.strip():
        return "empty", None
    if not text.endswith("\n"):
        return "truncated: its last line is incomplete", None
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as error:
        return f"not a CSV table: {(str(error).strip().splitlines() or [''])[0][:100]}", None
    missing = [column for column in REQUIRED if column not in frame.columns]
    if missing:
        return f"no column {missing[0]!r}", None
    # eps is empty for minimal attacks; defense_rate for cells where no adversarial image fooled
    # the source model (0/0: a 6%-accurate model gives none), so neither marks a row incomplete.
    needed = [column for column in REQUIRED if column not in ("eps", "defense_rate")]
    incomplete = frame[needed].isna().any(axis=1)
    if incomplete.any():
        return f"row {int(incomplete.to_numpy().argmax()) + 2} is incomplete", None
    for column in NUMERIC:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = numbers.isna() & frame[column].notna()
        if bad.any():
            return f"{column} {frame[column][bad].iloc[0]!r} is not a number", None
        frame[column] = numbers
    return None, frame
