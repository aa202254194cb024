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

:func:`run_cells` is what ``bench run`` and :func:`benchmark` share (the grid,
then the sanity cells and red flags); :func:`prepare_user_model` the model's
cells and its checks on every dataset, before any attack runs.

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
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

# torch, pandas and the runner are imported when work starts, not with ``bench``: the CLI reads
# the defaults below for its help text.
if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from bench.datasets import Dataset
    from bench.progress import Progress
    from bench.runner import Cell, GridOutcome, Settings
    from bench.user_model import ModelCheck, UserModel

#: The attacks ``bench run`` and :func:`benchmark` use when none are named; ``strong`` is the
#: AutoAttack-strength white-box set (``attacks.catalog.STRONG``), run under ``whitebox`` only.
DEFAULT_ATTACKS = ("fgsm", "bim", "deepfool", "jsma", "pgd", "strong")
DEFAULT_THREAT_MODELS = ("whitebox", "transfer")
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


def make_cells(datasets: Sequence[str], defenses: Sequence[str], attacks: Sequence[str],
               threat_models: Sequence[str], eps: Sequence[float] = (), samples: int = 200, seed: int = 0,
               defense_options: dict[str, str] | None = None, data_dir: str | None = None,
               eps_sweep: bool = False) -> list[Cell]:
    """``bench.runner.make_grid`` with attack sets expanded (``attacks.catalog.ALIASES``): the
    members of ``strong`` run under ``whitebox`` only, the other attacks under every threat
    model they support; a cell asked for twice is made once."""
    from attacks.catalog import split_aliases
    from bench.errors import BenchError
    from bench.runner import make_grid

    plain, whitebox = split_aliases(list(attacks))
    cells = []
    if plain or not whitebox:
        cells += make_grid(datasets, defenses, plain, threat_models, eps, samples, seed, defense_options,
                           data_dir, eps_sweep)
    if whitebox:
        if "whitebox" not in threat_models:
            raise BenchError("--attack strong is a white-box attack set (apgd-ce, apgd-t, square-scores); "
                             "add whitebox to --threat-model")
        cells += make_grid(datasets, defenses, whitebox, ["whitebox"], eps, samples, seed, defense_options,
                           data_dir, eps_sweep)
    return list({cell.key: cell for cell in cells}.values())


def prepare_user_model(user: UserModel, datasets: Sequence[str], attacks: Sequence[str],
                       threat_models: Sequence[str], eps: Sequence[float], samples: int, seed: int,
                       settings: Settings, *, eps_sweep: bool = False) -> tuple[list[Cell], list[ModelCheck]]:
    """The user's model's cells and its check on each dataset (raises :class:`BenchError` on a mismatch).

    The cells are the grid the undefended ``none`` model would get (same
    attacks, threat models, budgets, images and seed), with the user's model in
    its place; under ``transfer`` the runner crafts on the suite's ``none``
    model, as for every defense.  Each check loads the model as the runner
    will and evaluates it on the same test images the cells attack.
    """
    from bench.datasets import load_dataset as load
    from bench.devices import resolve_device
    from bench.runner import eval_indices, trained_model
    from bench.user_model import as_defense, check_model

    grid = make_cells(datasets, ["none"], attacks, threat_models, eps, samples, seed, None, settings.data_dir,
                      eps_sweep)
    cells = [dataclasses.replace(cell, defense=user.name, user_model=user) for cell in grid]
    device = resolve_device(settings.device)
    whitebox = "whitebox" in threat_models
    checks = []
    for name in datasets:
        data = load(name, seed, settings.data_dir)
        model = trained_model(data, as_defense(user), {}, seed, device, settings.cache, False).module
        idx = eval_indices(data.n_test, samples, seed)
        checks.append(check_model(model, data, idx, device, user.name, gradients=whitebox))
    return cells, checks


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_cells` did: ``table`` (the rows of the asked-for cells), the grid's and the
    sanity cells' :class:`~bench.runner.GridOutcome`, the sanity cells, and the red flags
    (``bench.flags.FLAG_COLUMNS``; None when flags were off); ``summary``, the worst case per
    image of the run folder (``bench.worst_case.SUMMARY_COLUMNS``, as in ``OUT/summary.csv``)."""

    table: pd.DataFrame
    grid: GridOutcome
    sanity: GridOutcome | None
    checks: list
    flags: pd.DataFrame | None
    summary: pd.DataFrame | None = None


def run_cells(cells: Sequence[Cell], settings: Settings, *, flags: bool = True, resume: bool = True,
              display: Progress | None = None) -> RunOutcome:
    """Run ``cells``, then (with ``flags``) their sanity cells into ``OUT/sanity``, the model
    probes (``OUT/sanity/probes.csv``) and the red flags of ``bench.flags``; one progress
    display shows both.  Writes ``OUT/flags.csv`` (with ``flags``) and ``OUT/summary.csv``
    (the worst case per image, ``bench.worst_case``) for the whole run folder.

    Sanity cells come after the grid because ``bench.flags.sanity_cells``
    skips defenses the grid's own white-box attacks already break.  They run
    in this process, one after the other: in-process Dask workers are threads
    sharing one model, and two gradient attacks on one torch module at once
    race on its parameters' gradients.
    """
    from bench.flags import SANITY_DIR, red_flags, sanity_cells, write_probes
    from bench.progress import Progress
    from bench.verdict import probe_defenses, save_verdict
    from bench.runner import run_grid

    cells = list(cells)
    own = display is None
    display = Progress(settings.progress) if display is None else display
    try:
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
    finally:
        if own:
            display.close()
    return RunOutcome(table, grid, sanity, checks, found, worst)


def _names(value: str | Sequence[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    return list(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def _budgets(eps: float | Sequence[float] | None) -> list[float]:
    if eps is None:
        return []
    return [float(eps)] if isinstance(eps, (int, float)) else [float(value) for value in eps]


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
    from torch import nn

    from attacks import unsupported
    from bench.errors import BenchError
    from bench.runner import Settings, make_grid
    from bench.user_model import in_memory, resolve

    if isinstance(model, nn.Module):
        if weights is not None:
            raise BenchError("weights= goes with a model path or import spec; load them into the "
                             "nn.Module yourself (module.load_state_dict)")
        user = in_memory(model, name)
    elif isinstance(model, (str, Path)):
        user = resolve(str(model), weights, name)
    else:
        raise BenchError(f"model must be a torch.nn.Module, a TorchScript path or 'package.module:callable', "
                         f"got a {type(model).__name__}")
    datasets, threats, attack_names = _names(dataset), _names(threat_models), _names(attacks)
    folder = Path(out_dir) if out_dir is not None else DEFAULT_RUNS / user.name
    settings = Settings(out_dir=folder, device=device, data_dir=str(data_dir) if data_dir else None,
                        cache_dir=str(cache_dir) if cache_dir else None, progress=progress)
    cells = make_cells(datasets, _names(defenses), attack_names, threats, _budgets(eps), n_examples, seed,
                       None, settings.data_dir, eps_sweep)
    user_cells, checks = prepare_user_model(user, datasets, attack_names, threats, _budgets(eps),
                                            n_examples, seed, settings, eps_sweep=eps_sweep)
    for check in checks:
        if progress:
            print(check.summary())
        for message in check.warnings:
            warnings.warn(message, ModelWarning, stacklevel=2)
    outcome = run_cells([*cells, *user_cells], settings, flags=flags, resume=not fresh)
    for flag in () if outcome.flags is None else outcome.flags.itertuples():
        warnings.warn(f"{flag.dataset}/{flag.defense}: {flag.flag}: {flag.evidence}", RedFlagWarning,
                      stacklevel=2)
    table = outcome.table
    flagged = None if outcome.flags is None else outcome.flags.to_dict("records")
    worst = None if outcome.summary is None else outcome.summary.to_dict("records")
    table.attrs.update(out_dir=folder, flags=flagged, skipped=unsupported(attack_names, threats), worst_case=worst)
    return table
