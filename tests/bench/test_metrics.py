"""Metric definitions on hand-checked predictions."""

import math

import numpy as np

import pandas as pd
import pytest

from bench.metrics import perturbation_norms, summarize, wilson_interval, with_intervals


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
    # Every rate with its count, denominator and Wilson interval.
    assert (metrics["robust_accuracy_count"], metrics["robust_accuracy_n"]) == (2, 4)
    assert (metrics["attack_success_rate_count"], metrics["attack_success_rate_n"]) == (1, 3)
    assert (metrics["defense_rate_count"], metrics["defense_rate_n"]) == (1, 2)
    assert (metrics["clean_accuracy_ci_low"], metrics["clean_accuracy_ci_high"]) == wilson_interval(3, 4)


def test_wilson_interval_against_hand_values():
    # 95% Wilson score intervals (Newcombe 1998, table I): 81/263 -> 0.2553-0.3662, 0/10 -> 0-0.2775.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_rows_from_before_the_interval_columns_get_them_from_rate_and_denominator():
    old = pd.DataFrame({"clean_accuracy": [0.9], "robust_accuracy": [0.25], "attack_success_rate": [0.5],
                        "defense_rate": [float("nan")], "n_eval": [100], "n_adversarial": [0]})
    new = with_intervals(old).iloc[0]
    assert (new["robust_accuracy_count"], new["robust_accuracy_n"]) == (25, 100)
    assert (new["attack_success_rate_count"], new["attack_success_rate_n"]) == (45, 90)
    assert (new["robust_accuracy_ci_low"], new["robust_accuracy_ci_high"]) == wilson_interval(25, 100)
    assert math.isnan(new["defense_rate_ci_low"])


def test_rates_are_nan_when_nothing_qualifies():
    y = np.array([1, 1])
    wrong = np.array([0, 0])
    norms = perturbation_norms(np.zeros((2, 1)), np.zeros((2, 1)))
    metrics = summarize(y, wrong, wrong, wrong, wrong, norms)
    assert math.isnan(metrics["attack_success_rate"]) and math.isnan(metrics["defense_rate"])
