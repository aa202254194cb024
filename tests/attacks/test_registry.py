"""The attack registry: defaults for every family, ε handling, and real attacks on digits."""

import numpy as np
import pytest
import torch

from attacks import REGISTRY, ThreatModel, get_attack
from attacks.art_adapter import art_classifier, run_attack
from attacks.catalog import default_params
from bench.cache import Cache, default_cache_dir
from bench.errors import BenchError
from bench.families import FAMILIES
from bench.metrics import perturbation_norms
from bench.models import classify
from bench.runner import trained_model

CPU = torch.device("cpu")


def test_every_attack_has_defaults_for_every_family():
    for spec in REGISTRY.values():
        for family in FAMILIES:
            params = default_params(spec, family)
            assert ("eps" in params) == spec.bounded, spec.name
        assert spec.threat_models, spec.name


def test_standard_budgets_and_eps_override():
    pgd = get_attack("pgd")
    assert default_params(pgd, "mnist")["eps"] == 0.3
    assert default_params(pgd, "cifar10")["eps"] == pytest.approx(8 / 255)
    swept = default_params(pgd, "mnist", eps=0.1)
    assert swept["eps"] == 0.1 and swept["eps_step"] == pytest.approx(2.5 * 0.1 / 40)
    with pytest.raises(BenchError, match="takes no --eps"):
        default_params(get_attack("deepfool"), "mnist", eps=0.1)


@pytest.fixture(scope="module")
def undefended(digits):
    return trained_model(digits, "none", {}, 0, CPU, Cache(default_cache_dir()), False).module


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_attack_fools_the_undefended_model_within_its_norm(name, undefended, digits):
    spec = get_attack(name)
    x, y = digits.x_test[:64], digits.y_test[:64]
    estimator = art_classifier(undefended, digits.input_shape, digits.num_classes, CPU)
    params = default_params(spec, "digits")
    x_adv = run_attack(spec, params, estimator, x, y, seed=0, device=CPU)
    assert x_adv.shape == x.shape and 0.0 <= x_adv.min() and x_adv.max() <= 1.0
    clean = (classify(undefended, x, CPU) == y).mean()
    robust = (classify(undefended, x_adv, CPU) == y).mean()
    assert robust < clean - 0.4, f"{name}: clean {clean:.2f} -> adversarial {robust:.2f}"
    norms = perturbation_norms(x, x_adv)
    if spec.bounded:
        assert norms["linf"].max() <= params["eps"] + 1e-5


def test_attacks_repeat_under_a_seed(undefended, digits):
    spec = get_attack("jsma")  # random target classes
    estimator = art_classifier(undefended, digits.input_shape, digits.num_classes, CPU)
    x, y = digits.x_test[:32], digits.y_test[:32]
    first = run_attack(spec, default_params(spec, "digits"), estimator, x, y, seed=3, device=CPU)
    second = run_attack(spec, default_params(spec, "digits"), estimator, x, y, seed=3, device=CPU)
    np.testing.assert_array_equal(first, second)
    assert ThreatModel.TRANSFER in spec.threat_models
