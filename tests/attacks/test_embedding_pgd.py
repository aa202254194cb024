"""The adaptive attack on distance classifiers (attacks/embedding_pgd.py) on real digits.

The ``dundi`` model is the one the contract test trains (same session cache key).
"""

import copy

import numpy as np
import pytest
import torch

from attacks import ThreatModel, get_attack
from attacks.art_adapter import art_classifier, run_attack
from attacks.catalog import default_params
from attacks.embedding_pgd import is_distance_classifier, torch_module, two_step_margin
from bench.cache import Cache, default_cache_dir
from bench.errors import BenchError
from bench.metrics import perturbation_norms
from bench.models import classify
from bench.runner import trained_model

CPU = torch.device("cpu")
IMAGES = 150


def _trained(digits, name):
    return trained_model(digits, name, {}, 0, CPU, Cache(default_cache_dir()), False).module


@pytest.fixture(scope="module")
def dundi(digits):
    return _trained(digits, "dundi")


def _robust(model, digits, attack, eps):
    spec = get_attack(attack)
    x, y = digits.x_test[:IMAGES], digits.y_test[:IMAGES]
    estimator = art_classifier(model, digits.input_shape, digits.num_classes, CPU)
    x_adv = run_attack(spec, default_params(spec, "digits", eps), estimator, x, y, seed=0, device=CPU)
    assert perturbation_norms(x, x_adv)["linf"].max() <= eps + 1e-5
    return float((classify(model, x_adv, CPU) == y).mean())


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_at_least_as_strong_as_pgd_on_dundis_two_step_decision(dundi, digits, eps):
    adaptive, pgd = _robust(dundi, digits, "embedding-pgd", eps), _robust(dundi, digits, "pgd", eps)
    assert adaptive <= pgd, f"eps {eps}: embedding-pgd leaves {adaptive:.3f}, pgd {pgd:.3f}"


def test_margin_is_positive_exactly_when_the_two_step_decision_is_wrong(dundi, digits):
    assert is_distance_classifier(dundi)
    x = torch.as_tensor(digits.x_test)
    noisy = (x + 0.25 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    for images in (x, noisy):
        y = torch.as_tensor(digits.y_test)
        with torch.no_grad():
            margin, decision, _ = two_step_margin(dundi, images, y)
        np.testing.assert_array_equal(decision.numpy(), classify(dundi, images, CPU))
        np.testing.assert_array_equal((margin > 0).numpy(), (decision != y).numpy())
    assert (decision != y).any()  # the noisy images exercise both signs
    # With k = C the shortlist keeps every class and the margin is the C&W margin of the logits.
    everything = copy.deepcopy(dundi)
    everything.k = digits.num_classes
    with torch.no_grad():
        margin, _, _ = two_step_margin(everything, x, y)
        logits = everything(x)
    other = logits.masked_fill(torch.nn.functional.one_hot(y, 10).bool(), -np.inf).amax(1)
    torch.testing.assert_close(margin, other - logits.gather(1, y[:, None]).squeeze(1), atol=1e-5, rtol=0)


def test_falls_back_to_the_logit_margin_on_models_without_references(digits):
    # Measured on these 150 images (docs/dundi.md): at 0.1 pgd 0.587, cw-linf 0.620, embedding-pgd
    # 0.587; at 0.2 0.053, 0.073, 0.027.  The fallback must be at least as strong as both.
    undefended = _trained(digits, "none")
    assert not is_distance_classifier(undefended)
    for eps in (0.1, 0.2):
        adaptive = _robust(undefended, digits, "embedding-pgd", eps)
        for attack in ("pgd", "cw-linf"):
            other = _robust(undefended, digits, attack, eps)
            assert adaptive <= other, f"eps {eps}: embedding-pgd leaves {adaptive:.3f}, {attack} {other:.3f}"


def test_is_white_box_only_and_needs_a_torch_estimator():
    assert get_attack("embedding-pgd").threat_models == {ThreatModel.WHITEBOX}
    with pytest.raises(BenchError, match="torch estimator"):
        torch_module(object())
