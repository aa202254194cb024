"""Run a registered attack through the adversarial-robustness-toolbox (ART).

The model is wrapped in ART's ``PyTorchClassifier`` over its ``forward``
logits, with ``clip_values=(0, 1)`` and the suite's device, so ART computes
gradients on the GPU when there is one.
"""

from __future__ import annotations

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from attacks import AttackSpec

#: Images per ART batch. ART's DeepFool/JSMA/C&W default to 1, which is ~13× slower.
BATCH_SIZE = {"cpu": 128, "cuda": 1024}


def art_classifier(model: nn.Module, input_shape: tuple[int, ...], num_classes: int,
                   device: torch.device) -> PyTorchClassifier:
    """ART's view of ``model``: logits in, cross-entropy loss, inputs clipped to [0, 1]."""
    model.eval()
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape),
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


def run_attack(spec: AttackSpec, params: dict, estimator, x: np.ndarray, y: np.ndarray,
               *, seed: int, device: torch.device, progress: bool = False) -> np.ndarray:
    """Adversarial versions of ``x`` (float32 ``N×C×H×W``) with true labels ``y``.

    ``params`` are the ART constructor parameters (see ``attacks/catalog.py``);
    batch size and progress display are set here. NumPy and torch are seeded
    so random starts and JSMA's random targets repeat under the same seed.
    """
    attack = spec.make(estimator, dict(params))
    settable = set(type(attack).attack_params)
    extra = {"batch_size": BATCH_SIZE[device.type], "verbose": progress}
    attack.set_params(**{key: value for key, value in extra.items() if key in settable})
    np.random.seed(seed)
    torch.manual_seed(seed)
    labels = None
    if spec.uses_labels:
        labels = np.eye(estimator.nb_classes, dtype=np.float32)[y]
    x_adv = attack.generate(x=x.astype(np.float32), y=labels)
    return np.clip(x_adv, 0.0, 1.0).astype(np.float32)
