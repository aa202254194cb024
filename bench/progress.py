"""The one progress display of a run: cells done, and what is running now.

On a terminal it is a single line redrawn in place (``cells 3/10 · pgd on
digits/none whitebox``) that disappears when the run ends; a model being
trained shows its epochs under it.  When the output is not a terminal (a log
file, CI, a notebook) it writes plain lines instead, one per finished cell and
one per trained model, with no carriage returns or cursor codes::

    [ 3/10] digits/none/pgd/whitebox: clean 0.986, robust 0.000 (12.1 s)

ART's own progress bars are always off (the runner passes ``verbose=False``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import IO, Any


def _is_tty(stream: IO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress of one or more grids run one after the other (cells, then sanity cells).

    ``enabled=False`` shows nothing; ``tty`` (default: whether ``stream`` is a
    terminal) picks the redrawn line or plain lines.  The runner calls
    :meth:`phase`, :meth:`training`, :meth:`trained`, :meth:`start` and
    :meth:`done`; whoever made the display calls :meth:`close`.
    """

    def __init__(self, enabled: bool = True, stream: IO | None = None, tty: bool | None = None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _is_tty(self.stream) if tty is None else tty
        self.label = "cells"
        self.total = 0
        self.count = 0
        self._bar: Any = None
        self._started = 0.0

    # -- what the runner reports -----------------------------------------------------------

    def phase(self, total: int, label: str = "cells") -> None:
        """A grid of ``total`` cells to compute starts (``label``: ``cells``, ``sanity cells``)."""
        self.label, self.total, self.count = label, total, 0
        if not self.enabled or not total:
            return
        if self.tty:
            bar = self._tty_bar()
            bar.reset(total=total)
            bar.set_description_str(label)

    @property
    def training_progress(self) -> bool:
        """Whether a model's own epoch bar may show (only under the redrawn line on a terminal)."""
        return self.enabled and self.tty

    def training(self, what: str, index: int, total: int) -> None:
        """Model ``index`` of ``total`` (``what``: ``none on digits``) is being loaded or trained."""
        if not self.enabled:
            return
        self._started = time.perf_counter()
        if self.tty:
            bar = self._tty_bar()
            bar.set_description_str("models", refresh=False)
            bar.set_postfix_str(f"{index}/{total}: {what}", refresh=True)

    def trained(self, what: str, cached: bool) -> None:
        """The model of the last :meth:`training` is ready (``cached``: it was not trained now)."""
        if self.enabled and not self.tty and not cached:
            self._line(f"trained {what} ({time.perf_counter() - self._started:.1f} s)")

    def start(self, cell: Any) -> None:
        """``cell`` (a ``bench.runner.Cell``) starts in this process."""
        self._started = time.perf_counter()
        if self.enabled and self.tty:
            eps = "" if cell.eps is None else f" eps={cell.eps:g}"
            self._tty_bar().set_postfix_str(
                f"{cell.attack}{eps} on {cell.dataset}/{cell.defense} {cell.threat_model.value}", refresh=True)

    def done(self, row: Any, seconds: float | None = None) -> None:
        """A cell finished with result ``row`` (a ``bench.results.Row``, or its dict; ``seconds``: its
        wall time, when known)."""
        row = dataclasses.asdict(row) if dataclasses.is_dataclass(row) else row
        self.count += 1
        if not self.enabled:
            return
        if self.tty:
            self._tty_bar().update(1)
            return
        width = len(str(self.total))
        eps = row.get("eps")
        budget = "" if eps is None or eps != eps else f"@{eps:.3g}"
        took = "" if seconds is None else f" ({seconds:.1f} s)"
        prefix = "" if self.label == "cells" else f"{self.label} "
        self._line(f"[{prefix}{self.count:>{width}}/{self.total}] {row['dataset']}/{row['defense']}/"
                   f"{row['attack']}{budget}/{row['threat_model']}: clean {row['clean_accuracy']:.3f}, "
                   f"robust {row['robust_accuracy']:.3f}{took}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- output ------------------------------------------------------------------------------

    def _tty_bar(self):
        if self._bar is None:
            import shutil

            from tqdm.auto import tqdm

            # A terminal that reports no width (a pty without a size) would get an empty line.
            width = shutil.get_terminal_size((0, 0)).columns
            self._bar = tqdm(total=self.total, desc=self.label, unit="cell", leave=False, file=self.stream,
                             dynamic_ncols=width > 0, ncols=None if width > 0 else 120,
                             bar_format="{desc} {n_fmt}/{total_fmt} [{elapsed}]{postfix}")
        return self._bar

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
