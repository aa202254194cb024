"""The contract every registered defense plugin must pass (like scikit-learn's estimator checks).

Each defense is built and fitted on real digits with its default options (the
cache makes this once per session) and must give: logits of the right shape,
input gradients that flow (so white-box attacks can attack it), labels from
``predict`` when it has one, better-than-chance accuracy, and a ``state_dict``
that reproduces the model through ``torch.load(weights_only=True)``.
"""

import io

import numpy as np
import pytest
import torch

from bench.models import accuracy, classify
from bench.runner import trained_model
from defenses import REGISTRY
from bench.cache import default_cache_dir, Cache

CPU = torch.device("cpu")


@pytest.fixture(scope="module", params=sorted(REGISTRY))
def fitted(request, digits):
    model = trained_model(digits, request.param, {}, 0, CPU, Cache(default_cache_dir()), False)
    return request.param, model.module


def test_forward_gives_differentiable_logits(fitted, digits):
    _, model = fitted
    x = torch.as_tensor(digits.x_test[:16]).requires_grad_(True)
    logits = model(x)
    assert logits.shape == (16, digits.num_classes)
    assert logits.dtype == torch.float32
    logits.gather(1, torch.as_tensor(digits.y_test[:16])[:, None]).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_predictions_are_labels_and_beat_chance(fitted, digits):
    name, model = fitted
    labels = classify(model, digits.x_test, CPU)
    assert labels.shape == (digits.n_test,) and set(np.unique(labels)) <= set(range(digits.num_classes))
    assert accuracy(model, digits.x_test, digits.y_test, CPU) > 0.8, name


def test_state_dict_round_trips_with_weights_only(fitted, digits):
    name, model = fitted
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    rebuilt = REGISTRY[name].build(digits, REGISTRY[name].options(digits))
    rebuilt.load_state_dict(torch.load(buffer, weights_only=True))
    np.testing.assert_array_equal(classify(rebuilt, digits.x_test, CPU), classify(model, digits.x_test, CPU))
