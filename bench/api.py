"""The Python entry points: the suite's data, your model benchmarked, the report.

``bench.load_dataset(name, seed)``
    The dataset exactly as the suite splits it: train on ``x_train``, choose
    on ``x_val``, and leave ``x_test`` (what the attacks evaluate) alone.
``bench.benchmark(model, ...)``
    What ``bench run --model`` does, for notebooks: checks the model against
    the dataset, crosses it with the attacks and threat models (beside any
    built-in defenses you name), runs the cells and the red-flag checks through
    the same runner and caches, keeps the run folder, and returns the rows as a
    DataFrame with the columns of ``results.csv`` (``bench.results.COLUMNS``).
``bench.report(run_dir, ..., out=...)``
    What ``bench report`` does: one self-contained HTML file.

:func:`run` is what ``bench run`` and :func:`benchmark` share: both build a
``bench.spec.GridSpec`` and hand it, with the ``bench.runner.Settings``, to
``run(spec, settings)``, which makes the cells, checks the user's model on every
dataset before any attack runs, runs the grid, then the sanity cells and red flags.

Example::

    import bench, torch
    data = bench.load_dataset("digits")                  # the suite's split, seed 0
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    ...                                                  # train on data.x_train / data.y_train
    table = bench.benchmark(net.eval(), dataset="digits", defenses="none")
    bench.report(table.attrs["out_dir"], out="report.html")
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

# Light, as ``import bench`` must stay: no torch, pandas or registries at import (bench/spec.py).
from bench.spec import DEFAULT_ATTACKS, DEFAULT_THREAT_MODELS, GridSpec

# torch, pandas and the runner are imported when work starts, not with ``bench``.
if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from bench.datasets import Dataset
    from bench.progress import Progress
    from bench.runner import Cell, GridOutcome, Settings
    from bench.user_model import ModelCheck, UserModel

#: Where :func:`benchmark` keeps its run folder by default: ``runs/<model name>``.
DEFAULT_RUNS = Path("runs")


class ModelWarning(UserWarning):
    """The model may make attacks look weaker than they are (see ``bench.user_model.check_model``)."""


class RedFlagWarning(UserWarning):
    """A red flag of gradient masking was raised for a defense (docs/flags_doc.md)."""


def load_dataset(name: str = "digits", seed: int = 0, data_dir: str | Path | None = None) -> Dataset:
    """The dataset ``name`` split exactly as the suite splits it for ``seed``: train your model on it.

    Train on ``x_train``/``y_train``, choose epochs and hyper-parameters on
    ``x_val``/``y_val``, and leave ``x_test``/``y_test`` alone: the cells of
    :func:`benchmark` and ``bench run`` attack images drawn from the test
    split.  (scikit-learn's ``load_digits`` holds all 1,797 digits: a model
    trained on it has seen the suite's test images.)

    Arguments:
        name (str): ``digits`` (scikit-learn's embedded 8×8 digits; the test
            split is a fixed stratified 20%), ``mnist``, ``fashion-mnist``,
            ``cifar10`` (official test splits) or ``npz:PATH`` (your own file:
            ``x_train, y_train, x_test, y_test``). Default: ``"digits"``.
        seed (int): draws the validation split (10% of the training images,
            at most 5,000, stratified); the test split does not depend on it.
            Use the ``seed`` you give :func:`benchmark`. Default: 0.
        data_dir (str | Path | None): where named datasets are looked up or
            downloaded, as ``--data-dir``. Default: the user cache folder.

    Returns:
        bench.datasets.Dataset: float32 images ``N×C×H×W`` in [0, 1]
        (``x_train``, ``x_val``, ``x_test``), int64 labels (``y_train``,
        ``y_val``, ``y_test``), ``classes``, ``input_shape``,
        ``num_classes``, and provenance (``name``, ``source``, ``is_subset``,
        ``fingerprint``).

    Raises:
        BenchError: an unknown name, or a dataset that cannot be found or read.

    Example::

        data = bench.load_dataset("digits")
        data.x_train.shape, data.x_val.shape, data.x_test.shape   # (1293, 1, 8, 8) (144, ...) (360, ...)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)),
            batch_size=64, shuffle=True)
    """
    from bench.datasets import load_dataset as load

    return load(name, seed, str(data_dir) if data_dir is not None else None)


def report(run_dir: str | Path, *compare: str | Path, out: str | Path = "report.html") -> Path:
    """Write the self-contained HTML report of ``run_dir`` (what ``bench report`` writes) and
    return its path.

    Arguments:
        run_dir (str | Path): a run folder (``bench run --out``, or the
            ``out_dir`` of :func:`benchmark`: ``table.attrs["out_dir"]``).
        *compare (str | Path): more run folders, compared side by side with the first.
        out (str | Path): the HTML file to write. Default: ``"report.html"``.

    Returns:
        pathlib.Path: ``out``.

    Example::

        table = bench.benchmark(net, dataset="digits")
        bench.report(table.attrs["out_dir"], out="net.html")
    """
    from reports.html import write_report  # matplotlib/seaborn load only when a report is made

    return Path(write_report([Path(run_dir), *map(Path, compare)], Path(out)))


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What :func:`run` did: ``table`` (the rows of the asked-for cells), the grid's and the
    sanity cells' :class:`~bench.runner.GridOutcome`, the sanity cells, and the red flags
    (``bench.flags.FLAG_COLUMNS``; None when flags were off); ``summary``, the worst case per
    image of the run folder (``bench.worst_case.SUMMARY_COLUMNS``, as in ``OUT/summary.csv``);
    ``model_checks``, the user's model's check on each dataset (``bench.user_model.ModelCheck``)."""

    table: pd.DataFrame
    grid: GridOutcome
    sanity: GridOutcome | None
    checks: list
    flags: pd.DataFrame | None
    summary: pd.DataFrame | None = None
    model_checks: tuple[ModelCheck, ...] = ()


def run(spec: GridSpec, settings: Settings, *, flags: bool = True, resume: bool = True,
        display: Progress | None = None,
        on_model_check: Callable[[ModelCheck], None] | None = None) -> RunOutcome:
    """What ``bench run`` and :func:`benchmark` do: the spec's cells (``bench.runner.make_grid``),
    the user's model checked on each dataset (each check handed to ``on_model_check`` before
    any attack runs; a mismatch raises :class:`BenchError`), then the cells run into
    ``settings.out_dir`` (``bench.runner.run_grid``) and, with ``flags``, their sanity cells into
    ``OUT/sanity``, the model probes (``OUT/sanity/probes.csv``) and the red flags of
    ``bench.flags``; one progress display shows both.  Writes ``OUT/flags.csv`` (with ``flags``)
    and ``OUT/summary.csv`` (the worst case per image, ``bench.worst_case``) for the whole run
    folder.

    Sanity cells come after the grid because ``bench.flags.sanity_cells``
    skips defenses the grid's own white-box attacks already break.  They run
    in this process, one after the other: in-process Dask workers are threads
    sharing one model, and two gradient attacks on one torch module at once
    race on its parameters' gradients.
    """
    from bench.progress import Progress
    from bench.runner import make_grid

    cells = make_grid(spec, settings.data_dir)
    model_checks = tuple(_check_user_model(spec, settings))
    for check in model_checks if on_model_check else ():
        on_model_check(check)
    own = display is None
    display = Progress(settings.progress) if display is None else display
    try:
        outcome = _run_and_check(cells, settings, flags, resume, display)
    finally:
        if own:
            display.close()
    return dataclasses.replace(outcome, model_checks=model_checks)


def _run_and_check(cells: list[Cell], settings: Settings, flags: bool, resume: bool,
                   display: Progress) -> RunOutcome:
    """The grid, then (with ``flags``) the sanity cells, probes and red flags; the verdict files."""
    from bench.flags import SANITY_DIR, red_flags, sanity_cells, write_probes
    from bench.runner import run_grid
    from bench.verdict import probe_defenses, save_verdict

    grid = run_grid(cells, settings, resume=resume, display=display)
    keys = {cell.key for cell in cells}
    table = grid.table[grid.table["cell_key"].isin(keys)].reset_index(drop=True)
    checks, sanity, found = [], None, None
    if flags:
        checks = sanity_cells(cells, table)
        serial = dataclasses.replace(settings, out_dir=Path(settings.out_dir) / SANITY_DIR, jobs=1,
                                     backend="loky")
        sanity = run_grid(checks, serial, resume=resume, display=display, label="sanity cells")
        write_probes(probe_defenses(cells, settings), settings.out_dir)
        found = red_flags(table, settings.out_dir)
    worst = save_verdict(settings.out_dir, flags)  # OUT/flags.csv, OUT/summary.csv
    return RunOutcome(table, grid, sanity, checks, found, worst)


def _check_user_model(spec: GridSpec, settings: Settings) -> list[ModelCheck]:
    """The spec's user model checked on each dataset (none without one), loaded as the runner
    will and evaluated on the test images its cells attack (``bench.user_model.check_model``)."""
    if spec.user_model is None:
        return []
    from bench.datasets import load_dataset as load
    from bench.devices import resolve_device
    from bench.runner import eval_indices, trained_model
    from bench.user_model import as_defense, check_model

    device = resolve_device(settings.device)
    checks = []
    for name in spec.datasets:
        data = load(name, spec.seed, settings.data_dir)
        model = trained_model(data, as_defense(spec.user_model), {}, spec.seed, device, settings.cache, False).module
        idx = eval_indices(data.n_test, spec.samples, spec.seed)
        checks.append(check_model(model, data, idx, device, spec.user_model.name,
                                  gradients="whitebox" in spec.threat_models))
    return checks


def benchmark(model: nn.Module | str, *, weights: str | Path | None = None, name: str | None = None,
              dataset: str | Sequence[str] = "digits", defenses: str | Sequence[str] = (),
              attacks: str | Sequence[str] = DEFAULT_ATTACKS,
              threat_models: str | Sequence[str] = DEFAULT_THREAT_MODELS,
              eps: float | Sequence[float] | None = None, eps_sweep: bool = False, n_examples: int = 200,
              seed: int = 0, device: str = "auto", out_dir: str | Path | None = None,
              data_dir: str | Path | None = None, cache_dir: str | Path | None = None, flags: bool = True,
              fresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Benchmark ``model`` against attacks, check for red flags, and return one results row per cell.

    The model is checked first on each dataset (it must take ``N×C×H×W``
    float images in [0, 1] and return ``N×num_classes`` logits; its clean
    accuracy on the evaluated images is printed; probability outputs,
    randomized outputs and zero input gradients raise a :class:`ModelWarning`),
    then crossed with every attack, threat model and ε like a defense named
    ``name``.  Under ``transfer`` the adversarial examples are crafted on the
    suite's undefended ``none`` model of that dataset and seed (trained and
    cached on first use); under ``blackbox`` query attacks see only the
    model's decisions.  An attack runs only under the threat models it
    supports (gradient attacks: ``whitebox``, ``transfer``; query attacks:
    ``blackbox``); the other combinations are skipped.  Adversarial examples
    and the model are cached, so a second call with the same model and
    settings attacks nothing again.

    Train the model on ``bench.load_dataset(dataset, seed).x_train`` (the
    suite's own split), never on images of its test split.

    Arguments:
        model (nn.Module | str): the model to evaluate, in eval mode as given;
            or a TorchScript archive path, or ``"package.module:callable"`` /
            ``"path/file.py:callable"`` returning an ``nn.Module``. An
            ``nn.Module`` object runs only in this process (it cannot be sent
            to worker processes); save it with ``torch.jit.save`` to use
            ``bench run --jobs``.
        weights (str | Path | None): a state dict for a path or callable
            ``model``, read with ``torch.load(weights_only=True)`` and loaded
            with ``strict=True``. Default: None.
        name (str | None): the defense name in the results. Default: the
            module's class name, the file stem or the callable's name.
        dataset (str | list[str]): ``digits``, ``mnist``, ``fashion-mnist``,
            ``cifar10`` or ``npz:PATH``. Default: ``"digits"``.
        defenses (str | list[str]): built-in defenses to run beside the model
            (e.g. ``"none"``; see ``bench list``). Default: none.
        attacks (str | list[str]): attack names (see ``bench list``);
            ``strong`` is the AutoAttack-strength white-box set (APGD-CE,
            APGD-T, Square on the scores). Default: ``fgsm, bim, deepfool,
            jsma, pgd, strong``.
        threat_models (str | list[str]): ``whitebox``, ``transfer`` and/or
            ``blackbox``. Default: ``whitebox, transfer``.
        eps (float | list[float] | None): L∞ budgets of bounded attacks on
            [0, 1] pixel scale. Default: the dataset's standard budget.
        eps_sweep (bool): every attack over its dataset's budget grid, as
            ``bench run --eps-sweep``. Default: False.
        n_examples (int): test images attacked per cell, drawn by ``seed``,
            the same for every cell. Default: 200.
        seed (int): seed of the split, the images drawn and the attacks. Default: 0.
        device (str): ``auto`` (CUDA when available), ``cpu`` or ``cuda``. Default: ``"auto"``.
        out_dir (str | Path | None): the run folder, kept after the call:
            ``results.csv``, per-cell files, ``sanity/`` and everything
            :func:`report` needs; finished cells there are reused. Default:
            ``runs/<name>`` under the current folder.
        data_dir, cache_dir (str | Path | None): as ``--data-dir`` and ``--cache-dir``.
        flags (bool): the red flags of gradient masking, as ``bench run
            --flags`` (docs/flags_doc.md): sanity cells for defenses the
            grid's white-box attacks leave standing, then the checks; each
            raised flag is a :class:`RedFlagWarning`. Default: True.
        fresh (bool): recompute cells already finished in ``out_dir``
            (caches still used), as ``--fresh``. Default: False.
        progress (bool): the progress display (one line redrawn on a
            terminal, a line per cell otherwise) and the model-check line. Default: True.

    Returns:
        pandas.DataFrame: one row per cell of this call, with the columns of
        ``results.csv`` (``clean_accuracy``, ``robust_accuracy``,
        ``attack_success_rate``, ``defense_rate``, norms, provenance).  The
        model's rows record its spec and content hash in ``defense_options``.
        ``table.attrs`` holds ``out_dir`` (the run folder, for
        :func:`report`), ``flags`` (the red flags raised, as a list of dicts
        with ``dataset``, ``defense``, ``flag``, ``evidence``, ``cells``; None
        with ``flags=False``; also in ``out_dir/flags.csv``), ``worst_case``
        (the worst case per image over the attacks, one dict per defense ×
        norm × ε × scope, as ``out_dir/summary.csv``; see
        ``bench.worst_case``) and ``skipped`` (attack -> the chosen threat
        models it does not run under).

    Raises:
        BenchError: a name, file, import, weights file or model that does not
            fit the dataset, with a one-line message saying what was expected.

    Example::

        table = bench.benchmark(my_net.eval(), dataset="digits", attacks=["fgsm", "pgd"], defenses="none")
        table[["defense", "attack", "threat_model", "clean_accuracy", "robust_accuracy"]]
        bench.report(table.attrs["out_dir"], out="my_net.html")
    """
    from bench.runner import Settings

    user = _user_model(model, weights, name)
    spec = GridSpec(datasets=dataset, defenses=defenses, attacks=attacks, threat_models=threat_models, eps=eps,
                    eps_sweep=eps_sweep, samples=n_examples, seed=seed, user_model=user)
    folder = Path(out_dir) if out_dir is not None else DEFAULT_RUNS / user.name
    settings = Settings(out_dir=folder, device=device, data_dir=str(data_dir) if data_dir else None,
                        cache_dir=str(cache_dir) if cache_dir else None, progress=progress)
    outcome = run(spec, settings, flags=flags, resume=not fresh,
                  on_model_check=functools.partial(_announce, progress=progress))
    for flag in () if outcome.flags is None else outcome.flags.itertuples():
        warnings.warn(f"{flag.dataset}/{flag.defense}: {flag.flag}: {flag.evidence}", RedFlagWarning,
                      stacklevel=2)
    table = outcome.table
    flagged = None if outcome.flags is None else outcome.flags.to_dict("records")
    worst = None if outcome.summary is None else outcome.summary.to_dict("records")
    table.attrs.update(out_dir=folder, flags=flagged, skipped=spec.skipped(), worst_case=worst)
    return table


def _user_model(model: nn.Module | str | Path, weights: str | Path | None, name: str | None) -> UserModel:
    """What identifies :func:`benchmark`'s ``model`` (a module in this process, or a path or import spec)."""
    from torch import nn

    from bench.errors import BenchError
    from bench.user_model import in_memory, resolve

    if isinstance(model, nn.Module):
        if weights is not None:
            raise BenchError("weights= goes with a model path or import spec; load them into the "
                             "nn.Module yourself (module.load_state_dict)")
        return in_memory(model, name)
    if isinstance(model, (str, Path)):
        return resolve(str(model), weights, name)
    raise BenchError(f"model must be a torch.nn.Module, a TorchScript path or 'package.module:callable', "
                     f"got a {type(model).__name__}")


def _announce(check: ModelCheck, progress: bool) -> None:
    """A model check, before any attack runs: its line (with ``progress``) and its warnings."""
    if progress:
        print(check.summary())
    for message in check.warnings:
        # 4: this function, run(), benchmark(), then the caller's line that the warning names.
        warnings.warn(message, ModelWarning, stacklevel=4)
