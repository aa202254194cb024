"""Carlini-Wagner L2, batched and on the estimator's device.

Paper: Carlini, Wagner 2017, "Towards Evaluating the Robustness of Neural
Networks" (https://arxiv.org/abs/1608.04644).  Distance: L2 (minimal
perturbation, no budget).

The same parameters and ``generate`` contract as ART's
``art.attacks.evasion.CarliniL2Method`` (registered as ``cw-l2-art``): minimise
``‖x' − x‖² + c · max(z_y − max_{j≠y} z_j + κ, 0)`` over ``x' = tanh-box(w)``
for ``max_iter`` steps, in ``binary_search_steps`` rounds over the constant
``c`` (from ``initial_const``), keeping per image the smallest-L2 ``x'`` that is
misclassified.  What changed, and why:

* **the optimiser is the authors' Adam** (their reference code) at
  ``learning_rate``, one forward and one backward per step for the whole batch.
  ART's L2 version takes a plain gradient step with a per-image line search
  (up to ``max_halving`` + ``max_doubling`` extra forwards per step) and gets the
  gradient from two ``class_gradient`` calls through NumPy;
* **the authors' early abort**: every tenth of ``max_iter`` a round stops when
  the batch's loss no longer falls (ART runs every step);
* **the constant's search is the authors'**: ×10 until the first success, then
  bisection between the largest failing and smallest succeeding ``c`` (ART
  doubles, and its lower bound follows the updated constant);
* everything stays a torch tensor on ``estimator.device``; weights are frozen.
  ``max_halving`` / ``max_doubling`` are accepted (ART's parameters) and unused.

Arguments:
    classifier: ART ``PyTorchClassifier`` (logits).  confidence (float): κ.
    targeted (bool): ``y`` are targets.  learning_rate (float): Adam's step.
    binary_search_steps (int), max_iter (int): rounds × steps.
    initial_const (float): first ``c``.  batch_size (int).  verbose (bool): unused.

Shape:
    x: float32 ``N×C×H×W``; y: ``N×classes`` one-hot or ``N`` indices (true
    labels; None: the model's predictions).  Returns ``N×C×H×W`` float32;
    images never misclassified are returned unchanged (as in ART).

Example::

    attack = CarliniL2Method(art_classifier(model, (1, 28, 28), 10, device), learning_rate=0.05, max_iter=50)
    x_adv = attack.generate(x, y=np.eye(10)[labels])
"""

from __future__ import annotations

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier
from art.utils import check_and_transform_label_format

from attacks._torch import batches, clip_range, frozen
from attacks.torch_evasion import TorchEvasionAttack

IMPLEMENTATION = "attacks.cw/2"

_TANH_SMOOTHER = 0.999999  # ART's: keeps atanh finite at the box's edges
_C_UPPER = 1e10


class CarliniL2Method(TorchEvasionAttack):
    attack_params = EvasionAttack.attack_params + [
        "confidence", "targeted", "learning_rate", "max_iter", "binary_search_steps", "initial_const",
        "max_halving", "max_doubling", "batch_size", "verbose"]
    _tanh_smoother = _TANH_SMOOTHER

    def __init__(self, classifier: PyTorchClassifier, confidence: float = 0.0, targeted: bool = False,
                 learning_rate: float = 0.01, binary_search_steps: int = 10, max_iter: int = 10,
                 initial_const: float = 0.01, max_halving: int = 5, max_doubling: int = 5,
                 batch_size: int = 1, verbose: bool = True) -> None:
        super().__init__(classifier, confidence=confidence, targeted=targeted, learning_rate=learning_rate,
                         binary_search_steps=binary_search_steps, max_iter=max_iter,
                         initial_const=initial_const, max_halving=max_halving, max_doubling=max_doubling,
                         batch_size=batch_size, verbose=verbose)

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.binary_search_steps, int) or self.binary_search_steps < 0:
            raise ValueError("The number of binary search steps must be a non-negative integer.")
        if not isinstance(self.max_iter, int) or self.max_iter < 0:
            raise ValueError("The number of iterations must be a non-negative integer.")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        estimator, device = self.estimator, self.estimator.device
        logits, x_all = self._on_device(x)
        clip = clip_range(estimator) or (float(x_all.min()), float(x_all.max()))
        if self.targeted and y is None:
            raise ValueError("Target labels `y` need to be provided for a targeted attack.")
        with frozen(estimator.model):
            if y is None:
                with torch.no_grad():
                    labels = torch.cat([logits(x_all[p]).argmax(1) for p in batches(len(x_all), 256)])
            else:
                labels = torch.as_tensor(
                    check_and_transform_label_format(y, nb_classes=estimator.nb_classes).argmax(1), device=device)
            out = torch.empty_like(x_all)
            for part in batches(len(x_all), self.batch_size):
                out[part] = self._batch(logits, x_all[part], labels[part], clip)
        return out.cpu().numpy()

    def _margin(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per image: how far the attack is from its goal (≤ 0: reached, with confidence κ)."""
        z_label = z.gather(1, labels[:, None])[:, 0]
        z_other = z.scatter(1, labels[:, None], float("-inf")).amax(1)
        margin = z_other - z_label if self.targeted else z_label - z_other
        return margin + self.confidence

    def _batch(self, logits, x0: torch.Tensor, labels: torch.Tensor, clip: tuple[float, float]) -> torch.Tensor:
        n = len(x0)
        low, high = clip
        half, mid = (high - low) / 2, (high + low) / 2
        smoother = self._tanh_smoother
        w0 = torch.atanh(((x0 - mid) / half).clamp(-1, 1) * smoother)
        const = torch.full((n,), float(self.initial_const), device=x0.device)
        lower = torch.zeros(n, device=x0.device)
        upper = torch.full((n,), _C_UPPER, device=x0.device)
        best_l2 = torch.full((n,), float("inf"), device=x0.device)
        best = x0.clone()
        dims = tuple(range(1, x0.ndim))
        for _ in range(self.binary_search_steps):
            w = w0.clone().requires_grad_(True)
            optimiser = torch.optim.Adam([w], lr=self.learning_rate)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x0.device)
            previous = float("inf")
            for step in range(self.max_iter + 1):
                x_adv = torch.tanh(w) * half / smoother + mid
                x_adv = x_adv.clamp(low, high)
                l2 = (x_adv - x0).pow(2).sum(dims)
                margin = self._margin(logits(x_adv), labels)
                with torch.no_grad():
                    reached = margin <= 0
                    improved = reached & (l2 < best_l2)
                    best_l2 = torch.where(improved, l2, best_l2)
                    best = torch.where(improved.view(-1, *([1] * (x0.ndim - 1))), x_adv, best)
                    succeeded |= reached
                if step == self.max_iter:
                    break
                loss = (l2 + const * margin.clamp(min=0)).sum()
                # The authors' early abort: every tenth of the steps, stop when the loss stalled.
                if step % max(self.max_iter // 10, 1) == 0:
                    if loss.item() > 0.9999 * previous:
                        break
                    previous = loss.item()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            # The authors' search over c: bisect once bracketed, else ×10.
            upper = torch.where(succeeded, torch.minimum(upper, const), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, const))
            const = torch.where(upper < _C_UPPER, (lower + upper) / 2, const * 10)
        return best
