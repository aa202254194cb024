"""``none``: the undefended model, the reference every defense is compared with.

Paper: none (standard empirical risk minimisation with cross-entropy).
Model: the dataset family's default zoo architecture (``bench.models``), trained
with Adam and a cosine schedule; the epoch kept is the one with the best
validation accuracy.

Options (defaults per family in ``bench.models.TRAINING``):
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
from bench.models import ARCHITECTURE, TRAINING, TrainConfig, build_classifier, train
from defenses import Defense, FitContext


def _defaults(data: Dataset) -> dict:
    return {"architecture": ARCHITECTURE[data.family], **dataclasses.asdict(TRAINING[data.family])}


def _build(data: Dataset, options: dict) -> nn.Module:
    return build_classifier(data, options["architecture"])


def _fit(model: nn.Module, data: Dataset, options: dict, ctx: FitContext) -> None:
    config = TrainConfig(**{f.name: options[f.name] for f in dataclasses.fields(TrainConfig)})
    train(model, data, config, seed=ctx.seed, device=ctx.device, desc="train none", progress=ctx.progress)


DEFENSE = Defense(
    name="none",
    summary="undefended model (cross-entropy training of the zoo architecture)",
    reference="-",
    build=_build,
    fit=_fit,
    defaults=_defaults,
)
