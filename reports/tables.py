"""Tables derived from the results DataFrame (one row per cell)."""

from __future__ import annotations

import pandas as pd


def attack_label(row: pd.Series) -> str:
    """``pgd`` or ``pgd@0.3``: the attack, with its budget when it has one."""
    eps = row.get("eps")
    return row["attack"] if pd.isna(eps) else f"{row['attack']}@{eps:.3g}"


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
