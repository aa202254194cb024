"""The Python API: the suite's own split, benchmark() keeping its run folder and running the red
flags, and the report made from that folder (a tiny model, few images: fast)."""

import numpy as np
import pytest
import torch
from torch import nn

import bench
from bench.datasets import load_dataset


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_load_dataset_is_the_suites_split():
    data = bench.load_dataset("digits", seed=0)
    assert data is load_dataset("digits", 0, None)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 1797
    # Train and test never share an image.
    train = {row.tobytes() for row in data.x_train.reshape(len(data.x_train), -1)}
    assert not any(row.tobytes() in train for row in data.x_test.reshape(len(data.x_test), -1))


def test_benchmark_keeps_its_run_folder_runs_flags_and_feeds_the_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = bench.load_dataset("digits")
    torch.manual_seed(0)
    model = Linear()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    for _ in range(60):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    table = bench.benchmark(model.eval(), attacks="fgsm", threat_models="whitebox", n_examples=40,
                            progress=False)
    out = table.attrs["out_dir"]
    assert out == tmp_path.joinpath("runs", "Linear").relative_to(tmp_path)
    assert (tmp_path / out / "results.csv").exists()
    assert table.attrs["flags"] == [] or all("flag" in flag for flag in table.attrs["flags"])
    assert table.attrs["skipped"] == {}
    assert len(table) == 1 and table.loc[0, "clean_accuracy"] > 0.8
    report = bench.report(out, out=tmp_path / "r.html")
    assert report.exists() and report.read_text().startswith("<!")


def test_benchmark_docstring_names_every_threat_model_and_the_api():
    doc = bench.benchmark.__doc__
    for word in ("blackbox", "flags", "out_dir", "load_dataset", "report"):
        assert word in doc
    assert bench.load_dataset.__doc__ and bench.report.__doc__
    with pytest.raises(AttributeError):
        bench.nothing_here
    assert np  # numpy is used by the suite's data
