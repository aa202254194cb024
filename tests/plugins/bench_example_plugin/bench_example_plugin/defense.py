"""``quantize``: bit-depth reduction in front of the suite's trained undefended model.

Xu, Evans, Qi 2018, 'Feature Squeezing: Detecting Adversarial Examples in Deep
Neural Networks': inputs are rounded to ``2**bits`` grey levels before
classification.  Rounding has zero gradient almost everywhere, so the forward
uses a straight-through estimator (BPDA, Athalye, Carlini, Wagner 2018):
quantised values forward, identity backward.  White-box attacks then see
useful gradients and the defense is judged on what it does, not on gradients
it hides.

Distance measure: none of its own (it transforms the input).
Options: bits (int, default 2).
Shapes: input ``N×C×H×W`` in [0, 1] -> logits ``N×num_classes``.

Example::

    bench run --defense none,quantize --attack fgsm,pgd
    bench run --defense quantize --defense-option bits=1
"""

from __future__ import annotations

import torch
from torch import nn

from bench.families import family
from bench.models import build_classifier
from defenses import Defense


class Quantized(nn.Module):
    """``inner(round(x·(L−1))/(L−1))`` with L = 2**bits levels, straight-through gradient."""

    def __init__(self, inner: nn.Module, bits: int):
        super().__init__()
        self.inner = inner
        self.levels = 2 ** bits - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = torch.round(x * self.levels) / self.levels
        return self.inner(x + (squeezed - x).detach())


def _build(data, options: dict) -> nn.Module:
    return Quantized(build_classifier(data, family(data.family).architecture), options["bits"])


def _fit(model: Quantized, data, options: dict, ctx) -> None:
    # Wraps the suite's own trained undefended model (cached, shared with `none`).
    model.inner.load_state_dict(ctx.undefended().state_dict())


QUANTIZE = Defense(
    name="quantize",
    summary="bit-depth reduction in front of the undefended model (Xu et al. 2018)",
    reference="Xu, Evans, Qi 2018, 'Feature Squeezing'",
    build=_build,
    fit=_fit,
    defaults=lambda data: {"bits": 2},
)
