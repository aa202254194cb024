"""Jacobian Saliency Map Attack (JSMA), batched and on the estimator's device.

Paper: Papernot, McDaniel, Jha, Fredrikson, Celik, Swami 2016, "The Limitations
of Deep Learning in Adversarial Settings" (https://arxiv.org/abs/1511.07528).
Distance: L0 (minimal number of changed pixel values, capped by ``gamma``).

The same algorithm, parameters and ``generate`` contract as ART's
``art.attacks.evasion.SaliencyMapMethod`` (registered as ``jsma-art``), which is
ART's simplified JSMA: each step takes the gradient of the *target* logit and
raises the two features with the largest gradient still in the search space by
``theta`` (clipped), until the target label is reached, a share ``gamma`` of the
features was changed, or the search space is empty.  Targets: ``y`` (one-hot or
indices) when given, else ART's ``random_targets`` from NumPy's global RNG (so a
seed gives the same targets as ART's).  What changed:

* one backward per step of the gathered target logits, instead of ART's
  ``class_gradient`` with one backward per distinct target label in the batch
  (up to 9), each also computing the weight gradients;
* the prediction check runs on the still-active images only (ART predicts the
  whole batch every step); all state stays on ``estimator.device``.

Arguments:
    classifier: ART ``PyTorchClassifier``.  theta (float): change per feature
    (the suite: 1.0).  gamma (float): maximum share of features changed (0.1).
    batch_size (int).  verbose (bool): unused.

Shape:
    x: float32 ``N×C×H×W``; y: ``N×classes`` one-hot targets, ``N`` indices, or None.
    Returns ``N×C×H×W`` float32.

Example::

    attack = SaliencyMapMethod(art_classifier(model, (1, 28, 28), 10, device), theta=1.0, gamma=0.1)
    x_adv = attack.generate(x)   # random targets
"""

from __future__ import annotations

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier
from art.utils import check_and_transform_label_format, random_targets

from attacks._torch import batches, clip_range, frozen
from attacks.torch_evasion import TorchEvasionAttack

IMPLEMENTATION = "attacks.jsma/1"


class SaliencyMapMethod(TorchEvasionAttack):
    attack_params = EvasionAttack.attack_params + ["theta", "gamma", "batch_size", "verbose"]

    def __init__(self, classifier: PyTorchClassifier, theta: float = 0.1, gamma: float = 1.0,
                 batch_size: int = 1, verbose: bool = True) -> None:
        super().__init__(classifier, theta=theta, gamma=gamma, batch_size=batch_size, verbose=verbose)

    def _check_params(self) -> None:
        super()._check_params()
        if self.gamma <= 0 or self.gamma > 1:
            raise ValueError("The total perturbation percentage `gamma` must be between 0 and 1.")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        estimator, device = self.estimator, self.estimator.device
        logits, x_all = self._on_device(x)
        with frozen(estimator.model):
            with torch.no_grad():
                preds = torch.cat([logits(x_all[part]).argmax(1) for part in batches(len(x_all), 256)])
            if y is None:
                targets = random_targets(preds.cpu().numpy(), estimator.nb_classes).argmax(1)
            else:
                targets = check_and_transform_label_format(y, nb_classes=estimator.nb_classes).argmax(1)
            targets = torch.as_tensor(targets, device=device)
            out = torch.empty_like(x_all)
            for part in batches(len(x_all), self.batch_size):
                out[part] = self._batch(logits, x_all[part], preds[part], targets[part])
        return out.cpu().numpy()

    def _batch(self, logits, x0: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n, shape = len(x0), x0.shape[1:]
        batch = x0.reshape(n, -1).clone()
        n_features = batch.shape[1]
        clip = clip_range(self.estimator)
        up = self.theta > 0
        if clip is not None:
            clip_value = clip[1] if up else clip[0]
            search = batch < clip_value if up else batch > clip_value
        else:
            search = torch.ones_like(batch, dtype=torch.bool)
        changed = torch.zeros_like(batch, dtype=torch.bool)
        active = torch.nonzero(pred != target).flatten()
        while active.numel():
            xa = batch[active].reshape(-1, *shape).requires_grad_(True)
            out = logits(xa)
            grads = torch.autograd.grad(out[torch.arange(len(active)), target[active]].sum(), xa)[0]
            grads = grads.reshape(len(active), -1)
            grads = torch.where(search[active], grads, -np.inf if up else np.inf)
            feat = (grads if up else -grads).topk(2, dim=1).indices  # the two most salient features
            rows = active[:, None].expand(-1, 2)
            changed[rows, feat] = True
            with torch.no_grad():
                values = batch[rows, feat] + self.theta
                if clip is not None:
                    values = values.clamp(max=clip_value) if up else values.clamp(min=clip_value)
                batch[rows, feat] = values
                if clip is not None:
                    search[active] &= batch[active] != clip_value
                current = logits(batch[active].reshape(-1, *shape)).argmax(1)
            keep = ((current != target[active])
                    & (changed[active].sum(1).float() / n_features <= self.gamma)
                    & (search[active].sum(1) > 0))
            active = active[keep]
        return batch.reshape(n, *shape)
