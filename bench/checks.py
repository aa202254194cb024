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

Two of them need cells a plain grid does not have; :func:`sanity_cells` makes
them (``bench run`` runs them unless ``--no-flags``): per dataset and defense,
white-box ``pgd`` at ε = 1 (``check = large-eps``) and white-box ``pgd`` with 4×
its steps at the default ε (``check = more-steps``, attack ``pgd-4x-steps``).
They are diagnostics, not results: ``bench run`` keeps them in ``OUT/sanity/``
(its own ``results.csv`` and ``cells/``), and :func:`red_flags` reads them from there.

Example::

    from bench.checks import red_flags
    from bench.results import read_results
    red_flags(read_results("runs/default"), "runs/default")   # dataset, defense, flag, evidence
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from attacks import ThreatModel
from bench.results import ResultsStore

FLAG_COLUMNS = ["dataset", "defense", "flag", "evidence"]

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


def blackbox_beats_whitebox(rows: pd.DataFrame, run_dir: Path | None = None) -> list[str]:
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
            evidence.append(line)
    return evidence


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


def accuracy_rises_with_eps(rows: pd.DataFrame) -> list[str]:
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
                evidence.append(f"{_label(large)} leaves {large['robust_accuracy']:.3f} > "
                                f"{small['robust_accuracy']:.3f} at ε={small['eps']:.3g}")
    return evidence


def large_eps_survives(rows: pd.DataFrame) -> list[str]:
    """Raised when white-box PGD at L∞ ε = 1 (the ``large-eps`` sanity cell: any image can
    become any other) leaves robust accuracy above ``LARGE_EPS_MAX_ACCURACY``.

    An unbounded attack must reach ~100% success; if it does not, the attack is
    not optimising the decision (vanishing or useless gradients), so its numbers
    at small ε mean nothing either.
    """
    sanity = rows[(rows["threat_model"] == ThreatModel.WHITEBOX.value) & (rows["attack"] == SANITY_ATTACK)
                  & (rows["eps"] >= LARGE_EPS)]
    return [f"{_label(row)} leaves robust accuracy {row['robust_accuracy']:.3f} "
            f"(> {LARGE_EPS_MAX_ACCURACY}: an unbounded attack should reach ~0)"
            for _, row in sanity.iterrows() if row["robust_accuracy"] > LARGE_EPS_MAX_ACCURACY]


def more_steps_help(rows: pd.DataFrame) -> list[str]:
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
                    evidence.append(f"{_label(more)} ({more['steps']} steps) leaves "
                                    f"{more['robust_accuracy']:.3f} > {fewer['robust_accuracy']:.3f} of "
                                    f"{_label(fewer)} ({fewer['steps']} steps)")
    return evidence


def forward_predict_disagree(rows: pd.DataFrame) -> list[str]:
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
        evidence.append(f"predict agrees with argmax(forward) on {agreement.min():.1%} of clean images "
                        f"(< {AGREEMENT_MIN:.0%})")
    whitebox = rows[(rows["threat_model"] == ThreatModel.WHITEBOX.value)
                    & (rows["defense_rate"] > WHITEBOX_DEFENSE_RATE_MAX)]
    for _, row in whitebox.iterrows():
        evidence.append(f"{_label(row)}: {row['defense_rate']:.1%} of the {int(row['n_adversarial'])} "
                        f"examples that fool forward do not fool predict")
    return evidence


#: flag name -> its function; each takes one defense's rows and returns evidence lines.
FLAGS: dict[str, Callable[..., list[str]]] = {
    "blackbox-beats-whitebox": blackbox_beats_whitebox,
    "accuracy-rises-with-eps": accuracy_rises_with_eps,
    "large-eps-survives": large_eps_survives,
    "more-steps-help": more_steps_help,
    "forward-predict-disagree": forward_predict_disagree,
}


def sanity_frame(run_dir: str | Path) -> pd.DataFrame:
    """The rows of the sanity cells ``bench run`` kept in ``run_dir`` (empty if none ran)."""
    store = ResultsStore(Path(run_dir) / SANITY_DIR)
    return store.frame() if store.cells_dir.is_dir() else pd.DataFrame()


def red_flags(frame: pd.DataFrame, run_dir: str | Path | None = None) -> pd.DataFrame:
    """Every flag raised for the defenses in ``frame`` (rows of results.csv), one row per finding.

    Columns: ``dataset``, ``defense``, ``flag`` (a key of :data:`FLAGS`),
    ``evidence`` (the cells and numbers that raised it).  ``run_dir`` (the run
    folder) adds its sanity cells' rows (``OUT/sanity``) and per-image counts
    to the evidence.  An empty table means no flag was raised, not that every
    check ran: the large-ε and more-steps checks need the sanity cells.
    """
    findings = []
    if frame.empty:
        return pd.DataFrame(findings, columns=FLAG_COLUMNS)
    if run_dir is not None:
        sanity = sanity_frame(run_dir)
        if not sanity.empty:
            pairs = frame[["dataset", "defense"]].drop_duplicates()
            frame = pd.concat([frame, sanity.merge(pairs, on=["dataset", "defense"])], ignore_index=True)
        run_dir = Path(run_dir)
    if "forward_predict_agreement" not in frame:  # runs from before the column existed
        frame = frame.assign(forward_predict_agreement=np.nan)
    flags = FLAGS | {"blackbox-beats-whitebox": functools.partial(blackbox_beats_whitebox, run_dir=run_dir)}
    for (dataset, defense), rows in frame.groupby(["dataset", "defense"], sort=True):
        for flag, check in flags.items():
            findings += [(dataset, defense, flag, line) for line in check(rows)]
    return pd.DataFrame(findings, columns=FLAG_COLUMNS)
