"""What the suite's own attack classes share: the PyTorch model behind an ART estimator.

The classes in ``attacks/deepfool.py``, ``attacks/jsma.py``, ``attacks/cw.py`` are
:class:`TorchEvasionAttack` subclasses (ART ``EvasionAttack`` on ART's ``PyTorchClassifier``): same parameters
and ``generate(x, y) -> x_adv`` contract as ART's, but every step runs as batched
torch on the estimator's device (the GPU when there is one), with no NumPy round
trip per step and no gradient computed for the model's weights.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier
from torch import nn


class TorchEvasionAttack(EvasionAttack):
    """The tiny base of the suite's own attacks: ART's ``EvasionAttack`` on a ``PyTorchClassifier``.

    A subclass lists its parameters in ``attack_params`` (ART's convention) and
    its ``__init__`` hands them, by name, to this one, which sets them through
    ART's ``set_params`` (so a later ``attack.set_params(...)`` checks them the
    same way); its ``_check_params`` adds its own rules to the batch size's.
    """

    _estimator_requirements = (PyTorchClassifier,)

    def __init__(self, classifier: PyTorchClassifier, **params) -> None:
        super().__init__(estimator=classifier)
        self.set_params(**params)

    def _check_params(self) -> None:
        if self.batch_size <= 0:
            raise ValueError("The batch size `batch_size` has to be positive.")

    def _on_device(self, x: np.ndarray) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
        """The estimator's logits function and ``x`` as a float32 tensor on its device."""
        return logits_function(self.estimator), torch.as_tensor(np.asarray(x, dtype=np.float32),
                                                                device=self.estimator.device)


def logits_function(estimator) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (N×C×H×W tensor on estimator.device) -> logits`` of ``estimator``'s model, through
    the estimator's own preprocessing (ART's standardisation, identity by default), in eval mode."""
    model: nn.Module = estimator.model
    model.eval()

    def logits(x: torch.Tensor) -> torch.Tensor:
        x_pre, _ = estimator._apply_preprocessing(x, y=None, fit=False, no_grad=False)
        return model(x_pre)

    return logits


def clip_range(estimator) -> tuple[float, float] | None:
    if estimator.clip_values is None:
        return None
    low, high = estimator.clip_values
    return float(np.min(low)), float(np.max(high))


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with ``requires_grad`` off on every parameter, restored afterwards.

    An attack needs gradients with respect to its input only; with the weights
    frozen, backward skips the weight gradients (ART's estimators call
    ``loss.backward()``, which otherwise computes them every step: about half of a
    PGD step's time on the MNIST CNN)."""
    params = list(model.parameters())
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
