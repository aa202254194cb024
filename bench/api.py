"""The Python entry point: benchmark your own model and get the results table back.

:func:`benchmark` is what ``bench run --model`` does, for notebooks: it checks
the model against the dataset, crosses it with the attacks and threat models
(beside any built-in defenses you name), runs the cells through the same
runner and caches, and returns the rows as a DataFrame with the columns of
``results.csv`` (see ``bench.results.COLUMNS``).

:func:`prepare_user_model` is the part the CLI shares: the model's cells and
its checks on every dataset, before any attack runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import pandas as pd
from torch import nn

from attacks import ThreatModel
from bench.devices import resolve_device
from bench.datasets import load_dataset
from bench.errors import BenchError
from bench.runner import Cell, Settings, eval_indices, make_grid, run_grid, trained_model
from bench.user_model import ModelCheck, UserModel, as_defense, check_model, in_memory, resolve

#: The attacks ``bench run`` and :func:`benchmark` use when none are named.
DEFAULT_ATTACKS = ("fgsm", "bim", "deepfool", "jsma", "pgd")
DEFAULT_THREAT_MODELS = (ThreatModel.WHITEBOX.value, ThreatModel.TRANSFER.value)


class ModelWarning(UserWarning):
    """The model may make attacks look weaker than they are (see ``bench.user_model.check_model``)."""


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
    grid = make_grid(datasets, ["none"], attacks, threat_models, eps, samples, seed, None, settings.data_dir,
                     eps_sweep)
    cells = [dataclasses.replace(cell, defense=user.name, user_model=user) for cell in grid]
    device = resolve_device(settings.device)
    whitebox = ThreatModel.WHITEBOX.value in threat_models
    checks = []
    for name in datasets:
        data = load_dataset(name, seed, settings.data_dir)
        model = trained_model(data, as_defense(user), {}, seed, device, settings.cache, False).module
        idx = eval_indices(data.n_test, samples, seed)
        checks.append(check_model(model, data, idx, device, user.name, gradients=whitebox))
    return cells, checks


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
              seed: int = 0,
              device: str = "auto", out_dir: str | Path | None = None, data_dir: str | Path | None = None,
              cache_dir: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Benchmark ``model`` against attacks and return one results row per cell.

    The model is checked first on each dataset (it must take ``N×C×H×W``
    float images in [0, 1] and return ``N×num_classes`` logits; its clean
    accuracy on the evaluated images is printed; probability outputs,
    randomized outputs and zero input gradients raise a :class:`ModelWarning`),
    then crossed with every attack, threat model and ε like a defense named
    ``name``.  Under ``transfer`` the adversarial examples are crafted on the
    suite's undefended ``none`` model of that dataset and seed (trained and
    cached on first use).  Adversarial examples and the model are cached, so a
    second call with the same model and settings attacks nothing again.

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
            (e.g. ``"none"``). Default: none.
        attacks (str | list[str]): attack names (see ``bench list``).
            Default: ``fgsm, bim, deepfool, jsma, pgd``.
        threat_models (str | list[str]): ``whitebox`` and/or ``transfer``.
            Default: both.
        eps (float | list[float] | None): L∞ budgets of bounded attacks on
            [0, 1] pixel scale. Default: the dataset's standard budget.
        eps_sweep (bool): every attack over its dataset's budget grid, as
            ``bench run --eps-sweep``. Default: False.
        n_examples (int): test images attacked per cell, drawn by ``seed``,
            the same for every cell. Default: 200.
        seed (int): seed of the split, the images drawn and the attacks. Default: 0.
        device (str): ``auto`` (CUDA when available), ``cpu`` or ``cuda``. Default: ``"auto"``.
        out_dir (str | Path | None): run folder to keep ``results.csv`` and
            per-cell files in (finished cells there are reused). Default: a
            temporary folder, removed on return.
        data_dir, cache_dir (str | Path | None): as ``--data-dir`` and ``--cache-dir``.
        progress (bool): progress bars and the model-check line. Default: True.

    Returns:
        pandas.DataFrame: one row per cell of this call, with the columns of
        ``results.csv`` (``clean_accuracy``, ``robust_accuracy``,
        ``attack_success_rate``, ``defense_rate``, norms, provenance).  The
        model's rows record its spec and content hash in ``defense_options``.

    Raises:
        BenchError: a name, file, import, weights file or model that does not
            fit the dataset, with a one-line message saying what was expected.

    Example::

        table = bench.benchmark(my_net.eval(), dataset="digits", attacks=["fgsm", "pgd"], defenses="none")
        table[["defense", "attack", "threat_model", "clean_accuracy", "robust_accuracy"]]
    """
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
    with contextlib.ExitStack() as stack:
        folder = Path(out_dir) if out_dir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        settings = Settings(out_dir=folder, device=device, data_dir=str(data_dir) if data_dir else None,
                            cache_dir=str(cache_dir) if cache_dir else None, progress=progress)
        cells = make_grid(datasets, _names(defenses), attack_names, threats, _budgets(eps), n_examples, seed,
                          None, settings.data_dir, eps_sweep)
        user_cells, checks = prepare_user_model(user, datasets, attack_names, threats, _budgets(eps),
                                                n_examples, seed, settings, eps_sweep=eps_sweep)
        for check in checks:
            if progress:
                print(check.summary())
            for message in check.warnings:
                warnings.warn(message, ModelWarning, stacklevel=2)
        cells += user_cells
        table = run_grid(cells, settings).table
        keys = {cell.key for cell in cells}
        return table[table["cell_key"].isin(keys)].reset_index(drop=True)
