"""``TorchEvasionAttack``: the tiny base class of the suite's own attacks (one file each in ``attacks/``).

Its own module because it subclasses ART's ``EvasionAttack``: importing ART takes
seconds, and only building one of these attacks should pay for it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from attacks._torch import logits_function


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
