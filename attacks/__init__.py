"""The ART attack registry: names, per-dataset default parameters, threat models.

Each attack is an :class:`AttackSpec` in ``attacks/catalog.py`` (or a plugin's); its
default parameters per dataset family are its ``parameters``, step sizes that follow ε
its ``derive`` (both read by ``attacks.catalog.default_params``), and
``attacks/art_adapter.py`` runs it through the adversarial-robustness-toolbox.

Threat models (``--threat-model``):

``whitebox``
    The attack sees the evaluated model: gradients of its ``forward`` logits.
``transfer``
    Adversarial examples are crafted on the undefended ``none`` model of the
    same dataset and seed, then fed to the defense (the DunDi paper's protocol).
``blackbox``
    The attack only queries the defense's outputs, never its gradients: the
    decision is the defense's ``predict`` when it has one (so DunDi's two-step
    classifier is what is attacked), else argmax of its logits.  What the
    queries return is in ``attacks.art_adapter.blackbox_classifier`` and in
    each row's ``blackbox_output``; the number of queries in ``queries_per_image``.

Which attack supports which threat model is data: ``AttackSpec.threat_models``
(gradient attacks: ``whitebox`` and ``transfer``; query attacks: ``blackbox``).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable, Mapping

from bench.errors import BenchError
from bench.names import unknown
from bench.plugins import ATTACK_GROUP, with_plugins


class ThreatModel(str, enum.Enum):
    WHITEBOX = "whitebox"
    TRANSFER = "transfer"
    BLACKBOX = "blackbox"


class Norm(str, enum.Enum):
    """The distance an attack bounds or minimises, on [0, 1] pixel scale."""

    LINF = "linf"
    L2 = "l2"
    L0 = "l0"


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One registered attack.

    ``bounded`` attacks take an ε budget (``--eps`` overrides the dataset
    default); the others search for a minimal perturbation and run once (an ε
    sweep scores them at each budget from their per-image perturbation norms).
    ``make(estimator, params)`` returns the ART attack object; the estimator is
    ART's ``PyTorchClassifier`` of the attacked model under ``whitebox`` and
    ``transfer``, its ``BlackBoxClassifierNeuralNetwork`` under ``blackbox``
    (see ``attacks.art_adapter``).  ``uses_labels``
    is False for attacks whose ``y`` means *target* labels in ART (JSMA): they
    get ``y=None`` and ART draws random targets from the seeded NumPy RNG.
    ``parameters`` (family -> constructor parameters) are the attack's defaults
    per dataset family, built-in and third-party alike; ``derive`` (optional)
    returns them with the parameters that follow ε and the number of steps
    added (e.g. PGD's ``eps_step``), after ``--eps`` and overrides are applied
    (``attacks.catalog.default_params``).
    ``implementation`` names the suite's own attack class where it replaces
    ART's (``deepfool``, ``jsma``, ``cw-l2``; ART's stay as ``deepfool-art``, …).
    """

    name: str
    summary: str
    reference: str
    norm: Norm
    bounded: bool
    threat_models: frozenset[ThreatModel]
    make: Callable[[Any, dict], Any]
    uses_labels: bool = True
    origin: str = "built-in"
    parameters: Mapping[str, dict] | None = dataclasses.field(default=None, hash=False)
    #: Which code generates the examples when it is not ART's class (e.g. ``"attacks.deepfool/1"``):
    #: part of the adversarial-example cache key, so a new implementation never reuses old results.
    implementation: str = ""
    derive: Callable[[dict], dict] | None = None


def _registry() -> dict[str, AttackSpec]:
    from attacks.catalog import ATTACKS

    # Third-party attacks: entry points of group "bench.attacks" (see bench/plugins.py).
    return with_plugins({spec.name: spec for spec in ATTACKS}, ATTACK_GROUP, AttackSpec)


REGISTRY: dict[str, AttackSpec] = _registry()


def get_attack(name: str) -> AttackSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise unknown("attack", name, REGISTRY) from None


def threat_model(name: str) -> ThreatModel:
    try:
        return ThreatModel(name)
    except ValueError:
        raise unknown("threat model", name, [t.value for t in ThreatModel]) from None


def check_supported(attacks: list[str], threat_models: list[str]) -> None:
    """A one-line :class:`BenchError` when an attack runs under none of the chosen threat models."""
    threats = {threat_model(name) for name in threat_models}
    for name in attacks:
        spec = get_attack(name)
        if not spec.threat_models & threats:
            supported = ", ".join(t.value for t in ThreatModel if t in spec.threat_models)
            chosen = ", ".join(t.value for t in ThreatModel if t in threats)
            raise BenchError(f"attack {spec.name!r} runs under threat model {supported}; "
                             f"add it to --threat-model (chosen: {chosen})")


def unsupported(attacks: list[str], threat_models: list[str]) -> dict[str, list[str]]:
    """attack -> the chosen threat models it does not run under (gradient attacks need
    ``whitebox`` or ``transfer``, query attacks ``blackbox``), for the attacks that have any:
    the combinations a grid leaves out.

    Example::

        unsupported(["fgsm", "square"], ["whitebox", "blackbox"])  # {'fgsm': ['blackbox'], 'square': ['whitebox']}
    """
    skipped = {}
    for name in attacks:
        spec = get_attack(name)
        missing = [t for t in threat_models if threat_model(t) not in spec.threat_models]
        if missing:
            skipped[name] = missing
    return skipped
