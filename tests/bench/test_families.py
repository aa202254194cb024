"""The one table of per-family defaults (``bench.families``) is what every stage reads."""

from __future__ import annotations

import pytest

import attacks
from attacks import Norm, get_attack
from attacks.catalog import default_params, sweep_budgets
from bench.datasets import load_dataset
from bench.errors import BenchError
from bench.families import FAMILIES, TrainConfig, family, standard_budgets
from defenses import get_defense


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_sweep_grid_brackets_the_standard_budget_for_every_norm(name):
    defaults = family(name)
    assert set(defaults.sweep) == {norm.value for norm in Norm}
    grid = defaults.sweep[Norm.LINF.value]
    assert list(grid) == sorted(grid) and grid[0] < defaults.eps < grid[-1] and defaults.eps in grid
    for norm in Norm:
        assert len(defaults.sweep[norm.value]) >= 3 and min(defaults.sweep[norm.value]) > 0


def test_attacks_and_sweeps_take_the_family_budget():
    pgd, deepfool = get_attack("pgd"), get_attack("deepfool")
    bounded = [spec for spec in attacks.REGISTRY.values()
               if spec.bounded and spec.norm is Norm.LINF and spec.origin == "built-in"]
    assert len(bounded) >= 8
    for name, defaults in FAMILIES.items():
        assert default_params(pgd, name)["eps"] == defaults.eps
        assert sweep_budgets(pgd, name, [], sweep=True) == list(defaults.sweep["linf"])
        assert sweep_budgets(deepfool, name, [], sweep=True) == [None, *defaults.sweep["l2"]]
        for spec in bounded:  # every built-in L∞ attack that names an ε names the family's
            assert spec.parameters[name].get("eps", defaults.eps) == defaults.eps, (spec.name, name)


def test_defenses_default_to_the_family_architecture_and_training_budget():
    data = load_dataset("digits", 0)
    options = get_defense("none").options(data, {})
    assert options["architecture"] == FAMILIES["digits"].architecture == "cnn8"
    assert TrainConfig.from_options(options) == FAMILIES["digits"].training
    assert get_defense("adv-pgd").options(data, {})["eps"] == FAMILIES["digits"].eps


def test_unknown_family_is_a_one_line_error_naming_the_known_ones():
    with pytest.raises(BenchError, match=r"unknown dataset family 'svhn'; known: digits, mnist"):
        family("svhn")


def test_standard_budgets_read_subsets_as_their_family_and_skip_unknown_names():
    assert standard_budgets(["mnist-subset", "cifar10", "my-npz"]) == {"mnist-subset": 0.3, "cifar10": 8 / 255}
