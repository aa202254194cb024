"""The attacks and their default parameters, per dataset family.

Budgets follow the literature's standard threat models and are never lowered
to flatter a defense: each family's ε (``bench.families``: L∞ 0.3 on MNIST and
8/255 on CIFAR-10, Madry et al. 2018).  Each attack's defaults per family are its
``AttackSpec.parameters``; ``--eps`` overrides ε of bounded attacks, and derived
step sizes follow it (``AttackSpec.derive``: ``eps_step = 2.5·ε / max_iter`` for
PGD-style attacks, Madry et al.; the initial ``eps_step = 2·ε`` of APGD, Croce & Hein).

Each parameter dict goes to the ART attack's constructor as is (after the
derivation; ``autoattack`` splits its dict over its inner attacks), and is
recorded in every result row as ``attack_params``.  Batch sizes are set by the
adapter per device (ART's DeepFool, JSMA and C&W default to 1 image at a time,
measured 13× slower here).

Query budgets of the black-box attacks (``square``, ``hopskipjump``) are their
iteration counts here; the model evaluations ART actually made are counted and
recorded per row as ``queries_per_image`` (see docs/attacks.md for measured
costs).

ε sweeps (``--eps-sweep``, or ``--eps`` lists) use the family's budget grids
(``bench.families``: ``Family.sweep``, per norm); minimal-perturbation attacks are scored at
each budget of their own norm from their per-image perturbation norms.

Example::

    from attacks import get_attack
    from attacks.catalog import default_params
    default_params(get_attack("pgd"), "mnist")  # {'eps': 0.3, 'max_iter': 40, ...}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attacks import AttackSpec, Norm, ThreatModel
from bench.errors import BenchError
from bench.families import FAMILIES
from bench.families import family as family_defaults  # ``family`` is the parameter name below

if TYPE_CHECKING:
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent


def margin_classifier(estimator):
    """``attacks.art_adapter.margin_classifier``, imported when first used: the adapter imports
    torch, and this table is read by ``bench list`` and the name checks, which must not."""
    from attacks.art_adapter import margin_classifier as margin

    return margin(estimator)


def _own(module: str):
    """The suite's own attack module ``attacks.<module>`` (batched torch, ART-compatible classes),
    imported when first used: it imports torch and ART."""
    import importlib

    return importlib.import_module(f"attacks.{module}")


def _evasion():
    """ART's evasion-attack module, imported when an attack is first built: importing ART
    takes seconds, and a run whose adversarial examples all come from the cache never needs it."""
    import art.attacks.evasion

    return art.attacks.evasion


def _each(**params) -> dict[str, dict]:
    """The same parameters for every family, with that family's ε where ``eps=True``."""
    with_eps = params.pop("eps", False)
    return {name: ({"eps": defaults.eps} if with_eps else {}) | params for name, defaults in FAMILIES.items()}


def _madry_step(params: dict) -> dict:
    return params | {"eps_step": 2.5 * params["eps"] / params["max_iter"]}


def _apgd_step(params: dict) -> dict:
    return params | {"eps_step": 2 * params["eps"]}


#: ``--attack strong``: the white-box set of AutoAttack's "standard" version (Croce & Hein 2020) as
#: ART provides it: APGD-CE, APGD-DLR untargeted then targeted at each other class (the restarts
#: that matter), and Square on the model's scores (5000 queries).  Its members run white-box only;
#: it is also what a run gets when it asks for white-box robustness without naming attacks.
STRONG = ("apgd-ce", "apgd-t", "square-scores")
#: Attack names that stand for a set, and the set (white-box only).
ALIASES = {"strong": STRONG}


def split_aliases(names: list[str]) -> tuple[list[str], list[str]]:
    """``(attacks, white-box attacks)``: the names as given, and the members of any alias among
    them (:data:`ALIASES`), which run under the white-box threat model only.

    Example::

        split_aliases(["fgsm", "strong"])   # (['fgsm'], ['apgd-ce', 'apgd-t', 'square-scores'])
    """
    plain = [name for name in names if name not in ALIASES]
    whitebox = [member for name in names if name in ALIASES for member in ALIASES[name]]
    return plain, list(dict.fromkeys(whitebox))


def sweep_budgets(spec: AttackSpec, family: str, eps: list[float], sweep: bool) -> list[float | None]:
    """The budgets an attack's rows get: ``None`` is the default (bounded) or no budget (minimal).

    Bounded attacks run once per budget: ``eps`` (L∞ budgets from ``--eps``)
    when given, else the family's sweep grid of their norm (``Family.sweep``) under ``sweep``.
    Minimal-perturbation attacks always give their unbudgeted row, plus one
    row per budget of their own norm, all from one attack run, only when budgets
    of that norm are asked for: ``eps`` for an L∞ attack, ``sweep`` for any
    (``--eps`` alone, being L∞, leaves DeepFool, C&W-L2 and JSMA unbudgeted).
    """
    grid = list(eps) if (eps and spec.norm is Norm.LINF) else list(family_defaults(family).sweep[spec.norm.value])
    if spec.bounded:
        return grid if (eps or sweep) else [None]
    return [None, *grid] if (sweep or (eps and spec.norm is Norm.LINF)) else [None]


def default_params(spec: AttackSpec, family: str, eps: float | None = None, **overrides) -> dict:
    """The attack's parameters for ``family``, with ε replaced by ``eps`` when given and other
    entries by ``overrides`` (e.g. ``max_iter=160``), before step sizes are derived."""
    if eps is not None and not spec.bounded:
        raise BenchError(f"attack {spec.name!r} minimises its perturbation and takes no --eps")
    if eps is not None and not 0 < eps <= 1:
        raise BenchError(f"--eps {eps} is outside (0, 1]: images are on [0, 1] pixel scale")
    if family not in (spec.parameters or {}):
        raise BenchError(f"attack {spec.name!r} ({spec.origin}) has no parameters for {family!r} data")
    params = dict(spec.parameters[family]) | overrides
    if eps is not None:
        params["eps"] = float(eps)
    return spec.derive(params) if spec.derive else params


_GRADIENT = frozenset({ThreatModel.WHITEBOX, ThreatModel.TRANSFER})
_QUERIES = frozenset({ThreatModel.BLACKBOX})
_WHITEBOX = frozenset({ThreatModel.WHITEBOX})


def _apgd(estimator, params: dict, loss_type: str) -> AutoProjectedGradientDescent:
    return _evasion().AutoProjectedGradientDescent(estimator, norm=np.inf, loss_type=loss_type, targeted=False, **params)


def _autoattack(estimator, params: dict) -> AutoAttack:
    """ART's AutoAttack over APGD-CE, APGD-DLR (100 steps, 1 restart each) and Square.

    ``params``: ``eps``, ``eps_step`` (APGD's initial step, 2ε), ``apgd_max_iter``
    (100) and ``square_max_iter`` (1000 queries).  Each inner attack runs only on
    the images still classified correctly, and an image counts as broken when
    any inner attack breaks it within ε (ART checks the norm).  Differences from
    Croce & Hein's "standard" version, chosen for CPU cost and ART's attack set:
    untargeted APGD-DLR instead of the 9-target APGD-T, no FAB-T, and Square with
    1000 instead of 5000 queries.  The adapter sets every inner batch size.
    """
    eps, step = params["eps"], params["eps_step"]
    apgd = {"eps": eps, "eps_step": step, "max_iter": params["apgd_max_iter"], "nb_random_init": 1}
    inner = [
        _apgd(estimator, apgd, "cross_entropy"),
        _apgd(estimator, apgd, "difference_logits_ratio"),
        _evasion().SquareAttack(estimator, norm=np.inf, eps=eps, max_iter=params["square_max_iter"], p_init=0.8,
                     nb_restarts=1),
    ]
    return _evasion().AutoAttack(estimator, norm=np.inf, eps=eps, eps_step=step, attacks=inner, targeted=False)


def _apgd_t(estimator, params: dict) -> AutoAttack:
    """APGD on the DLR loss, untargeted, then targeted at each other class in turn (AutoAttack's
    APGD-T: 9 targets on 10 classes, 100 steps each), each run only on the images still correct.

    ART's ``AutoAttack(targeted=True)`` over one APGD-DLR: an image counts as
    broken when a run misclassifies it (untargeted) or reaches the target,
    within ε.  Croce & Hein's APGD-T uses a targeted DLR variant and the top-9
    classes by logit; on 10 classes these are all the other classes.
    """
    apgd = _apgd(estimator, {k: params[k] for k in ("eps", "eps_step", "max_iter", "nb_random_init")},
                 "difference_logits_ratio")
    return _evasion().AutoAttack(estimator, norm=np.inf, eps=params["eps"], eps_step=params["eps_step"],
                                 attacks=[apgd], targeted=True)


def _embedding_pgd(estimator, params: dict):
    """``attacks.embedding_pgd.EmbeddingPGD``, imported when first built (it imports ART)."""
    from attacks.embedding_pgd import EmbeddingPGD

    return EmbeddingPGD(estimator, **params)


#: Parameters shared by an attack and ART's implementation kept beside it for comparison (``-art``),
#: and by the APGD variants: one dict each, so they cannot drift apart.
_DEEPFOOL = _each(max_iter=50, epsilon=0.02, nb_grads=10)
_JSMA = _each(theta=1.0, gamma=0.1)
_CW_L2 = _each(confidence=0.0, learning_rate=0.05, binary_search_steps=5, max_iter=50, initial_const=0.1)
_APGD = _each(eps=True, max_iter=100, nb_random_init=1)
_SQUARE = _each(eps=True, max_iter=1000, p_init=0.8, nb_restarts=1)

ATTACKS = (
    AttackSpec(
        name="fgsm",
        summary="Fast Gradient Sign Method: one signed-gradient step of size ε",
        reference="Goodfellow, Shlens, Szegedy 2015, 'Explaining and Harnessing Adversarial Examples'",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=lambda est, p: _evasion().FastGradientMethod(est, norm="inf", **p),
        parameters=_each(eps=True),
    ),
    AttackSpec(
        name="bim",
        summary="Basic Iterative Method: FGSM repeated in steps, clipped to the ε-ball",
        reference="Kurakin, Goodfellow, Bengio 2017, 'Adversarial examples in the physical world'",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=lambda est, p: _evasion().BasicIterativeMethod(est, **p),
        parameters=_each(eps=True, max_iter=20),
        derive=_madry_step,
    ),
    AttackSpec(
        name="pgd",
        summary="Projected Gradient Descent with a random start (40 steps)",
        reference="Madry et al. 2018, 'Towards Deep Learning Models Resistant to Adversarial Attacks'",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=lambda est, p: _evasion().ProjectedGradientDescent(est, norm="inf", **p),
        parameters=_each(eps=True, max_iter=40, num_random_init=1),
        derive=_madry_step,
    ),
    AttackSpec(
        name="deepfool",
        summary="DeepFool: iterative linearisation towards the nearest boundary (minimal L2; batched torch)",
        reference="Moosavi-Dezfooli, Fawzi, Frossard 2016, 'DeepFool'",
        norm=Norm.L2, bounded=False, threat_models=_GRADIENT,
        make=lambda est, p: _own("deepfool").DeepFool(est, **p),
        implementation="attacks.deepfool/1",
        parameters=_DEEPFOOL,
    ),
    AttackSpec(
        name="deepfool-art",
        summary="ART's own DeepFool, kept to compare with `deepfool` (same parameters)",
        origin="ART, for comparison",  # a second implementation, not one more attack
        reference="Moosavi-Dezfooli, Fawzi, Frossard 2016, 'DeepFool' (ART's implementation)",
        norm=Norm.L2, bounded=False, threat_models=_GRADIENT,
        make=lambda est, p: _evasion().DeepFool(est, **p),
        parameters=_DEEPFOOL,
    ),
    AttackSpec(
        name="jsma",
        summary="Jacobian Saliency Map Attack towards a random target class (few pixels, L0; batched torch)",
        reference="Papernot et al. 2016, 'The Limitations of Deep Learning in Adversarial Settings'",
        norm=Norm.L0, bounded=False, threat_models=_GRADIENT,
        make=lambda est, p: _own("jsma").SaliencyMapMethod(est, **p),
        uses_labels=False,
        implementation="attacks.jsma/1",
        parameters=_JSMA,
    ),
    AttackSpec(
        name="jsma-art",
        summary="ART's own JSMA, kept to compare with `jsma` (same parameters and random targets)",
        origin="ART, for comparison",  # a second implementation, not one more attack
        reference="Papernot et al. 2016 (ART's implementation)",
        norm=Norm.L0, bounded=False, threat_models=_GRADIENT,
        make=lambda est, p: _evasion().SaliencyMapMethod(est, **p),
        uses_labels=False,
        parameters=_JSMA,
    ),
    AttackSpec(
        name="cw-l2",
        summary="Carlini-Wagner L2: optimisation on logits with a binary search over the constant",
        reference="Carlini, Wagner 2017, 'Towards Evaluating the Robustness of Neural Networks'",
        norm=Norm.L2, bounded=False, threat_models=_GRADIENT,
        make=lambda est, p: _own("cw").CarliniL2Method(est, **p),
        implementation="attacks.cw/2",
        parameters=_CW_L2,
    ),
    AttackSpec(
        name="cw-l2-art",
        summary="ART's own C&W L2 (line search instead of Adam), kept to compare with `cw-l2`",
        origin="ART, for comparison",  # a second implementation, not one more attack
        reference="Carlini, Wagner 2017 (ART's implementation)",
        norm=Norm.L2, bounded=False, threat_models=_GRADIENT,
        make=lambda est, p: _evasion().CarliniL2Method(est, **p),
        parameters=_CW_L2,
    ),
    AttackSpec(
        # ART's own CarliniLInfMethod optimises in tanh space one image at a time; on [0, 1]
        # images with saturated (0 or 1) backgrounds those pixels cannot move: on 64 digits it
        # left 69% accuracy at L∞ 0.2 where PGD leaves 3%, at 0.5 s per image (docs/attacks.md).
        # So, like the "CW∞" of the adversarial-training literature, this is PGD on the C&W loss.
        name="cw-linf",
        summary="Carlini-Wagner margin loss max_j≠y z_j − z_y maximised by PGD in the L∞ ε-ball (50 steps)",
        reference="Carlini, Wagner 2017 (loss); Madry et al. 2018 (PGD); as CW∞ in Zhang et al. 2019 (TRADES)",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=lambda est, p: _evasion().ProjectedGradientDescent(margin_classifier(est), norm="inf", **p),
        parameters=_each(eps=True, max_iter=50, num_random_init=1),
        derive=_madry_step,
    ),
    AttackSpec(
        name="apgd-ce",
        summary="Auto-PGD on cross-entropy: step size adapted per image (100 steps)",
        reference="Croce, Hein 2020, 'Reliable evaluation of adversarial robustness with an ensemble "
                  "of diverse parameter-free attacks'",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=lambda est, p: _apgd(est, p, "cross_entropy"),
        parameters=_APGD,
        derive=_apgd_step,
    ),
    AttackSpec(
        name="apgd-dlr",
        summary="Auto-PGD on the Difference of Logits Ratio loss (scale-invariant; 100 steps)",
        reference="Croce, Hein 2020, 'Reliable evaluation of adversarial robustness with an ensemble "
                  "of diverse parameter-free attacks'",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=lambda est, p: _apgd(est, p, "difference_logits_ratio"),
        parameters=_APGD,
        derive=_apgd_step,
    ),
    AttackSpec(
        name="autoattack",
        summary="AutoAttack ensemble: APGD-CE, APGD-DLR, then Square on what survives",
        reference="Croce, Hein 2020 (ART's AutoAttack; inner attacks in attacks/catalog.py)",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=_autoattack,
        parameters=_each(eps=True, apgd_max_iter=100, square_max_iter=1000),
        derive=_apgd_step,
    ),
    AttackSpec(
        # Adaptive attack for DunDi-style distance classifiers (attacks/embedding_pgd.py): the margin of
        # the two-step decision itself; on models without references, the C&W margin on the logits.
        # White-box only: under transfer it would attack `none`, i.e. be cw-linf with 100 steps.
        name="embedding-pgd",
        summary="Adaptive PGD on a distance classifier's two-step decision margin (centroid shortlist "
                "and m nearest references; 100 steps, best iterate kept)",
        reference="Madry et al. 2018 (PGD); adaptive-attack guidance of Tramer et al. 2020, "
                  "'On Adaptive Attacks to Adversarial Example Defenses'",
        norm=Norm.LINF, bounded=True, threat_models=_WHITEBOX,
        make=lambda est, p: _embedding_pgd(est, p),
        parameters=_each(eps=True, max_iter=100, num_random_init=1),
        derive=_madry_step,
    ),
    AttackSpec(
        name="apgd-t",
        summary="Auto-PGD on DLR, untargeted then targeted at each other class (AutoAttack's APGD-T; "
                "100 steps per target)",
        reference="Croce, Hein 2020, 'Reliable evaluation of adversarial robustness with an ensemble "
                  "of diverse parameter-free attacks' (ART's AutoAttack, targeted=True)",
        norm=Norm.LINF, bounded=True, threat_models=_GRADIENT,
        make=_apgd_t,
        parameters=_APGD,
        derive=_apgd_step,
    ),
    AttackSpec(
        # AutoAttack's Square: the margin of the model's own scores (its forward), which a white-box
        # attacker has; `square` under blackbox queries only the defense's decision.
        name="square-scores",
        summary="Square Attack on the model's scores (its forward output), as in AutoAttack: 5000 "
                "queries, white-box threat model (no gradients used)",
        reference="Andriushchenko et al. 2020 (Square Attack); Croce, Hein 2020 (AutoAttack)",
        norm=Norm.LINF, bounded=True, threat_models=frozenset({ThreatModel.WHITEBOX}),
        make=lambda est, p: _evasion().SquareAttack(est, norm=np.inf, **p),
        parameters=_each(eps=True, max_iter=5000, p_init=0.8, nb_restarts=1),
    ),
    AttackSpec(
        name="square",
        summary="Square Attack: score-based random search with square-shaped L∞ updates (1000 iterations)",
        reference="Andriushchenko et al. 2020, 'Square Attack: a query-efficient black-box adversarial "
                  "attack via random search'",
        norm=Norm.LINF, bounded=True, threat_models=_QUERIES,
        make=lambda est, p: _own("square").SquareAttack(est, norm=np.inf, **p),
        implementation="attacks.square/1",
        parameters=_SQUARE,
    ),
    AttackSpec(
        name="square-art",
        summary="ART's own Square Attack (3 queries per image per iteration), kept to compare with `square`",
        origin="ART, for comparison",  # a second implementation, not one more attack
        reference="Andriushchenko et al. 2020 (ART's implementation)",
        norm=Norm.LINF, bounded=True, threat_models=_QUERIES,
        make=lambda est, p: _evasion().SquareAttack(est, norm=np.inf, **p),
        parameters=_SQUARE,
    ),
    AttackSpec(
        name="hopskipjump",
        summary="HopSkipJump: decision-based boundary walk from a random misclassified start (minimal L2)",
        reference="Chen, Jordan, Wainwright 2020, 'HopSkipJumpAttack: a query-efficient decision-based attack'",
        norm=Norm.L2, bounded=False, threat_models=_QUERIES,
        make=lambda est, p: _evasion().HopSkipJump(est, norm=2, targeted=False, **p),
        parameters=_each(max_iter=10, max_eval=1000, init_eval=100, init_size=100),
    ),
)
