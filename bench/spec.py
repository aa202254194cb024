"""What a run computes: :class:`GridSpec`, the grid both ``bench run`` and ``bench.benchmark`` build.

A spec names the datasets, defenses, attacks, threat models and budgets that
``bench.runner.make_grid`` crosses into cells, the images evaluated and the
seed, and optionally a user's own model (benchmarked like a defense).  How the
cells run (where, on which device, how many jobs) is ``bench.runner.Settings``.
``bench.api.run(spec, settings)`` makes the cells and runs them.

Both entry points parse their arguments here: :func:`names` reads comma lists
and sequences of names, :func:`budgets` ε budgets, so ``--attack fgsm,pgd``
and ``attacks="fgsm,pgd"`` or ``attacks=["fgsm", "pgd"]`` mean the same.

This module imports nothing heavy (no torch, ART, pandas): the CLI builds and
checks the spec before it imports them, so an argument error answers at once.
It imports the registries (``attacks``, ``defenses``, dataset names) only in
:meth:`GridSpec.check`: ``bench.api``, which ``import bench`` loads, imports this
module, and ``attacks`` and ``defenses`` import ``bench`` themselves.

Example::

    from bench.spec import GridSpec
    spec = GridSpec(datasets="digits", attacks="fgsm,pgd", threat_models=["whitebox"], eps=0.1)
    spec.attacks, spec.eps      # ('fgsm', 'pgd') (0.1,)
    spec.check()                # a one-line BenchError for any unknown name or budget
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from bench.errors import BenchError

if TYPE_CHECKING:
    from bench.user_model import UserModel

#: The undefended model's name: the ``none`` defense (``defenses/none.py``), which transfer attacks
#: craft on and every defense is compared with.
UNDEFENDED = "none"
#: The attacks a run uses when none are named; ``strong`` is the AutoAttack-strength white-box set
#: (``attacks.catalog.STRONG``), run under ``whitebox`` only.
DEFAULT_ATTACKS = ("fgsm", "bim", "deepfool", "jsma", "pgd", "strong")
DEFAULT_THREAT_MODELS = ("whitebox", "transfer")


def names(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"a,b"``, ``["a", "b"]`` or ``("a,b", "c")`` (repeated CLI options) -> ``("a", "b", "c")``:
    stripped, empty items dropped, order kept, duplicates dropped."""
    values = [value] if isinstance(value, str) else value
    items = (item.strip() for one in values for item in str(one).split(","))
    return tuple(dict.fromkeys(item for item in items if item))


def budgets(value: float | str | Iterable[float | str] | None) -> tuple[float, ...]:
    """``0.1``, ``"0.1,0.3"``, ``[0.1, 0.3]`` or ``("0.1,0.3",)`` -> ``(0.1, 0.3)``; None -> ``()``.
    A budget that is not a number is a one-line :class:`BenchError`."""
    if value is None:
        return ()
    if isinstance(value, (int, float)):
        return (float(value),)
    numbers = []
    for item in names([str(one) for one in ([value] if isinstance(value, str) else value)]):
        try:
            numbers.append(float(item))
        except ValueError:
            raise BenchError(f"--eps {item!r} is not a number; give e.g. --eps 0.1,0.3") from None
    return tuple(numbers)


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """The grid of one run: datasets × defenses × attacks × threat models × ε, and the user's model.

    Names may be given as comma lists or sequences, budgets as numbers, strings
    or sequences, ``defense_options`` as a mapping: the spec keeps them as
    tuples (see :func:`names`, :func:`budgets`).  ``defense_options`` maps
    ``KEY`` (every selected defense that has that option) or ``DEFENSE:KEY``
    (that defense only) to a value.  ``user_model`` (``bench.user_model.UserModel``)
    is benchmarked like a defense beside ``defenses``, on the cells the
    undefended model would get.  ``eps`` are L∞ budgets of bounded attacks
    (default: each dataset's standard one); ``eps_sweep`` runs every attack over
    its dataset's budget grid (``attacks.catalog.sweep_budgets``).
    """

    datasets: tuple[str, ...] = ("digits",)
    defenses: tuple[str, ...] = (UNDEFENDED,)
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    threat_models: tuple[str, ...] = DEFAULT_THREAT_MODELS
    eps: tuple[float, ...] = ()
    eps_sweep: bool = False
    samples: int = 200
    seed: int = 0
    defense_options: tuple[tuple[str, str], ...] = ()
    user_model: UserModel | None = None

    def __post_init__(self) -> None:
        for field in ("datasets", "defenses", "attacks", "threat_models"):
            object.__setattr__(self, field, names(getattr(self, field)))
        object.__setattr__(self, "eps", budgets(self.eps))
        options = self.defense_options
        pairs = options.items() if isinstance(options, Mapping) else options
        object.__setattr__(self, "defense_options", tuple((str(k), str(v)) for k, v in pairs))

    def check(self, defense: Callable[[str], object] | None = None) -> None:
        """Every name and number checked, each a one-line :class:`BenchError` with a "did you
        mean".  Defense names go to ``defense``: by default ``defenses.check_name``, which reads
        the defenses' source (no torch); ``bench.runner.make_grid`` checks them against the
        loaded registry (``defenses.get_defense``)."""
        from attacks import ThreatModel, check_supported, get_attack, threat_model
        from attacks.catalog import ALIASES, split_aliases
        from bench.datasets import validate_dataset_name
        from defenses import check_name

        defense = defense or check_name
        for name in self.datasets:
            validate_dataset_name(name)
        for name in self.defenses:
            defense(name)
        plain, whitebox = split_aliases(list(self.attacks))
        for name in plain:
            get_attack(name)
        for name in self.threat_models:
            threat_model(name)
        for value in self.eps:
            if not 0 < value <= 1:
                raise BenchError(f"--eps {value} is outside (0, 1]: images are on [0, 1] pixel scale")
        if self.samples < 1:
            raise BenchError(f"--samples must be at least 1, got {self.samples}")
        check_supported(plain, list(self.threat_models))
        if whitebox and ThreatModel.WHITEBOX.value not in self.threat_models:
            sets = ", ".join(name for name in self.attacks if name in ALIASES)
            raise BenchError(f"--attack {sets} is a white-box attack set ({', '.join(whitebox)}); "
                             "add whitebox to --threat-model")

    def skipped(self) -> dict[str, list[str]]:
        """attack -> the chosen threat models it does not run under (:func:`skipped`)."""
        return skipped(self.attacks, self.threat_models)


def skipped(attacks: Iterable[str], threat_models: Iterable[str]) -> dict[str, list[str]]:
    """attack -> the chosen threat models it does not run under (``attacks.unsupported``), for
    the named attacks; the members of an attack set (``strong``) run under ``whitebox`` only,
    by design, and are not listed."""
    from attacks import unsupported
    from attacks.catalog import split_aliases

    return unsupported(split_aliases(list(attacks))[0], list(threat_models))
