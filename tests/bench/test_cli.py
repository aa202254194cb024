"""`bench run` and `bench list` end to end on real digits: numbers, columns, caching, errors,
the progress lines, the end summary, and what the CLI imports before work starts."""

import re
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import _skipped_lines, cli
from bench.results import COLUMNS

CORE_COLUMNS = (
    "dataset, dataset_source, n_train, n_eval, defense, attack, threat_model, eps, clean_accuracy, "
    "robust_accuracy, attack_success_rate, defense_rate, mean_l2, mean_linf, attack_seconds, seed, device"
).split(", ")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = ["run", "--attack", "fgsm,pgd,deepfool", "--samples", "150", "--out", str(out), "-q"]
    first = CliRunner().invoke(cli, args)
    # Not -q: CliRunner's output is not a terminal, so progress comes as one plain line per cell.
    second = CliRunner().invoke(cli, [*args[:-1], "--fresh"])
    return out, first, second


def test_default_digits_model_is_accurate_and_broken_by_pgd(digits_run):
    out, first, _ = digits_run
    assert first.exit_code == 0, first.output
    frame = pd.read_csv(out / "results.csv")
    assert list(frame.columns[: len(CORE_COLUMNS)]) == CORE_COLUMNS
    assert list(frame.columns) == COLUMNS
    assert set(frame["threat_model"]) == {"whitebox", "transfer"}
    assert (frame["dataset"] == "digits").all() and (frame["dataset_source"] == "sklearn").all()
    assert (frame["n_eval"] == 150).all()
    pgd = frame[(frame.attack == "pgd") & (frame.threat_model == "whitebox")].iloc[0]
    assert pgd["clean_accuracy"] >= 0.95
    assert pgd["robust_accuracy"] <= 0.10
    assert pgd["eps"] == 0.3 and pgd["mean_linf"] <= 0.3 + 1e-6
    deepfool = frame[frame.attack == "deepfool"].iloc[0]
    assert pd.isna(deepfool["eps"]) and deepfool["norm"] == "l2"
    # Under transfer from the same undefended model, every successful example still fools it.
    transfer = frame[(frame.threat_model == "transfer") & (frame.attack == "pgd")].iloc[0]
    assert transfer["defense_rate"] == 0.0 and transfer["source_model"] == "none"


def test_second_run_reuses_caches_and_says_so(digits_run):
    out, first, second = digits_run
    assert second.exit_code == 0, second.output
    assert "models: 0 trained, 1 from the cache; adversarial examples: 0 crafted, 6 reused" in second.output
    fresh = pd.read_csv(out / "results.csv")
    assert fresh["model_cached"].all() and fresh["adv_cached"].all()
    again = CliRunner().invoke(cli, ["run", "--attack", "fgsm,pgd,deepfool", "--samples", "150",
                                     "--out", str(out), "-q"])
    assert "6 already in" in again.output


def test_first_run_counts_distinct_models_trained_not_cells(digits_run):
    _, first, _ = digits_run
    # One model (digits `none`) serves all 6 cells: counted once, trained now or by an earlier test.
    found = re.search(r"models: (\d+) trained, (\d+) from the cache", first.output)
    assert found and int(found[1]) + int(found[2]) == 1, first.output


def test_progress_without_a_terminal_is_one_plain_line_per_cell(digits_run):
    _, _, second = digits_run
    lines = [line for line in second.output.splitlines() if line.startswith("[")]
    assert len(lines) == 6
    assert lines[0].startswith("[1/6] digits/none/fgsm@0.3/whitebox: clean ")
    assert "\r" not in second.output and "\x1b" not in second.output
    assert "Batches" not in second.output and "it/s" not in second.output  # no ART or tqdm bars


def test_end_summary_is_compact_worst_case_first_and_has_no_nan(digits_run):
    _, first, _ = digits_run
    text = first.output
    summary = text[text.index("digits: 150 test images"):text.index("sanity cells")]
    assert summary.splitlines()[1].startswith("worst case per")
    assert "NaN" not in summary and "nan" not in summary
    assert max(map(len, summary.splitlines())) <= 120
    assert "whitebox none" in summary and "transfer none" in summary
    # The undefended model falls to white-box PGD: no sanity cells are needed for it.
    assert "sanity cells: none needed" in text


def test_list_names_everything():
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0
    for name in ("digits", "npz:PATH", "none", "fgsm", "bim", "deepfool", "jsma", "pgd", "cw-l2",
                 "whitebox", "transfer"):
        assert name in result.output


@pytest.mark.parametrize("args, message", [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'; choose one of: digits"),
    (["--defense", "magic"], "unknown defense 'magic'; choose one of: none"),
    (["--attack", "nuke"], "unknown attack 'nuke'; choose one of: fgsm"),
    (["--threat-model", "grey"], "unknown threat model 'grey'; choose one of: whitebox"),
    (["--eps", "1.5"], "outside (0, 1]"),
    (["--eps", "big"], "is not a number"),
    (["--dataset", "npz:/nowhere/x.npz"], "dataset file not found"),
    (["--defense-option", "bogus=1"], "no selected defense has option 'bogus'"),
])
def test_bad_input_is_one_line_error_without_traceback(args, message, tmp_path):
    result = CliRunner().invoke(cli, ["run", *args, "--out", str(tmp_path), "-q"])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--defense", "dundy"], "unknown defense 'dundy'; did you mean 'dundi'? choose one of: none"),
    (["--attack", "pgdd"], "did you mean 'pgd'?"),
    (["--dataset", "mnsit"], "did you mean 'mnist'?"),
    (["--threat-model", "white-box"], "did you mean 'whitebox'?"),
])
def test_misspelt_name_gets_did_you_mean(args, message, tmp_path):
    result = CliRunner().invoke(cli, ["run", *args, "--out", str(tmp_path), "-q"])
    assert result.exit_code == 1
    assert message in result.output


def test_skipped_combinations_are_named_with_the_reason():
    lines = _skipped_lines(["fgsm", "pgd", "square"], ["whitebox", "blackbox"])
    assert lines == ["skipped fgsm, pgd under blackbox: they run under whitebox, transfer only",
                     "skipped square under whitebox: it runs under blackbox only"]
    assert _skipped_lines(["fgsm"], ["whitebox"]) == []


HEAVY = ("torch", "art", "pandas", "sklearn", "scipy", "matplotlib")
IMPORTS = """
import sys
from bench.cli import cli
try:
    cli.main({args!r}, prog_name="bench", standalone_mode=False)
except Exception:
    pass
print("heavy:", *sorted(name for name in {heavy!r} if name in sys.modules))
"""


@pytest.mark.parametrize("args", [["list"], ["--help"], ["run", "--help"], ["run", "--defense", "nosuch"],
                                  ["run", "--attack", "fgsm", "--eps", "3"]])
def test_list_help_and_argument_errors_import_no_heavy_package(args):
    # Startup time is measured in benchmarks/cli_startup.py; this checks what makes it fast.
    code = IMPORTS.format(args=args, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "heavy:", done.stdout.splitlines()[-1]


def test_a_run_imports_art_only_when_it_builds_an_attack():
    # A warm run (every adversarial example from the cache) never builds an attack, so the modules
    # a run imports must not import ART themselves (it takes seconds: benchmarks/README.md).
    code = ("import sys, bench.api, bench.runner, attacks.art_adapter, attacks.catalog, reports.html\n"
            "print('art' in sys.modules)\n"
            "from attacks import get_attack\n"
            "get_attack('deepfool').make  # looking an attack up builds nothing either\n"
            "print('art' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"], done.stdout
