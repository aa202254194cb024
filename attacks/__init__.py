"""The ART attack registry: names, per-dataset default parameters, threat models.

Each attack is an :class:`AttackSpec` in ``attacks/catalog.py``; its default
parameters per dataset family are in the one table there (``PARAMETERS``), and
``attacks/art_adapter.py`` runs it through the adversarial-robustness-toolbox.

Threat models (``--threat-model``):

``whitebox``
    The attack sees the evaluated model: gradients of its ``forward`` logits.
``transfer``
    Adversarial examples are crafted on the undefended ``none`` model of the
    same dataset and seed, then fed to the defense (the DunDi paper's protocol).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable

from bench.errors import BenchError


class ThreatModel(str, enum.Enum):
    WHITEBOX = "whitebox"
    TRANSFER = "transfer"


class Norm(str, enum.Enum):
    """The distance an attack bounds or minimises, on [0, 1] pixel scale."""

    LINF = "linf"
    L2 = "l2"
    L0 = "l0"


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One registered attack.

    ``bounded`` attacks take an ε budget (``--eps`` overrides the dataset
    default); the others search for a minimal perturbation and run once.
    ``make(estimator, params)`` returns the ART attack object.  ``uses_labels``
    is False for attacks whose ``y`` means *target* labels in ART (JSMA): they
    get ``y=None`` and ART draws random targets from the seeded NumPy RNG.
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


def _registry() -> dict[str, AttackSpec]:
    from attacks.catalog import ATTACKS

    return {spec.name: spec for spec in ATTACKS}


REGISTRY: dict[str, AttackSpec] = _registry()


def get_attack(name: str) -> AttackSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BenchError(f"unknown attack {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def threat_model(name: str) -> ThreatModel:
    try:
        return ThreatModel(name)
    except ValueError:
        valid = ", ".join(t.value for t in ThreatModel)
        raise BenchError(f"unknown threat model {name!r}; choose one of: {valid}") from None
