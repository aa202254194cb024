"""Parallel cells: joblib worker processes and a Dask cluster give the serial results."""

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import cli

METRICS = ["dataset", "defense", "attack", "threat_model", "eps", "n_eval", "clean_accuracy",
           "robust_accuracy", "attack_success_rate", "defense_rate", "mean_l2", "mean_linf"]
GRID = ["--attack", "fgsm,deepfool", "--threat-model", "whitebox,transfer", "--samples", "64", "-q"]


def _run(tmp_path, name, *extra):
    out, cache = tmp_path / name, tmp_path / f"cache-{name}"
    result = CliRunner().invoke(cli, ["run", *GRID, "--out", str(out), "--cache-dir", str(cache), *extra])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "results.csv")[METRICS]


def _assert_same_results(parallel: pd.DataFrame, serial: pd.DataFrame) -> None:
    # Accuracies must be equal; perturbation norms may differ in the 4th digit, since a worker
    # process sums floats with another thread count than the parent (measured: 0.531811 vs 0.531764).
    pd.testing.assert_frame_equal(parallel, serial, rtol=1e-3)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("serial"), "serial")


def test_dask_cluster_gives_the_serial_results(serial, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        dask = _run(tmp_path, "dask", "--backend", "dask", "--scheduler", cluster.scheduler_address,
                    "--jobs", "2")
    assert len(dask) == 4
    _assert_same_results(dask, serial)


def test_two_worker_processes_give_the_serial_results(serial, tmp_path):
    _assert_same_results(_run(tmp_path, "jobs2", "--jobs", "2"), serial)
