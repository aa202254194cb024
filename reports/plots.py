"""The report's plots: small functions, each taking tidy data and returning a matplotlib Figure.

Every function draws with seaborn/matplotlib on the Agg backend (no display
needed) and leaves saving to the caller (``reports.html.figure_uri`` inlines
the figure as a PNG).  Accuracies and rates are fractions, drawn on [0, 1].

Example::

    from reports.plots import heatmap
    figure = heatmap(summary.drop(columns="clean"), "digits · whitebox · robust accuracy")
    figure.savefig("heatmap.png")
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reports.tables import NORM_NAMES  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)

#: Colour maps: sequential for fractions (high = robust), diverging around 0 for differences.
FRACTION_CMAP = "viridis"
DELTA_CMAP = "RdBu"
#: Smallest font of a chart's labels (points): charts grow instead of shrinking their text.
MIN_FONT = 9


def heatmap(table: pd.DataFrame, title: str) -> Figure:
    """Defenses (rows) × attacks (columns) of one metric, annotated, on a fixed [0, 1] scale.

    ``table``: defenses × attacks of fractions (NaN cells stay blank).
    """
    rows, columns = table.shape
    figure, ax = plt.subplots(figsize=(1.8 + 0.72 * max(columns, 2), 1.1 + 0.36 * max(rows, 2)),
                              layout="constrained")
    sns.heatmap(table.astype(float), vmin=0, vmax=1, cmap=FRACTION_CMAP, annot=True, fmt=".2f",
                linewidths=0.5, ax=ax)
    ax.set(title=title, xlabel="attack, norm and budget", ylabel="defense")
    ax.tick_params(axis="x", rotation=30)
    ax.tick_params(axis="y", rotation=0)
    return figure


def cell_boxes(figure: Figure, table: pd.DataFrame) -> dict[tuple, tuple[float, float, float, float]]:
    """Where each cell of a :func:`heatmap` of ``table`` lies in its image, in percent of the image:
    ``{(row label, column label): (left, top, width, height)}``, so HTML can lay links over the
    cells that scale with the image."""
    figure.canvas.draw()  # apply the constrained layout
    box = figure.axes[0].get_position()
    rows, columns = table.shape
    width, height = box.width / columns, box.height / rows
    return {(row, column): (100 * (box.x0 + j * width), 100 * (1 - box.y1 + i * height),
                            100 * width, 100 * height)
            for i, row in enumerate(table.index) for j, column in enumerate(table.columns)}


def delta_heatmap(table: pd.DataFrame, title: str, value: str) -> Figure:
    """Defenses × attacks of a difference ``value`` between runs (``now - reference``), centred on 0.

    The colour scale is symmetric and at least ±0.1, so small noise stays pale.
    """
    rows, columns = table.shape
    limit = max(0.1, float(np.nanmax(np.abs(table.to_numpy(dtype=float)))) if table.size else 0.1)
    figure, ax = plt.subplots(figsize=(1.8 + 0.72 * max(columns, 2), 1.1 + 0.36 * max(rows, 2)),
                              layout="constrained")
    sns.heatmap(table.astype(float), vmin=-limit, vmax=limit, center=0, cmap=DELTA_CMAP, annot=True,
                fmt="+.2f", linewidths=0.5, ax=ax)
    ax.set(title=f"{title}\nΔ {value.replace('_', ' ')}", xlabel="attack", ylabel="defense")
    ax.tick_params(axis="x", rotation=30)
    ax.tick_params(axis="y", rotation=0)
    return figure


def robustness_curves(frame: pd.DataFrame, value: str, title: str) -> Figure:
    """``value`` against the budget ε, one panel per attack, one line per defense, with error bars.

    ``frame``: rows with columns ``attack``, ``norm`` (of ε: ``linf``, ``l2``,
    ``l0``), ``eps``, ``defense`` and ``value`` (only attacks with two or more
    budgets make a curve; a minimal-perturbation attack's budgets score its one
    run); optional ``ci_low`` and ``ci_high`` (the 95% interval of each point)
    are drawn as error bars, and ``n`` (images per point) goes in the panel title.
    """
    attacks = list(dict.fromkeys(frame["attack"]))
    defenses = list(dict.fromkeys(frame["defense"]))
    colours = dict(zip(defenses, sns.color_palette(n_colors=max(len(defenses), 1))))
    figure, axes = plt.subplots(1, len(attacks), figsize=(3.6 * len(attacks) + 1.6, 3.2), sharey=True,
                                squeeze=False, layout="constrained")
    for ax, attack in zip(axes[0], attacks):
        panel = frame[frame["attack"] == attack]
        for defense in defenses:
            line = panel[panel["defense"] == defense].sort_values("eps")
            if line.empty:
                continue
            errors = None
            if {"ci_low", "ci_high"} <= set(line.columns):
                errors = np.vstack([(line[value] - line["ci_low"]).clip(lower=0).to_numpy(dtype=float),
                                    (line["ci_high"] - line[value]).clip(lower=0).to_numpy(dtype=float)])
            ax.errorbar(line["eps"], line[value], yerr=errors, marker="o", markersize=4, capsize=3,
                        color=colours[defense], label=defense)
        norm = panel["norm"].iloc[0]
        sizes = sorted({int(n) for n in panel["n"].dropna()}) if "n" in panel else []
        count = "" if not sizes else f" (n = {sizes[0]})" if len(sizes) == 1 else f" (n = {sizes[0]}–{sizes[-1]})"
        ax.set(title=f"{attack} {NORM_NAMES.get(norm, norm)}{count}", xlabel=f"ε ({NORM_NAMES.get(norm, norm)})", ylabel=value.replace("_", " "),
               ylim=(-0.02, 1.02))
    axes[0][-1].legend(title="defense", loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    figure.suptitle(title + "   (bars: 95% Wilson intervals)")
    return figure


def ranking_bars(table: pd.DataFrame, title: str) -> Figure:
    """The headline worst case per defense as horizontal bars with their 95% intervals, in rank order.

    ``table``: rows of ``bench.worst_case.ranking`` for one dataset (``defense``,
    ``headline``, ``headline_ci_low``, ``headline_ci_high``, ``flagged``); a
    flagged defense's bar is hatched and its label marked ⚑.
    """
    table = table.iloc[::-1]
    figure, ax = plt.subplots(figsize=(6.4, 0.9 + 0.42 * max(len(table), 2)), layout="constrained")
    labels = [("⚑ " if flagged else "") + str(name) for name, flagged in zip(table["defense"], table["flagged"])]
    errors = np.vstack([(table["headline"] - table["headline_ci_low"]).clip(lower=0).to_numpy(dtype=float),
                        (table["headline_ci_high"] - table["headline"]).clip(lower=0).to_numpy(dtype=float)])
    bars = ax.barh(labels, table["headline"], xerr=errors, capsize=3, color=plt.get_cmap(FRACTION_CMAP)(0.6))
    for bar, flagged in zip(bars, table["flagged"]):
        if flagged:
            bar.set_hatch("//")
            bar.set_facecolor("#f2c4c0")
    ax.set(title=title, xlabel="worst-case robust accuracy (95% interval)", xlim=(0, 1))
    return figure


def perturbation_sizes(norms: pd.DataFrame, title: str) -> Figure:
    """Per-image perturbation size per attack: one box plot per norm, one box per crafting model.

    ``norms``: long form, one row per image with columns ``attack``,
    ``defense`` (the model the examples were crafted on), ``norm`` (``L2``,
    ``L∞``) and ``size`` on [0, 1] pixel scale.
    """
    kinds = list(dict.fromkeys(norms["norm"]))
    figure, axes = plt.subplots(1, len(kinds), figsize=(5.4 * len(kinds) + 1.6, 3.4), squeeze=False,
                                layout="constrained")
    for ax, kind in zip(axes[0], kinds):
        sns.boxplot(data=norms[norms["norm"] == kind], x="attack", y="size", hue="defense", fliersize=1.5,
                    ax=ax, legend=ax is axes[0][-1])
        ax.set(title=f"{kind} of x_adv − x", xlabel="", ylabel=kind)
        ax.tick_params(axis="x", rotation=30)
    if axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False, title="crafted on")
    figure.suptitle(title)
    return figure


def attack_times(frame: pd.DataFrame, title: str) -> Figure:
    """Seconds each attack took to craft its examples (log scale), one bar per model attacked.

    ``frame``: one row per set of examples with columns ``attack``, ``defense``
    (the model they were crafted on) and ``attack_seconds``.  The bars are
    horizontal and the figure grows with their number, so its labels keep
    :data:`MIN_FONT` however many attacks a run has.
    """
    bars = max(len(frame), 2)
    figure, ax = plt.subplots(figsize=(7.2, 1.2 + 0.2 * bars), layout="constrained")
    sns.barplot(data=frame, y="attack", x="attack_seconds", hue="defense", orient="h", ax=ax)
    ax.set(title=title, ylabel="", xlabel="seconds (log scale)", xscale="log")
    ax.tick_params(labelsize=MIN_FONT)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), frameon=False, title="crafted on",
                    fontsize=MIN_FONT, title_fontsize=MIN_FONT)
    return figure


def gallery(rows: list[dict], title: str) -> Figure:
    """Clean / adversarial / amplified difference for a few images per attack, with labels.

    ``rows``: one dict per attack with ``label`` (str), ``x`` and ``x_adv``
    (``N×C×H×W`` in [0, 1]), ``y``, ``pred_clean`` and ``pred_adv`` (``N`` ints).
    Each difference is scaled by ``k = 1 / max|x_adv − x|`` of its image
    (shown as ``Δ×k``): red where pixels got brighter, blue where darker.
    Predictions the defense got wrong are titled in red.
    """
    images = max(len(row["x"]) for row in rows)
    figure, axes = plt.subplots(len(rows), 3 * images, squeeze=False, layout="constrained",
                                figsize=(0.95 * 3 * images + 1.6, 1.25 * len(rows) + 0.7))
    for line, row in zip(axes, rows):
        line[0].set_ylabel(row["label"], rotation=0, ha="right", va="center", fontsize=9)
        for i in range(images):
            clean, adv, diff = line[3 * i: 3 * i + 3]
            if i >= len(row["x"]):
                continue
            x, x_adv = _hwc(row["x"][i]), _hwc(row["x_adv"][i])
            delta = x_adv - x
            scale = float(np.abs(delta).max())
            _show(clean, x, f"{row['y'][i]}→{row['pred_clean'][i]}", row["pred_clean"][i] == row["y"][i])
            _show(adv, x_adv, f"adv→{row['pred_adv'][i]}", row["pred_adv"][i] == row["y"][i])
            amplified = delta / scale if scale > 0 else delta
            if amplified.ndim == 2:
                diff.imshow(amplified, cmap="RdBu_r", vmin=-1, vmax=1)
            else:
                diff.imshow(np.clip(0.5 + 0.5 * amplified, 0, 1))
            diff.set_title(f"Δ×{1 / scale:.0f}" if scale > 0 else "Δ=0", fontsize=8, color="dimgray")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    # The constrained layout keeps the title above the first row's labels (tight_layout ignores it).
    figure.suptitle(title + "   (true→predicted; red: wrong)", fontsize=10)
    figure.get_layout_engine().set(w_pad=0.02, h_pad=0.04, hspace=0.02, wspace=0.02)
    return figure


def _hwc(image: np.ndarray) -> np.ndarray:
    """``C×H×W`` -> ``H×W`` (grey) or ``H×W×3`` (colour), as float64."""
    image = np.asarray(image, dtype=np.float64)
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def _show(ax, image: np.ndarray, title: str, correct: bool) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_title(title, fontsize=8, color="black" if correct else "red")
