"""Tables derived from the results DataFrame (one row per cell)."""

from __future__ import annotations

import pandas as pd

#: How each norm of ``results.csv``'s ``norm`` column is written in labels and axes.
NORM_NAMES = {"linf": "L∞", "l2": "L2", "l0": "L0"}


def norm_name(norm) -> str:
    """``L∞`` for ``linf`` (the name as given when unknown; empty when missing)."""
    return "" if norm is None or pd.isna(norm) else NORM_NAMES.get(norm, str(norm))


def attack_label(row: pd.Series) -> str:
    """``pgd L∞ ε=0.3``: the attack, the norm of its budget, and the budget when it has one
    (``deepfool L2``: a minimal attack's unbudgeted row, or a bounded attack at its default)."""
    eps, norm = row.get("eps"), norm_name(row.get("norm"))
    base = f"{row['attack']} {norm}" if norm else row["attack"]
    return base if pd.isna(eps) else f"{base} ε={eps:.3g}"


def summary_table(frame: pd.DataFrame, value: str = "robust_accuracy") -> pd.DataFrame:
    """Defenses × attacks of ``value``, one block per dataset and threat model.

    The first column is the defense's clean accuracy (mean over its cells), so
    each line reads "clean, then under each attack".
    """
    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(attack_eps=frame.apply(attack_label, axis=1))
    index = ["dataset", "threat_model", "defense"]
    table = frame.pivot_table(index=index, columns="attack_eps", values=value, aggfunc="mean")
    clean = frame.groupby(index)["clean_accuracy"].mean().rename("clean")
    table = pd.concat([clean, table], axis=1)
    table.columns.name = value
    return table
