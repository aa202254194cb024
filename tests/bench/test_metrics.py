"""Metric definitions on hand-checked predictions."""

import math

import numpy as np

from bench.metrics import perturbation_norms, summarize


def test_metric_definitions():
    y = np.array([0, 1, 2, 3])
    pred_clean = np.array([0, 1, 2, 0])      # 3 of 4 right
    pred_adv = np.array([0, 2, 2, 0])        # robust: 2 of 4; of the 3 clean-right, 1 flipped
    source_clean = np.array([0, 1, 2, 3])
    source_adv = np.array([1, 2, 2, 3])      # fooled on images 0 and 1
    x = np.zeros((4, 1, 2, 2), np.float32)
    x_adv = x.copy()
    x_adv[0, 0, 0, 0] = 0.3
    x_adv[1] = 0.1
    metrics = summarize(y, pred_clean, pred_adv, source_clean, source_adv, perturbation_norms(x, x_adv))
    assert metrics["clean_accuracy"] == 0.75
    assert metrics["robust_accuracy"] == 0.5
    assert math.isclose(metrics["attack_success_rate"], 1 / 3)
    # Of the two images that fooled the source, the defense gets image 0 right, image 1 wrong.
    assert metrics["defense_rate"] == 0.5 and metrics["n_adversarial"] == 2
    assert math.isclose(metrics["mean_linf"], (0.3 + 0.1) / 4, rel_tol=1e-6)
    assert math.isclose(metrics["mean_l2"], (0.3 + 0.2) / 4, rel_tol=1e-6)
    assert metrics["mean_l0"] == (1 + 4) / 4


def test_rates_are_nan_when_nothing_qualifies():
    y = np.array([1, 1])
    wrong = np.array([0, 0])
    norms = perturbation_norms(np.zeros((2, 1)), np.zeros((2, 1)))
    metrics = summarize(y, wrong, wrong, wrong, wrong, norms)
    assert math.isnan(metrics["attack_success_rate"]) and math.isnan(metrics["defense_rate"])
