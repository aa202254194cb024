"""The suite's Square Attack (attacks/square.py) is at least as strong as ART's on the same images,
with fewer queries."""

import pytest

from attacks import get_attack
from attacks.art_adapter import blackbox_classifier, run_attack
from attacks.catalog import default_params
from bench.models import classify

from ._strength import CPU, undefended


@pytest.fixture(scope="module")
def model(digits):
    return undefended(digits)


def test_square_is_at_least_as_strong_as_arts_with_fewer_queries(model, digits):
    x, y = digits.x_test[:64], digits.y_test[:64]
    right = classify(model, x, CPU) == y
    result = {}
    for name in ("square", "square-art"):
        spec = get_attack(name)
        # A budget where not every image falls at once, and 300 iterations: the search matters.
        params = default_params(spec, "digits", eps=0.1, max_iter=300)
        estimator, queries = blackbox_classifier(model, digits.input_shape, digits.num_classes, CPU)
        x_adv = run_attack(spec, params, estimator, x, y, seed=0, device=CPU)
        assert abs(x_adv - x).max() <= 0.1 + 1e-6
        fooled = right & (classify(model, x_adv, CPU) != y)
        result[name] = (fooled.sum() / right.sum(), queries.images)
    (ours, our_queries), (art, art_queries) = result["square"], result["square-art"]
    assert ours >= art and ours > 0.2, result
    assert our_queries < art_queries, result


def test_square_has_its_own_cache_key():
    assert get_attack("square").implementation and not get_attack("square-art").implementation
