"""The one table of per-dataset-family defaults: ε, architecture, training budget, sweep grids.

A dataset's *family* (``Dataset.family``: ``digits``, ``mnist``,
``fashion-mnist``, ``cifar10``; a subset such as ``mnist-subset`` is of its
full dataset's family) decides the defaults every stage starts from:

``eps``
    The standard L∞ evaluation budget, from the literature, never lowered to
    flatter a defense: 0.3 on MNIST and 8/255 on CIFAR-10 (Madry et al. 2018),
    0.1 on Fashion-MNIST, 0.3 on the 8×8 digits (handwriting on MNIST's [0, 1]
    scale).  Bounded attacks run at it unless ``--eps`` says otherwise, and the
    robust-training baselines train at it (a defense is evaluated at the radius
    it was trained for).
``architecture``
    The zoo model (``bench.models``) every defense builds by default.
``training``
    The undefended model's optimiser budget (:class:`TrainConfig`), which the
    other defenses reuse for their learning rate and weight decay.
``sweep``
    Budgets of an ε sweep (``--eps-sweep``) per norm (``"linf"``, ``"l2"`` on the
    [0, 1] pixel scale; ``"l0"`` in changed pixel values).  Each grid brackets
    the family's ``eps`` and reaches where an undefended model is broken, so a
    curve shows both ends.

This module imports nothing heavy (no torch): ``bench list`` and the name
checks read it.  Editing a family's training budget or architecture changes
the options of its models, hence their cache keys: they are retrained, never
reused stale.

Example::

    from bench.families import family
    family("mnist").eps            # 0.3
    family("cifar10").sweep["l2"]  # (0.125, 0.25, 0.5, 1.0, 1.5)
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

from bench.errors import BenchError


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings; the epoch kept is the one with the best validation score."""

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0

    @classmethod
    def from_options(cls, options: Mapping) -> TrainConfig:
        """The optimiser settings among a defense's resolved options (which hold more keys)."""
        return cls(**{field.name: options[field.name] for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Family:
    """The defaults of one dataset family (see the module docstring for each field)."""

    eps: float
    architecture: str
    training: TrainConfig
    sweep: Mapping[str, tuple[float, ...]]


#: family name -> its defaults.
FAMILIES: dict[str, Family] = {
    "digits": Family(
        eps=0.3, architecture="cnn8", training=TrainConfig(epochs=30, batch_size=64),
        sweep={"linf": (0.05, 0.1, 0.2, 0.3, 0.4), "l2": (0.25, 0.5, 1.0, 1.5, 2.0), "l0": (1, 2, 4, 8, 16)}),
    "mnist": Family(
        eps=0.3, architecture="cnn28", training=TrainConfig(epochs=8),
        sweep={"linf": (0.05, 0.1, 0.2, 0.3, 0.4), "l2": (0.5, 1.0, 1.5, 2.0, 3.0), "l0": (2, 5, 10, 20, 40)}),
    "fashion-mnist": Family(
        eps=0.1, architecture="cnn28", training=TrainConfig(epochs=15),
        sweep={"linf": (0.02, 0.05, 0.1, 0.15, 0.2), "l2": (0.25, 0.5, 1.0, 1.5, 2.0), "l0": (2, 5, 10, 20, 40)}),
    "cifar10": Family(
        eps=8 / 255, architecture="resnet8", training=TrainConfig(epochs=40, weight_decay=5e-4),
        sweep={"linf": (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255), "l2": (0.125, 0.25, 0.5, 1.0, 1.5),
               "l0": (3, 10, 30, 100, 300)}),
}


def family(name: str) -> Family:
    """The defaults of family ``name``; a one-line error naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise BenchError(f"unknown dataset family {name!r}; known: {', '.join(FAMILIES)}") from None


def standard_budgets(datasets: Iterable[str]) -> dict[str, float]:
    """Results rows' dataset name -> its family's standard L∞ budget (``mnist-subset`` is
    MNIST's), for the names of a known family (a user's ``npz:`` file of another name has none)."""
    names = {name: name.removesuffix("-subset") for name in datasets}
    return {name: FAMILIES[known].eps for name, known in names.items() if known in FAMILIES}
