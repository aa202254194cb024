"""What a run concludes, beside ``results.csv``: its red flags (``OUT/flags.csv``) and its worst
case per image (``OUT/summary.csv``), so reports and notebooks read the verdict the command
line printed.  ``bench.api.run`` (``bench run``, ``bench.benchmark``) calls these after
the grid and its sanity cells.

:func:`probe_defenses` measures AutoAttack's model checks (``bench.flags.probe_model``) on
each defense's evaluated images; :func:`save_verdict` writes both files for the whole run
folder (it accumulates cells over calls, as ``results.csv`` does).

Example::

    from bench.verdict import save_verdict
    worst = save_verdict("runs/digits")        # writes flags.csv and summary.csv
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from bench.flags import FLAGS_FILE, probe_model, red_flags, write_flags
from bench.datasets import load_dataset
from bench.devices import resolve_device
from bench.results import ResultsStore
from bench.runner import Cell, Settings, eval_indices, trained_model
from bench.worst_case import summary, write_summary


def probe_defenses(cells: Sequence[Cell], settings: Settings) -> pd.DataFrame:
    """``bench.flags.probe_model`` on the evaluated images of each dataset × defense of ``cells``:
    one row per defense (``dataset``, ``defense``, ``seed``, and the probe's counts)."""
    device = resolve_device(settings.device)
    rows, seen = [], set()
    for cell in cells:
        key = (cell.dataset, cell.defense, cell.defense_options, cell.seed, cell.samples)
        if key in seen:
            continue
        seen.add(key)
        data = load_dataset(cell.dataset, cell.seed, settings.data_dir)
        model = trained_model(data, cell.plugin(), dict(cell.defense_options), cell.seed, device,
                              settings.cache, False).module
        idx = eval_indices(data.n_test, cell.samples, cell.seed)
        rows.append({"dataset": data.name, "defense": cell.defense, "seed": cell.seed,
                     **probe_model(model, data.x_test[idx], data.y_test[idx], device)})
    return pd.DataFrame(rows)


def save_verdict(out_dir: str | Path, flags: bool = True) -> pd.DataFrame:
    """Write ``out_dir/summary.csv`` (the worst case per image of every cell in the folder) and,
    with ``flags``, ``out_dir/flags.csv`` (every red flag of its defenses; without, any old
    flags.csv is removed: it would describe cells checked under other settings).  Returns
    the worst-case table."""
    store = ResultsStore(out_dir)
    frame = store.frame()
    if flags:
        write_flags(red_flags(frame, out_dir), out_dir)
    else:
        (Path(out_dir) / FLAGS_FILE).unlink(missing_ok=True)
    worst = summary(frame, store.arrays)
    write_summary(worst, out_dir)
    return worst
