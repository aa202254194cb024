"""The CI regression gate: the grid recorded in tests/baselines/digits.json, run now, must match it.

Every built-in defense × the paper's four attacks (fgsm, bim, deepfool, jsma),
white-box and transfer, fixed seed, on digits, through the CLI, then
``bench check`` against the committed baseline.  A defense or attack that got
weaker (or stronger) beyond the tolerance, or a cell that appeared or
vanished, fails with the table ``bench check`` prints.  How the baseline and
its tolerance were made, and how to update them: docs/regression-gate.md.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.gate import run_arguments

BASELINE = Path(__file__).resolve().parent / "baselines" / "digits.json"
#: The defense the weakening test breaks, and how: DunDi with a 1-dimensional embedding, which
#: normalisation maps to ±1, so its distance comparison can tell at most two groups apart.
#: (Fewer epochs is not enough on digits: 1 epoch already gives 0.975 clean accuracy.)
WEAKENED = "dundi"
WEAKENING = "embedding_dim=1"


def _bench(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gate") / "digits"
    result = _bench("run", *run_arguments(json.loads(BASELINE.read_text())), "--out", out, "-q")
    assert result.exit_code == 0, result.output
    return out


def test_the_gate_grid_matches_the_committed_baseline(gate_run):
    result = _bench("check", gate_run, "--baseline", BASELINE)
    assert result.exit_code == 0, "\n" + result.output


def test_a_weakened_defense_fails_the_gate_with_a_readable_table(gate_run, tmp_path):
    # Compare with a baseline of this very run (the committed tolerance), so only the weakening moves.
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"tolerance": json.loads(BASELINE.read_text())["tolerance"]}))
    assert _bench("check", gate_run, "--baseline", baseline, "--update").exit_code == 0
    weakened = tmp_path / "weakened"
    arguments = run_arguments(json.loads(BASELINE.read_text()))
    result = _bench("run", *arguments, "--defense-option", f"{WEAKENED}:{WEAKENING}", "--out", weakened, "-q")
    assert result.exit_code == 0, result.output

    result = _bench("check", weakened, "--baseline", baseline)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("cell "))
    assert lines[header].split() == ["cell", "metric", "baseline", "now", "delta", "tolerance", "finding"]
    rows = [line.split() for line in lines[header + 1:] if line.startswith("digits/")]
    # Every finding is about the weakened defense; the others were untouched.
    assert rows and all(row[0].startswith(f"digits/{WEAKENED}/") for row in rows)
    clean = [row for row in rows if row[1] == "clean_accuracy"]
    assert clean and all(" ".join(row[6:]) == "model less accurate" and float(row[4]) < -0.3 for row in clean)
    assert f"{WEAKENED}: embedding_dim 64 -> 1" in result.output
