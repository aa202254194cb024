"""A user's own model (`bench run --model`, `bench.benchmark`) is measured exactly like the suite's.

The suite's trained digits `none` model is saved the two ways users bring
theirs (a TorchScript archive; a factory plus a state dict) and benchmarked
through `--model`: it must get the built-in `none` cell's numbers, image for
image.  Models that do not fit the dataset fail before any attack with one line.
"""

import hashlib
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import bench
from attacks import ThreatModel
from bench.cache import Cache, default_cache_dir
from bench.cli import cli
from bench.errors import BenchError
from bench.results import ResultsStore, read_results
from bench.runner import Cell, trained_model
from bench.user_model import load, resolve

HERE = Path(__file__).resolve().parent
CPU = torch.device("cpu")
# fgsm is deterministic and pgd's random start is seeded: the same model must give the same images.
GRID = ["--attack", "fgsm,pgd", "--eps", "0.1", "--threat-model", "whitebox,transfer", "--samples", "100",
        "--no-flags", "-q"]
SAME = ["n_eval", "eps", "clean_accuracy", "robust_accuracy", "attack_success_rate", "defense_rate",
        "n_adversarial", "mean_l2", "mean_linf"]


def _torchscript(model: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates TorchScript; it still works
        torch.jit.save(torch.jit.script(model), path)
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits):
    """The suite's trained digits `none` model as a TorchScript archive and as a state dict."""
    folder = tmp_path_factory.mktemp("models")
    model = trained_model(digits, "none", {}, 0, CPU, Cache(default_cache_dir()), False).module
    _torchscript(model, folder / "digits_net.pt")
    torch.save(model.state_dict(), folder / "weights.pt")
    return folder


@pytest.fixture(scope="module")
def runs(saved, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    torchscript = CliRunner().invoke(cli, ["run", "--defense", "none", "--model", str(saved / "digits_net.pt"),
                                           *GRID, "--out", str(out / "torchscript")])
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))
        state_dict = CliRunner().invoke(cli, ["run", "--defense", "none", "--model", "digits_factory:build",
                                              "--weights", str(saved / "weights.pt"), "--model-name", "mine",
                                              *GRID, "--out", str(out / "state_dict")])
    return {"digits_net": (torchscript, out / "torchscript"), "mine": (state_dict, out / "state_dict")}


def _cells(out: Path, defense: str):
    frame = read_results(out)
    return frame[frame.defense == defense].set_index(["attack", "threat_model"]).sort_index()


@pytest.mark.parametrize("name", ["digits_net", "mine"])
def test_saved_model_gets_the_builtin_cells_numbers(runs, saved, name):
    result, out = runs[name]
    assert result.exit_code == 0, result.output
    assert f"model {name!r} on digits: N×1×8×8 images -> 10 logits; clean accuracy" in result.output
    mine, builtin = _cells(out, name), _cells(out, "none")
    assert len(mine) == 4 and list(mine.index) == list(builtin.index)
    assert (mine.source_model[mine.index.get_level_values(1) == "transfer"] == "none").all()
    # A meaningful comparison: the attacks neither fail nor succeed everywhere.
    assert 0.2 < builtin.loc[("fgsm", "whitebox"), "robust_accuracy"] < builtin.loc[("fgsm", "whitebox"), "clean_accuracy"]
    for column in SAME:
        np.testing.assert_array_equal(mine[column].to_numpy(), builtin[column].to_numpy(), err_msg=column)
    store = ResultsStore(out)
    for key in mine.index:
        ours, theirs = store.arrays(mine.loc[key, "cell_key"]), store.arrays(builtin.loc[key, "cell_key"])
        np.testing.assert_array_equal(ours["pred_adv"], theirs["pred_adv"])
    # The row says what was measured: the files and their sha256 (what `sha256sum` prints).
    options = json.loads(mine.iloc[0]["defense_options"])
    measured = saved / ("digits_net.pt" if name == "digits_net" else "weights.pt")
    digest = options["model_sha256" if name == "digits_net" else "weights_sha256"]
    assert digest == hashlib.sha256(measured.read_bytes()).hexdigest()


def test_python_api_benchmarks_an_in_memory_module(runs, digits):
    module = trained_model(digits, "none", {}, 0, CPU, Cache(default_cache_dir()), False).module
    table = bench.benchmark(module, name="notebook_net", attacks="fgsm", eps=0.1, threat_models="whitebox",
                            n_examples=100, progress=False)
    assert list(table.defense) == ["notebook_net"] and list(table.attack) == ["fgsm"]
    assert table.loc[0, "defense_options"].startswith('{"model": "memory:Classifier"')
    builtin = _cells(runs["digits_net"][1], "none").loc[("fgsm", "whitebox")]
    for column in SAME:
        assert table.loc[0, column] == builtin[column], column


@pytest.fixture(scope="module")
def misfits(tmp_path_factory, saved):
    """Files users get wrong, each next to what they meant."""
    folder = tmp_path_factory.mktemp("misfits")
    _torchscript(nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), folder / "five_classes.pt")
    _torchscript(nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)), folder / "mnist_input.pt")
    _torchscript(nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Softmax(dim=1)), folder / "probabilities.pt")
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), folder / "whole_module.pt")
    torch.save({"epoch": 3, "state_dict": torch.load(saved / "weights.pt")}, folder / "checkpoint.pt")
    torch.save(nn.Linear(64, 10).state_dict(), folder / "other_weights.pt")
    return folder


FACTORY = "digits_factory:build"


@pytest.mark.parametrize("args, message", [
    (["--model", "{misfits}/five_classes.pt"],
     "model 'five_classes' returns shape (16, 5) for 16 digits images; expected logits of shape (16, 10)"),
    (["--model", "{misfits}/mnist_input.pt"],
     "model 'mnist_input' fails on digits images (16×1×8×8 float32 in [0, 1]): RuntimeError: mat1 and mat2"),
    (["--model", FACTORY, "--weights", "{misfits}/whole_module.pt"],
     "whole_module.pt: not a state dict: it holds pickled Python objects (e.g. a whole model saved with"),
    (["--model", FACTORY, "--weights", "{misfits}/checkpoint.pt"],
     "holds a dict with non-tensor entries ['epoch', 'state_dict'], not a state dict"),
    (["--model", FACTORY, "--weights", "{misfits}/other_weights.pt"],
     "does not fit the model of --model digits_factory:build: Error(s) in loading state_dict for Classifier"),
    (["--model", FACTORY, "--weights", "{saved}/digits_net.pt"],
     "digits_net.pt: a TorchScript archive, not a state dict: pass it as --model"),
    (["--model", "{saved}/weights.pt"], "weights.pt: not a TorchScript archive (torch.jit.load:"),
    (["--model", "no_such_package.models:build"], "cannot import 'no_such_package.models'"),
    (["--model", "digits_factory:no_such_callable"], "'digits_factory' has no 'no_such_callable'"),
    (["--model", "{saved}/digits_net.pt", "--model-name", "none"], "model name 'none' is a registered defense's"),
    (["--weights", "{saved}/weights.pt"], "--weights and --model-name go with --model"),
])
def test_a_model_that_does_not_fit_is_one_line_error(args, message, misfits, saved, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    args = [arg.format(misfits=misfits, saved=saved) for arg in args]
    result = CliRunner().invoke(cli, ["run", *args, "--attack", "fgsm", "--out", str(tmp_path), "-q"])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "results.csv").exists()  # nothing was attacked


def test_probability_outputs_are_warned_about(misfits, tmp_path):
    result = CliRunner().invoke(cli, ["run", "--model", str(misfits / "probabilities.pt"), "--attack", "fgsm",
                                      "--threat-model", "whitebox", "--samples", "20", "--no-flags",
                                      "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert "warning: model 'probabilities' seems to output probabilities" in result.output
    frame = read_results(tmp_path)
    assert list(frame.defense) == ["probabilities"] and list(frame.attack) == ["fgsm"]


def test_a_cell_rebuilds_the_model_anywhere_and_notices_a_changed_file(saved, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    weights = tmp_path / "weights.pt"
    weights.write_bytes((saved / "weights.pt").read_bytes())
    user = resolve(FACTORY, weights)
    cell = Cell("digits", user.name, "fgsm", ThreatModel.WHITEBOX, user_model=user)
    copy = pickle.loads(pickle.dumps(cell))  # what a worker process receives
    assert copy == cell and copy.key == cell.key
    assert isinstance(load(copy.user_model.options()), nn.Module)
    state = torch.load(weights)
    torch.save({key: value + 1 for key, value in state.items()}, weights)
    with pytest.raises(BenchError, match="changed since this run started"):
        load(user.options())
    changed = Cell("digits", user.name, "fgsm", ThreatModel.WHITEBOX, user_model=resolve(FACTORY, weights))
    assert changed.key != cell.key
