"""The black-box view of a defense: its decision is what is queried, queries are counted,
and the query attacks repeat under a seed (ART's HopSkipJump alone would not)."""

import numpy as np
import torch
from torch import nn

from attacks import get_attack
from attacks.art_adapter import BLACKBOX_OUTPUT, blackbox_classifier, blackbox_output, run_attack
from attacks.catalog import default_params
from bench.cache import Cache, default_cache_dir
from bench.runner import trained_model

CPU = torch.device("cpu")


class _TwoStep(nn.Module):
    """Logits say class 0 for every image; ``predict`` says the brightest quarter's index."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([5.0, 1.0, 0.0, 0.0]).repeat(len(x), 1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        quarters = x.flatten(1).reshape(len(x), 4, -1).mean(2)
        return quarters.argmax(1)


def test_queries_return_the_decision_of_predict_and_are_counted():
    model = _TwoStep()
    estimator, counter = blackbox_classifier(model, (1, 4, 4), 4, CPU)
    x = np.random.default_rng(0).uniform(size=(10, 1, 4, 4)).astype(np.float32)
    scores = estimator.predict(x, batch_size=4)
    expected = model.predict(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(scores.argmax(1), expected)
    assert (expected != 0).any()  # the logits' argmax (always 0) is not what is answered
    assert counter.images == 10 and blackbox_output(model) == BLACKBOX_OUTPUT[True]
    estimator.predict(x[:3])
    assert counter.images == 13


def test_query_attacks_repeat_under_a_seed_and_break_the_undefended_model(digits):
    model = trained_model(digits, "none", {}, 0, CPU, Cache(default_cache_dir()), False).module
    assert blackbox_output(model) == BLACKBOX_OUTPUT[False]
    x, y = digits.x_test[:12], digits.y_test[:12]
    for name in ("square", "hopskipjump"):
        spec = get_attack(name)
        runs = []
        for _ in range(2):
            estimator, counter = blackbox_classifier(model, digits.input_shape, digits.num_classes, CPU)
            runs.append(run_attack(spec, default_params(spec, "digits"), estimator, x, y, seed=5, device=CPU))
            assert counter.images > len(x)
        np.testing.assert_array_equal(runs[0], runs[1], err_msg=name)
        fooled = (estimator.predict(runs[0]).argmax(1) != y).mean()
        assert fooled >= 0.75, f"{name} fooled only {fooled:.2f}"
