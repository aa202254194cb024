"""What the suite's own attack classes share: the PyTorch model behind an ART estimator.

The classes in ``attacks/deepfool.py``, ``attacks/jsma.py``, ``attacks/cw.py`` are
``attacks.torch_evasion.TorchEvasionAttack`` subclasses (ART ``EvasionAttack`` on
ART's ``PyTorchClassifier``): same parameters and ``generate(x, y) -> x_adv``
contract as ART's, but every step runs as batched torch on the estimator's device
(the GPU when there is one), with no NumPy round trip per step and no gradient
computed for the model's weights.  This module imports no ART: the adapter
imports it on every run, and a run whose adversarial examples all come from the
cache never imports ART.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn


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
