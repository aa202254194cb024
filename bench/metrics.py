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
"""

from __future__ import annotations

import numpy as np


def _fraction(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else float("nan")


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
    """The metrics of one cell (see the module docstring)."""
    correct_clean = pred_clean == y
    fooled_source = (source_clean == y) & (source_adv != y)
    return {
        "clean_accuracy": _fraction(correct_clean),
        "robust_accuracy": _fraction(pred_adv == y),
        "attack_success_rate": _fraction(pred_adv[correct_clean] != y[correct_clean]),
        "defense_rate": _fraction(pred_adv[fooled_source] == y[fooled_source]),
        "n_adversarial": int(fooled_source.sum()),
        "mean_l2": float(norms["l2"].mean()),
        "mean_linf": float(norms["linf"].mean()),
        "mean_l0": float(norms["l0"].mean()),
    }
