"""``trades``: TRADES, the trade-off between accuracy and robustness made explicit.

Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan 2019, 'Theoretically Principled
Trade-off between Robustness and Accuracy' (ICML).  Each batch minimises

    CE(f(x), y) + β · KL(softmax f(x) ‖ softmax f(x'))

where ``x'`` maximises that KL term over the L∞ ball: PGD from
``x + 0.001·N(0, 1)`` with ``steps`` signed steps of ``step_size`` (the
paper's Algorithm 1; the clean distribution is held fixed while ``x'`` is
searched).  β trades clean accuracy for robustness (paper: 1/λ = β = 6).

Distance measure: L∞, radius ``eps`` on [0, 1] pixel scale.

Options (defaults per family in ``defenses.baseline_defaults.BASELINES``):
    eps (float): training radius; the dataset's evaluation budget (MNIST 0.3).
    steps (int), step_size (float): the inner KL maximisation (MNIST: 10 × 0.075 on CPU,
        the paper's 40 × 0.01 when a CUDA device is present).
    beta (float): weight of the robustness term (6.0).
    init (str): ``undefended`` (fine-tune the trained ``none`` model; Jeddi et al.
        2020) or ``scratch`` (from random weights, as in the paper).
    architecture (str), epochs (int), batch_size (int), lr (float), weight_decay (float).
The epoch kept is the one with the best validation accuracy under PGD
(cross-entropy, uniform random start, the same ``eps``/``steps``/``step_size``).

Shapes: input ``N×C×H×W`` in [0, 1] -> logits ``N×num_classes``.

Example::

    bench run --defense trades --attack pgd,cw-l2
    bench run --defense trades --defense-option beta=1.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.datasets import Dataset
from bench.families import TrainConfig
from bench.models import train
from defenses import Defense, FitContext
from defenses.baseline_defaults import BASELINES
from defenses.robust_training import build, initialise, pgd_linf, robust_accuracy, training_options


def _defaults(data: Dataset) -> dict:
    base = BASELINES[data.family]
    steps, step_size = base.inner_attack()
    return {**training_options(data), "eps": base.eps, "steps": steps, "step_size": step_size,
            "beta": base.beta}


def _fit(model: nn.Module, data: Dataset, options: dict, ctx: FitContext) -> None:
    eps, steps, step_size, beta = options["eps"], options["steps"], options["step_size"], options["beta"]

    def batch_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            net.eval()
            clean = F.softmax(net(x), dim=1)
            net.train()

        def kl_from_clean(logits: torch.Tensor) -> torch.Tensor:
            return F.kl_div(F.log_softmax(logits, dim=1), clean, reduction="sum")

        x_adv = pgd_linf(net, x, kl_from_clean, eps, step_size, steps, start="normal")
        logits = net(x)
        robust = F.kl_div(F.log_softmax(net(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y) + beta * robust

    def score(net: nn.Module) -> float:
        return robust_accuracy(net, data, ctx.device, eps=eps, step_size=step_size, steps=steps,
                               start="uniform")

    initialise(model, data, options, ctx)
    train(model, data, TrainConfig.from_options(options), seed=ctx.seed, device=ctx.device, batch_loss=batch_loss,
          score=score, desc="train trades", progress=ctx.progress)


DEFENSE = Defense(
    name="trades",
    summary="TRADES: clean CE + β·KL to the worst-case neighbour (Zhang et al. 2019)",
    reference="Zhang et al. 2019, 'Theoretically Principled Trade-off between Robustness and Accuracy'",
    build=build,
    fit=_fit,
    defaults=_defaults,
)
