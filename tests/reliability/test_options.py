"""Defense options and run settings: every invalid value is one clear error before any work starts."""

from __future__ import annotations

import argparse

import dask
import pytest
import torch

from .conftest import TINY, assert_one_line_error, bench

GRID = ["--attack", "fgsm", "--threat-model", "whitebox", "--samples", "20", "--no-flags", "-q"]

#: (--defense, --defense-option, what the error line says)
BAD_OPTIONS = [
    ("none", "epochs=-2", "epochs=-2 of defense 'none': must be a whole number >= 1"),
    ("none", "epochs=0", "must be a whole number >= 1"),
    ("none", "epochs=1.5", "expected a int like"),
    ("none", "lr=nan", "lr=nan of defense 'none': must be a finite number"),
    ("none", "lr=inf", "must be a finite number"),
    ("none", "lr=0", "must be in (0, inf)"),
    ("none", "weight_decay=-1", "must be in [0, inf)"),
    ("none", "batch_size=0", "batch_size=0 of defense 'none': must be a whole number >= 1"),
    ("none", "architecture=nosuch", "choose one of cnn28, cnn8, resnet8"),
    ("none", "architecture=cnn28", "does not take 1×8×8 images"),
    ("dundi", "dundi:loss=hinge", "choose one of triplet, contrastive"),
    ("dundi", "dundi:k=0", "must be a whole number >= 1"),
    ("dundi", "dundi:margin=-0.5", "must be in (0, inf)"),
    ("dundi", "dundi:noise=nan", "must be a finite number"),
    ("dundi", "dundi:normalize=maybe", "expected a bool"),
    ("adv-pgd", "adv-pgd:eps=2", "must be in (0, 1]"),
    ("adv-pgd", "adv-pgd:steps=0", "must be a whole number >= 1"),
    ("adv-pgd", "adv-pgd:init=pretrained", "choose one of undefended, scratch"),
    ("adv-fgsm", "adv-fgsm:alpha=1.5", "must be in [0, 1]"),
    ("trades", "trades:beta=-1", "must be in [0, inf)"),
    ("distillation", "distillation:temperature=0", "must be in (0, inf)"),
]


@pytest.mark.parametrize("defense, option, expected", BAD_OPTIONS, ids=[o for _, o, _ in BAD_OPTIONS])
def test_bad_defense_option_is_one_error_before_any_work(defense, option, expected, tmp_path, cache_dir):
    out = tmp_path / "out"
    result = bench("run", "--defense", defense, "--defense-option", option, *GRID, "--out", out,
                   "--cache-dir", cache_dir)
    assert_one_line_error(result, expected)
    assert not out.exists(), "nothing was started"
    assert not cache_dir.exists(), "nothing was trained"


def test_defense_options_are_validated_from_python_too(digits):
    from bench.errors import BenchError
    from defenses import get_defense

    with pytest.raises(BenchError, match="must be a finite number"):
        get_defense("none").options(digits, {"lr": float("nan")})
    with pytest.raises(BenchError, match="expected a whole number"):
        get_defense("none").options(digits, {"epochs": "ten"} | {"epochs": [3]})
    assert get_defense("none").options(digits, {"epochs": "2", "lr": "0.01"})["epochs"] == 2


def test_dundi_backbone_pickle_is_one_line_without_unsafe_advice(tmp_path, cache_dir):
    path = tmp_path / "backbone.pt"
    torch.save({"features.0.weight": torch.zeros(2), "x": argparse.Namespace(a=1)}, path)
    out = tmp_path / "out"
    result = bench("run", "--defense", "dundi", "--defense-option", f"dundi:backbone={path}", *GRID,
                   "--out", out, "--cache-dir", cache_dir)
    line = assert_one_line_error(result, "backbone", "pickled Python objects", "never unpickled")
    assert "weights_only" not in line and "False" not in line
    assert not list(cache_dir.rglob("*.pt"))


def test_unreachable_dask_scheduler_is_one_error(tmp_path, cache_dir):
    out = tmp_path / "out"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = bench("run", *TINY, "--backend", "dask", "--scheduler", "tcp://127.0.0.1:9", "--out", out,
                       "--cache-dir", cache_dir)
    assert_one_line_error(result, "cannot reach the Dask scheduler 'tcp://127.0.0.1:9'")
    assert not list(cache_dir.rglob("*.pt"))


def test_out_naming_a_file_is_one_error_before_any_work(tmp_path, cache_dir):
    out = tmp_path / "results.txt"
    out.write_text("not a folder")
    result = bench("run", *TINY, "--out", out, "--cache-dir", cache_dir)
    assert_one_line_error(result, f"--out {out} is a file, not a folder")
    assert out.read_text() == "not a folder"
    assert not cache_dir.exists(), "nothing was started"


def test_cache_naming_a_file_is_one_error_before_any_work(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache))
    out = tmp_path / "out"
    result = bench("run", *TINY, "--out", out)
    assert_one_line_error(result, f"cache folder {cache} is a file, not a folder")
    assert not (out / "cells").exists() and cache.read_text() == "not a folder"
