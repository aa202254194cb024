"""``dundi-at``: DunDi trained on adversarial triplet anchors (beyond the DunDi paper).

DunDi (``defenses/dundi.py``) learns its embedding from clean images only, and
white-box attacks break it.  This defense keeps DunDi's model, references and
two-step classifier unchanged and changes only the training: following Mao,
Zhong, Yang, Vondrick, Ray, 'Metric Learning for Adversarial Robustness'
(NeurIPS 2019; triplet loss with adversarial anchors, TLA), every training
batch

1. crafts adversarial examples ``x'`` against the current model's own
   decision: L∞ PGD (``steps`` signed-gradient steps of ``step_size``, uniform
   random start in the ``eps``-ball, ``defenses.robust_training.pgd_linf``)
   maximising the cross-entropy (``attack_loss=cross_entropy``) or the margin
   ``d_y − min_{j≠y} d_j`` (``attack_loss=margin``) of DunDi's distance logits
   ``−d_c`` (``d_c``: mean distance to the ``m`` nearest references of class
   ``c``);
2. uses their embeddings as triplet **anchors**, with a **positive** from the
   batch's clean images of the same class (``positive=hardest``: the farthest,
   batch-hard; ``positive=own``: the anchor's own clean image) and as
   **negative** the nearest clean embedding of another class in the batch (as
   TLA mines it): ``relu(d(a, p) − d(a, n) + margin)``;
3. optionally adds DunDi's clean batch-hard triplet loss (``clean_weight``) and
   a cross-entropy on the adversarial images' distance logits
   ``−ce_scale·d_c`` (``ce_weight``).

References for the training attack: the attack differentiates the model's
``forward``, which reads the ``references`` buffer.  During training that
buffer holds the embeddings of the very training images :func:`set_references`
draws (same seed, same images), re-embedded with the current weights every
``refresh_every`` batches (and before the first), so the attack aims at the
decision the model would make now, not at one epochs old.  After each epoch,
``centroids`` and ``references`` are recomputed from the clean training images
exactly as in ``dundi`` (:func:`defenses.dundi.set_references`), and the epoch
kept is the one with the best **two-step validation accuracy under the training
attack run with both objectives** (margin and cross-entropy on the distance
logits; an image counts when it survives both; the first 500 validation
images, the same random starts every epoch).  With the triplet loss alone
the embedding was measured to collapse (docs/dundi.md): every image lands at
nearly one point, the class distances differ by ~0.001, and cross-entropy PGD
breaks what margin PGD cannot move; the defaults (below) add DunDi's clean
triplet loss and the cross-entropy term, and ramp ε over a quarter of the
epochs, chosen on digits validation data.

Options (``--defense-option dundi-at:KEY=VALUE``; defaults and how they were
chosen in docs/dundi.md, section DunDi-AT):
    eps, steps, step_size: the training attack; ε is the dataset's evaluation budget,
        steps × step_size the family's adversarial-training budget
        (``defenses.baseline_defaults.BASELINES``, the same as ``adv-pgd``).
    attack_loss (str): the training attack's objective on the distance logits: ``margin``
        (``d_y − min_{j≠y} d_j``) or ``cross_entropy``. Default: ``margin``.
    eps_warmup (float): epochs over which the training ε (and step) grow linearly from 0.
        Default: a quarter of the epochs, at least ``adv-pgd``'s (digits 10, MNIST 5); at 0
        the embedding collapsed on digits.
    margin (float): triplet margin in embedding distance. Default: 0.5.
    positive (str): ``hardest`` or ``own``. Default: ``hardest``.
    clean_weight (float): weight of DunDi's clean batch-hard triplet loss. Default: 1.
    ce_weight (float), ce_scale (float): cross-entropy on ``−ce_scale·d_c`` of the adversarial
        images. Default: 1, 10.
    refresh_every (int): batches between re-embeddings of the reference images. Default: 10.
    embedding_dim, normalize, k, m, refs_per_class, backbone, freeze_backbone: as ``dundi``.
    epochs, batch_size, lr, weight_decay: the optimiser: ``adv-pgd``'s robust-training epochs of
        the family (so the two see the same number of attacked images) and its batch size, but
        at least 64 (digits: 64 instead of 32) so every batch holds several images per class.

Shapes: input ``N×C×H×W`` in [0, 1] -> logits ``N×num_classes`` (``forward``),
labels ``N`` (``predict``), as ``dundi``.

Example::

    bench run --defense dundi,dundi-at --attack pgd,embedding-pgd --threat-model whitebox
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.datasets import Dataset
from bench.errors import BenchError
from bench.families import TrainConfig, family
from bench.models import train
from defenses import Defense, FitContext
from defenses.baseline_defaults import BASELINES
from defenses.dundi import (DunDi, _backbone, _check, _initialise, class_distances, embed_all,
                            pairwise_distances, set_references, triplet_batch_hard)
from defenses.robust_training import cross_entropy_sum, pgd_linf, robust_accuracy

POSITIVES = ("hardest", "own")
#: Objectives of the training attack on the distance logits ``−d``.
ATTACK_LOSSES = ("margin", "cross_entropy")
#: Smallest default batch: TLA mines positives and negatives inside the batch.
MIN_BATCH = 64


def margin_objective(y: torch.Tensor):
    """``d_y − min_{j≠y} d_j`` on distance logits ``−d``, summed over the batch (the C&W margin)."""
    def objective(logits: torch.Tensor) -> torch.Tensor:
        true = F.one_hot(y, logits.shape[1]).bool()
        other = logits.masked_fill(true, float("-inf")).amax(1)
        return (other - logits[true]).sum()
    return objective


def attack_objective(loss: str, y: torch.Tensor):
    """The training attack's objective on the distance logits, summed over the batch."""
    return margin_objective(y) if loss == "margin" else cross_entropy_sum(y)


def adversarial_triplet(anchors: torch.Tensor, clean: torch.Tensor, labels: torch.Tensor, margin: float,
                        positive: str) -> torch.Tensor:
    """TLA's triplet loss: adversarial anchors (N×D), positives and negatives from the clean
    embeddings (N×D) of the same batch; the negative is the nearest other-class clean embedding."""
    distances = pairwise_distances(anchors, clean)  # N×N: anchor i to clean j
    same = labels[:, None] == labels[None, :]
    if positive == "own":
        to_positive = distances.diagonal()
    else:  # hardest: the farthest clean image of the anchor's class (its own clean image included)
        to_positive = distances.masked_fill(~same, 0.0).amax(1)
    to_negative = distances.masked_fill(same, float("inf")).amin(1)
    valid = ~same.all(1)  # anchors with at least one negative in the batch
    return F.relu(to_positive - to_negative + margin)[valid].mean()


def _defaults(data: Dataset) -> dict:
    base = BASELINES[data.family]
    steps, step_size = base.inner_attack()
    # adv-pgd's epochs and ε warm-up; its batch size too, but at least 64: batch-hard mining needs
    # several images of every class in a batch (at 32 a digits batch holds ~3 per class).
    budget = dataclasses.replace(family(data.family).training, epochs=base.epochs,
                                 batch_size=max(base.batch_size, MIN_BATCH))
    return {
        "eps": base.eps, "steps": steps, "step_size": step_size,
        # From scratch at full ε the triplet embedding collapsed on digits (docs/dundi.md).
        "eps_warmup": max(base.eps_warmup, base.epochs / 4),
        "attack_loss": "margin",
        "margin": 0.5, "positive": "hardest", "clean_weight": 1.0, "ce_weight": 1.0, "ce_scale": 10.0,
        "refresh_every": 10,
        "embedding_dim": 64, "normalize": True, "k": 3, "m": 5, "refs_per_class": 100,
        "backbone": "", "freeze_backbone": False,
        **dataclasses.asdict(budget),
    }


def _as_dundi(options: dict) -> dict:
    """The options DunDi's own checks and constructor read (its loss is not used here)."""
    return {**options, "loss": "triplet", "noise": 0.0}


def _build(data: Dataset, options: dict) -> nn.Module:
    checks = [
        (options["positive"] in POSITIVES, f"positive must be one of: {', '.join(POSITIVES)}"),
        (options["attack_loss"] in ATTACK_LOSSES, f"attack_loss must be one of: {', '.join(ATTACK_LOSSES)}"),
        (options["eps"] > 0 and options["steps"] >= 1 and options["step_size"] > 0,
         "eps, steps and step_size must be positive"),
        (options["clean_weight"] >= 0 and options["ce_weight"] >= 0, "clean_weight and ce_weight must be >= 0"),
        (options["refresh_every"] >= 1, "refresh_every must be >= 1"),
        (options["eps_warmup"] >= 0, "eps_warmup must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise BenchError(f"dundi-at: {message}; got {options}")
    try:
        refs = _check(data, _as_dundi(options))
    except BenchError as error:
        raise BenchError(str(error).replace("dundi:", "dundi-at:", 1)) from None
    features, dim = _backbone(data, options["backbone"])
    return DunDi(features, dim, data.num_classes, refs, _as_dundi(options))


def reference_indices(y_train: torch.Tensor, num_classes: int, refs: int, seed: int) -> torch.Tensor:
    """C×R indices of the training images :func:`defenses.dundi.set_references` takes as references
    (the same draw: one generator seeded by ``seed``, one permutation per class in class order)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for c in range(num_classes):
        members = torch.nonzero(y_train == c).squeeze(1)
        rows.append(members[torch.randperm(len(members), generator=generator)[:refs].to(members.device)])
    return torch.stack(rows)


def _fit(model: DunDi, data: Dataset, options: dict, ctx: FitContext) -> None:
    _initialise(model, options, ctx)
    model.to(ctx.device)
    x_train = torch.as_tensor(data.x_train, device=ctx.device)
    y_train = torch.as_tensor(data.y_train, device=ctx.device)
    refs = model.references.shape[1]
    index = reference_indices(y_train, data.num_classes, refs, ctx.seed)
    x_refs = x_train[index.reshape(-1)]
    attack = {"eps": options["eps"], "step_size": options["step_size"], "steps": options["steps"]}
    ramp = options["eps_warmup"] * -(-len(data.y_train) // options["batch_size"])  # in batches
    margin, positive, attack_loss = options["margin"], options["positive"], options["attack_loss"]
    clean_weight, ce_weight, ce_scale = options["clean_weight"], options["ce_weight"], options["ce_scale"]
    batches = [0]

    def refresh(net: DunDi) -> None:
        was_training = net.training
        net.references.copy_(embed_all(net, x_refs, ctx.device).view_as(net.references))
        net.train(was_training)

    def batch_loss(net: DunDi, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if batches[0] % options["refresh_every"] == 0:
            refresh(net)
        batches[0] += 1
        # ε and the step grow linearly over the first eps_warmup epochs (as adv-pgd's): from scratch
        # at full ε adversarial training can sit at chance for epochs (docs/defenses.md).
        scale = min(1.0, batches[0] / ramp) if ramp > 0 else 1.0
        x_adv = pgd_linf(net, x, attack_objective(attack_loss, y), attack["eps"] * scale, attack["step_size"] * scale,
                         attack["steps"], "uniform")
        anchors, clean = net.embed(x_adv), net.embed(x)
        loss = adversarial_triplet(anchors, clean, y, margin, positive)
        if clean_weight:
            loss = loss + clean_weight * triplet_batch_hard(clean, y, margin)
        if ce_weight:
            logits = -ce_scale * class_distances(anchors, net.references, net.m)
            loss = loss + ce_weight * F.cross_entropy(logits, y)
        return loss

    def score(net: DunDi) -> float:
        # This epoch's centroids and references go into the state dict train() keeps for the best epoch.
        set_references(net, x_train, y_train, ctx.seed)
        # Two-step accuracy under the training attack with each objective (uniform start).
        return robust_accuracy(net, data, ctx.device, **attack, start="uniform",
                               objectives=[functools.partial(attack_objective, loss) for loss in ATTACK_LOSSES])

    train(model, data, TrainConfig.from_options(options), seed=ctx.seed, device=ctx.device, batch_loss=batch_loss,
          score=score, desc="train dundi-at", progress=ctx.progress)


DEFENSE = Defense(
    name="dundi-at",
    summary="DunDi trained with adversarial triplet anchors (TLA-style PGD on its distance margin), "
            "two-step distance classification",
    reference="Mao et al. 2019, 'Metric Learning for Adversarial Robustness' (NeurIPS; TLA), "
              "on DunDi (Mao et al. 2019, ICCS)",
    build=_build,
    fit=_fit,
    defaults=_defaults,
)
