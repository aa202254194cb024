"""`bench run` and `bench list` end to end on real digits: numbers, columns, caching, errors."""

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import cli
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
    second = CliRunner().invoke(cli, [*args, "--fresh"])
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
    assert "cache hits: models 6/6, adversarial examples 6/6" in second.output
    fresh = pd.read_csv(out / "results.csv")
    assert fresh["model_cached"].all() and fresh["adv_cached"].all()
    again = CliRunner().invoke(cli, ["run", "--attack", "fgsm,pgd,deepfool", "--samples", "150",
                                     "--out", str(out), "-q"])
    assert "6 already finished" in again.output


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
