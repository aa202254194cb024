"""The example of docs/architecture.md works: its defense file and its ``AttackSpec`` entry, taken
from the page as written, run through ``bench run`` on digits (one epoch, 30 images)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

import attacks
import attacks.catalog
import defenses
from bench.cli import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def python_blocks() -> list[str]:
    """The page's ```python blocks, in order: the defense file, then the attack entry."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_the_example_defense_and_attack_run_through_bench_run(tmp_path, monkeypatch):
    defense_source, attack_source = python_blocks()
    (tmp_path / "gaussian_noise.py").write_text(defense_source)
    monkeypatch.syspath_prepend(str(tmp_path))
    defense = importlib.import_module("gaussian_noise").DEFENSE
    spec = eval(attack_source, vars(attacks.catalog))  # the entry, read where ATTACKS is written
    monkeypatch.setitem(defenses.REGISTRY, defense.name, defense)
    monkeypatch.setitem(attacks.REGISTRY, spec.name, spec)

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "run", "--dataset", "digits", "--defense", "gaussian-noise", "--defense-option", "epochs=1",
        "--attack", "fgsm,fgm-l2", "--threat-model", "whitebox", "--samples", "30", "--no-flags", "-q",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "results.csv").set_index("attack")
    assert set(rows.index) == {"fgsm", "fgm-l2"} and (rows["defense"] == "gaussian-noise").all()
    # The example defense learns (one epoch on digits: measured 0.47 on these 30 images, chance 0.1)
    # and the attacks bite.
    assert (rows["clean_accuracy"] > 0.3).all(), rows["clean_accuracy"]
    assert (rows["robust_accuracy"] < rows["clean_accuracy"]).all(), rows[["clean_accuracy", "robust_accuracy"]]
    assert not rows.loc["fgm-l2", "mean_l2"] > 1.5 + 1e-4  # within its L2 budget (NaN: nothing broken)
