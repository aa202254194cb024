"""The one table of the baseline defenses' per-dataset defaults, and where each number comes from.

:data:`BASELINES` gives per dataset family the default options of
``adv-fgsm``, ``adv-pgd``, ``trades`` and ``distillation``; users override any
of them with ``--defense-option KEY=VALUE`` and every result row records the
values used (``defense_options``).  This module is data only: editing a
family's row changes that family's option values, hence the cache keys of its
models, and nothing else.

``eps`` (L∞ training radius)
    Always the family's evaluation budget (``bench.families``): 0.3 on MNIST and
    on the 8×8 digits, 8/255 on CIFAR-10 (Madry et al. 2018), 0.1 on
    Fashion-MNIST.  A defense is evaluated at the radius it was trained for.
``steps``, ``step_size`` (inner PGD of ``adv-pgd`` and ``trades``)
    Madry et al. 2018 use 40 steps of 0.01 on MNIST and 7 steps of 2/255 on
    CIFAR-10; TRADES (Zhang et al. 2019) the same.  Where the CPU budget calls
    for fewer steps, the row says so and uses ``step_size = 2.5·eps/steps``
    (Madry et al.'s rule, also ``attacks.catalog``'s for ``bim``/``pgd``);
    ``--defense-option steps=40 step_size=0.01`` restores the paper's MNIST
    setting.  Measured consequences are in ``docs/defenses.md``.
``init``, ``epochs``, ``batch_size`` (adv-fgsm, adv-pgd, trades)
    The robust-training budget.  ``init="undefended"`` fine-tunes the suite's
    trained ``none`` model (adversarial fine-tuning, Jeddi et al. 2020, 'A
    Simple Fine-tuning Is All You Need', CVPR), which reaches robustness in a
    few epochs; ``init="scratch"`` trains from random weights as the original
    papers did (Madry et al.: ~100k steps on MNIST).  Learning rate and
    weight decay are the undefended model's (``Family.training``).  The
    epoch kept is chosen on validation data under the defense's own training
    attack.
``gpu_steps``, ``gpu_step_size``
    The papers' own inner attack (MNIST: Madry et al.'s 40 × 0.01), used by
    :meth:`Baseline.inner_attack` in place of ``steps``/``step_size`` when a
    CUDA device is present, where it costs minutes instead of hours.  The
    resolved values are recorded in every row's ``defense_options``.
``eps_warmup`` (``adv-pgd``)
    Epochs over which the training ε grows linearly from 0 (a curriculum, as in
    Cai et al. 2018, 'Curriculum Adversarial Training'); 0 is the paper's full ε
    from the first batch.
``alpha`` (``adv-fgsm``)
    Goodfellow et al. 2015: loss = α·CE(x) + (1−α)·CE(x + ε·sign ∇), α = 0.5.
``beta`` (``trades``)
    Zhang et al. 2019: 1/λ = β = 6 (their MNIST and CIFAR-10 results).  MNIST
    here: β = 3, chosen on validation data between 6 and 3 (the smallest clean
    loss at no robustness cost; docs/defenses.md).
``temperature`` (``distillation``)
    Papernot et al. 2016: T = 100.  Teacher and student each use the
    undefended model's training budget (``Family.training``).
"""

from __future__ import annotations

import dataclasses

import torch

from bench.families import FAMILIES


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The baselines' defaults for one dataset family (sources in the module docstring)."""

    eps: float
    steps: int
    step_size: float
    epochs: int
    batch_size: int
    init: str = "undefended"
    eps_warmup: float = 0.0
    alpha: float = 0.5
    beta: float = 6.0
    temperature: float = 100.0
    gpu_steps: int | None = None
    gpu_step_size: float | None = None

    def inner_attack(self) -> tuple[int, float]:
        """``(steps, step_size)`` of adv-pgd's and trades' inner PGD: the papers' own
        (``gpu_*``) when a CUDA device is present and the row has them, else the CPU budget's."""
        if self.gpu_steps is not None and torch.cuda.is_available():
            return self.gpu_steps, self.gpu_step_size
        return self.steps, self.step_size


#: family -> defaults of the baseline defenses.
BASELINES = {
    # 8×8 digits (1,293 training images): ε as MNIST; 5 steps of 2.5·ε/5, small batches
    # (more optimiser steps per epoch).  Training from scratch as the papers did is cheap
    # here (~15 s on 2 cores for 40 epochs), so digits follows them rather than fine-tuning.
    "digits": Baseline(eps=FAMILIES["digits"].eps, steps=5, step_size=0.15, epochs=40, batch_size=32, init="scratch"),
    # MNIST: Madry et al.'s ε and network trained from scratch; on CPU 10 steps of 2.5·ε/10 (one
    # epoch of the 15,648-image subset: ~1.2 min on 2 idle cores), on a GPU their 40 × 0.01.
    # Measured on validation (docs/defenses.md): adv-pgd from scratch at full ε sat at chance
    # (0.124) for two epochs, and fine-tuning the undefended model rose slowly (0.19 to 0.42 in six
    # epochs of 128), so adv-pgd ramps ε over 2 epochs and takes batches of 64 (more steps, as
    # Madry et al.'s 50); trades learns from scratch (0.376, 0.550 after two epochs).  trades'
    # β = 3: on validation β = 6 kept clean 0.978 (robust 0.932), β = 3 clean 0.986 (robust 0.940).
    "mnist": Baseline(eps=FAMILIES["mnist"].eps, steps=10, step_size=0.075, epochs=20, batch_size=64,
                      init="scratch", eps_warmup=2.0, beta=3.0, gpu_steps=40, gpu_step_size=0.01),
    # Fashion-MNIST: ε = 0.1, 10 steps of 2.5·ε/10 (not validated here).
    "fashion-mnist": Baseline(eps=FAMILIES["fashion-mnist"].eps, steps=10, step_size=0.025, epochs=10, batch_size=64),
    # CIFAR-10: Madry et al.'s 7 steps of 2/255 at ε = 8/255 (not validated here).
    "cifar10": Baseline(eps=FAMILIES["cifar10"].eps, steps=7, step_size=2 / 255, epochs=30, batch_size=128),
}
