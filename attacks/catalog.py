"""The attacks and their default parameters, per dataset family.

Budgets follow the literature's standard threat models and are never lowered
to flatter a defense: L∞ ε = 0.3 on MNIST and ε = 8/255 on CIFAR-10 (Madry et
al. 2018), 0.1 on Fashion-MNIST, and 0.3 on the 8×8 digits (handwriting at the
same [0, 1] scale as MNIST).  ``--eps`` overrides ε of bounded attacks; derived
step sizes follow it (``eps_step = 2.5·ε / max_iter``, Madry et al.).

Each parameter dict goes to the ART attack's constructor as is (after the
derivation), and is recorded in every result row as ``attack_params``.
Batch sizes are set by the runner per device (ART's DeepFool, JSMA and C&W
default to 1 image at a time, measured 13× slower here).

Example::

    from attacks import get_attack
    from attacks.catalog import default_params
    default_params(get_attack("pgd"), "mnist")  # {'eps': 0.3, 'max_iter': 40, ...}
"""

from __future__ import annotations

from art.attacks.evasion import (
    BasicIterativeMethod,
    CarliniL2Method,
    DeepFool,
    FastGradientMethod,
    ProjectedGradientDescent,
    SaliencyMapMethod,
)

from attacks import AttackSpec, Norm, ThreatModel
from bench.errors import BenchError

FAMILIES = ("digits", "mnist", "fashion-mnist", "cifar10")
EPS = {"digits": 0.3, "mnist": 0.3, "fashion-mnist": 0.1, "cifar10": 8 / 255}


def _each(**params) -> dict[str, dict]:
    """The same parameters for every family, with that family's ε where ``eps=True``."""
    with_eps = params.pop("eps", False)
    return {family: ({"eps": EPS[family]} if with_eps else {}) | params for family in FAMILIES}


#: attack -> family -> ART constructor parameters.  One readable table.
PARAMETERS: dict[str, dict[str, dict]] = {
    "fgsm": _each(eps=True),
    "bim": _each(eps=True, max_iter=20),
    "pgd": _each(eps=True, max_iter=40, num_random_init=1),
    "deepfool": _each(max_iter=50, epsilon=0.02, nb_grads=10),
    "jsma": _each(theta=1.0, gamma=0.1),
    "cw-l2": _each(confidence=0.0, learning_rate=0.05, binary_search_steps=5, max_iter=50,
                   initial_const=0.1),
}


def _madry_step(params: dict) -> dict:
    return params | {"eps_step": 2.5 * params["eps"] / params["max_iter"]}


def default_params(spec: AttackSpec, family: str, eps: float | None = None) -> dict:
    """The attack's parameters for ``family``, with ε replaced by ``eps`` when given."""
    if eps is not None and not spec.bounded:
        raise BenchError(f"attack {spec.name!r} minimises its perturbation and takes no --eps")
    if eps is not None and not 0 < eps <= 1:
        raise BenchError(f"--eps {eps} is outside (0, 1]: images are on [0, 1] pixel scale")
    params = dict(PARAMETERS[spec.name][family])
    if eps is not None:
        params["eps"] = float(eps)
    if spec.name in ("bim", "pgd"):
        params = _madry_step(params)
    return params


_GRADIENT = frozenset({ThreatModel.WHITEBOX, ThreatModel.TRANSFER})

ATTACKS = (
    AttackSpec(
        name="fgsm",
        summary="Fast Gradient Sign Method: one signed-gradient step of size ε",
        reference="Goodfellow, Shlens, Szegedy 2015, 'Explaining and Harnessing Adversarial Examples'",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=lambda est, p: FastGradientMethod(est, norm="inf", **p),
    ),
    AttackSpec(
        name="bim",
        summary="Basic Iterative Method: FGSM repeated in steps, clipped to the ε-ball",
        reference="Kurakin, Goodfellow, Bengio 2017, 'Adversarial examples in the physical world'",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=lambda est, p: BasicIterativeMethod(est, **p),
    ),
    AttackSpec(
        name="pgd",
        summary="Projected Gradient Descent with a random start (40 steps)",
        reference="Madry et al. 2018, 'Towards Deep Learning Models Resistant to Adversarial Attacks'",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=lambda est, p: ProjectedGradientDescent(est, norm="inf", **p),
    ),
    AttackSpec(
        name="deepfool",
        summary="DeepFool: iterative linearisation towards the nearest boundary (minimal L2)",
        reference="Moosavi-Dezfooli, Fawzi, Frossard 2016, 'DeepFool'",
        norm=Norm.L2, bounded=False, threat_models=_GRADIENT,
        make=lambda est, p: DeepFool(est, **p),
    ),
    AttackSpec(
        name="jsma",
        summary="Jacobian Saliency Map Attack towards a random target class (few pixels, L0)",
        reference="Papernot et al. 2016, 'The Limitations of Deep Learning in Adversarial Settings'",
        norm=Norm.L0, bounded=False, threat_models=_GRADIENT,
        make=lambda est, p: SaliencyMapMethod(est, **p),
        uses_labels=False,
    ),
    AttackSpec(
        name="cw-l2",
        summary="Carlini-Wagner L2: optimisation on logits with a binary search over the constant",
        reference="Carlini, Wagner 2017, 'Towards Evaluating the Robustness of Neural Networks'",
        norm=Norm.L2, bounded=False, threat_models=_GRADIENT,
        make=lambda est, p: CarliniL2Method(est, **p),
    ),
)
