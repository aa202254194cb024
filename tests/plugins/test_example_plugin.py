"""Third-party plugins through entry points, end to end, without network or pip.

The example plugin (``bench_example_plugin/``) is registered the way pip would
register it: a ``*.dist-info`` folder with ``METADATA`` and ``entry_points.txt``
(read from the example's own ``pyproject.toml``) in a folder on the path.  A
second, broken distribution checks that a bad plugin is a warning naming it,
not a crash.
"""

import os
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pandas as pd
import pytest

from attacks import AttackSpec
from attacks import REGISTRY as ATTACKS
from bench.plugins import ATTACK_GROUP, DEFENSE_GROUP, PluginWarning, with_plugins
from defenses import REGISTRY as DEFENSES
from defenses import Defense

EXAMPLE = Path(__file__).parent / "bench_example_plugin"
BROKEN = {
    DEFENSE_GROUP: {"broken": "bench_no_such_module:DEFENSE", "shadow": "defenses.none:DEFENSE"},
    ATTACK_GROUP: {"wrong-type": "os:path"},
}


def _write_distribution(site: Path, name: str, entry_points: dict[str, dict[str, str]]) -> None:
    """What pip writes for an installed distribution, as far as entry points go."""
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items()) + "\n"
        for group, points in entry_points.items()))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site-packages")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    _write_distribution(site, project["name"], project["entry-points"])
    _write_distribution(site, "bench-broken-plugin", BROKEN)
    return site


def _bench(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``bench ARGS`` in a fresh interpreter that has ``site`` and the example's code on its path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(EXAMPLE)]))
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_plugins_load_with_their_distribution_as_origin_and_bad_ones_are_skipped(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        defenses = with_plugins(DEFENSES, DEFENSE_GROUP, Defense)
        attacks = with_plugins(ATTACKS, ATTACK_GROUP, AttackSpec)
    assert defenses["quantize"].origin == attacks["mi-fgsm"].origin == "bench-example-plugin"
    assert defenses["none"] is DEFENSES["none"] and defenses["none"].origin == "built-in"
    assert "broken" not in defenses and "wrong-type" not in attacks
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert len(messages) == 3 and all("'bench-broken-plugin'" in m for m in messages)
    assert "'broken'" in messages[0] and "'bench-broken-plugin': failed to load (ModuleNotFoundError" in messages[0]
    assert "'shadow'" in messages[1] and "the name 'none' is taken by the built-in one" in messages[1]
    assert "'wrong-type'" in messages[2] and "expected a AttackSpec, got a module" in messages[2]


def test_bench_list_shows_plugin_origin_and_survives_a_broken_plugin(site):
    result = _bench(site, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[0] == "quantize" and line.endswith("[bench-example-plugin]") for line in lines if line)
    assert any(line.split()[0] == "mi-fgsm" and line.endswith("[bench-example-plugin]") for line in lines if line)
    assert ("PluginWarning: skipped bench.defenses plugin 'broken' from distribution 'bench-broken-plugin': "
            "failed to load (ModuleNotFoundError") in result.stderr
    assert "Traceback" not in result.stderr


def test_example_plugin_runs_through_bench_run_on_digits(site, tmp_path):
    result = _bench(site, "run", "--dataset", "digits", "--defense", "none,quantize",
                    "--attack", "fgsm,mi-fgsm", "--threat-model", "whitebox", "--samples", "100",
                    "--out", str(tmp_path), "-q")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "results.csv").set_index(["defense", "attack"])
    assert len(frame) == 4 and frame["robust_accuracy"].notna().all()
    # Quantising the undefended model's input keeps most of its clean accuracy ...
    assert frame.loc[("quantize", "fgsm"), "clean_accuracy"] >= 0.85
    # ... and, attacked through its straight-through gradient, does not stop a strong attack.
    assert frame.loc[("quantize", "mi-fgsm"), "robust_accuracy"] <= 0.2
    # Ten momentum steps are at least as strong as one FGSM step on the same model.
    assert frame.loc[("none", "mi-fgsm"), "robust_accuracy"] <= frame.loc[("none", "fgsm"), "robust_accuracy"]
    assert frame.loc[("quantize", "mi-fgsm"), "mean_linf"] <= 0.3 + 1e-6
