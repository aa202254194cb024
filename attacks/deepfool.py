"""DeepFool, batched and on the estimator's device.

Paper: Moosavi-Dezfooli, Fawzi, Frossard 2016, "DeepFool: a simple and accurate
method to fool deep neural networks" (https://arxiv.org/abs/1511.04599).
Distance: L2 (minimal perturbation, no budget).

The same algorithm, parameters and ``generate`` contract as ART's
``art.attacks.evasion.DeepFool`` (registered as ``deepfool-art``): each step
linearises the logits of the candidate classes around the current iterate,
moves to the nearest linearised boundary (step ``|f_l − f_k| / ‖∇f_l − ∇f_k‖² ·
(∇f_l − ∇f_k)``, ART's 1e-7 tolerance) and clips to the estimator's clip
values; the output is the iterate's perturbation scaled by ``1 + epsilon``
(overshoot).  What changed, and why:

* **when an image stops**: as soon as its output (the overshot iterate) leaves
  the original label.  ART stops only when the iterate itself crosses, which
  with clipping on MNIST it often never does: the iterate approaches the
  boundary from one side, and 47 of 100 mnist-subset images ran all 50 steps
  (the final overshoot then crosses).  Each output here is an earlier or the
  same iterate of ART's own sequence, overshot, so wherever ART's succeeds this
  succeeds, with a perturbation no larger along that sequence (measured: same
  success, mean L2 1.752 vs ART's 1.765 on 100 mnist-subset images, 23× faster);
* one forward per step and one backward per candidate class of the gradient
  *difference* ``∇(f_l − f_k)``, instead of ART's ``class_gradient`` (NumPy in
  and out, one backward per class, weight gradients computed too);
* only images still at their original label are forwarded (ART forwards its
  whole batch, converged or not, every step); everything stays a torch tensor
  on ``estimator.device``, and the weights are frozen.

Arguments:
    classifier: ART ``PyTorchClassifier`` (logits out).
    max_iter (int): steps per image (ART default 100; the suite uses 50).
    epsilon (float): overshoot (ART default 1e-6; the suite uses 0.02).
    nb_grads (int): the classes considered: the ``nb_grads`` most likely ones
        over the input (union, as in ART).
    batch_size (int): images per batch.  verbose (bool): unused (ART's progress bar).

Shape:
    x: float32 ``N×C×H×W`` in the clip range; y: ignored (as in ART: the
    original label is the model's prediction).  Returns ``N×C×H×W`` float32.

Example::

    attack = DeepFool(art_classifier(model, (1, 28, 28), 10, device), max_iter=50, epsilon=0.02)
    x_adv = attack.generate(x)
"""

from __future__ import annotations

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from attacks._torch import batches, clip_range, frozen
from attacks.torch_evasion import TorchEvasionAttack

#: Part of adversarial-example cache keys: bump when the generated images could change.
IMPLEMENTATION = "attacks.deepfool/1"

_TOL = 10e-8  # ART's tolerance in both denominators


class DeepFool(TorchEvasionAttack):
    attack_params = EvasionAttack.attack_params + ["max_iter", "epsilon", "nb_grads", "batch_size", "verbose"]

    def __init__(self, classifier: PyTorchClassifier, max_iter: int = 100, epsilon: float = 1e-6,
                 nb_grads: int = 10, batch_size: int = 1, verbose: bool = True) -> None:
        super().__init__(classifier, max_iter=max_iter, epsilon=epsilon, nb_grads=nb_grads,
                         batch_size=batch_size, verbose=verbose)

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.max_iter, int) or self.max_iter <= 0:
            raise ValueError("The number of iterations must be a positive integer.")
        if not isinstance(self.nb_grads, int) or self.nb_grads <= 0:
            raise ValueError("The number of class gradients to compute must be a positive integer.")
        if self.epsilon < 0:
            raise ValueError("The overshoot parameter must not be negative.")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        estimator, device = self.estimator, self.estimator.device
        logits, x_all = self._on_device(x)
        clip = clip_range(estimator)
        scale = 1.0 if clip is None else clip[1] - clip[0]
        out = torch.empty_like(x_all)
        with frozen(estimator.model):
            with torch.no_grad():
                first = torch.cat([logits(x_all[part]) for part in batches(len(x_all), max(self.batch_size, 256))])
            nb_classes = first.shape[1]
            if self.nb_grads < nb_classes:
                labels_set = torch.unique(first.argsort(1, descending=True)[:, :self.nb_grads])
            else:
                labels_set = torch.arange(nb_classes, device=device)
            for part in batches(len(x_all), self.batch_size):
                x0 = x_all[part]
                out[part] = self._batch(logits, x0, first[part].argmax(1), labels_set, clip, scale)
        return out.cpu().numpy()

    def _batch(self, logits, x0: torch.Tensor, original: torch.Tensor, labels_set: torch.Tensor,
               clip, scale: float) -> torch.Tensor:
        z = x0.clone()  # ART's iterate (clipped after every step); the output overshoots it by 1 + ε
        active = torch.arange(len(x0), device=x0.device)
        position = (labels_set[None, :] == original[:, None]).float().argmax(1)  # original label in labels_set
        n_labels = len(labels_set)
        for _ in range(self.max_iter):
            za = z[active].requires_grad_(True)
            out = logits(za)
            pos = position[active]
            rows = torch.arange(len(active), device=x0.device)
            f = out[:, labels_set]  # n × L
            f_diff = (f - f[rows, pos][:, None]).detach()
            # ∇(f_l − f_k) for every candidate l: one backward each from a shared forward (on CPU
            # measured 2.2× faster than one vmapped backward, is_grads_batched=True).
            own = out[rows, original[active]]
            grad_diff = torch.stack([
                torch.autograd.grad((out[:, label] - own).sum(), za, retain_graph=j < n_labels - 1)[0]
                for j, label in enumerate(labels_set.tolist())], dim=1).reshape(len(active), n_labels, -1)
            with torch.no_grad():
                value = f_diff.abs() / (grad_diff.norm(dim=2) + _TOL)
                value[rows, pos] = float("inf")
                nearest = value.argmin(1)
                w = grad_diff[rows, nearest]
                r = (f_diff[rows, nearest].abs() / (w.norm(dim=1) ** 2 + _TOL))[:, None] * w
                step = z[active] + r.view_as(za) * scale
                z[active] = step if clip is None else step.clamp(clip[0], clip[1])
                # Stop an image as soon as its *output* (the overshot iterate) leaves the original
                # label; ART checks the iterate itself, which on MNIST often approaches the boundary
                # without crossing it until max_iter (47 of 100 images, all 50 steps).
                still = logits(self._overshoot(x0[active], z[active], clip)).argmax(1) == original[active]
                active = active[still]
            if active.numel() == 0:
                break
        return self._overshoot(x0, z, clip)

    def _overshoot(self, x0: torch.Tensor, z: torch.Tensor, clip) -> torch.Tensor:
        x = x0 + (1 + self.epsilon) * (z - x0)
        return x if clip is None else x.clamp(clip[0], clip[1])
