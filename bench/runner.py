"""The runner: a grid of cells, each dataset -> model -> defense -> attack -> metrics -> row.

A :class:`Cell` is the configuration of one result row (dataset, defense and
its options, attack, threat model, ε, number of evaluated images, seed); its
hash names the row in the results store and lets an interrupted run resume.
Trained models and adversarial examples are cached by content (see
``bench.cache``), so cells share them and a second run retrains nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import datetime as dt
import itertools
import json
import time
from pathlib import Path
from typing import Iterable, Sequence

import art
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

import bench
import bench.models
from attacks import AttackSpec, ThreatModel, get_attack, threat_model
from attacks.art_adapter import art_classifier, run_attack
from attacks.catalog import default_params
from bench.cache import Cache, array_fingerprint, config_hash, default_cache_dir
from bench.datasets import Dataset, load_dataset, validate_dataset_name
from bench.devices import describe, resolve_device
from bench.errors import BenchError
from bench.metrics import perturbation_norms, summarize
from bench.models import classify, logits_of
from bench.results import ResultsStore
from defenses import Defense, FitContext, get_defense

GALLERY_IMAGES = 8


@dataclasses.dataclass(frozen=True)
class Cell:
    """One result row's configuration. ``eps=None`` means the dataset's default budget
    (bounded attacks) or no budget (minimal-perturbation attacks)."""

    dataset: str
    defense: str
    attack: str
    threat_model: ThreatModel
    eps: float | None = None
    samples: int = 200
    seed: int = 0
    defense_options: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return config_hash("cell", self)

    def label(self) -> str:
        eps = "" if self.eps is None else f" eps={self.eps:g}"
        return f"{self.dataset}/{self.defense}/{self.attack}/{self.threat_model.value}{eps}"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How to run (not what): these never change a result, so they are not in a cell's key."""

    out_dir: Path = Path("runs/default")
    device: str = "auto"
    data_dir: str | None = None
    cache_dir: str | None = None
    progress: bool = True

    @property
    def cache(self) -> Cache:
        return Cache(Path(self.cache_dir) if self.cache_dir else default_cache_dir())


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    module: nn.Module
    key: str
    defense: str
    options: dict
    cached: bool


def make_grid(datasets: Sequence[str], defenses: Sequence[str], attacks: Sequence[str],
              threat_models: Sequence[str], eps: Sequence[float] = (), samples: int = 200,
              seed: int = 0, defense_options: dict[str, str] | None = None,
              data_dir: str | None = None) -> list[Cell]:
    """Cross the choices into cells, validating every name and option first.

    ``defense_options`` maps ``KEY`` (every selected defense that has that
    option) or ``DEFENSE:KEY`` (that defense only) to a value.  Minimal-
    perturbation attacks ignore ``eps`` and give one cell; an attack is crossed
    only with the threat models it supports.
    """
    for name in datasets:
        validate_dataset_name(name)
    for name in defenses:
        get_defense(name)
    specs = [get_attack(name) for name in attacks]
    threats = [threat_model(name) for name in threat_models]
    for value in eps:
        if not 0 < value <= 1:
            raise BenchError(f"--eps {value} is outside (0, 1]: images are on [0, 1] pixel scale")
    if samples < 1:
        raise BenchError(f"--samples must be at least 1, got {samples}")
    overrides = dict(defense_options or {})
    options = {(dataset, defense): _options_for(get_defense(defense), load_dataset(dataset, seed, data_dir),
                                                overrides)
               for dataset, defense in itertools.product(datasets, defenses)}
    used = {key for chosen in options.values() for key, _ in chosen}
    unused = [key for key in overrides if (":" not in key and key not in used)
              or (":" in key and key.rpartition(":")[0] not in defenses)]
    if unused:
        raise BenchError(f"no selected defense has option {unused[0]!r} (defenses: {', '.join(defenses)})")
    cells = []
    for dataset, defense, spec, threat in itertools.product(datasets, defenses, specs, threats):
        if threat not in spec.threat_models:
            continue
        budgets = list(eps) if (spec.bounded and eps) else [None]
        for budget in budgets:
            cells.append(Cell(dataset, defense, spec.name, threat, budget, samples, seed,
                              options[dataset, defense]))
    return cells


def _options_for(defense: Defense, data: Dataset, overrides: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The overrides that apply to ``defense`` (validated against its options)."""
    names = defense.defaults(data)
    chosen = {}
    for key, value in overrides.items():
        scope, _, name = key.rpartition(":")
        if (scope and scope == defense.name) or (not scope and name in names):
            chosen[name] = value
    defense.options(data, chosen)
    return tuple(sorted(chosen.items()))


_LOADED: dict[str, nn.Module] = {}


def trained_model(data: Dataset, defense_name: str, overrides: dict, seed: int,
                  device: torch.device, cache: Cache, progress: bool) -> TrainedModel:
    """The defense's model for ``data`` and ``seed``: from memory, the cache, or trained now."""
    defense = get_defense(defense_name)
    options = defense.options(data, overrides)
    key = config_hash("model", data.fingerprint, defense.name, options, seed, _code_fingerprint(defense))
    if key in _LOADED:
        return TrainedModel(_LOADED[key], key, defense.name, options, True)
    model = defense.build(data, options)
    with cache.lock("models", key):
        state = cache.load_state("models", key)
        if state is not None:
            model.load_state_dict(state)
        else:
            ctx = FitContext(
                seed=seed, device=device, progress=progress,
                undefended=lambda: trained_model(data, "none", {}, seed, device, cache, progress).module,
            )
            defense.fit(model, data, options, ctx)
            cache.save_state("models", key, model.state_dict())
    model.to(device).eval()
    _LOADED[key] = model
    return TrainedModel(model, key, defense.name, options, state is not None)


@functools.lru_cache(maxsize=None)
def _code_fingerprint(defense: Defense) -> str:
    """Hash of the defense's module and the training loop: editing either retrains, never reuses."""
    modules = {inspect.getmodule(defense.build), inspect.getmodule(defense.fit), bench.models}
    sources = sorted(inspect.getsource(module) for module in modules if module is not None)
    return hashlib.sha256("".join(sources).encode()).hexdigest()[:16]


def eval_indices(n_test: int, samples: int, seed: int) -> np.ndarray:
    """The test images a cell evaluates: ``samples`` drawn by ``seed``, the same for every cell."""
    order = np.random.default_rng(seed).permutation(n_test)
    return np.sort(order[: min(samples, n_test)])


def adversarial_examples(spec: AttackSpec, params: dict, source: TrainedModel, data: Dataset,
                         idx: np.ndarray, seed: int, device: torch.device, cache: Cache,
                         progress: bool) -> tuple[np.ndarray, float, bool]:
    """``(x_adv, seconds it took, came from cache)`` for the test images ``idx``."""
    key = config_hash("adv", source.key, spec.name, params, array_fingerprint(idx), seed, art.__version__)
    with cache.lock("adversarial", key):
        stored = cache.load_arrays("adversarial", key)
        if stored is not None:
            return stored["x_adv"], float(stored["seconds"]), True
        estimator = art_classifier(source.module, data.input_shape, data.num_classes, device)
        started = time.perf_counter()
        x_adv = run_attack(spec, params, estimator, data.x_test[idx], data.y_test[idx],
                           seed=seed, device=device, progress=progress)
        seconds = time.perf_counter() - started
        cache.save_arrays("adversarial", key, x_adv=x_adv, seconds=np.float64(seconds))
        return x_adv, seconds, False


def run_cell(cell: Cell, settings: Settings) -> dict:
    """Compute one cell, store it in ``settings.out_dir`` and return its row."""
    device = resolve_device(settings.device)
    cache = settings.cache
    data = load_dataset(cell.dataset, cell.seed, settings.data_dir)
    spec = get_attack(cell.attack)
    params = default_params(spec, data.family, cell.eps)
    defended = trained_model(data, cell.defense, dict(cell.defense_options), cell.seed, device,
                             cache, settings.progress)
    if cell.threat_model is ThreatModel.TRANSFER:
        source = trained_model(data, "none", {}, cell.seed, device, cache, settings.progress)
    else:
        source = defended
    idx = eval_indices(data.n_test, cell.samples, cell.seed)
    x, y = data.x_test[idx], data.y_test[idx]
    x_adv, seconds, adv_cached = adversarial_examples(spec, params, source, data, idx, cell.seed,
                                                      device, cache, settings.progress)
    pred_clean, pred_adv = classify(defended.module, x, device), classify(defended.module, x_adv, device)
    # "Fooled the model it was crafted on" is judged on the logits the attack differentiated.
    source_clean = _argmax(source.module, x, device)
    source_adv = _argmax(source.module, x_adv, device)
    norms = perturbation_norms(x, x_adv)
    row = {
        "dataset": data.name,
        "dataset_source": data.source,
        "dataset_is_subset": data.is_subset,
        "n_train": data.n_train,
        "n_val": data.n_val,
        "n_test": data.n_test,
        "n_eval": len(idx),
        "defense": cell.defense,
        "defense_options": _json(defended.options),
        "attack": spec.name,
        "attack_params": _json(params),
        "norm": spec.norm.value,
        "threat_model": cell.threat_model.value,
        "eps": params.get("eps", float("nan")),
        "source_model": source.defense,
        **summarize(y, pred_clean, pred_adv, source_clean, source_adv, norms),
        "attack_seconds": seconds,
        "model_cached": defended.cached,
        "adv_cached": adv_cached,
        "seed": cell.seed,
        "device": describe(device),
        "suite_version": bench.__version__,
        "torch_version": torch.__version__,
        "art_version": art.__version__,
        "cell_key": cell.key,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    arrays = {
        "index": idx, "y": y, "pred_clean": pred_clean, "pred_adv": pred_adv,
        "source_clean": source_clean, "source_adv": source_adv, **norms,
        "gallery_x": x[:GALLERY_IMAGES], "gallery_x_adv": x_adv[:GALLERY_IMAGES],
    }
    ResultsStore(settings.out_dir).save(row, arrays)
    return row


def _argmax(model: nn.Module, x: np.ndarray, device: torch.device) -> np.ndarray:
    return logits_of(model, x, device).argmax(1).cpu().numpy()


def _json(mapping: dict) -> str:
    return json.dumps(mapping, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class GridOutcome:
    """What ``run_grid`` did: the run folder's table, the rows computed now, and how many
    requested cells were already finished there."""

    table: pd.DataFrame
    computed: list[dict]
    resumed: int


def run_grid(cells: Iterable[Cell], settings: Settings, resume: bool = True) -> GridOutcome:
    """Run every cell not already finished in ``settings.out_dir``."""
    cells = list(cells)
    store = ResultsStore(settings.out_dir)
    todo = [cell for cell in cells if not (resume and store.has(cell.key))]
    computed = []
    bar = tqdm(todo, desc="cells", unit="cell", disable=not settings.progress)
    for cell in bar:
        bar.set_postfix_str(cell.label())
        computed.append(run_cell(cell, settings))
        store.write_csv()
    store.write_csv()
    return GridOutcome(store.frame(), computed, len(cells) - len(todo))
