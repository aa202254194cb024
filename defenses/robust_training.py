"""The torch pieces the baseline defenses share: model, options, inner maximisation, robust score.

The inner maximisation is written in torch (:func:`pgd_linf`) rather than
going through ART's ``AdversarialTrainer``/``AdversarialTrainerMadryPGD``:
those craft every batch's examples with an ART attack over NumPy arrays, a
device-to-host round trip per batch and per attack step, which keeps a GPU
idle and costs copies on CPU.  Here the batch stays on the device.

The defaults these functions are called with are in
``defenses.baseline_defaults.BASELINES``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.datasets import Dataset
from bench.errors import BenchError
from bench.families import family
from bench.models import build_classifier, classify
from defenses import FitContext
from defenses.baseline_defaults import BASELINES

#: Validation images the robust score attacks each epoch (the first ones of data.x_val).
VALIDATION_IMAGES = 500


def build(data: Dataset, options: dict) -> nn.Module:
    """The zoo classifier named by ``options['architecture']``: every baseline's model.

    Its ``forward`` returns raw logits (distillation's too: deployed at T = 1).
    The baselines all use this function as their ``build``, which also puts
    this module's source into each of their cache keys (the runner hashes the
    modules of ``build`` and ``fit``): changing :func:`pgd_linf` retrains them.
    """
    return build_classifier(data, options["architecture"])


def training_options(data: Dataset, robust: bool = True) -> dict:
    """``architecture`` and optimiser settings: the robust-training budget (with ``init``), or the undefended one."""
    defaults = family(data.family)
    if not robust:
        return {"architecture": defaults.architecture, **dataclasses.asdict(defaults.training)}
    row = BASELINES[data.family]
    budget = dataclasses.replace(defaults.training, epochs=row.epochs, batch_size=row.batch_size)
    return {"architecture": defaults.architecture, "init": row.init, **dataclasses.asdict(budget)}


INITS = ("undefended", "scratch")


def initialise(model: nn.Module, data: Dataset, options: dict, ctx: FitContext) -> None:
    """Start robust training from the suite's trained ``none`` model, or from the untrained ``model``.

    ``init="undefended"`` is adversarial fine-tuning (Jeddi et al. 2020, 'A
    Simple Fine-tuning Is All You Need'): far fewer robust epochs than
    Madry et al.'s training from scratch (``init="scratch"``) for the same
    robustness, which is what a CPU budget affords.
    """
    if options["init"] not in INITS:
        raise BenchError(f"option init={options['init']!r}: choose one of {', '.join(INITS)}")
    if options["init"] == "scratch":
        return
    architecture = family(data.family).architecture
    if options["architecture"] != architecture:
        raise BenchError(f"init=undefended needs the undefended model's architecture "
                         f"{architecture!r}; with architecture={options['architecture']!r} "
                         f"use init=scratch")
    model.load_state_dict(ctx.undefended().state_dict())


def pgd_linf(model: nn.Module, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor],
             eps: float, step_size: float, steps: int, start: str = "uniform") -> torch.Tensor:
    """Maximise ``objective(model(x'))`` over the L∞ ball of radius ``eps`` around ``x``, inside [0, 1].

    ``steps`` signed-gradient ascent steps of ``step_size``, each projected
    back onto the ball and the image box.  ``start`` is ``"uniform"`` (Madry et
    al.: uniform in the ball), ``"normal"`` (TRADES: x + 0.001·N(0, 1)) or
    ``"none"`` (at ``x``; one step of ``eps`` from there is FGSM).
    ``objective`` maps logits to a scalar summed over the batch.  The model is
    in eval mode while attacked (adversarial batches do not update batch-norm
    statistics) and back in its previous mode after; ``x'`` is detached.

    Shapes: ``x`` ``N×C×H×W`` -> ``N×C×H×W``.
    """
    was_training = model.training
    model.eval()
    if start == "uniform":
        x_adv = x + torch.empty_like(x).uniform_(-eps, eps)
    elif start == "normal":
        x_adv = x + 0.001 * torch.randn_like(x)
    else:
        x_adv = x.clone()
    x_adv = x_adv.clamp(0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, = torch.autograd.grad(objective(model(x_adv)), x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    model.train(was_training)
    return x_adv.detach()


def cross_entropy_sum(y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The objective of label-based attacks: cross-entropy with ``y``, summed over the batch."""
    return lambda logits: F.cross_entropy(logits, y, reduction="sum")


def robust_accuracy(model: nn.Module, data: Dataset, device: torch.device, *, eps: float,
                    step_size: float, steps: int, start: str,
                    objectives: Sequence[Callable[[torch.Tensor], Callable]] = (cross_entropy_sum,)) -> float:
    """Accuracy on the first :data:`VALIDATION_IMAGES` of ``data.x_val`` under :func:`pgd_linf`.

    The score that picks the epoch robust training keeps: validation data only,
    the same images and the same random starts every epoch (a forked RNG, so
    scoring leaves the training run's random stream untouched).  The attack
    runs once per objective (each a function of the labels, cross-entropy by
    default); an image counts when the model, deciding as it does at test time
    (``bench.models.classify``: its own ``predict`` if it has one), gets it
    right after every one of them.
    """
    x = torch.as_tensor(data.x_val[:VALIDATION_IMAGES], device=device)
    y = torch.as_tensor(data.y_val[:VALIDATION_IMAGES], device=device)
    correct = 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        for batch in range(0, len(y), 256):
            xb, yb = x[batch:batch + 256], y[batch:batch + 256]
            survives = torch.ones(len(yb), dtype=torch.bool, device=device)
            for objective in objectives:
                x_adv = pgd_linf(model, xb, objective(yb), eps, step_size, steps, start)
                survives &= torch.as_tensor(classify(model, x_adv, device), device=device) == yb
            correct += int(survives.sum())
    return correct / len(y)
