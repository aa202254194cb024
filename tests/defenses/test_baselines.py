"""The baseline defenses on real digits: the grid fills, robust training helps, distillation masks.

Models come from the session cache, so the contract tests and these share one
training of each defense.  Numbers asserted here were measured on digits with
the default options (docs/defenses.md); the margins leave room for seeds.
"""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from bench.cache import Cache, default_cache_dir
from bench.cli import cli
from bench.families import FAMILIES
from bench.models import logits_of
from bench.runner import trained_model
from defenses import REGISTRY
from defenses.baseline_defaults import BASELINES
from defenses.robust_training import cross_entropy_sum, pgd_linf

CPU = torch.device("cpu")
BASELINE_NAMES = ("adv-fgsm", "adv-pgd", "trades", "distillation")
GRID_DEFENSES = [name for name in ("none", *BASELINE_NAMES, "dundi") if name in REGISTRY]
GRID_ATTACKS = ("fgsm", "bim", "deepfool", "jsma")


def _model(digits, name):
    return trained_model(digits, name, {}, 0, CPU, Cache(default_cache_dir()), False).module


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("baselines")
    result = CliRunner().invoke(cli, ["run", "--dataset", "digits", "--defense", ",".join(GRID_DEFENSES),
                                      "--attack", ",".join(GRID_ATTACKS), "--samples", "60",
                                      "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "results.csv")


def test_grid_of_all_defenses_and_the_papers_attacks_fills_every_cell(grid):
    assert len(grid) == len(GRID_DEFENSES) * len(GRID_ATTACKS) * 2
    cells = set(zip(grid["defense"], grid["attack"], grid["threat_model"]))
    assert cells == {(d, a, t) for d in GRID_DEFENSES for a in GRID_ATTACKS for t in ("whitebox", "transfer")}
    measured = ["clean_accuracy", "robust_accuracy", "attack_success_rate", "mean_l2", "mean_linf"]
    assert grid[measured].notna().all().all()
    # defense_rate is undefined only where no adversarial image fooled its source model.
    assert (grid["defense_rate"].notna() | (grid["n_adversarial"] == 0)).all()


def _cell(grid, defense, attack, threat="whitebox"):
    rows = grid[(grid.defense == defense) & (grid.attack == attack) & (grid.threat_model == threat)]
    return rows.iloc[0]


def test_robust_training_beats_the_undefended_model_under_iterative_attack(grid):
    undefended = _cell(grid, "none", "bim")["robust_accuracy"]
    assert undefended <= 0.1
    for name in ("adv-pgd", "trades"):
        assert _cell(grid, name, "bim")["robust_accuracy"] >= undefended + 0.15, name
    # Trained on the budget it is evaluated at, never a smaller one.
    assert (grid.loc[grid.attack == "bim", "mean_linf"] <= FAMILIES["digits"].eps + 1e-6).all()


def test_distillation_masks_softmax_gradients_and_cw_on_logits_breaks_it(grid, tmp_path):
    # White-box FGSM goes through the saturated softmax: its gradient vanishes.
    assert _cell(grid, "distillation", "fgsm")["attack_success_rate"] <= 0.2
    assert _cell(grid, "none", "fgsm")["attack_success_rate"] >= 0.6
    result = CliRunner().invoke(cli, ["run", "--dataset", "digits", "--defense", "distillation",
                                      "--attack", "cw-l2", "--threat-model", "whitebox",
                                      "--samples", "60", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    cw = pd.read_csv(tmp_path / "results.csv").iloc[0]
    assert cw["attack_success_rate"] >= 0.95


def test_distilled_model_returns_raw_logits_at_t1(digits):
    logits = logits_of(_model(digits, "distillation"), digits.x_test[:100], CPU)
    clean = logits_of(_model(digits, "none"), digits.x_test[:100], CPU)
    assert not torch.allclose(logits.softmax(1).sum(1), logits.sum(1))  # not probabilities
    # Trained at T, deployed at T = 1: logits far larger than the undefended model's.
    spread = lambda z: (z.max(1).values - z.min(1).values).median()
    assert spread(logits) > 5 * spread(clean)


def test_inner_pgd_stays_in_the_ball_and_raises_the_loss(digits):
    model = _model(digits, "none")
    x = torch.as_tensor(digits.x_test[:64])
    y = torch.as_tensor(digits.y_test[:64])
    eps = FAMILIES["digits"].eps
    x_adv = pgd_linf(model, x, cross_entropy_sum(y), eps, step_size=0.075, steps=10, start="uniform")
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y) + 1.0
    # One step of eps from x is FGSM.
    x_req = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(cross_entropy_sum(y)(model(x_req)), x_req)
    fgsm = pgd_linf(model, x, cross_entropy_sum(y), eps, step_size=eps, steps=1, start="none")
    np.testing.assert_allclose(fgsm, (x + eps * grad.sign()).clamp(0, 1), atol=1e-6)


def test_defaults_table_trains_at_the_evaluation_budget():
    assert set(BASELINES) == set(FAMILIES)
    for family, row in BASELINES.items():
        assert row.eps == FAMILIES[family].eps, family
        assert row.step_size * row.steps >= row.eps, family  # the inner PGD can cross the ball
