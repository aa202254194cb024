"""`bench check` (bench/gate.py) against baselines written from a real digits run, with
targeted changes to its numbers."""

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.gate import cell_name, compare, parse_tolerance, read_baseline
from bench.cli import cli
from bench.errors import BenchError


def _bench(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real run (none × fgsm, deepfool × whitebox, transfer) and a baseline written from it."""
    root = tmp_path_factory.mktemp("check")
    out = root / "run"
    result = _bench("run", "--attack", "fgsm,deepfool", "--samples", "60", "--no-flags", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    baseline = root / "baseline.json"
    baseline.write_text(json.dumps({"run": "--attack fgsm,deepfool --samples 60"}))
    result = _bench("check", out, "--baseline", baseline, "--update", "--tolerance", "0.05")
    assert result.exit_code == 0, result.output
    return out, baseline


def _edited(run_dir, tmp_path, edit):
    """A copy of the run folder whose results.csv went through ``edit(frame) -> frame``."""
    copy = tmp_path / "edited"
    shutil.copytree(run_dir, copy)
    edit(pd.read_csv(copy / "results.csv")).to_csv(copy / "results.csv", index=False)
    return copy


def test_update_writes_a_readable_baseline_and_keeps_its_notes(run):
    out, baseline = run
    text = baseline.read_text()
    data = json.loads(text)
    frame = pd.read_csv(out / "results.csv")
    assert data["run"] == "--attack fgsm,deepfool --samples 60"  # kept across --update
    assert data["tolerance"] == {"clean_accuracy": 0.05, "robust_accuracy": 0.05, "defense_rate": 0.05}
    assert len(data["cells"]) == len(frame) == 4
    assert sum('"dataset": "digits"' in line for line in text.splitlines()) == 4  # one line per cell
    deepfool = next(c for c in data["cells"] if c["attack"] == "deepfool" and c["threat_model"] == "whitebox")
    assert deepfool["eps"] is None and deepfool["seed"] == 0 and deepfool["n_eval"] == 60
    assert deepfool["defense_options"]["epochs"] == 30


def test_the_same_run_passes(run):
    out, baseline = run
    result = _bench("check", out, "--baseline", baseline)
    assert result.exit_code == 0, result.output
    assert "OK: every cell is within tolerance." in result.output


@pytest.mark.parametrize("raised, finding", [
    ("run", "attack weaker (or defense stronger)"),  # robust accuracy rose
    ("baseline", "defense weaker (or attack stronger)"),  # it fell
])
def test_a_move_beyond_tolerance_fails_in_either_direction(run, tmp_path, raised, finding):
    out, baseline = run

    def raise_fgsm(frame):
        target = (frame["attack"] == "fgsm") & (frame["threat_model"] == "whitebox")
        frame.loc[target, "robust_accuracy"] += 0.2
        return frame

    if raised == "run":
        out = _edited(out, tmp_path, raise_fgsm)
    else:
        data = json.loads(baseline.read_text())
        data["cells"] = raise_fgsm(pd.DataFrame(data["cells"])).to_dict("records")
        baseline = tmp_path / "raised.json"
        baseline.write_text(json.dumps(data))
    result = _bench("check", out, "--baseline", baseline)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("cell "))
    assert lines[header].split() == ["cell", "metric", "baseline", "now", "delta", "tolerance", "finding"]
    row = lines[header + 1]
    assert row.startswith("digits/none/fgsm@0.3/whitebox") and "robust_accuracy" in row and finding in row
    assert ("+0.200" if raised == "run" else "-0.200") in row
    assert "FAILED: 1 findings" in result.output
    # A tolerance wide enough for the move lets it pass.
    assert _bench("check", out, "--baseline", baseline, "--tolerance", "0.25").exit_code == 0


def test_missing_cells_are_reported_on_both_sides(run, tmp_path):
    out, baseline = run
    edited = _edited(out, tmp_path, lambda frame: frame[frame["attack"] != "deepfool"])
    result = _bench("check", edited, "--baseline", baseline)
    assert result.exit_code == 1
    assert "FAILED: 2 findings (2 missing from run)" in result.output
    assert result.output.count("missing from run") == 3  # the summary and two rows
    frame, cells = pd.read_csv(out / "results.csv"), read_baseline(baseline)["cells"]
    findings = compare(frame, cells[cells["attack"] != "deepfool"], parse_tolerance("0.05"))
    assert list(findings["finding"]) == ["not in baseline"] * 2
    assert set(findings["cell"]) == {"digits/none/deepfool/whitebox", "digits/none/deepfool/transfer"}


def test_different_settings_are_not_compared(run, tmp_path):
    out, baseline = run
    edited = _edited(out, tmp_path, lambda frame: frame.assign(n_eval=100))
    result = _bench("check", edited, "--baseline", baseline)
    assert result.exit_code == 1
    assert "FAILED: 4 findings (4 different setting: numbers not comparable)" in result.output
    assert sum(line.split()[1:2] == ["n_eval"] for line in result.output.splitlines()) == 4


def test_undefined_rates_match_only_undefined_rates(run):
    out, baseline = run
    frame, cells = pd.read_csv(out / "results.csv"), read_baseline(baseline)["cells"]
    tolerance = parse_tolerance("0.05")
    both_nan = compare(frame.assign(defense_rate=float("nan")), cells.assign(defense_rate=None), tolerance)
    assert both_nan.empty
    one_nan = compare(frame.assign(defense_rate=float("nan")), cells, tolerance)
    assert set(one_nan["finding"]) == {"undefined now"}


def test_a_run_with_undefined_defense_rates_is_checked_not_called_damaged(run, tmp_path):
    # A model that fools on nothing (no adversarial image fooled its source) has defense_rate 0/0.
    out, baseline = run
    edited = _edited(out, tmp_path, lambda frame: frame.assign(defense_rate=float("nan")))
    result = _bench("check", edited, "--baseline", baseline)
    assert result.exit_code == 1 and "damaged" not in result.output, result.output
    assert "undefined now" in result.output


def test_a_delta_exactly_at_the_tolerance_passes(run):
    out, baseline = run
    frame, cells = pd.read_csv(out / "results.csv"), read_baseline(baseline)["cells"]
    moved = frame.assign(clean_accuracy=frame["clean_accuracy"] - 0.05)
    assert compare(moved, cells, parse_tolerance("0.05")).empty
    assert set(compare(moved, cells, parse_tolerance("0.04"))["finding"]) == {"model less accurate"}


def test_cells_are_named_by_what_they_measure():
    assert cell_name({"dataset": "digits", "defense": "dundi", "attack": "fgsm", "threat_model": "transfer",
                      "eps": 0.3}) == "digits/dundi/fgsm@0.3/transfer"
    assert cell_name({"dataset": "digits", "defense": "none", "attack": "jsma", "threat_model": "whitebox",
                      "eps": float("nan")}) == "digits/none/jsma/whitebox"


@pytest.mark.parametrize("text", ["big", "-1", "robust_accuracy=x", "speed=0.1"])
def test_bad_tolerance_is_a_clear_error(text):
    with pytest.raises(BenchError, match="--tolerance"):
        parse_tolerance(text)


def test_missing_baseline_or_run_is_a_one_line_error(run, tmp_path):
    out, _ = run
    for args, message in (((out, "--baseline", tmp_path / "none.json"), "--update --tolerance T"),
                          ((tmp_path, "--baseline", tmp_path / "none.json"), "results.csv not found"),
                          ((out, "--baseline", tmp_path / "new.json", "--update"), "give --tolerance")):
        result = _bench("check", *args)
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


def test_results_reader_requires_exactly_what_the_gate_compares():
    # bench.results sits below the gate, so it lists the gate's columns itself; they must agree.
    from bench import results
    from bench.gate import IDENTITY, METRICS, SETTINGS

    assert set(results.REQUIRED) == {*IDENTITY, *SETTINGS, *METRICS, "cell_key"}
    assert set(results.NUMERIC) == {*METRICS, *SETTINGS, "eps"}
