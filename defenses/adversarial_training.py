"""``adv-fgsm`` and ``adv-pgd``: adversarial training, the baselines every robustness paper reports.

``adv-fgsm`` — Goodfellow, Shlens, Szegedy 2015, 'Explaining and Harnessing
Adversarial Examples'.  Each batch's loss mixes clean and FGSM examples made
on the current model: ``α·CE(f(x), y) + (1−α)·CE(f(x + ε·sign ∇ₓCE), y)``.

``adv-pgd`` — Madry, Makelov, Schmidt, Tsipras, Vladu 2018, 'Towards Deep
Learning Models Resistant to Adversarial Attacks'.  Min-max training: each
batch is replaced by its PGD examples (uniform random start in the ε-ball,
``steps`` signed-gradient steps of ``step_size``, projected), and the model
minimises cross-entropy on them.

Distance measure: L∞, radius ``eps`` on [0, 1] pixel scale.

Options (defaults per family in ``defenses.baseline_defaults.BASELINES``):
    eps (float): training radius; the dataset's evaluation budget (MNIST 0.3).
    steps (int), step_size (float): adv-pgd's inner PGD (MNIST: 10 × 0.075 on CPU,
        Madry et al.'s 40 × 0.01 when a CUDA device is present).
    eps_warmup (float): adv-pgd's training ε grows linearly from 0 to ``eps`` over this
        many epochs (0: full ε from the first batch, as in the paper; MNIST: 2).
    alpha (float): adv-fgsm's weight of the clean loss (0.5).
    init (str): ``undefended`` (fine-tune the trained ``none`` model; Jeddi et al.
        2020) or ``scratch`` (from random weights, as in the paper).
    architecture (str), epochs (int), batch_size (int), lr (float), weight_decay (float).
The epoch kept is the one with the best validation accuracy under the attack
the defense trains against (``robust_training.robust_accuracy`` on ``x_val``:
FGSM for adv-fgsm, the training PGD for adv-pgd).

Shapes: input ``N×C×H×W`` in [0, 1] -> logits ``N×num_classes``.

Example::

    bench run --dataset npz:../shared/data/mnist-subset.npz --defense adv-pgd --attack pgd --samples 1000
    bench run --defense adv-fgsm,adv-pgd --defense-option adv-pgd:steps=20
"""

from __future__ import annotations

import itertools

import torch.nn.functional as F
from torch import nn

from bench.datasets import Dataset
from bench.families import TrainConfig
from bench.models import train
from defenses import Defense, FitContext
from defenses.baseline_defaults import BASELINES
from defenses.robust_training import (build, cross_entropy_sum, initialise, pgd_linf, robust_accuracy,
                                      training_options)


def _fgsm_defaults(data: Dataset) -> dict:
    base = BASELINES[data.family]
    return {**training_options(data), "eps": base.eps, "alpha": base.alpha}


def _fit_fgsm(model: nn.Module, data: Dataset, options: dict, ctx: FitContext) -> None:
    eps, alpha = options["eps"], options["alpha"]

    def batch_loss(net: nn.Module, x, y):
        x_adv = pgd_linf(net, x, cross_entropy_sum(y), eps, step_size=eps, steps=1, start="none")
        return alpha * F.cross_entropy(net(x), y) + (1 - alpha) * F.cross_entropy(net(x_adv), y)

    def score(net: nn.Module) -> float:
        return robust_accuracy(net, data, ctx.device, eps=eps, step_size=eps, steps=1, start="none")

    initialise(model, data, options, ctx)
    train(model, data, TrainConfig.from_options(options), seed=ctx.seed, device=ctx.device, batch_loss=batch_loss,
          score=score, desc="train adv-fgsm", progress=ctx.progress)


def _pgd_defaults(data: Dataset) -> dict:
    base = BASELINES[data.family]
    steps, step_size = base.inner_attack()
    return {**training_options(data), "eps": base.eps, "steps": steps, "step_size": step_size,
            "eps_warmup": base.eps_warmup}


def _fit_pgd(model: nn.Module, data: Dataset, options: dict, ctx: FitContext) -> None:
    attack = {"eps": options["eps"], "step_size": options["step_size"], "steps": options["steps"],
              "start": "uniform"}
    ramp = options["eps_warmup"] * -(-len(data.y_train) // options["batch_size"])  # in batches
    batches = itertools.count(1)

    def batch_loss(net: nn.Module, x, y):
        # ε (and the step with it) grows linearly over the first eps_warmup epochs, then stays:
        # from scratch at full ε the model can sit at chance for epochs (docs/defenses.md).
        scale = min(1.0, next(batches) / ramp) if ramp > 0 else 1.0
        x_adv = pgd_linf(net, x, cross_entropy_sum(y), attack["eps"] * scale, attack["step_size"] * scale,
                         attack["steps"], attack["start"])
        return F.cross_entropy(net(x_adv), y)

    def score(net: nn.Module) -> float:
        return robust_accuracy(net, data, ctx.device, **attack)

    initialise(model, data, options, ctx)
    train(model, data, TrainConfig.from_options(options), seed=ctx.seed, device=ctx.device, batch_loss=batch_loss,
          score=score, desc="train adv-pgd", progress=ctx.progress)


ADV_FGSM = Defense(
    name="adv-fgsm",
    summary="adversarial training on a clean/FGSM mix (Goodfellow et al. 2015)",
    reference="Goodfellow, Shlens, Szegedy 2015, 'Explaining and Harnessing Adversarial Examples'",
    build=build,
    fit=_fit_fgsm,
    defaults=_fgsm_defaults,
)

ADV_PGD = Defense(
    name="adv-pgd",
    summary="PGD adversarial training, random start (Madry et al. 2018)",
    reference="Madry et al. 2018, 'Towards Deep Learning Models Resistant to Adversarial Attacks'",
    build=build,
    fit=_fit_pgd,
    defaults=_pgd_defaults,
)

DEFENSES = (ADV_FGSM, ADV_PGD)
