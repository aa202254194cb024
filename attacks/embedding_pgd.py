"""``embedding-pgd``: an adaptive L∞ PGD for distance classifiers (DunDi's two-step decision).

Attacks on a defense's logits attack what the defense decides with only when
the two coincide.  DunDi (``defenses/dundi.py``) decides in two steps: the
``k`` classes with the nearest centroids are shortlisted, then the shortlisted
class whose ``m`` nearest references are nearest wins.  So an image ``x`` of
class ``y`` is misclassified exactly when

* ``y`` leaves the shortlist: at least ``k`` other centroids are nearer than
  ``y``'s, i.e. ``cent(x) = dc_y − (k-th smallest dc_j, j ≠ y) > 0``
  (``dc``: distances to the centroids; impossible when ``k = C``); or
* another shortlisted class ``j`` has nearer references:
  ``refs(x) = d_y − min_{j ∈ S, j ≠ y} d_j > 0`` (``d``: mean distance to the
  ``m`` nearest references of a class; ``S``: the current shortlist).

This attack maximises, per image, ``max(cent(x), refs(x))`` (the decision's
own margin: positive exactly when the two-step decision is wrong) by L∞ PGD
from a uniform random start in the ε-ball: ``max_iter`` signed-gradient steps
of ``eps_step``, projected onto the ball and [0, 1].  Then, from a fresh
random start and on the images not yet fooled, the same PGD on the
cross-entropy of the model's logits ``−d_c`` (``pgd``'s objective): on
adversarially trained distance classifiers (``dundi-at``) the margin alone was
measured weaker than cross-entropy PGD (digits, docs/dundi.md), whose gradient
weighs every class.  ``num_random_init`` repeats both.  It keeps, per image,
the first iterate the defense's own ``predict`` gets wrong (else the one with
the highest margin), so the result is never weaker than its best iterate.
Batched torch on the estimator's model and device.

Models without ``references``/``centroids`` buffers (the baselines, ``none``):
the attack falls back to the C&W margin ``max_{j≠y} z_j − z_y`` on the
model's logits, with the same random start, steps and best-iterate keeping
(judged by ``predict`` when the model has one, else argmax of the logits).
It then runs like ``cw-linf`` with 100 steps, so a grid can cross it with
every defense; it raises :class:`bench.errors.BenchError` only when the
estimator is not a torch one.

The estimator is ART's ``PyTorchClassifier`` the suite builds
(``attacks.art_adapter.art_classifier``); its module is unwrapped from
``Float32Input``.  This is an ART ``EvasionAttack`` so the adapter sets its
batch size and progress display like any other.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier
from torch import nn

from attacks.art_adapter import Float32Input
from bench.errors import BenchError

_FAR = 1e4  # stands in for "no such class" in masked minima: finite, so gradients stay finite


def torch_module(estimator) -> nn.Module:
    """The torch module behind the suite's ART estimator (``Float32Input`` unwrapped)."""
    module = getattr(estimator, "model", None)
    if not isinstance(module, nn.Module):
        raise BenchError(f"embedding-pgd needs a torch estimator (ART PyTorchClassifier); got "
                         f"{type(estimator).__name__}")
    while isinstance(module, Float32Input):
        module = module.model
    return module


def is_distance_classifier(model: nn.Module) -> bool:
    """Whether ``model`` decides like DunDi: ``embed``, ``centroids``, ``references``, ``k``, ``m``."""
    return all(hasattr(model, name) for name in ("embed", "centroids", "references", "k", "m"))


def two_step_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per image ``(margin, decision, logits)``: the two-step decision's margin (positive exactly when
    it is wrong; differentiable in ``x``), the decision itself (labels, no gradient), and the
    model's logits ``−d_c`` (what its ``forward`` returns)."""
    from defenses.dundi import class_distances, pairwise_distances, two_step

    e = model.embed(x)
    d = class_distances(e, model.references, model.m)  # N×C, step-2 distances of every class
    dc = pairwise_distances(e, model.centroids)  # N×C, step-1 distances
    n, classes = d.shape
    true = F.one_hot(y, classes).bool()
    shortlist = torch.zeros_like(true)
    shortlist.scatter_(1, dc.detach().topk(model.k, dim=1, largest=False).indices, True)
    d_true = d[true]
    refs = d_true - d.masked_fill(true | ~shortlist, _FAR).amin(1)
    margin = refs
    if model.k < classes:  # y can leave the shortlist
        kth_other = dc.masked_fill(true, _FAR).topk(model.k, dim=1, largest=False).values[:, -1]
        margin = torch.maximum(refs, dc[true] - kth_other)
    with torch.no_grad():
        # DunDi's own decision function on this embedding, so ties break exactly as in ``predict``
        # (a collapsed embedding region gives equal distances to several classes).
        decision = two_step(e.detach(), model.centroids, model.references, model.k, model.m)
    return margin, decision, -d


def logit_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The fallback: the C&W margin on the logits, the model's decision, and the logits."""
    logits = model(x)
    true = F.one_hot(y, logits.shape[1]).bool()
    margin = logits.masked_fill(true, float("-inf")).amax(1) - logits[true]
    with torch.no_grad():
        decision = _decide(model, x) if callable(getattr(model, "predict", None)) else logits.argmax(1)
    return margin, decision, logits


def _decide(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's decision: its ``predict`` when it has one, else argmax of its logits."""
    predict = getattr(model, "predict", None)
    return predict(x) if callable(predict) else model(x).argmax(1)


class EmbeddingPGD(EvasionAttack):
    """L∞ PGD on the two-step decision's margin (see the module docstring)."""

    attack_params = EvasionAttack.attack_params + ["eps", "eps_step", "max_iter", "num_random_init",
                                                   "batch_size", "verbose"]
    _estimator_requirements = (PyTorchClassifier,)
    #: The objectives run, in turn, from each random start (each on the images not yet fooled).
    LOSSES = ("margin", "cross_entropy")

    def __init__(self, estimator, eps: float = 0.3, eps_step: float = 0.0075, max_iter: int = 100,
                 num_random_init: int = 1, batch_size: int = 128, verbose: bool = False):
        super().__init__(estimator=estimator)
        self.eps, self.eps_step, self.max_iter = eps, eps_step, max_iter
        self.num_random_init, self.batch_size, self.verbose = num_random_init, batch_size, verbose
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        if not (self.eps > 0 and self.eps_step > 0 and self.max_iter >= 0 and self.num_random_init >= 1
                and self.batch_size >= 1):
            raise ValueError("embedding-pgd: eps, eps_step, batch_size must be positive, max_iter >= 0, "
                             "num_random_init >= 1")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        model = torch_module(self.estimator)
        model.eval()
        device = self.estimator.device
        objective = two_step_margin if is_distance_classifier(model) else logit_margin
        xs = torch.as_tensor(x, dtype=torch.float32, device=device)
        if y is None:  # like ART: the model's own decisions are the labels to move away from
            with torch.no_grad():
                labels = torch.cat([_decide(model, xs[s:s + self.batch_size])
                                    for s in range(0, len(xs), self.batch_size)])
        else:
            labels = torch.as_tensor(np.asarray(y).argmax(1) if np.ndim(y) == 2 else y, device=device).long()
        out = [self._batch(model, objective, xs[s:s + self.batch_size], labels[s:s + self.batch_size])
               for s in range(0, len(xs), self.batch_size)]
        return torch.cat(out).cpu().numpy().astype(x.dtype, copy=False)

    def _batch(self, model: nn.Module, objective, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        eps, step = self.eps, self.eps_step
        best, best_margin = x.clone(), torch.full((len(x),), -float("inf"), device=x.device)
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)

        def keep(rows: torch.Tensor, candidate: torch.Tensor, margin: torch.Tensor,
                 decision: torch.Tensor) -> None:
            # First success wins; until then, the iterate with the highest margin.
            wrong = decision != y[rows]
            better = ~fooled[rows] & (wrong | (margin > best_margin[rows]))
            best[rows[better]] = candidate[better]
            best_margin[rows[better]] = margin[better]
            fooled[rows[wrong]] = True

        for _ in range(self.num_random_init):
            for loss in self.LOSSES:
                active = torch.nonzero(~fooled).squeeze(1)
                if len(active) == 0:
                    break
                xa, ya = x[active], y[active]
                x_adv = (xa + torch.empty_like(xa).uniform_(-eps, eps)).clamp(0.0, 1.0)
                for iteration in range(self.max_iter + 1):
                    x_adv.requires_grad_(True)
                    margin, decision, logits = objective(model, x_adv, ya)
                    keep(active, x_adv.detach(), margin.detach(), decision)
                    if iteration == self.max_iter or fooled[active].all():
                        break
                    value = margin.sum() if loss == "margin" else F.cross_entropy(logits, ya, reduction="sum")
                    grad, = torch.autograd.grad(value, x_adv)
                    x_adv = x_adv.detach() + step * grad.sign()
                    x_adv = torch.min(torch.max(x_adv, xa - eps), xa + eps).clamp(0.0, 1.0)
        return best.detach()
