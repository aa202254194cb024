"""Shared helpers of the reliability tests: tiny data files, the CLI in-process, the one-line-error check.

Every fault must end in exit status != 0 with exactly one ``Error: ...`` line and no traceback, or
(for accepted inputs) in correct numbers; and nothing valid may be lost or changed.  The tests use
8×8 images (the digits family) written in ``tmp_path`` and fail before any training wherever the
fault allows, so the whole folder runs in well under a minute on two cores.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import cli

#: A grid that trains one tiny model (1 epoch of the digits CNN) and runs one cheap attack.
TINY = ["--defense", "none", "--defense-option", "epochs=1", "--attack", "fgsm", "--threat-model", "whitebox",
        "--samples", "30", "--no-flags", "-q"]


def bench(*args: str):
    """``bench ARGS`` in this process (click's CliRunner): the result, stdout and stderr apart."""
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit != 0, no traceback, exactly one ``Error:`` line (containing ``fragments``); returns it."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}")
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert "Aborted!" not in result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def images(n: int = 40, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random uint8 8×8 images and balanced labels ``0..classes-1``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), np.arange(n) % classes


def write_npz(path: Path, **overrides) -> Path:
    """A valid tiny dataset file, with ``overrides`` replacing (or, set to None, dropping) keys."""
    x, y = images()
    arrays = {"x_train": x, "y_train": y, "x_test": x[:12], "y_test": y[:12]}
    arrays.update(overrides)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (to show that nothing valid was lost or changed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    """A cache of this test's own (these tests damage caches)."""
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def fresh_process():
    """Each test's runs start as a new `bench` process would: no trained model kept in memory
    (the runner keeps them by key, which would bypass the cache these tests damage)."""
    from bench import runner

    runner._LOADED.clear()
    yield
    runner._LOADED.clear()
