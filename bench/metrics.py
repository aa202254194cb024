"""Per-cell metrics, computed from per-image predictions and perturbations.

Definitions (all fractions in [0, 1]; ``nan`` when the denominator is empty):

``clean_accuracy``
    Evaluated images the defense classifies correctly without attack.
``robust_accuracy``
    Evaluated images the defense classifies correctly after the attack.
``attack_success_rate``
    Among images the defense got right when clean, those it gets wrong after the attack.
``defense_rate``
    Among *successful* adversarial images on the model they were crafted on
    (that model right on the clean image, wrong on the adversarial one), those
    the defense classifies correctly: the DunDi paper's "defended" figure.
    Under ``whitebox`` the crafting model is the defense's own ``forward``, so
    the rate is 0 unless its ``predict`` disagrees with its logits; under
    ``blackbox`` it is the defense's decision itself, so the rate is 0.
``forward_predict_agreement``
    Evaluated clean images on which the defense's decision (its ``predict``, if
    any) equals argmax of its ``forward`` logits, the thing gradient attacks
    differentiate; 1.0 for every defense without its own ``predict``.
``queries_per_image``
    ``blackbox`` only: images the attack asked the defense to classify, divided
    by the evaluated images (every model evaluation ART made, counted).
``mean_l2``, ``mean_linf``, ``mean_l0``
    Mean perturbation norms over all evaluated images, on [0, 1] pixel scale
    (L0 counts changed pixel values, i.e. C·H·W entries).

Uncertainty.  Each rate ``R`` of :data:`RATES` comes with ``R_count`` (images
counted), ``R_n`` (its denominator) and the 95% Wilson score interval
``R_ci_low``, ``R_ci_high`` (:func:`wilson_interval`): the images are a sample
of the test set, so a rate on 100 images is known to about ±0.1, and two rates
whose intervals overlap may not differ at all.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: The rates of a result row, each with its denominator column in results.csv (before ``R_n`` existed).
RATES = {
    "clean_accuracy": "n_eval",
    "robust_accuracy": "n_eval",
    "attack_success_rate": None,   # images the defense got right clean: clean_accuracy · n_eval
    "defense_rate": "n_adversarial",
}
#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson_interval(count: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``count / n`` (95% for the default ``z``).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at
    0 or ``n`` successes: 0 of 100 gives (0, 0.037), 50 of 100 gives
    (0.404, 0.596).  ``(nan, nan)`` when ``n`` is 0 or missing.

    Example::

        wilson_interval(3, 100)   # (0.0103, 0.0846)
    """
    if n is None or not n > 0 or count is None or math.isnan(count):
        return float("nan"), float("nan")
    p = count / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if count <= 0 else max(0.0, centre - half)   # exact at the ends (no rounding residue)
    high = 1.0 if count >= n else min(1.0, centre + half)
    return low, high


def rate_columns(name: str, count: int, n: int) -> dict[str, float]:
    """``name`` (``count / n``), ``name_count``, ``name_n``, ``name_ci_low`` and ``name_ci_high``."""
    low, high = wilson_interval(count, n)
    return {name: count / n if n else float("nan"), f"{name}_count": int(count), f"{name}_n": int(n),
            f"{name}_ci_low": low, f"{name}_ci_high": high}


def with_intervals(frame: pd.DataFrame, rates=tuple(RATES)) -> pd.DataFrame:
    """``frame`` with the count, denominator and Wilson interval columns of each rate in ``rates``
    filled in where missing (rows written before they existed), from the rate and its denominator."""
    frame = frame.copy()
    for rate in rates:
        if rate not in frame:
            continue
        n = frame[f"{rate}_n"] if f"{rate}_n" in frame else pd.Series(np.nan, index=frame.index)
        base = RATES.get(rate)
        if rate == "attack_success_rate" and {"clean_accuracy", "n_eval"} <= set(frame):
            fallback = (pd.to_numeric(frame["clean_accuracy"], errors="coerce")
                        * pd.to_numeric(frame["n_eval"], errors="coerce")).round()
        else:
            fallback = frame[base] if base in frame else pd.Series(np.nan, index=frame.index)
        n = pd.to_numeric(n, errors="coerce").fillna(pd.to_numeric(fallback, errors="coerce"))
        count = frame[f"{rate}_count"] if f"{rate}_count" in frame else pd.Series(np.nan, index=frame.index)
        count = pd.to_numeric(count, errors="coerce").fillna(
            (pd.to_numeric(frame[rate], errors="coerce") * n).round())
        bounds = [wilson_interval(c, k) for c, k in zip(count, n)]
        frame[f"{rate}_count"], frame[f"{rate}_n"] = count, n
        frame[f"{rate}_ci_low"] = [low for low, _ in bounds]
        frame[f"{rate}_ci_high"] = [high for _, high in bounds]
    return frame


def perturbation_norms(x: np.ndarray, x_adv: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image L2, L∞ and L0 norms of ``x_adv - x``."""
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    return {
        "l2": np.linalg.norm(delta, axis=1),
        "linf": np.abs(delta).max(axis=1, initial=0.0),
        "l0": (np.abs(delta) > 1e-6).sum(axis=1).astype(np.float64),
    }


def summarize(y: np.ndarray, pred_clean: np.ndarray, pred_adv: np.ndarray,
              source_clean: np.ndarray, source_adv: np.ndarray,
              norms: dict[str, np.ndarray]) -> dict[str, float]:
    """The metrics of one cell (see the module docstring), each rate with its count, denominator
    and Wilson interval."""
    correct_clean = pred_clean == y
    fooled_source = (source_clean == y) & (source_adv != y)
    return {
        **rate_columns("clean_accuracy", int(correct_clean.sum()), len(y)),
        **rate_columns("robust_accuracy", int((pred_adv == y).sum()), len(y)),
        **rate_columns("attack_success_rate", int((pred_adv[correct_clean] != y[correct_clean]).sum()),
                       int(correct_clean.sum())),
        **rate_columns("defense_rate", int((pred_adv[fooled_source] == y[fooled_source]).sum()),
                       int(fooled_source.sum())),
        "n_adversarial": int(fooled_source.sum()),
        "mean_l2": float(norms["l2"].mean()),
        "mean_linf": float(norms["linf"].mean()),
        "mean_l0": float(norms["l0"].mean()),
    }
