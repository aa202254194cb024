"""Run folders: a damaged cell is set aside and recomputed, results.csv never misses a finished cell,
and `bench report` / `bench check` name a damaged file in one line."""

from __future__ import annotations

import hashlib
import json
import shutil

import pandas as pd
import pytest

from bench.cli import cli  # noqa: F401  (imported for the CLI's registration side effects)

from .conftest import TINY, assert_one_line_error, bench

GRID = [*TINY, "--attack", "fgsm,pgd"]
#: Columns that differ between runs of the same cells.
UNSTABLE = {"attack_seconds", "train_seconds", "model_cached", "adv_cached", "finished_at"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-cell run folder and its cache (copied by each test that changes it)."""
    root = tmp_path_factory.mktemp("finished")
    result = bench("run", *GRID, "--out", root / "run", "--cache-dir", root / "cache")
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def run(finished, tmp_path):
    shutil.copytree(finished / "run", tmp_path / "run")
    shutil.copytree(finished / "cache", tmp_path / "cache")
    return tmp_path / "run"


def _numbers(folder):
    frame = pd.read_csv(folder / "results.csv")
    return frame[[c for c in frame.columns if c not in UNSTABLE]]


def _cells(run):
    return sorted((run / "cells").glob("*.json"))


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


CELL_DAMAGE = {
    "garbage row": lambda row, arrays: row.write_text("{ garbage"),
    "truncated row": lambda row, arrays: row.write_bytes(row.read_bytes()[:40]),
    "binary row": lambda row, arrays: row.write_bytes(bytes(range(256))),
    "row of another cell": lambda row, arrays: row.write_text(json.dumps({"cell_key": "other"})),
    "truncated arrays": lambda row, arrays: arrays.write_bytes(arrays.read_bytes()[:100]),
    "random arrays": lambda row, arrays: arrays.write_bytes(b"\x00" * 500),
    "missing arrays": lambda row, arrays: arrays.unlink(),
}


@pytest.mark.parametrize("damage", list(CELL_DAMAGE))
def test_damaged_cell_is_set_aside_and_recomputed(damage, run, finished):
    damaged, kept = _cells(run)
    kept_bytes = kept.read_bytes()
    CELL_DAMAGE[damage](damaged, damaged.with_suffix(".npz"))
    result = bench("run", *GRID, "--out", run, "--cache-dir", run.parent / "cache")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(damaged) in warnings[0] and "quarantine" in warnings[0], result.stderr
    assert (run / "cells" / "quarantine").is_dir()
    assert kept.read_bytes() == kept_bytes, "the sound cell was kept as it was, not recomputed"
    assert damaged.exists() and json.loads(damaged.read_text())["cell_key"] == damaged.stem
    pd.testing.assert_frame_equal(_numbers(run), _numbers(finished / "run"))


def test_frame_sets_aside_a_garbage_row_instead_of_failing(run):
    from bench.results import ResultsStore

    damaged, kept = _cells(run)
    damaged.write_text("not json")
    frame = ResultsStore(run).frame()
    assert list(frame["cell_key"]) == [kept.stem]
    assert (run / "cells" / "quarantine" / damaged.name).read_text() == "not json"


RESULTS_DAMAGE = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated"),
    "cut after a row": (lambda p: p.write_text(p.read_text().splitlines()[0] + "\n" +
                                               p.read_text().splitlines()[1][:60] + "\n"), "incomplete"),
    "binary": (lambda p: p.write_bytes(bytes(range(256)) * 4), "binary data"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "another table": (lambda p: p.write_text("a,b\n1,2\n"), "no column 'dataset'"),
    "text in a metric": (lambda p: pd.read_csv(p).astype({"clean_accuracy": object})
                         .assign(clean_accuracy="abc").to_csv(p, index=False), "'abc' is not a number"),
}


@pytest.mark.parametrize("damage", list(RESULTS_DAMAGE))
def test_report_and_check_name_a_damaged_results_csv(damage, run, tmp_path):
    write, expected = RESULTS_DAMAGE[damage]
    csv = run / "results.csv"
    write(csv)
    report = tmp_path / "report.html"
    assert_one_line_error(bench("report", run, "--out", report), str(csv), expected)
    assert not report.exists()
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"note": "kept"}')
    assert_one_line_error(bench("check", run, "--baseline", baseline), str(csv), expected)
    assert_one_line_error(bench("check", run, "--baseline", baseline, "--update", "--tolerance", "0.1"),
                          str(csv), expected)
    assert baseline.read_text() == '{"note": "kept"}', "check --update changed nothing"


def test_report_names_a_damaged_cell_file(run, tmp_path):
    arrays = _cells(run)[0].with_suffix(".npz")
    arrays.write_bytes(arrays.read_bytes()[:200])
    report = tmp_path / "report.html"
    assert_one_line_error(bench("report", run, "--out", report), str(arrays), "damaged")
    assert not report.exists()


def test_check_names_a_damaged_baseline(run, tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(b"\x00\xff garbage")
    assert_one_line_error(bench("check", run, "--baseline", baseline), str(baseline))
    assert_one_line_error(bench("check", run, "--baseline", baseline, "--update"), str(baseline))
    assert baseline.read_bytes() == b"\x00\xff garbage"


def test_interrupted_run_keeps_every_finished_cell_in_results_csv(tmp_path, monkeypatch, finished):
    """Ctrl-C during the second cell: results.csv already holds the first (not only after a rerun)."""
    from bench import runner

    real = runner.run_cell
    calls = []

    def interrupted(cell, settings):
        calls.append(cell)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cell, settings)

    monkeypatch.setattr(runner, "run_cell", interrupted)
    out = tmp_path / "run"
    result = bench("run", *GRID, "--out", out, "--cache-dir", finished / "cache")
    assert result.exit_code != 0
    frame = pd.read_csv(out / "results.csv")
    assert list(frame["cell_key"]) == [calls[0].key]
    assert not list(out.rglob("*.tmp")), "nothing half-written"
