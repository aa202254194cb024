"""``distillation``: defensive distillation, the classic case of a defense that masks gradients.

Papernot, McDaniel, Wu, Jha, Swami 2016, 'Distillation as a Defense to
Adversarial Perturbations against Deep Neural Networks' (IEEE S&P).  A teacher
is trained with its softmax at temperature T (``softmax(logits / T)``); a
student of the same architecture is trained on the teacher's soft labels at
the same T; the student is deployed at T = 1.  Its logits come out about T
times larger, so the softmax saturates and gradients of the cross-entropy
vanish in float32: attacks that go through the softmax (FGSM, JSMA on
probabilities) stall.  Carlini & Wagner 2017 ('Towards Evaluating the
Robustness of Neural Networks') break it by attacking the logits: this
module's ``forward`` returns the student's raw logits (not softmax, not divided
by T), which is what ``cw-l2`` optimises on.

Distance measure: none of its own (it changes training, not the input).

Options (defaults per family: T in ``defenses.baseline_defaults.BASELINES``, the
optimiser budget in ``bench.families``, used by teacher and student each):
    temperature (float): T of teacher and student training (100, as in the paper).
    architecture (str), epochs (int), batch_size (int), lr (float), weight_decay (float).
The epoch kept (teacher and student) is the one with the best validation accuracy.

Shapes: input ``N×C×H×W`` in [0, 1] -> logits ``N×num_classes`` (T = 1).

Example::

    bench run --defense distillation --attack fgsm,jsma,cw-l2 --threat-model whitebox,transfer
    bench run --defense distillation --defense-option temperature=20
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.datasets import Dataset
from bench.families import TrainConfig
from bench.models import seed_everything, train
from defenses import Defense, FitContext
from defenses.baseline_defaults import BASELINES
from defenses.robust_training import build, training_options

# Not ART's DefensiveDistillation: it expects classifiers whose output already is
# softmax(logits / T) and trains the student with ``fit`` on NumPy soft labels
# (host round trips every batch, no validation-chosen epoch); the deployed
# student must instead return raw logits.  The two losses below are the method.


def _defaults(data: Dataset) -> dict:
    return {**training_options(data, robust=False), "temperature": BASELINES[data.family].temperature}


def _fit(model: nn.Module, data: Dataset, options: dict, ctx: FitContext) -> None:
    temperature = options["temperature"]
    config = TrainConfig.from_options(options)
    seed_everything(ctx.seed)
    teacher = build(data, options)

    def teacher_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(net(x) / temperature, y)

    train(teacher, data, config, seed=ctx.seed, device=ctx.device, batch_loss=teacher_loss,
          desc="train distillation teacher", progress=ctx.progress)
    teacher.eval()

    def student_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The teacher is fixed, so its soft labels per batch equal precomputed ones.
        with torch.no_grad():
            soft = F.softmax(teacher(x) / temperature, dim=1)
        return -(soft * F.log_softmax(net(x) / temperature, dim=1)).sum(1).mean()

    train(model, data, config, seed=ctx.seed + 1, device=ctx.device, batch_loss=student_loss,
          desc="train distillation student", progress=ctx.progress)


DEFENSE = Defense(
    name="distillation",
    summary="defensive distillation at temperature T, deployed at T=1 (Papernot et al. 2016)",
    reference="Papernot et al. 2016, 'Distillation as a Defense to Adversarial Perturbations against DNNs'",
    build=build,
    fit=_fit,
    defaults=_defaults,
)
