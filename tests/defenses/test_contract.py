"""The contract every defense plugin must pass (``defenses.contract.check_defense``, like
scikit-learn's estimator checks), on every built-in defense and on the example plugin.

Each defense is fitted on real digits with its default options by the runner (the
cache makes this once per session) and must give: float32 logits of the right
shape, input gradients that flow (so white-box attacks can attack it), labels
from ``predict`` when it has one, better-than-chance accuracy, and a
``state_dict`` that reproduces the model through ``torch.load(weights_only=True)``.
A defense that breaks a rule fails with the rule's name.
"""

import importlib
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.cache import Cache, default_cache_dir
from bench.runner import trained_model
from defenses import REGISTRY, Defense
from defenses.contract import check_defense

CPU = torch.device("cpu")
EXAMPLE = Path(__file__).parents[1] / "plugins" / "bench_example_plugin"


def _example_defense() -> Defense:
    """The example plugin's ``quantize``, imported from its source folder."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        return importlib.import_module("bench_example_plugin.defense").QUANTIZE
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture(scope="module", params=[*sorted(REGISTRY), "example:quantize"])
def defense(request) -> Defense:
    return _example_defense() if request.param == "example:quantize" else REGISTRY[request.param]


def test_defense_passes_the_contract(defense, digits):
    model = trained_model(digits, defense, {}, 0, CPU, Cache(default_cache_dir()), False).module
    check_defense(defense, digits, model=model)


class _Detached(nn.Module):
    """A classifier whose logits do not depend on the input through autograd."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).detach()


def test_a_broken_defense_fails_naming_the_rule(digits):
    none = REGISTRY["none"]
    trained = trained_model(digits, none, {}, 0, CPU, Cache(default_cache_dir()), False).module
    broken = Defense(name="detached", summary="-", reference="-", defaults=none.defaults, fit=none.fit,
                     build=lambda data, options: _Detached(none.build(data, options)))
    model = _Detached(trained)
    with pytest.raises(AssertionError, match="defense 'detached' breaks the contract rule 'gradients'"):
        check_defense(broken, digits, model=model)
    with pytest.raises(AssertionError, match="breaks the contract rule 'record': expected a defenses.Defense"):
        check_defense(none.build, digits, model=trained)
