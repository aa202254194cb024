"""Worst case per image over attacks (bench/worst_case.py) and its Wilson interval, on predictions
built by hand: three attacks on ten images, each breaking a different set."""

import math

import numpy as np
import pandas as pd
import pytest

from bench.metrics import wilson_interval
from bench.worst_case import SUMMARY_COLUMNS, lead_lines, ranking, summary, worst_case

Y = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
CLEAN = Y.copy()
CLEAN[9] = 0                                  # image 9 is wrong without attack
WRONG = {"fgsm": [0, 1], "pgd": [1, 2, 9], "square": [2, 3, 4]}


def _after(broken):
    pred = Y.copy()
    pred[broken] = (Y[broken] + 1) % 10
    return pred


def test_worst_case_and_its_wilson_interval_by_hand():
    result = worst_case(Y, CLEAN, {name: _after(images) for name, images in WRONG.items()})
    # Robust: correct clean (not 9) and broken by no attack (not 0-4): images 5, 6, 7, 8.
    assert result.count == 4 and result.n == 10
    assert list(np.flatnonzero(result.robust)) == [5, 6, 7, 8]
    # Each attack's images among those correct clean (pgd's image 9 was already wrong).
    assert result.broken == {"fgsm": 2, "pgd": 2, "square": 3}
    assert result.only == {"fgsm": 1, "pgd": 0, "square": 2}  # 0 | - (1, 2 shared) | 3, 4
    # Wilson 95% interval of 4/10, computed here from its formula.
    z, p, n = 1.959963984540054, 0.4, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(4, 10) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(4, 10) == pytest.approx((0.1682, 0.6873), abs=1e-4)  # published tables


def _row(attack, threat, eps, key, norm="linf", **extra):
    return {"dataset": "digits", "defense": "d", "defense_options": "{}", "seed": 0, "attack": attack,
            "threat_model": threat, "eps": eps, "norm": norm, "cell_key": key, "check": "",
            "robust_accuracy": 0.0} | extra


def test_summary_takes_every_attack_at_a_budget_and_scopes_threat_models():
    frame = pd.DataFrame([
        _row("fgsm", "whitebox", 0.3, "a"), _row("pgd", "whitebox", 0.3, "b"),
        _row("square", "blackbox", 0.3, "c"),
        _row("pgd", "whitebox", 1.0, "sanity", check="large-eps"),     # a sanity cell: not a result
        _row("deepfool", "whitebox", np.nan, "unbudgeted", norm="l2"),  # minimal, no budget: left out
        _row("deepfool", "whitebox", 1.0, "df", norm="l2"),             # scored at L2 ε = 1
    ])
    index = np.arange(10) * 3  # the test images evaluated: the same in every cell
    stored = {key: {"index": index, "y": Y, "pred_clean": CLEAN, "pred_adv": _after(images)}
              for key, images in {"a": WRONG["fgsm"], "b": WRONG["pgd"], "c": WRONG["square"],
                                  "sanity": list(range(10)), "unbudgeted": list(range(10)), "df": [5]}.items()}
    table = summary(frame, stored.__getitem__)
    assert list(table.columns) == SUMMARY_COLUMNS
    rows = {(row.norm, row.eps, row.scope): row for row in table.itertuples()}
    assert set(rows) == {("linf", 0.3, "whitebox"), ("linf", 0.3, "any"), ("l2", 1.0, "whitebox"),
                         ("l2", 1.0, "any")}
    white, anything = rows["linf", 0.3, "whitebox"], rows["linf", 0.3, "any"]
    assert (white.worst_case_accuracy_count, white.worst_case_accuracy_n) == (6, 10)  # 5..8 and 3, 4
    assert (anything.worst_case_accuracy_count, anything.worst_case_accuracy) == (4, 0.4)
    assert (anything.worst_case_accuracy_ci_low, anything.worst_case_accuracy_ci_high) == \
        pytest.approx(wilson_interval(4, 10))
    assert anything.clean_accuracy_count == 9
    assert anything.broken_by == "blackbox square@0.3: 3; whitebox fgsm@0.3: 2; whitebox pgd@0.3: 2"
    assert anything.only_broken_by == "blackbox square@0.3: 2; whitebox fgsm@0.3: 1"
    assert rows["l2", 1.0, "whitebox"].worst_case_accuracy_count == 8


def test_ranking_reads_any_threat_model_and_puts_flagged_defenses_below_at_equal_numbers():
    def summary_row(defense, scope, accuracy, attacks):
        return {"dataset": "digits", "defense": defense, "defense_options": "{}", "seed": 0, "norm": "linf",
                "eps": 0.3, "scope": scope, "worst_case_accuracy": accuracy, "worst_case_accuracy_n": 100,
                "worst_case_accuracy_ci_low": 0, "worst_case_accuracy_ci_high": 1, "clean_accuracy": 0.9,
                "clean_accuracy_ci_low": 0.8, "clean_accuracy_ci_high": 1, "n_attacks": 2, "attacks": attacks,
                "broken_by": ""}
    rows = pd.DataFrame([
        summary_row("masked", "whitebox", 0.9, "w"), summary_row("masked", "any", 0.0, "w; b"),
        summary_row("none", "whitebox", 0.0, "w"), summary_row("none", "any", 0.0, "w; b"),
        summary_row("sound", "whitebox", 0.5, "w"), summary_row("sound", "any", 0.4, "w; b"),
    ])
    table = ranking(rows, flagged={("digits", "masked")})
    assert list(table["defense"]) == ["sound", "none", "masked"]
    masked = table[table["defense"] == "masked"].iloc[0]
    assert masked["headline"] == 0.0 and masked["whitebox"] == 0.9 and masked["flagged"]
    assert set(table["headline_scope"]) == {"any threat model"}
    # bench run's summary opens with the same ranking, the flagged defense marked.
    lines = lead_lines(rows, flagged={("digits", "masked")})["digits"]
    assert lines[0].startswith("worst case per image at L∞ ε = 0.3") and "⚑ red flag raised" in lines[0]
    assert [line.split()[1] for line in lines[2:]] == ["sound", "none", "⚑"]
    assert "0.400 [0.00, 1.00]" in lines[2] and "0.900 [0.00, 1.00]" in lines[4]
