"""``none``: the undefended model, the reference every defense is compared with.

Paper: none (standard empirical risk minimisation with cross-entropy).
Model: the dataset family's default zoo architecture (``bench.models``), trained
with Adam and a cosine schedule; the epoch kept is the one with the best
validation accuracy.

Options (defaults per family in ``bench.families``):
    architecture (str): zoo architecture, e.g. ``cnn8``, ``cnn28``, ``resnet8``.
    epochs (int), batch_size (int), lr (float), weight_decay (float).

Shapes: input ``N×C×H×W`` in [0, 1] -> logits ``N×num_classes``.

Example::

    bench run --dataset digits --defense none --attack pgd
    bench run --defense none --defense-option epochs=5
"""

from __future__ import annotations

import dataclasses

from torch import nn

from bench.datasets import Dataset
from bench.families import TrainConfig, family
from bench.models import build_classifier, train
from defenses import Defense, FitContext


def _defaults(data: Dataset) -> dict:
    defaults = family(data.family)
    return {"architecture": defaults.architecture, **dataclasses.asdict(defaults.training)}


def _build(data: Dataset, options: dict) -> nn.Module:
    return build_classifier(data, options["architecture"])


def _fit(model: nn.Module, data: Dataset, options: dict, ctx: FitContext) -> None:
    train(model, data, TrainConfig.from_options(options), seed=ctx.seed, device=ctx.device, desc="train none",
          progress=ctx.progress)


DEFENSE = Defense(
    name="none",
    summary="undefended model (cross-entropy training of the zoo architecture)",
    reference="-",
    build=_build,
    fit=_fit,
    defaults=_defaults,
)
