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
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

import bench
import bench.models
from attacks import AttackSpec, ThreatModel, get_attack, threat_model
from attacks.art_adapter import ART_VERSION, art_classifier, blackbox_classifier, blackbox_output, run_attack
from attacks.catalog import default_params, split_aliases, sweep_budgets
from bench.cache import (Cache, adversarial_claims, array_fingerprint, config_hash, default_cache_dir,
                         ensure_writable)
from bench.flags import MORE_STEPS, more_steps_name
from bench.datasets import Dataset, load_dataset
from bench.devices import describe, resolve_device
from bench.errors import BenchError
from bench.metrics import perturbation_norms, summarize
from bench.provenance import record_invocation
from bench.models import classify, logits_of, seed_everything
from bench.parallel import parallel_map
from bench.progress import Progress
from bench.results import ResultsStore, Row
from bench.spec import UNDEFENDED, GridSpec
from bench.user_model import UserModel, as_defense
from defenses import Defense, FitContext, get_defense

GALLERY_IMAGES = 8


@dataclasses.dataclass(frozen=True)
class Cell:
    """One result row's configuration. ``eps=None`` means the dataset's default budget
    (bounded attacks) or no budget (minimal-perturbation attacks).  ``user_model``
    is set for a user's own model (``--model``), named ``defense`` in the results:
    it carries what any worker process needs to rebuild that model.  A
    minimal-perturbation attack's ``eps`` is the budget (in its own norm) its
    one run is scored at.  ``check`` names a sanity cell the red flags add
    (``bench.flags``): ``large-eps`` or ``more-steps``; empty for asked-for cells."""

    dataset: str
    defense: str
    attack: str
    threat_model: ThreatModel
    eps: float | None = None
    samples: int = 200
    seed: int = 0
    defense_options: tuple[tuple[str, str], ...] = ()
    user_model: UserModel | None = None
    check: str = ""

    @property
    def key(self) -> str:
        # Without a user model or a check, hash exactly the fields cells had before
        # those existed, so existing run folders still resume.
        unset = {"user_model": None, "check": ""}
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if not (f.name in unset and getattr(self, f.name) == unset[f.name])}
        return config_hash("cell", fields)

    def plugin(self) -> str | Defense:
        """What builds this cell's model: a registered defense's name, or the user's model."""
        return as_defense(self.user_model) if self.user_model else self.defense

    def label(self) -> str:
        eps = "" if self.eps is None else f" eps={self.eps:g}"
        check = f" ({self.check})" if self.check else ""
        return f"{self.dataset}/{self.defense}/{self.attack}/{self.threat_model.value}{eps}{check}"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How to run (not what): these never change a result, so they are not in a cell's key."""

    out_dir: Path = Path("runs/default")
    device: str = "auto"
    data_dir: str | None = None
    cache_dir: str | None = None
    progress: bool = True
    jobs: int = 1
    backend: str = "loky"
    scheduler: str | None = None

    @property
    def cache(self) -> Cache:
        return Cache(Path(self.cache_dir) if self.cache_dir else default_cache_dir())


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A trained defense, and what its training cost (``fit`` wall time and device, kept in the
    cache's record so a model served from the cache still reports it; NaN/"" when unknown)."""

    module: nn.Module
    key: str
    defense: str
    options: dict
    cached: bool
    train_seconds: float = float("nan")
    train_device: str = ""


def make_grid(spec: GridSpec, data_dir: str | None = None) -> list[Cell]:
    """The spec's cells, every name and option validated first (one-line :class:`BenchError`).

    Attack sets (``attacks.catalog.ALIASES``: ``strong``) are expanded, their
    members crossed with ``whitebox`` only, the other attacks with every chosen
    threat model they support.  Budgets per attack come from
    ``attacks.catalog.sweep_budgets``: without ``eps`` or ``eps_sweep`` one cell per
    attack; with them, bounded attacks get a cell per budget and minimal-perturbation
    attacks their unbudgeted cell plus one per budget of their norm (scored from one
    run).  The user's model, if any, gets the cells the undefended model would,
    with itself in its place.  A cell asked for twice is made once.
    """
    spec.check(get_defense)
    data = {dataset: load_dataset(dataset, spec.seed, data_dir) for dataset in spec.datasets}
    options = _defense_options(spec, data)
    cells = [Cell(dataset, defense, attack, threat, eps, spec.samples, spec.seed, options[dataset, defense])
             for dataset, defense, attack, threat, eps in _crossed(spec, spec.defenses, data)]
    if spec.user_model is not None:
        user = spec.user_model
        cells += [Cell(dataset, user.name, attack, threat, eps, spec.samples, spec.seed, user_model=user)
                  for dataset, _, attack, threat, eps in _crossed(spec, (UNDEFENDED,), data)]
    return list({cell.key: cell for cell in cells}.values())


def _crossed(spec: GridSpec, defenses: Sequence[str], data: dict[str, Dataset]
             ) -> Iterator[tuple[str, str, str, ThreatModel, float | None]]:
    """``(dataset, defense, attack, threat model, budget)`` of each cell: the named attacks under
    the chosen threat models they support, then the members of attack sets under ``whitebox``."""
    plain, whitebox = split_aliases(list(spec.attacks))
    for attacks, threats in ((plain, spec.threat_models), (whitebox, (ThreatModel.WHITEBOX.value,))):
        for dataset, defense, name, threat in itertools.product(spec.datasets, defenses, attacks, threats):
            attack, threat = get_attack(name), threat_model(threat)
            if threat in attack.threat_models:
                for eps in sweep_budgets(attack, data[dataset].family, list(spec.eps), spec.eps_sweep):
                    yield dataset, defense, attack.name, threat, eps


def _defense_options(spec: GridSpec, data: dict[str, Dataset]) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """(dataset, defense) -> the spec's ``defense_options`` that apply (each validated); an
    option no selected defense has is a :class:`BenchError`."""
    overrides = dict(spec.defense_options)
    options = {(dataset, defense): _options_for(get_defense(defense), data[dataset], overrides)
               for dataset, defense in itertools.product(spec.datasets, spec.defenses)}
    used = {key for chosen in options.values() for key, _ in chosen}
    unused = [key for key in overrides if (":" not in key and key not in used)
              or (":" in key and key.rpartition(":")[0] not in spec.defenses)]
    if unused:
        raise BenchError(f"no selected defense has option {unused[0]!r} (defenses: {', '.join(spec.defenses)})")
    return options


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


_LOADED: dict[str, TrainedModel] = {}


def trained_model(data: Dataset, defense: str | Defense, overrides: dict, seed: int,
                  device: torch.device, cache: Cache, progress: bool) -> TrainedModel:
    """The defense's model (a registered name, or a :class:`Defense` such as a user's model)
    for ``data`` and ``seed``: from memory, the cache, or trained now."""
    defense = get_defense(defense) if isinstance(defense, str) else defense
    options = defense.options(data, overrides)
    key = config_hash("model", data.fingerprint, defense.name, options, seed, _code_fingerprint(defense))
    if key in _LOADED:
        return dataclasses.replace(_LOADED[key], cached=True)
    seed_everything(seed)  # weight initialisation must not depend on what ran before
    model = defense.build(data, options)
    with cache.lock("models", key):
        # A damaged entry (checksum, unreadable, NaN or zeroed weights, not this model's tensors) is
        # reported, deleted and retrained; the model is untouched until the state is verified.
        state = cache.load_state("models", key, check=functools.partial(_state_mismatch, model))
        if state is not None:
            model.load_state_dict(state)
            record = cache.load_record("models", key)
        else:
            elsewhere = []  # time spent training the undefended model a fit starts from: its own cost

            def undefended() -> nn.Module:
                started = time.perf_counter()
                module = trained_model(data, UNDEFENDED, {}, seed, device, cache, progress).module
                elsewhere.append(time.perf_counter() - started)
                return module

            ctx = FitContext(seed=seed, device=device, progress=progress, undefended=undefended)
            started = time.perf_counter()
            defense.fit(model, data, options, ctx)
            seconds = time.perf_counter() - started - sum(elsewhere)
            record = {"train_seconds": seconds, "train_device": describe(device)}
            cache.save_state("models", key, model.state_dict(), record)
    model.to(device).eval()
    trained = TrainedModel(model, key, defense.name, options, state is not None,
                           float(record.get("train_seconds", float("nan"))), record.get("train_device", ""))
    _LOADED[key] = trained
    return trained


def _state_mismatch(model: nn.Module, state: dict) -> str | None:
    """Why ``state`` cannot be ``model``'s (other tensor names or shapes), or None."""
    expected = model.state_dict()
    if expected.keys() != state.keys():
        return "its tensors are not this model's"
    for name, tensor in expected.items():
        if tuple(tensor.shape) != tuple(state[name].shape):
            return f"{name} has shape {tuple(state[name].shape)}, the model's is {tuple(tensor.shape)}"
    return None


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
                         progress: bool, blackbox: bool = False) -> tuple[np.ndarray, float, bool, int]:
    """``(x_adv, seconds it took, came from cache, model queries)`` for the test images ``idx``.

    ``blackbox`` attacks query ``source`` through ``attacks.art_adapter.blackbox_classifier``
    (and count the images queried); the others get its gradients.  Queries are 0 for those.
    """
    view = ("blackbox", blackbox_output(source.module)) if blackbox else ()
    # The suite's own attack classes add their implementation version (none for ART's: old keys hold).
    implementation = (spec.implementation,) if getattr(spec, "implementation", "") else ()
    key = config_hash("adv", source.key, spec.name, params, array_fingerprint(idx), seed, ART_VERSION,
                      *view, *implementation)
    with cache.lock("adversarial", key):
        # What the entry must satisfy whatever its checksum says: x_adv of the clean images' shape,
        # finite, in [0, 1] and, for L∞-bounded attacks, inside the ε ball around them.
        linf = params.get("eps") if spec.bounded and spec.norm.value == "linf" else None
        claims = adversarial_claims(data.x_test[idx], linf)
        stored = cache.load_arrays("adversarial", key, claims=claims, reference=data.x_test[idx])
        if stored is not None:
            return stored["x_adv"], float(stored["seconds"]), True, int(stored.get("queries", 0))
        if blackbox:
            estimator, counter = blackbox_classifier(source.module, data.input_shape, data.num_classes, device)
        else:
            estimator, counter = art_classifier(source.module, data.input_shape, data.num_classes, device), None
        started = time.perf_counter()
        x_adv = run_attack(spec, params, estimator, data.x_test[idx], data.y_test[idx],
                           seed=seed, device=device, progress=progress)
        seconds = time.perf_counter() - started
        queries = counter.images if counter else 0
        cache.save_arrays("adversarial", key, claims=claims, x_adv=x_adv, seconds=np.float64(seconds),
                          queries=np.int64(queries))
        return x_adv, seconds, False, queries


@dataclasses.dataclass(frozen=True)
class Crafted:
    """A cell's adversarial examples and what made them: what :func:`score` needs."""

    data: Dataset
    attack: AttackSpec
    params: dict
    defended: TrainedModel
    #: The model the examples were crafted on: ``defended``, or the undefended model under transfer.
    source: TrainedModel
    #: The evaluated test images (``eval_indices``), and their adversarial examples within the
    #: cell's budget (a minimal attack's beyond it are replaced by the clean image).
    idx: np.ndarray
    x_adv: np.ndarray
    seconds: float
    cached: bool
    queries: int
    device: torch.device

    @property
    def x(self) -> np.ndarray:
        return self.data.x_test[self.idx]

    @property
    def y(self) -> np.ndarray:
        return self.data.y_test[self.idx]


def craft(cell: Cell, settings: Settings) -> Crafted:
    """The cell's models (trained or cached) and adversarial examples (crafted or cached)."""
    device = resolve_device(settings.device)
    cache = settings.cache
    data = load_dataset(cell.dataset, cell.seed, settings.data_dir)
    spec = get_attack(cell.attack)
    # A minimal-perturbation attack runs without a budget; cell.eps only scores it (below).
    params = default_params(spec, data.family, cell.eps if spec.bounded else None)
    if cell.check == "more-steps":
        params = default_params(spec, data.family, cell.eps, max_iter=MORE_STEPS * params["max_iter"])
    defended = trained_model(data, cell.plugin(), dict(cell.defense_options), cell.seed, device,
                             cache, settings.progress)
    if cell.threat_model is ThreatModel.TRANSFER:
        source = trained_model(data, UNDEFENDED, {}, cell.seed, device, cache, settings.progress)
    else:
        source = defended
    idx = eval_indices(data.n_test, cell.samples, cell.seed)
    # ART's own progress bars stay off: the run shows one display of its own (bench.progress).
    x_adv, seconds, cached, queries = adversarial_examples(spec, params, source, data, idx, cell.seed, device,
                                                           cache, False, cell.threat_model is ThreatModel.BLACKBOX)
    x = data.x_test[idx]
    if not spec.bounded and cell.eps is not None:
        # Within the budget an adversarial image counts; beyond it the clean image is scored.
        within = perturbation_norms(x, x_adv)[spec.norm.value] <= cell.eps + 1e-6
        x_adv = np.where(within.reshape(-1, *([1] * (x.ndim - 1))), x_adv, x)
    return Crafted(data, spec, params, defended, source, idx, x_adv, seconds, cached, queries, device)


def score(cell: Cell, crafted: Crafted) -> tuple[Row, dict[str, np.ndarray]]:
    """The cell's results row and per-image arrays: the defense's decisions on the clean and
    adversarial images, and whether the examples fooled the model they were crafted on."""
    x, y, x_adv, device, defended = crafted.x, crafted.y, crafted.x_adv, crafted.device, crafted.defended.module
    pred_clean, pred_adv = classify(defended, x, device), classify(defended, x_adv, device)
    forward_clean = _argmax(defended, x, device)  # (a randomized defense: calls in this order)
    if cell.threat_model is ThreatModel.BLACKBOX:
        # The attack queried the defense's decision, so that is what it fooled or not.
        source_clean, source_adv = pred_clean, pred_adv
    else:
        # "Fooled the model it was crafted on" is judged on the logits the attack differentiated.
        source_clean = _argmax(crafted.source.module, x, device)
        source_adv = _argmax(crafted.source.module, x_adv, device)
    norms = perturbation_norms(x, x_adv)
    metrics = summarize(y, pred_clean, pred_adv, source_clean, source_adv, norms)
    agreement = float((pred_clean == forward_clean).mean())
    arrays = {
        "index": crafted.idx, "y": y, "pred_clean": pred_clean, "pred_adv": pred_adv,
        "source_clean": source_clean, "source_adv": source_adv, **norms,
        "gallery_x": x[:GALLERY_IMAGES], "gallery_x_adv": x_adv[:GALLERY_IMAGES],
    }
    return _row(cell, crafted, metrics, agreement), arrays


def _row(cell: Cell, crafted: Crafted, metrics: dict, agreement: float) -> Row:
    """The results row of ``cell``: its configuration, ``metrics`` (``bench.metrics.summarize``)
    and the provenance of its data, models and examples."""
    data, spec, params, defended = crafted.data, crafted.attack, crafted.params, crafted.defended
    blackbox = cell.threat_model is ThreatModel.BLACKBOX
    return Row(
        dataset=data.name, dataset_source=data.source, dataset_is_subset=data.is_subset,
        n_train=data.n_train, n_val=data.n_val, n_test=data.n_test, n_eval=len(crafted.idx),
        defense=cell.defense, defense_options=_json(defended.options),
        attack=more_steps_name(spec.name) if cell.check == "more-steps" else spec.name,
        attack_params=_json(params), norm=spec.norm.value, threat_model=cell.threat_model.value,
        eps=params["eps"] if spec.bounded else (float("nan") if cell.eps is None else cell.eps),
        source_model=crafted.source.defense, **metrics,
        attack_seconds=crafted.seconds, adv_cached=crafted.cached,
        model_cached=defended.cached, train_seconds=defended.train_seconds, train_device=defended.train_device,
        seed=cell.seed, device=describe(crafted.device), suite_version=bench.__version__,
        torch_version=torch.__version__, art_version=ART_VERSION, cell_key=cell.key,
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        check=cell.check, forward_predict_agreement=agreement,
        queries_per_image=crafted.queries / len(crafted.idx) if blackbox else float("nan"),
        blackbox_output=blackbox_output(defended.module) if blackbox else "",
    )


def run_cell(cell: Cell, settings: Settings) -> Row:
    """Compute one cell (:func:`craft`, then :func:`score`), store it in ``settings.out_dir`` and
    return its row."""
    row, arrays = score(cell, craft(cell, settings))
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
    computed: list[Row]
    resumed: int
    #: Distinct models the computed cells needed: trained now, and loaded (cache or memory).
    models_trained: int = 0
    models_cached: int = 0


def _models_needed(cells: list[Cell]) -> list[tuple[str, str, tuple, int]]:
    """The distinct (dataset, defense, options, seed) the cells use, undefended sources included."""
    needed = {(c.dataset, UNDEFENDED, (), c.seed) for c in cells if c.threat_model is ThreatModel.TRANSFER}
    # A user's model (--model) comes trained: each worker just loads it.
    needed |= {(c.dataset, c.defense, c.defense_options, c.seed) for c in cells if c.user_model is None}
    return sorted(needed, key=lambda m: (m[1] != UNDEFENDED, m))


def _adversarial_source(cell: Cell) -> tuple:
    """Cells with equal sources attack the same model and so share adversarial examples."""
    if cell.threat_model is ThreatModel.TRANSFER:
        return (UNDEFENDED, (), ThreatModel.WHITEBOX.value)
    return (cell.defense, cell.defense_options, cell.threat_model.value)


def _share_adversarial(cells: list[Cell]) -> list[list[Cell]]:
    """Group cells by the adversarial examples they need, so each set is crafted by one job."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        # A minimal attack's budgets all score one run, so its cells share one job.
        eps = cell.eps if get_attack(cell.attack).bounded else None
        key = (cell.dataset, cell.seed, cell.samples, cell.attack, eps, _adversarial_source(cell))
        groups.setdefault(key, []).append(cell)
    return list(groups.values())


def _train_for(model: tuple[str, str, tuple, int], settings: Settings) -> tuple[str, bool]:
    """Load or train one model the grid needs: ``(its cache key, whether it was not trained now)``."""
    dataset, defense, options, seed = model
    data = load_dataset(dataset, seed, settings.data_dir)
    device = resolve_device(settings.device)
    trained = trained_model(data, defense, dict(options), seed, device, settings.cache, settings.progress)
    return trained.key, trained.cached


def _run_group(cells: list[Cell], settings: Settings) -> list[Row]:
    """Run ``cells`` one after the other (one job of a parallel run)."""
    return [run_cell(cell, settings) for cell in cells]


def run_grid(cells: Iterable[Cell], settings: Settings, resume: bool = True,
             display: Progress | None = None, label: str = "cells") -> GridOutcome:
    """Run every cell not already finished in ``settings.out_dir``.

    Every model the grid needs is loaded or trained first (each once; in
    parallel with ``settings.jobs > 1`` or the Dask backend), then the cells
    run, in groups that share adversarial examples so no two workers wait on
    the same work.  ``display`` (a :class:`bench.progress.Progress`, shared
    by the grids of one run; ``label`` names this one) shows the progress; by
    default one is made from ``settings.progress`` and closed on return.
    """
    cells = list(cells)
    store = _open_store(settings)
    todo = [cell for cell in cells if not (resume and store.has(cell.key))]
    own_display = display is None
    display = Progress(settings.progress) if display is None else display
    # Epoch bars of a model being trained show only under the display's terminal line.
    worker_settings = dataclasses.replace(settings, progress=_in_process(settings) and display.training_progress)
    try:
        loaded = _load_models(_models_needed(todo), worker_settings, display)
        display.phase(len(todo), label)
        computed = _run_cells(_share_adversarial(todo), worker_settings, display, store)
    finally:  # also on Ctrl-C or an error: results.csv holds every cell finished so far
        if own_display:
            display.close()
        store.write_csv()
    cached = sum(1 for _, was_cached in loaded if was_cached)
    return GridOutcome(store.frame(), computed, len(cells) - len(todo), len(loaded) - cached, cached)


def _open_store(settings: Settings) -> ResultsStore:
    """The run folder's store, once the folder and the cache are known to take files (a file in
    the place of --out, read-only, disk full: one line naming the folder), the invocation is
    recorded (for the report's provenance) and damaged cells are set aside to be recomputed."""
    ensure_writable(settings.out_dir, "--out")
    ensure_writable(settings.cache.root, "cache folder")
    record_invocation(settings.out_dir)  # command line and git commit
    store = ResultsStore(settings.out_dir)
    store.audit()  # damaged cells are set aside in cells/quarantine/ and recomputed
    return store


def _in_process(settings: Settings) -> bool:
    return settings.jobs == 1 and settings.backend == "loky"


def _parallel(settings: Settings) -> dict:
    return {"jobs": settings.jobs, "backend": settings.backend, "scheduler": settings.scheduler}


def _load_models(models: list[tuple[str, str, tuple, int]], settings: Settings,
                 display: Progress) -> list[tuple[str, bool]]:
    """Load or train each model (``_train_for``): one after the other in this process, shown one
    by one, or in parallel."""
    if not _in_process(settings):
        display.training(f"{len(models)} models in parallel", 1, 1)
        return list(parallel_map(functools.partial(_train_for, settings=settings), models, **_parallel(settings)))
    loaded = []
    for index, model in enumerate(models, 1):
        what = f"{model[1]} on {model[0]}"
        display.training(what, index, len(models))
        loaded.append(_train_for(model, settings))
        display.trained(what, loaded[-1][1])
    return loaded


def _run_cells(groups: list[list[Cell]], settings: Settings, display: Progress, store: ResultsStore) -> list[Row]:
    """Run the groups' cells (in this process, or a group per parallel job); ``results.csv`` is
    rewritten after each finished cell (in this process) or group, so it never misses one."""
    computed = []
    if _in_process(settings):
        for cell in (cell for group in groups for cell in group):
            display.start(cell)
            started = time.perf_counter()
            computed.append(run_cell(cell, settings))
            store.write_csv()
            display.done(computed[-1], time.perf_counter() - started)
        return computed
    for rows in parallel_map(functools.partial(_run_group, settings=settings), groups, **_parallel(settings)):
        computed.extend(rows)
        for row in rows:
            display.done(row)
        store.write_csv()
    return computed
