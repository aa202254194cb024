"""Red flags of an evaluation that cannot be trusted (Carlini et al. 2019, "On Evaluating
Adversarial Robustness", §5 and appendix), derived per defense from a run's results.

Each flag is one small function of a defense's rows (one dataset, one defense)
that returns its evidence, one line per finding; :func:`red_flags` collects
them into a table.  A flag is a reason to distrust the white-box numbers, not a
verdict: the evidence says which cells to look at, and docs/flags_doc.md says
what to do about each.

``blackbox-beats-whitebox``  a black-box or transfer attack leaves lower robust accuracy
                             than the best white-box attack of the same norm and budget.
``accuracy-rises-with-eps``  an attack's robust accuracy goes up as its budget grows.
``large-eps-survives``       PGD at L∞ ε = 1 (any image reachable) leaves robust accuracy above ~0.
``more-steps-help``          an attack with more steps (PGD with 4× its steps, BIM/PGD against FGSM)
                             leaves higher white-box robust accuracy.
``forward-predict-disagree`` the defense's ``predict`` and argmax of its ``forward`` disagree on
                             clean images, or white-box examples that fool ``forward`` do not fool
                             ``predict``: gradient attacks aim at something else than the decision.
``minimal-fails-where-bounded-succeeds``
                             a minimal-perturbation attack (unbounded in its norm) leaves correct most
                             of the images a bounded white-box attack breaks.
``zero-gradients``           the input gradient of the loss is exactly zero (or not finite) on a share
                             of the evaluated images (model probe).
``probability-outputs``      ``forward`` returns rows that look like probabilities, not logits (probe).
``randomized-defense``       the same images are classified differently twice (probe).

The last three are AutoAttack's checks (Croce & Hein 2020, their ``checks.py``):
they look at the model itself, not at results, so :func:`probe_model` measures
them on the evaluated images and ``bench run`` keeps the numbers in
``OUT/sanity/probes.csv`` (:data:`PROBE_FILE`), which :func:`red_flags` reads.

Every finding names the cells it rests on (``cells``: cell keys, ``probe`` for
a model probe); :func:`write_flags` saves the table as ``OUT/flags.csv``.

Two of them need cells a plain grid does not have; :func:`sanity_cells` makes
them (``bench run`` runs them unless ``--no-flags``): per dataset and defense,
white-box ``pgd`` at ε = 1 (``check = large-eps``) and white-box ``pgd`` with 4×
its steps at the default ε (``check = more-steps``, attack ``pgd-4x-steps``).
They are diagnostics, not results: ``bench run`` keeps them in ``OUT/sanity/``
(its own ``results.csv`` and ``cells/``), and :func:`red_flags` reads them from there.

Example::

    from bench.flags import red_flags
    from bench.results import read_results
    red_flags(read_results("runs/default"), "runs/default")   # dataset, defense, flag, evidence, cells
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from attacks import ThreatModel
from bench.cache import atomic_write
from bench.models import classify, logits_of
from bench.results import ResultsStore

FLAG_COLUMNS = ["dataset", "defense", "flag", "evidence", "cells"]
#: Where a run keeps its flags, and its model probes (in the sanity folder).
FLAGS_FILE = "flags.csv"
PROBE_FILE = "probes.csv"

#: The sanity cells: their folder in a run folder, the attack, its large budget, the factor on its steps.
SANITY_DIR = "sanity"
SANITY_ATTACK = "pgd"
LARGE_EPS = 1.0
MORE_STEPS = 4

#: A difference in accuracy counts only above this and above 2 images (sampling noise).
MARGIN = 0.02
#: Robust accuracy left at ε = 1 above which the large-ε check fails (Carlini et al.: ~0).
LARGE_EPS_MAX_ACCURACY = 0.05
#: Clean agreement of predict with argmax(forward) below which attacks aim at the wrong thing.
AGREEMENT_MIN = 0.99
#: White-box defense_rate (examples fooling forward but not predict) above which the same holds.
WHITEBOX_DEFENSE_RATE_MAX = 0.10
#: Share of the images a bounded attack breaks that a minimal one may leave correct (a weak attack
#: setting misses some; one blind to the defense misses most: C&W-L2 0.24 vs 0.97 on mnist-subset).
MINIMAL_MISSES_MAX = 0.5
#: Share of evaluated images with an all-zero input gradient above which gradients are masked.
ZERO_GRADIENT_MAX = MARGIN
#: Share of output rows that look like probabilities above which ``forward`` returns probabilities.
PROBABILITY_ROWS_MAX = 0.5


@dataclasses.dataclass(frozen=True)
class Finding:
    """One piece of evidence for a flag, and the cells it rests on (cell keys; ``probe`` for a
    model probe).  Flag functions return a list of these (a plain string is a finding without cells)."""

    evidence: str
    cells: tuple[str, ...] = ()



def more_steps_name(attack: str) -> str:
    """The results' attack name of the more-steps sanity cell of ``attack``."""
    return f"{attack}-{MORE_STEPS}x-steps"


#: White-box attacks that differ only in their number of steps on cross-entropy (more must not help).
STEP_FAMILY = ("fgsm", "bim", "pgd", more_steps_name("pgd"))


def sanity_cells(cells: Sequence, results: pd.DataFrame | None = None) -> list:
    """The sanity cells (``bench.runner.Cell``) for each dataset, defense and seed of ``cells``,
    less any that ``cells`` already hold (``--attack pgd --eps 1`` is the large-ε check itself).

    With ``results`` (the grid's rows, run first), a defense that a white-box L∞ attack of the
    grid (at ε < 1) already breaks (robust accuracy at most ``LARGE_EPS_MAX_ACCURACY``) gets none: both
    checks look for gradients that hide a weakness, and an attack that already reaches ~0 shows
    none is hidden.  So they cost nothing where they can tell nothing (the default grid's
    undefended model), and their cost (about five white-box PGD cells per defense) is paid only
    for defenses the grid leaves standing, where masking is the question.
    """
    broken = set()  # cell keys of grid rows that show the defense broken
    if results is not None and not results.empty:
        whitebox = results[(results["threat_model"] == ThreatModel.WHITEBOX.value) & (results["norm"] == "linf")
                           & (results["eps"] < LARGE_EPS) & (results["robust_accuracy"] <= LARGE_EPS_MAX_ACCURACY)]
        broken = set(whitebox["cell_key"])
    groups: dict[tuple, list] = {}
    for cell in cells:
        groups.setdefault((cell.dataset, cell.defense, cell.defense_options, cell.seed, cell.samples), []).append(cell)
    asked = {cell.key for cell in cells}
    extra = []
    for group in groups.values():
        if any(cell.key in broken for cell in group):
            continue
        base = dataclasses.replace(group[0], attack=SANITY_ATTACK, threat_model=ThreatModel.WHITEBOX, check="")
        if dataclasses.replace(base, eps=LARGE_EPS).key not in asked:
            extra.append(dataclasses.replace(base, eps=LARGE_EPS, check="large-eps"))
        extra.append(dataclasses.replace(base, eps=None, check="more-steps"))
    return extra


def _label(row: pd.Series) -> str:
    eps = "" if pd.isna(row["eps"]) else f"@{row['eps']:.3g}"
    return f"{row['threat_model']} {row['attack']}{eps}"


def _noise(row: pd.Series) -> float:
    return max(MARGIN, 2 / row["n_eval"])


def _same_budget(rows: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    eps = rows["eps"].isna() if pd.isna(row["eps"]) else np.isclose(rows["eps"], row["eps"])
    return rows[(rows["norm"] == row["norm"]) & eps & (rows["seed"] == row["seed"])]


def blackbox_beats_whitebox(rows: pd.DataFrame, run_dir: Path | None = None) -> list[Finding]:
    """Raised when a ``transfer`` or ``blackbox`` row's robust accuracy is below that of the
    best ``whitebox`` row of the same norm and budget (by more than sampling noise).

    A white-box attacker knows everything a black-box one does; losing to it means
    the gradients mislead (masked, obfuscated, or the attack differentiates the wrong
    function).  With ``run_dir``, the evidence counts the images the black-box attack
    broke that no white-box attack of that budget broke.
    """
    whitebox = rows[rows["threat_model"] == ThreatModel.WHITEBOX.value]
    evidence = []
    for _, row in rows[rows["threat_model"] != ThreatModel.WHITEBOX.value].iterrows():
        rivals = _same_budget(whitebox, row)
        if rivals.empty:
            continue
        best = rivals.loc[rivals["robust_accuracy"].idxmin()]
        if row["robust_accuracy"] < best["robust_accuracy"] - _noise(row):
            line = (f"{_label(row)} leaves robust accuracy {row['robust_accuracy']:.3f} < "
                    f"{best['robust_accuracy']:.3f} of the best white-box attack ({_label(best)})")
            if run_dir is not None:
                line += f"; {_only_broken_by(row, rivals, Path(run_dir))}"
            evidence.append(Finding(line, _keys(row, best)))
    return evidence


def _keys(*rows: pd.Series) -> tuple[str, ...]:
    return tuple(str(row["cell_key"]) for row in rows if isinstance(row.get("cell_key"), str))


def _arrays(run_dir: Path, cell_key: str) -> dict[str, np.ndarray]:
    """A cell's per-image arrays, from the run folder or its sanity folder."""
    store = ResultsStore(run_dir)
    return (store if store.has(cell_key) else ResultsStore(run_dir / SANITY_DIR)).arrays(cell_key)


def _only_broken_by(row: pd.Series, rivals: pd.DataFrame, run_dir: Path) -> str:
    """How many images ``row``'s attack broke that none of ``rivals`` broke (per-cell arrays)."""
    mine = _arrays(run_dir, row["cell_key"])
    broken_by_rivals = np.zeros(len(mine["y"]), dtype=bool)
    for key in rivals["cell_key"]:
        theirs = _arrays(run_dir, key)
        broken_by_rivals |= theirs["pred_adv"] != theirs["y"]
    only = (mine["pred_adv"] != mine["y"]) & ~broken_by_rivals
    return f"{int(only.sum())} of {len(only)} images broken by it and by no white-box attack of that budget"


def accuracy_rises_with_eps(rows: pd.DataFrame) -> list[Finding]:
    """Raised when an attack's robust accuracy at a larger budget exceeds that at a smaller one.

    A larger budget contains every perturbation of a smaller one, so a working
    attack can only do better; a rise means it fails to find what exists.
    """
    evidence = []
    budgeted = rows.dropna(subset=["eps"])
    for _, curve in budgeted.groupby(["threat_model", "attack", "norm", "seed"]):
        curve = curve.sort_values("eps")
        for (_, small), (_, large) in zip(curve.iterrows(), curve.iloc[1:].iterrows()):
            if large["robust_accuracy"] > small["robust_accuracy"] + _noise(large):
                evidence.append(Finding(f"{_label(large)} leaves {large['robust_accuracy']:.3f} > "
                                        f"{small['robust_accuracy']:.3f} at ε={small['eps']:.3g}",
                                        _keys(large, small)))
    return evidence


def large_eps_survives(rows: pd.DataFrame) -> list[Finding]:
    """Raised when white-box PGD at L∞ ε = 1 (the ``large-eps`` sanity cell: any image can
    become any other) leaves robust accuracy above ``LARGE_EPS_MAX_ACCURACY``.

    An unbounded attack must reach ~100% success; if it does not, the attack is
    not optimising the decision (vanishing or useless gradients), so its numbers
    at small ε mean nothing either.
    """
    sanity = rows[(rows["threat_model"] == ThreatModel.WHITEBOX.value) & (rows["attack"] == SANITY_ATTACK)
                  & (rows["eps"] >= LARGE_EPS)]
    return [Finding(f"{_label(row)} leaves robust accuracy {row['robust_accuracy']:.3f} "
                    f"(> {LARGE_EPS_MAX_ACCURACY}: an unbounded attack should reach ~0)", _keys(row))
            for _, row in sanity.iterrows() if row["robust_accuracy"] > LARGE_EPS_MAX_ACCURACY]


def more_steps_help(rows: pd.DataFrame) -> list[Finding]:
    """Raised when, white-box at one budget, an attack of ``STEP_FAMILY`` with more steps
    (FGSM 1 < BIM 20 < PGD 40 < PGD 160) leaves higher robust accuracy than one with fewer.

    Iterating a gradient attack can only help it when the gradients are
    informative; when more steps help the defense, the loss surface is
    obfuscated (noisy, shattered or saturated gradients).
    """
    family = rows[(rows["threat_model"] == ThreatModel.WHITEBOX.value) & rows["attack"].isin(STEP_FAMILY)]
    evidence = []
    for _, group in family.groupby(["eps", "seed"]):
        steps = group["attack_params"].map(lambda text: json.loads(text).get("max_iter", 1))
        group = group.assign(steps=steps).sort_values("steps")
        for i, (_, fewer) in enumerate(group.iterrows()):
            for _, more in group.iloc[i + 1:].iterrows():
                if more["steps"] > fewer["steps"] and \
                        more["robust_accuracy"] > fewer["robust_accuracy"] + _noise(more):
                    evidence.append(Finding(f"{_label(more)} ({more['steps']} steps) leaves "
                                            f"{more['robust_accuracy']:.3f} > {fewer['robust_accuracy']:.3f} of "
                                            f"{_label(fewer)} ({fewer['steps']} steps)", _keys(more, fewer)))
    return evidence


def forward_predict_disagree(rows: pd.DataFrame) -> list[Finding]:
    """Raised when the defense's decision and the logits attacks differentiate part ways:
    clean ``forward_predict_agreement`` below ``AGREEMENT_MIN``, or a white-box
    ``defense_rate`` (examples that fool ``forward`` but not ``predict``) above
    ``WHITEBOX_DEFENSE_RATE_MAX``.

    White-box attacks then optimise a function other than the one that
    classifies; their robust accuracy is an upper bound at best.  Attack the
    decision itself (``blackbox``) or give the defense a forward that matches it.
    """
    evidence = []
    agreement = rows["forward_predict_agreement"].dropna()
    if not agreement.empty and agreement.min() < AGREEMENT_MIN:
        lowest = rows.loc[agreement.idxmin()]
        evidence.append(Finding(f"predict agrees with argmax(forward) on {agreement.min():.1%} of clean images "
                                f"(< {AGREEMENT_MIN:.0%})", _keys(lowest)))
    whitebox = rows[(rows["threat_model"] == ThreatModel.WHITEBOX.value)
                    & (rows["defense_rate"] > WHITEBOX_DEFENSE_RATE_MAX)]
    for _, row in whitebox.iterrows():
        evidence.append(Finding(f"{_label(row)}: {row['defense_rate']:.1%} of the {int(row['n_adversarial'])} "
                                f"examples that fool forward do not fool predict", _keys(row)))
    return evidence


def minimal_fails_where_bounded_succeeds(rows: pd.DataFrame, run_dir: Path | None = None) -> list[Finding]:
    """Raised when a minimal-perturbation attack, white-box and without a budget, leaves correct
    more than ``MINIMAL_MISSES_MAX`` of the images a bounded white-box attack breaks (and more
    than sampling noise of all images).

    Unbounded in its norm, a minimal attack (C&W-L2, DeepFool) should break at
    least every image a bounded attack breaks: a bounded attack's examples are
    perturbations of some size in any norm.  Missing most of them means it is
    blind to this defense (a flat or narrow logit range its loss cannot use,
    a constant search that never starts), so its number and its perturbation
    sizes say nothing.  Without ``run_dir`` the share is estimated from the
    rows; with it, images are counted one by one and the bounded attack's
    perturbations are measured in the minimal attack's norm.
    """
    asked = rows[rows["check"].fillna("").astype(str) == ""] if "check" in rows else rows
    white = asked[asked["threat_model"] == ThreatModel.WHITEBOX.value]
    minimal = white[white["eps"].isna()]
    bounded = white[white["eps"].notna() & ~white["attack"].isin(set(minimal["attack"]))]
    bounded = bounded.sort_values("robust_accuracy", kind="stable")  # the strongest witness first
    evidence = []
    for _, small in minimal.iterrows():
        for _, large in bounded[bounded["seed"] == small["seed"]].iterrows():
            broken = (large["clean_accuracy"] - large["robust_accuracy"]) * large["n_eval"]
            missed = (small["robust_accuracy"] - large["robust_accuracy"]) * large["n_eval"]
            detail = ""
            if run_dir is not None:
                mine, theirs = _arrays(Path(run_dir), small["cell_key"]), _arrays(Path(run_dir), large["cell_key"])
                right = theirs["pred_clean"] == theirs["y"]
                by_bounded = right & (theirs["pred_adv"] != theirs["y"])
                missed_images = by_bounded & (mine["pred_adv"] == mine["y"])
                broken, missed = int(by_bounded.sum()), int(missed_images.sum())
                norm = str(small["norm"])
                if missed and norm in theirs:
                    detail = (f"; {large['attack']}'s examples for them have median {norm.upper()} size "
                              f"{np.median(theirs[norm][missed_images]):.3g}")
            if broken <= 0 or missed <= max(MARGIN * small["n_eval"], 2) or missed / broken <= MINIMAL_MISSES_MAX:
                continue
            evidence.append(Finding(
                f"{_label(small)} (no budget) leaves correct {missed:.0f} of the {broken:.0f} images "
                f"{_label(large)} breaks ({missed / broken:.0%} > {MINIMAL_MISSES_MAX:.0%}): robust accuracy "
                f"{small['robust_accuracy']:.3f} against {large['robust_accuracy']:.3f}{detail}",
                _keys(small, large)))
            break  # one bounded witness per minimal attack is enough
    return evidence


def _probe_value(rows: pd.DataFrame, column: str) -> float | None:
    if column not in rows:
        return None
    values = rows[column].dropna()
    return float(values.max()) if len(values) else None


def zero_gradients(rows: pd.DataFrame) -> list[Finding]:
    """Raised when the input gradient of the cross-entropy is exactly zero (or not finite) on more
    than ``ZERO_GRADIENT_MAX`` of the evaluated images and more than 2 of them (model probe).

    A gradient attack cannot move an image whose gradient is zero: its white-box
    robust accuracy there is the attack stalling, not robustness (a saturated
    softmax, as defensive distillation's, underflows to exactly zero).
    """
    dead, n = _probe_value(rows, "probe_zero_gradients"), _probe_value(rows, "probe_n")
    if dead is None or not n or dead / n <= ZERO_GRADIENT_MAX or dead <= 2:
        return []
    return [Finding(f"the cross-entropy's input gradient is zero or not finite on {dead:.0f} of {n:.0f} "
                    f"evaluated images ({dead / n:.0%} > {ZERO_GRADIENT_MAX:.0%})", ("probe",))]


def probability_outputs(rows: pd.DataFrame) -> list[Finding]:
    """Raised when more than ``PROBABILITY_ROWS_MAX`` of ``forward``'s output rows are
    non-negative and sum to 1 (model probe): probabilities, not logits.

    Cross-entropy on probabilities treats them as logits (a second softmax) and
    the DLR and C&W margins shrink to [0, 1]: attacks stall and overstate robustness.
    """
    rows_like, n = _probe_value(rows, "probe_probability_rows"), _probe_value(rows, "probe_n")
    if rows_like is None or not n or rows_like / n <= PROBABILITY_ROWS_MAX:
        return []
    return [Finding(f"forward returns rows that are non-negative and sum to 1 on {rows_like:.0f} of {n:.0f} "
                    "evaluated images: probabilities, not logits", ("probe",))]


def randomized_defense(rows: pd.DataFrame) -> list[Finding]:
    """Raised when classifying the evaluated images twice gives a different decision for at
    least one image (model probe).

    A randomized defense's single-sample gradients and predictions are noisy:
    an attack that succeeds on one draw may be scored on another, so its robust
    accuracy is overstated until attacked with expectation over transformation.
    """
    changed, n = _probe_value(rows, "probe_randomized"), _probe_value(rows, "probe_n")
    if changed is None or not n or changed < 1:
        return []
    logits = _probe_value(rows, "probe_logits_differ")
    also = f"; forward's outputs differ on {logits:.0f}" if logits is not None else ""
    return [Finding(f"classifying the same {n:.0f} images twice changed the decision on {changed:.0f}{also}",
                    ("probe",))]


#: flag name -> its function; each takes one defense's rows and returns its findings (evidence and cells).
FLAGS: dict[str, Callable[..., list[Finding]]] = {
    "blackbox-beats-whitebox": blackbox_beats_whitebox,
    "accuracy-rises-with-eps": accuracy_rises_with_eps,
    "large-eps-survives": large_eps_survives,
    "more-steps-help": more_steps_help,
    "forward-predict-disagree": forward_predict_disagree,
    "minimal-fails-where-bounded-succeeds": minimal_fails_where_bounded_succeeds,
    "zero-gradients": zero_gradients,
    "probability-outputs": probability_outputs,
    "randomized-defense": randomized_defense,
}
#: The flags that count images one by one when given the run folder.
_PER_IMAGE = ("blackbox-beats-whitebox", "minimal-fails-where-bounded-succeeds")


def probe_model(model: nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device,
                batch_size: int = 256) -> dict[str, int]:
    """AutoAttack's model checks on the images ``x`` (labels ``y``): how many get an all-zero or
    non-finite input gradient of the cross-entropy (``zero_gradients``), how many output rows
    look like probabilities (``probability_rows``: non-negative, summing to 1 within 1e-3), and
    how many are classified differently (``randomized``) or get different outputs
    (``logits_differ``) when the same images are evaluated twice; ``n`` is ``len(x)``."""
    model.eval()
    first, second = classify(model, x, device), classify(model, x, device)
    with torch.no_grad():
        logits, again = logits_of(model, x, device), logits_of(model, x, device)
    probability = (logits >= 0).all(1) & ((logits.sum(1) - 1).abs() < 1e-3)
    dead = 0
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(x[start:start + batch_size], device=device).clone().requires_grad_(True)
        labels = torch.as_tensor(y[start:start + batch_size], device=device, dtype=torch.long)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(batch), labels, reduction="sum"), batch)
        size = grad.flatten(1).abs().sum(1)
        dead += int(((size == 0) | ~torch.isfinite(size)).sum())
    return {"n": len(x), "zero_gradients": dead, "probability_rows": int(probability.sum()),
            "randomized": int((first != second).sum()),
            "logits_differ": int((logits != again).any(1).sum())}


def probe_frame(run_dir: str | Path) -> pd.DataFrame:
    """The model probes ``bench run`` kept in ``run_dir/sanity/probes.csv`` (empty if none)."""
    path = Path(run_dir) / SANITY_DIR / PROBE_FILE
    return pd.read_csv(path) if path.exists() else pd.DataFrame()


def write_probes(probes: pd.DataFrame, run_dir: str | Path) -> Path:
    """Save ``probes`` (one row per dataset × defense: ``dataset``, ``defense``, and the counts of
    :func:`probe_model`) as ``run_dir/sanity/probes.csv``."""
    path = Path(run_dir) / SANITY_DIR / PROBE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = probes.to_csv(index=False)
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path


def sanity_frame(run_dir: str | Path) -> pd.DataFrame:
    """The rows of the sanity cells ``bench run`` kept in ``run_dir`` (empty if none ran)."""
    store = ResultsStore(Path(run_dir) / SANITY_DIR)
    return store.frame() if store.cells_dir.is_dir() else pd.DataFrame()


def red_flags(frame: pd.DataFrame, run_dir: str | Path | None = None) -> pd.DataFrame:
    """Every flag raised for the defenses in ``frame`` (rows of results.csv), one row per finding.

    Columns: ``dataset``, ``defense``, ``flag`` (a key of :data:`FLAGS`),
    ``evidence`` (the cells and numbers that raised it), ``cells`` (their cell
    keys, space-separated; ``probe`` for a model probe).  ``run_dir`` (the run
    folder) adds its sanity cells' rows (``OUT/sanity``), its model probes and
    per-image counts to the evidence.  An empty table means no flag was
    raised, not that every check ran: the large-ε and more-steps checks need
    the sanity cells, the model checks need the probes.
    """
    findings = []
    if frame.empty:
        return pd.DataFrame(findings, columns=FLAG_COLUMNS)
    if run_dir is not None:
        pairs = frame[["dataset", "defense"]].drop_duplicates()
        sanity = sanity_frame(run_dir)
        if not sanity.empty:
            frame = pd.concat([frame, sanity.merge(pairs, on=["dataset", "defense"])], ignore_index=True)
        probes = probe_frame(run_dir)
        if not probes.empty:
            probes = probes.drop_duplicates(["dataset", "defense"], keep="last")
            probes = probes.rename(columns={c: f"probe_{c}" for c in probes.columns
                                            if c not in ("dataset", "defense")})
            frame = frame.merge(probes[[c for c in probes.columns if c != "probe_defense_options"
                                        and c != "probe_seed"]], on=["dataset", "defense"], how="left")
        run_dir = Path(run_dir)
    if "forward_predict_agreement" not in frame:  # runs from before the column existed
        frame = frame.assign(forward_predict_agreement=np.nan)
    flags = FLAGS | {name: functools.partial(FLAGS[name], run_dir=run_dir) for name in _PER_IMAGE}
    for (dataset, defense), rows in frame.groupby(["dataset", "defense"], sort=True):
        for flag, check in flags.items():
            for found in check(rows):
                found = found if isinstance(found, Finding) else Finding(str(found))
                findings.append((dataset, defense, flag, found.evidence, " ".join(found.cells)))
    return pd.DataFrame(findings, columns=FLAG_COLUMNS)


def write_flags(flags: pd.DataFrame, run_dir: str | Path) -> Path:
    """Save ``flags`` (:func:`red_flags`' table) as ``run_dir/flags.csv``, also when empty: the
    file then says the checks ran and raised nothing."""
    path = Path(run_dir) / FLAGS_FILE
    text = flags.reindex(columns=FLAG_COLUMNS).to_csv(index=False)
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path


def read_flags(run_dir: str | Path) -> pd.DataFrame | None:
    """``run_dir/flags.csv``, or None when the run did not check flags (``--no-flags``, or older)."""
    path = Path(run_dir) / FLAGS_FILE
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else None
