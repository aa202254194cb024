"""``mi-fgsm``: Momentum Iterative FGSM, through ART.

Dong et al. 2018, 'Boosting Adversarial Attacks with Momentum': 10 steps of
ε/10 along the sign of a gradient accumulated with decay μ = 1, which makes
its examples transfer better than BIM's.  ART's ``ProjectedGradientDescent``
with ``decay`` and no random start.

Distance measure: L∞, at the suite's standard budget per dataset family
(``bench.families``); the step size follows ``--eps``.
Arguments (per family in ``parameters``): eps (float), max_iter (int, 10), decay (float, 1.0).
Shapes: images ``N×C×H×W`` in [0, 1] -> adversarial images of the same shape.

Example::

    bench run --defense none,quantize --attack mi-fgsm --threat-model whitebox,transfer
    bench run --attack mi-fgsm --eps 0.1,0.2
"""

from __future__ import annotations

from art.attacks.evasion import ProjectedGradientDescent

from attacks import AttackSpec, Norm, ThreatModel
from bench.families import FAMILIES

MI_FGSM = AttackSpec(
    name="mi-fgsm",
    summary="Momentum Iterative FGSM: 10 steps of eps/10, gradient momentum 1.0",
    reference="Dong et al. 2018, 'Boosting Adversarial Attacks with Momentum'",
    norm=Norm.LINF,
    bounded=True,
    threat_models=frozenset({ThreatModel.WHITEBOX, ThreatModel.TRANSFER}),
    make=lambda estimator, p: ProjectedGradientDescent(
        estimator, norm="inf", eps=p["eps"], eps_step=p["eps"] / p["max_iter"], max_iter=p["max_iter"],
        decay=p["decay"], num_random_init=0),
    parameters={name: {"eps": family.eps, "max_iter": 10, "decay": 1.0} for name, family in FAMILIES.items()},
)
