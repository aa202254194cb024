"""``bench report``: one self-contained HTML file from one or more run folders.

Everything is inside the file: tables are pandas ``Styler`` HTML, plots are
PNGs inlined as ``data:`` URIs, the CSS is inline, and there is no script,
font or link to fetch, so the report opens offline from a file or an e-mail.

First, above everything else, the red flags each run saved (``OUT/flags.csv``),
then the ranking of defenses by their worst case per image over every attack
(``bench.worst_case``; flagged defenses marked).  Then for each run: its
metadata (versions, device, seeds, datasets with source and sizes, subsets
labelled as such), then per dataset and threat model a heatmap and a table of
defenses × attacks (robust accuracy; for ``transfer`` also the defense rate),
robustness curves when the run swept ε, perturbation sizes and attack times,
and a gallery of clean / adversarial / amplified-difference images.  Every
rate is shown with its 95% Wilson interval and its n.  With several runs, each
later run is compared with the first, saying where the two differ only within
their intervals and where their n differ.

Example::

    from reports.html import write_report
    write_report(["runs/digits", "runs/digits-weak"], "report.html")
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Sequence

import jinja2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from markupsafe import Markup, escape

import bench
from attacks import REGISTRY as ATTACKS
from attacks import ThreatModel
from attacks.catalog import STRONG
from bench.cache import write_bytes_atomic
from bench.flags import read_flags
from bench.errors import BenchError
from bench.families import standard_budgets
from bench.metrics import with_intervals
from bench.gate import METRICS
from bench.provenance import read_invocations
from bench.results import ResultsStore, read_results
from bench.worst_case import ranking, read_summary, summary
from defenses import REGISTRY as DEFENSES
from reports import plots
from reports.tables import attack_label, norm_name

#: The heatmaps and tables each threat model gets, in order (the first is its headline metric).
METRICS_BY_THREAT = {
    "whitebox": ("robust_accuracy",),
    "transfer": ("defense_rate", "robust_accuracy"),
}
#: Images per attack in a gallery (the run stores the first 8 evaluated).
GALLERY_SHOWN = 4
#: Rows of the perturbation table shown before the rest are folded away.
PERTURBATION_SHOWN = 10
#: Columns of the "all cells" table at the end of each run.
ALL_CELLS_COLUMNS = ["dataset", "threat_model", "defense_label", "attack_label", "n_eval", "clean_accuracy",
                     "robust_accuracy", "robust_accuracy_ci_low", "robust_accuracy_ci_high",
                     "attack_success_rate", "attack_success_rate_n", "defense_rate", "n_adversarial",
                     "defense_rate_ci_low", "defense_rate_ci_high", "mean_l2",
                     "mean_linf", "mean_l0", "attack_seconds", "source_model", "model_cached", "adv_cached"]


@dataclasses.dataclass(frozen=True)
class Run:
    """One run folder: its name in the report, its rows (with display labels) and its store."""

    name: str
    frame: pd.DataFrame
    store: ResultsStore


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Read ``path/results.csv`` and label its defenses and attacks for display."""
    frame = with_intervals(read_results(path))  # results.csv from before the interval columns: derived
    frame = frame.assign(defense_label=defense_labels(frame), attack_label=frame.apply(attack_label, axis=1)
                         if len(frame) else pd.Series(dtype=str))
    # A minimal-perturbation attack runs once; its budget rows only score that run differently.
    minimal = frame["attack"].map(lambda name: name in ATTACKS and not ATTACKS[name].bounded)
    frame["examples"] = frame["attack_label"].where(~minimal, frame["attack_label"].str.replace(
        r" ε=.*", "", regex=True))
    frame = frame.sort_values(["dataset", "threat_model", "defense_label", "attack_label"],
                              key=_display_order, kind="stable", ignore_index=True)
    return Run(name or Path(path).name or str(path), frame, ResultsStore(path))


def defense_labels(frame: pd.DataFrame) -> pd.Series:
    """The defense's name, plus what tells its variants apart when one run holds several.

    ``none`` normally; ``none [epochs=1]`` and ``none [epochs=30]`` when the
    run folder holds the defense with two option sets (likewise ``seed=`` and
    ``n_eval=``), so no table ever averages two configurations silently.
    """
    labels = frame["defense"].astype(str).copy()
    for name, group in frame.groupby("defense"):
        options = [json.loads(text) if isinstance(text, str) else {} for text in group["defense_options"]]
        keys = sorted({key for option in options for key in option
                       if len({json.dumps(o.get(key), sort_keys=True) for o in options}) > 1})
        parts = [[f"{key}={option.get(key)}" for key in keys] for option in options]
        for column in ("seed", "n_eval"):
            if group[column].nunique() > 1:
                parts = [part + [f"{column}={value}"] for part, value in zip(parts, group[column])]
        if any(parts):
            labels[group.index] = [f"{name} [{', '.join(part)}]" for part in parts]
    return labels


def _defense_rank(label: str) -> tuple:
    """Registry order (``none`` first), then unregistered defenses by name."""
    names = list(DEFENSES)
    name = label.split(" [")[0]
    return (names.index(name) if name in names else len(names), label)


def _attack_rank(label: str) -> tuple:
    """Registry order, ε ascending within an attack (``fgsm L∞ ε=0.1`` before ``fgsm L∞ ε=0.3``;
    an unbudgeted row first)."""
    names = list(ATTACKS)
    name, eps = label.partition(" ")[0], label.partition("ε=")[2]
    return (names.index(name) if name in names else len(names), name, float(eps) if eps else 0.0)


def anchor(*parts) -> str:
    """An HTML id from ``parts`` (``run-1-digits-whitebox-linf``): letters, digits and dashes."""
    return "-".join(re.sub(r"[^A-Za-z0-9]+", "-", str(part)).strip("-") or "x" for part in parts)


def _threat_rank(name: str) -> tuple:
    """``whitebox`` first, then the others in the order ``attacks.ThreatModel`` lists them."""
    names = [threat.value for threat in ThreatModel]
    return (names.index(name) if name in names else len(names), name)


def _display_order(column: pd.Series) -> pd.Series:
    """Sort key for ``sort_values``: threat models, defenses and attacks in display order."""
    rank = {"threat_model": _threat_rank, "defense_label": _defense_rank,
            "attack_label": _attack_rank}.get(column.name)
    return column.map(rank) if rank else column


def grid(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Defenses × attacks of ``metric`` (one dataset and threat model), in display order."""
    table = frame.pivot(index="defense_label", columns="attack_label", values=metric)
    table = table.reindex(index=sorted(table.index, key=_defense_rank),
                          columns=sorted(table.columns, key=_attack_rank))
    table.index.name, table.columns.name = "defense", "attack"
    return table


def with_interval(value: float, low: float, high: float, n: float | None = None, precision: int = 3) -> str:
    """``0.450 [0.35, 0.55] n=100``: a rate, its 95% interval and its denominator (``–`` if NaN)."""
    if value is None or pd.isna(value):
        return "–" if n is None or pd.isna(n) else f"– n={int(n)}"
    text = f"{value:.{precision}f}"
    if not (pd.isna(low) or pd.isna(high)):
        text += f" [{low:.{precision - 1}f}, {high:.{precision - 1}f}]"
    return text if n is None or pd.isna(n) else f"{text} n={int(n)}"


def interval_grid(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """:func:`grid` of ``metric`` as text: each cell with its interval and n (:func:`with_interval`)."""
    texts = frame.assign(text=[with_interval(row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"],
                                             row[f"{metric}_n"]) for _, row in frame.iterrows()])
    return grid(texts, "text")


def figure_uri(figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (and closed, to free its memory)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def styled(table: pd.DataFrame, gradient: str | None = plots.FRACTION_CMAP, vmin: float = 0.0,
           vmax: float = 1.0, precision: int = 3) -> Markup:
    """``table`` as HTML with numbers rounded and (optionally) cells shaded like the heatmaps."""
    style = table.style.format(precision=precision, na_rep="–").set_table_attributes('class="data"')
    if isinstance(table.index, pd.RangeIndex):  # a flat table: no row labels
        style = style.hide(axis="index")
    elif table.index.nlevels == 1:  # one index level: its name would only add an empty header row
        style = style.hide(axis="index", names=True)
    if gradient:
        numeric = table.select_dtypes("number").columns
        style = style.background_gradient(cmap=gradient, vmin=vmin, vmax=vmax, subset=numeric)
    return Markup(style.to_html())


def styled_text(texts: pd.DataFrame, values: pd.DataFrame, gradient: str = plots.FRACTION_CMAP,
                links: dict[str, str] | None = None) -> Markup:
    """The text table ``texts`` as HTML, each cell shaded by the number in ``values`` (same shape),
    on [0, 1] like the heatmaps; with ``links`` ({row label: "#anchor"}) a row's cells link there."""
    if links:
        texts = texts.apply(lambda column: pd.Series(
            [Markup('<a href="{}">{}</a>').format(links[row], text) if row in links else escape(text)
             for row, text in column.items()], index=column.index, dtype=object))
    style = texts.style.set_table_attributes('class="data"')
    if texts.index.nlevels == 1:
        style = style.hide(axis="index", names=True)
    style = style.background_gradient(cmap=gradient, vmin=0, vmax=1,
                                      gmap=values.to_numpy(dtype=float), axis=None)
    return Markup(style.to_html())


def _unique(values: pd.Series) -> str:
    return ", ".join(str(v) for v in dict.fromkeys(values.dropna())) or "–"


def metadata(run: Run) -> dict:
    """What produced the run: versions, device, seeds, when, the command lines and git commit
    that filled the folder (``bench.provenance``), and its datasets with provenance."""
    frame = run.frame
    invocations = read_invocations(run.store.out_dir)
    last = invocations[-1] if invocations else {}
    facts = {
        "run folder": str(run.store.out_dir),
        "command": last.get("command") or "not recorded (a run folder from before invocations were recorded)",
        "git commit": last.get("git_commit") or ("not recorded" if not last else "not a git checkout"),
        "cells": str(len(frame)),
        "finished": f"{frame['finished_at'].min()} … {frame['finished_at'].max()}" if len(frame) else "–",
        "suite version": _unique(frame["suite_version"]),
        "torch": _unique(frame["torch_version"]),
        "ART": _unique(frame["art_version"]),
        "device": _unique(frame["device"]),
        "seed": _unique(frame["seed"]),
        "test images per cell": _unique(frame["n_eval"]),
    }
    datasets = []
    for name, group in frame.groupby("dataset", sort=False):
        first = group.iloc[0]
        datasets.append({"name": name, "source": first["dataset_source"],
                         "subset": bool(group["dataset_is_subset"].astype(bool).any()),
                         "sizes": {"train": int(first["n_train"]), "validation": int(first["n_val"]),
                                   "test": int(first["n_test"]), "evaluated": _unique(group["n_eval"])}})
    def per(label: str, column: str) -> dict[str, str]:
        unique = frame.drop_duplicates(["dataset", label])
        return {f"{row['dataset']} · {row[label]}": row[column] for _, row in unique.iterrows()}

    return {"facts": facts, "invocations": invocations, "datasets": datasets,
            "defense_options": per("defense_label", "defense_options"),
            "attack_params": per("attack_label", "attack_params")}


def threat_sections(frame: pd.DataFrame, dataset: str, prefix: str,
                    galleries: dict[tuple[str, str], str]) -> list[dict]:
    """Per threat model, and within it per norm of the attacks' budgets (an L2 attack's budgets
    never share a heatmap with L∞ ones): a heatmap for each of its metrics whose cells link to
    the defense's gallery (``galleries``: {(threat, defense label): anchor}), the same numbers
    as a table with intervals and n, and ε curves if swept.  Ids start with ``prefix``."""
    sections = []
    for threat, by_threat in frame.groupby("threat_model", sort=False):
        # Under transfer the source model attacked with its own examples is its white-box row again
        # (defense rate 0 by construction): shown once, in its white-box section, and said so here.
        own = (by_threat["defense"] == by_threat["source_model"]) & (threat == "transfer")
        own &= not own.all()  # a transfer run of the source model alone keeps its rows
        omitted = sorted(by_threat.loc[own, "defense_label"].unique())
        by_threat = by_threat[~own]
        norms = []
        for norm, cells in by_threat.groupby(by_threat["norm"].fillna(""), sort=False):
            norms.append(_norm_section(cells, dataset, threat, norm, anchor(prefix, threat, norm or "any"),
                                       {d: a for (t, d), a in galleries.items() if t == threat}))
        sections.append({"threat": threat, "id": anchor(prefix, threat), "norms": norms, "omitted": omitted})
    return sections


def _norm_section(cells: pd.DataFrame, dataset: str, threat: str, norm: str, section_id: str,
                  galleries: dict[str, str]) -> dict:
    """One threat model's cells of one norm (see :func:`threat_sections`)."""
    name = norm_name(norm) or "no norm"
    blocks = []
    for metric in METRICS_BY_THREAT.get(threat, ("robust_accuracy",)):
        table = grid(cells, metric)
        sizes = sorted({int(n) for n in cells[f"{metric}_n"].dropna()})
        count = "" if not sizes else f" (n = {sizes[0]})" if len(sizes) == 1 else \
            f" (n = {sizes[0]}–{sizes[-1]})"
        title = f"{dataset} · {threat} · {name} · {metric.replace('_', ' ')}{count}"
        first = cells.drop_duplicates("defense_label").set_index("defense_label")
        clean_text = pd.Series([with_interval(row["clean_accuracy"], row["clean_accuracy_ci_low"],
                                              row["clean_accuracy_ci_high"], row["clean_accuracy_n"])
                                for _, row in first.iterrows()], index=first.index, name="clean")
        values = pd.concat([first["clean_accuracy"].rename("clean"), table], axis=1).rename_axis("defense")
        texts = pd.concat([clean_text, interval_grid(cells, metric)], axis=1).rename_axis("defense")
        figure = plots.heatmap(table, title)
        links = [{"href": galleries[row], "box": box, "title": f"{row} · {column}: gallery"}
                 for (row, column), box in plots.cell_boxes(figure, table).items() if row in galleries]
        blocks.append({"metric": metric, "heatmap": figure_uri(figure), "links": links,
                       "table": styled_text(texts.reindex_like(values).fillna("–"), values, links=galleries)})
    swept = cells[cells["eps"].notna()].groupby("attack").filter(lambda g: g["eps"].nunique() > 1)
    curves = None
    if len(swept):
        lines = swept[["attack", "norm", "eps", "defense_label", "robust_accuracy", "robust_accuracy_ci_low",
                       "robust_accuracy_ci_high", "robust_accuracy_n"]].rename(
            columns={"defense_label": "defense", "robust_accuracy_ci_low": "ci_low",
                     "robust_accuracy_ci_high": "ci_high", "robust_accuracy_n": "n"})
        curves = figure_uri(plots.robustness_curves(lines, "robust_accuracy",
                                                    f"{dataset} · {threat}: accuracy vs {name} ε"))
    return {"norm": name, "id": section_id, "blocks": blocks, "curves": curves}


def crafted(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per set of adversarial examples: by the model they were crafted on and the attack.

    White-box examples are crafted on each defense; transfer examples on the
    source model (shared by every defense), so they are counted once.
    """
    frame = frame.assign(crafted_on=np.where(frame["threat_model"] == "transfer", frame["source_model"],
                                             frame["defense_label"]))
    return frame.drop_duplicates(["crafted_on", "examples"])


def perturbation_section(run: Run, frame: pd.DataFrame, dataset: str) -> dict:
    """Perturbation sizes (per image) and attack times of one dataset, by crafting model; the table's
    first :data:`PERTURBATION_SHOWN` rows (the slowest attacks) and the rest folded."""
    sets = crafted(frame)
    table = sets[["crafted_on", "examples", "mean_l2", "mean_linf", "mean_l0", "attack_seconds"]].rename(
        columns={"crafted_on": "crafted on", "examples": "attack"}).sort_values(
        "attack_seconds", ascending=False, kind="stable")
    norms = []
    for row in sets.itertuples():
        arrays = _arrays(run, row.cell_key)
        if arrays is None:
            continue
        for kind, key in (("L2", "l2"), ("L∞", "linf")):
            norms.append(pd.DataFrame({"attack": row.examples, "defense": row.crafted_on, "norm": kind,
                                       "size": arrays[key]}))
    times = sets[["examples", "crafted_on", "attack_seconds"]].rename(
        columns={"examples": "attack", "crafted_on": "defense"})
    sizes = None
    if norms:
        sizes = figure_uri(plots.perturbation_sizes(pd.concat(norms, ignore_index=True),
                                                    f"{dataset}: perturbation per image"))
    shown, rest = table.iloc[:PERTURBATION_SHOWN], table.iloc[PERTURBATION_SHOWN:]
    return {"table": styled(shown.reset_index(drop=True), gradient=None), "rows": len(table), "table_rows": len(shown),
            "rest": styled(rest.reset_index(drop=True), gradient=None) if len(rest) else None,
            "sizes": sizes, "times": figure_uri(plots.attack_times(times, f"{dataset}: attack time"))}


def gallery_section(run: Run, frame: pd.DataFrame, dataset: str, prefix: str) -> list[dict]:
    """One gallery per threat model and defense: each attack's first images, labelled; each with
    an id (starting with ``prefix``) that heatmap and table cells link to."""
    galleries = []
    for (threat, defense), cells in frame.groupby(["threat_model", "defense_label"], sort=False):
        rows = []
        for row in cells.drop_duplicates("examples").itertuples():
            arrays = _arrays(run, row.cell_key)
            if arrays is None or "gallery_x" not in arrays:
                continue
            shown = slice(0, min(GALLERY_SHOWN, len(arrays["gallery_x"])))
            rows.append({"label": row.examples, "x": arrays["gallery_x"][shown],
                         "x_adv": arrays["gallery_x_adv"][shown], "y": arrays["y"][shown],
                         "pred_clean": arrays["pred_clean"][shown], "pred_adv": arrays["pred_adv"][shown]})
        if rows:
            title = f"{dataset} · {threat} · {defense}"
            galleries.append({"threat": threat, "defense": defense, "id": anchor(prefix, "gallery", threat, defense),
                              "image": figure_uri(plots.gallery(rows, title))})
    return galleries


def _arrays(run: Run, cell_key: str) -> dict[str, np.ndarray] | None:
    """The cell's per-image arrays, or None when the folder holds only results.csv."""
    try:
        return run.store.arrays(cell_key)
    except FileNotFoundError:
        return None


def run_section(run: Run, index: int) -> dict:
    """Everything the template shows for one run (its ids start with ``run-INDEX``)."""
    datasets = []
    for dataset, frame in run.frame.groupby("dataset", sort=False):
        prefix = anchor("run", index, dataset)
        galleries = gallery_section(run, frame, dataset, prefix)
        links = {(g["threat"], g["defense"]): "#" + g["id"] for g in galleries}
        datasets.append({
            "name": dataset, "id": prefix,
            "subset": bool(frame["dataset_is_subset"].astype(bool).any()),
            "threats": threat_sections(frame, dataset, prefix, links),
            "perturbation": perturbation_section(run, frame, dataset),
            "galleries": galleries,
        })
    cells = run.frame[ALL_CELLS_COLUMNS].rename(columns={"defense_label": "defense",
                                                          "attack_label": "attack"})
    return {"name": run.name, "id": anchor("run", index), "metadata": metadata(run), "datasets": datasets,
            "all_cells": styled(cells.reset_index(drop=True), gradient=None)}


def flags_section(run: Run) -> dict:
    """The run's saved red flags (``OUT/flags.csv``): ``checked`` is False when the run has no
    such file (``--no-flags``, or a run from before flags were saved)."""
    found = read_flags(run.store.out_dir)
    if found is None:
        return {"name": run.name, "checked": False, "flags": [], "defenses": []}
    flags = [{"dataset": row["dataset"], "defense": row["defense"], "flag": row["flag"],
              "evidence": row["evidence"], "cells": [key for key in row.get("cells", "").split() if key]}
             for _, row in found.iterrows()]
    defenses = list(dict.fromkeys(f"{row['dataset']} · {row['defense']}" for row in flags))
    return {"name": run.name, "checked": True, "flags": flags, "defenses": defenses}


def worst_case_rows(run: Run) -> pd.DataFrame | None:
    """The worst case per image of the run (``bench.worst_case.summary``) from its cells' arrays;
    its saved ``summary.csv`` when the folder holds only CSV files; None when neither."""
    try:
        return summary(run.frame, run.store.arrays)
    except (FileNotFoundError, BenchError):
        return read_summary(run.store.out_dir)


def training_cost(row: pd.Series) -> str:
    """What training the row's model cost: wall time and device from the cache's record ("–" when the
    run predates the record or the model was the user's own)."""
    seconds, device = row.get("train_seconds"), row.get("train_device")
    if seconds is None or pd.isna(seconds):
        return "–"
    where = f" ({device})" if isinstance(device, str) and device else ""
    return (f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s") + where


def ranking_section(run: Run, flags: dict) -> list[dict]:
    """Per dataset: the defenses ranked by their worst case over every attack and threat model at
    the headline budget (``bench.worst_case.ranking``), with intervals, n and flags marked."""
    rows = worst_case_rows(run)
    if rows is None or rows.empty:
        return []
    flagged = {(f["dataset"], f["defense"]) for f in flags["flags"]}
    table = ranking(rows, flagged, standard_budgets(rows["dataset"].unique()))
    labels = run.frame.drop_duplicates(["dataset", "defense", "defense_options", "seed"])
    label = {(r["dataset"], r["defense"], str(r["defense_options"]), int(r["seed"])): r["defense_label"]
             for _, r in labels.iterrows()}
    cost = {(r["dataset"], r["defense"], str(r["defense_options"]), int(r["seed"])): training_cost(r)
            for _, r in labels.iterrows()}
    strong = set(STRONG)
    sections = []
    for dataset, block in table.groupby("dataset", sort=False):
        norm, eps = block["norm"].iloc[0], block["eps"].iloc[0]
        at = rows[(rows["dataset"] == dataset) & (rows["norm"] == norm) & np.isclose(rows["eps"], eps)]
        lines = []
        for _, row in block.iterrows():
            key = (dataset, row["defense"], str(row["defense_options"]), int(row["seed"]))
            name = label.get(key, row["defense"])
            white = at[(at["defense"] == row["defense"]) & (at["scope"] == "whitebox")]
            attacks = set() if white.empty else {a.split(" ")[1].split("@")[0] for a in white["attacks"].iloc[0].split("; ")}
            lines.append({
                "rank": int(row["rank"]), "defense": name, "flagged": bool(row["flagged"]),
                "headline": with_interval(row["headline"], row["headline_ci_low"], row["headline_ci_high"]),
                "n": int(row["headline_n"]), "scope": row["headline_scope"],
                "untrusted": bool(row["flagged"]) and row["headline_scope"] == "white-box only",
                "whitebox": with_interval(row["whitebox"], row["whitebox_ci_low"], row["whitebox_ci_high"]),
                "clean": with_interval(row["clean"], row["clean_ci_low"], row["clean_ci_high"]),
                "attacks": int(row["attacks"]), "strong": strong <= attacks, "train": cost.get(key, "–"),
                "broken_by": "; ".join(row["broken_by"].split("; ")[:3]) if isinstance(row["broken_by"], str) else "",
            })
        budgets = rows[rows["dataset"] == dataset].assign(
            budget=lambda f: f["norm"].map(plots.NORM_NAMES).fillna(f["norm"]) + " ε=" + f["eps"].map("{:.3g}".format))
        every = budgets.pivot_table(index="defense", columns=["budget", "scope"], values="worst_case_accuracy",
                                    aggfunc="first")
        texts = budgets.assign(text=[with_interval(r["worst_case_accuracy"], r["worst_case_accuracy_ci_low"],
                                                   r["worst_case_accuracy_ci_high"], r["worst_case_accuracy_n"])
                                     for _, r in budgets.iterrows()]).pivot_table(
            index="defense", columns=["budget", "scope"], values="text", aggfunc="first")
        order = [d for d in block["defense"] if d in every.index]
        every, texts = every.reindex(order), texts.reindex(index=order, columns=every.columns)
        title = f"{dataset}: worst case at {plots.NORM_NAMES.get(norm, norm)} ε = {eps:.3g}, any threat model"
        bars = block.assign(defense=[line["defense"] for line in lines])
        sections.append({"dataset": dataset, "id": anchor("ranking", run.name, dataset),
                         "budget": f"{plots.NORM_NAMES.get(norm, norm)} ε = {eps:.3g}",
                         "lines": lines, "bars": figure_uri(plots.ranking_bars(bars, title)),
                         "every": styled_text(texts.fillna("–"), every) if len(every) else None})
    return sections


COMPARED = ["dataset", "threat_model", "defense_label", "attack_label"]


def comparison_table(reference: Run, other: Run) -> tuple[pd.DataFrame, dict[str, list[tuple]]]:
    """Cells of both runs with each metric side by side and ``Δ = other − reference``; and the
    cells only one run has (``{run name: [(dataset, threat model, defense, attack), ...]}``)."""
    merged = reference.frame.merge(other.frame, on=COMPARED, how="outer", suffixes=(" ref", " now"),
                                   indicator=True)
    both = merged[merged["_merge"] == "both"].sort_values(COMPARED, key=_display_order, kind="stable")
    columns = {}
    for metric in METRICS:
        columns[(metric, reference.name)] = both[f"{metric} ref"].to_numpy()
        columns[(metric, other.name)] = both[f"{metric} now"].to_numpy()
        columns[(metric, "Δ")] = (both[f"{metric} now"] - both[f"{metric} ref"]).to_numpy()
        columns[(metric, "reading")] = [difference_reading(row, metric) for _, row in both.iterrows()]
    index = pd.MultiIndex.from_frame(both[COMPARED], names=["dataset", "threat model", "defense", "attack"])
    only = {name: [tuple(str(v) for v in row) for row in
                   merged.loc[merged["_merge"] == kind, COMPARED].sort_values(
                       COMPARED, key=_display_order, kind="stable").itertuples(index=False)]
            for name, kind in ((reference.name, "left_only"), (other.name, "right_only"))}
    return pd.DataFrame(columns, index=index), only


def difference_reading(row: pd.Series, metric: str) -> str:
    """How to read a Δ of ``metric`` between two runs (``row`` of the merged runs, `` ref`` and
    `` now`` suffixes): ``within intervals`` when their 95% intervals overlap (the runs may not
    differ at all), ``beyond intervals`` otherwise, and always ``n 100 → 40`` when the
    denominators differ, so no Δ is shown without saying so."""
    ref, now = row.get(f"{metric} ref"), row.get(f"{metric} now")
    if ref is None or now is None or pd.isna(ref) or pd.isna(now):
        return "–"
    low = (row.get(f"{metric}_ci_low ref"), row.get(f"{metric}_ci_low now"))
    high = (row.get(f"{metric}_ci_high ref"), row.get(f"{metric}_ci_high now"))
    if any(value is None or pd.isna(value) for value in (*low, *high)):
        text = "no intervals"
    else:
        text = "within intervals" if max(low) <= min(high) else "beyond intervals"
    n_ref, n_now = row.get(f"{metric}_n ref"), row.get(f"{metric}_n now")
    if not (pd.isna(n_ref) or pd.isna(n_now)) and int(n_ref) != int(n_now):
        text += f"; n differs: {int(n_ref)} → {int(n_now)}"
    return text


def comparison(reference: Run, other: Run) -> dict:
    """The comparison section: Δ heatmaps of each threat model's headline metric, the side-by-side
    table, and the cells only one run has."""
    table, only = comparison_table(reference, other)
    deltas = [column for column in table.columns if column[1] == "Δ"]
    flat = table.reset_index()  # one row per cell, no merged row labels: a table that sorts
    style = (flat.style.format(precision=3, na_rep="–").set_table_attributes('class="data"').hide(axis="index")
             .background_gradient(cmap=plots.DELTA_CMAP, vmin=-1, vmax=1, subset=deltas))
    readings = table[[column for column in table.columns if column[1] == "reading"]]
    within = int(readings.apply(lambda c: c.str.startswith("within")).to_numpy().sum())
    beyond = int(readings.apply(lambda c: c.str.startswith("beyond")).to_numpy().sum())
    differs = readings.apply(lambda c: c.str.contains("n differs")).any(axis=1)
    n_differs = int(differs.sum())
    n_pairs = sorted({reading.partition("n differs: ")[2] for reading in readings[differs].to_numpy().ravel()
                      if "n differs" in reading})
    heatmaps = []
    for (dataset, threat), cells in table.groupby(level=["dataset", "threat model"], sort=False):
        metric = METRICS_BY_THREAT.get(threat, ("robust_accuracy",))[0]
        delta = cells[(metric, "Δ")].rename("delta").reset_index().rename(
            columns={"defense": "defense_label", "attack": "attack_label"})
        differs = int(cells[(metric, "reading")].str.contains("n differs").sum())
        note = f" (n differs in {differs} cells)" if differs else ""
        heatmaps.append(figure_uri(plots.delta_heatmap(
            grid(delta, "delta"), f"{dataset} · {threat}: {other.name} − {reference.name}{note}", metric)))
    return {"reference": reference.name, "other": other.name, "table": Markup(style.to_html()),
            "heatmaps": heatmaps, "only": only, "within": within, "beyond": beyond, "n_differs": n_differs,
            "n_pairs": n_pairs, "id": anchor("comparison", other.name)}


def render(runs: Sequence[Run]) -> str:
    """The report's HTML text."""
    environment = jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"),
                                     autoescape=jinja2.select_autoescape(["html"]),
                                     undefined=jinja2.StrictUndefined)
    return environment.get_template("report.html").render(
        title="bench report: " + ", ".join(run.name for run in runs),
        generated_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        suite_version=bench.__version__,
        flags=(flags := [flags_section(run) for run in runs]),
        rankings=[{"name": run.name, "datasets": ranking_section(run, found)} for run, found in zip(runs, flags)],
        runs=[run_section(run, index) for index, run in enumerate(runs, 1)],
        comparisons=[comparison(runs[0], run) for run in runs[1:]],
    )


def write_report(run_dirs: Sequence[str | Path], out_path: str | Path) -> Path:
    """Render the report of ``run_dirs`` (the first is the reference of any comparison) to ``out_path``."""
    paths = [Path(p) for p in run_dirs]
    names = [p.name or str(p) for p in paths]
    if len(set(names)) < len(names):  # same folder name in different places: use the paths
        names = [str(p) for p in paths]
    text = render([load_run(path, name) for path, name in zip(paths, names)])
    out_path = Path(out_path)
    write_bytes_atomic(out_path, text.encode("utf-8"))  # disk full, read-only: one line naming it
    return out_path
