"""The one exception type users see: a clear, one-line message, no traceback."""

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TORCH_UNSAFE = re.compile(r"Weights only load failed\..*?WeightsUnpickler error: (?P<why>[^\n]*?)"
                           r"(?: was not an allowed global by default\.[^\n]*)?"
                           r"(?:\s*Check the documentation of torch\.load.*?torch\.load\.html\.)?(?=\)|\s*$)",
                           re.DOTALL)


def one_line(text: object) -> str:
    """``text`` as one line: torch's multi-line ``weights_only`` advice (which suggests loading with
    ``weights_only=False``, i.e. running code from the file) becomes what the file holds, and any
    remaining line breaks become ``; ``."""
    text = _ANSI.sub("", str(text))
    text = _TORCH_UNSAFE.sub(lambda m: "it holds pickled Python objects, not only tensors, and is never "
                             f"unpickled ({m.group('why').strip()})", text)
    lines = [_without_unpickling_advice(line.strip()) for line in text.splitlines()]
    return "; ".join(line for line in lines if line)


def _without_unpickling_advice(line: str) -> str:
    """``line`` less any sentence that suggests ``weights_only=False`` (never suggest unpickling),
    keeping the rest of the line (such as the suite's own "PATH is not a torch state dict")."""
    sentences = re.split(r"(?<=[.:;(])\s+", line)
    return " ".join(s for s in sentences if not re.search(r"weights_only`? (set to `?|=)False", s)).strip()


class BenchError(Exception):
    """A user-facing error (bad option, missing data, mismatched model), its message on one line.

    Library code (``bench``, ``defenses``, ``attacks``, ``reports``) raises it; the CLI turns it,
    in one place (``bench.cli``), into ``Error: <message>`` and exit status 1; Python callers get
    an ordinary exception carrying the same message (also as ``.message``).
    """

    def __init__(self, message: str):
        self.message = one_line(message)
        super().__init__(self.message)
