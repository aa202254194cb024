"""One-line errors for misspelt names, with a "did you mean" when one is close.

Every name a user types (dataset, defense, attack, threat model, device,
backend) is checked before any work starts, and an unknown one stops the run
with the same kind of line::

    unknown defense 'dundy'; did you mean 'dundi'? choose one of: none, dundi, ...

This module imports nothing heavy: the CLI checks names before it imports torch.
"""

from __future__ import annotations

import difflib
from typing import Iterable

from bench.errors import BenchError

#: How close (difflib's ratio) a known name must be to be suggested.
CUTOFF = 0.6


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (case-insensitive), or None when none is close."""
    choices = list(choices)
    lowered = {choice.lower(): choice for choice in choices}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=CUTOFF)
    return lowered[close[0]] if close else None


def unknown(kind: str, name: str, choices: Iterable[str]) -> BenchError:
    """``unknown KIND 'NAME'; [did you mean 'X'? ]choose one of: A, B, ...`` as a :class:`BenchError`.

    Example::

        raise unknown("defense", "dundy", ["none", "dundi"])
        # unknown defense 'dundy'; did you mean 'dundi'? choose one of: none, dundi
    """
    choices = list(choices)
    guess = suggest(name, choices)
    hint = f"did you mean {guess!r}? " if guess else ""
    return BenchError(f"unknown {kind} {name!r}; {hint}choose one of: {', '.join(choices)}")
