"""Speed and scale of the suite, measured side by side in one run (not a test).

    .venv/bin/python benchmarks/speed.py [--dataset npz:../shared/data/mnist-subset.npz] [--out FILE]

Measures, each as a ratio of two timings taken on this machine in this run:

1. ``cold_vs_warm``: the default ``bench run`` grid (the CLI, as users run it)
   with an empty cache, then again into a new run folder with the cache warm.
   Target: warm <= 5% of cold.
2. ``suite_overhead``: one PGD cell through the suite (``run_cell``: dataset,
   cached model, attack, metrics, results store) against the same ART attack
   called directly in a plain loop on the same model and images. Target:
   suite <= 1.10x direct.
3. ``parallel_efficiency``: a grid of 8 equally sized cells with ``--jobs 1``
   and ``--jobs 2`` (models trained beforehand, adversarial examples not
   cached); efficiency = t(jobs 1) / (2 * t(jobs 2)). Target: >= 80% on 2 cores.
4. ``gpu_paper_grid``: with a CUDA device only, the paper grid
   (``none,dundi`` × ``fgsm,bim,deepfool,jsma``) on the MNIST and CIFAR-10
   subsets, cold, with its wall time.

Each timing is the median of ``--repeats`` runs. Results go to a CSV and a
printed table; benchmarks/README.md records them with the machine they came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = [sys.executable, "-m", "bench.cli"]


def _timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _env(cache: Path) -> dict:
    return {**os.environ, "BENCH_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}


def cold_vs_warm(work: Path, repeats: int) -> dict:
    colds, warms = [], []
    for i in range(repeats):
        cache = work / f"cold-warm-cache-{i}"
        colds.append(_timed([*BENCH, "run", "-q", "--out", str(work / f"cold-{i}")], _env(cache)))
        warms.append(_timed([*BENCH, "run", "-q", "--out", str(work / f"warm-{i}")], _env(cache)))
    cold, warm = statistics.median(colds), statistics.median(warms)
    return {"measure": "cold_vs_warm", "a": "warm s", "a_value": warm, "b": "cold s", "b_value": cold,
            "ratio": warm / cold, "target": "<= 0.05"}


def suite_overhead(work: Path, dataset: str, samples: int, repeats: int) -> dict:
    from art.attacks.evasion import ProjectedGradientDescent

    from attacks import ThreatModel, get_attack
    from attacks.art_adapter import BATCH_SIZE, art_classifier
    from attacks.catalog import default_params
    from bench.datasets import load_dataset
    from bench.devices import resolve_device
    from bench.runner import Cell, Settings, eval_indices, run_cell, trained_model

    cache = work / "overhead-cache"
    settings = Settings(out_dir=work / "overhead-run", cache_dir=str(cache), progress=False)
    device = resolve_device("auto")
    data = load_dataset(dataset, 0)
    model = trained_model(data, "none", {}, 0, device, settings.cache, False).module
    cell = Cell(dataset, "none", "pgd", ThreatModel.WHITEBOX, None, samples, 0)
    idx = eval_indices(data.n_test, samples, 0)
    params = default_params(get_attack("pgd"), data.family)
    suite, direct = [], []
    for _ in range(repeats):
        shutil.rmtree(cache / "adversarial", ignore_errors=True)
        started = time.perf_counter()
        run_cell(cell, settings)
        suite.append(time.perf_counter() - started)

        started = time.perf_counter()
        x, y = data.x_test[idx], data.y_test[idx]
        classifier = art_classifier(model, data.input_shape, data.num_classes, device)
        attack = ProjectedGradientDescent(classifier, norm="inf", batch_size=BATCH_SIZE[device.type],
                                          verbose=False, **params)
        x_adv = attack.generate(x=x, y=np.eye(data.num_classes, dtype=np.float32)[y])
        (classifier.predict(x_adv).argmax(1) == y).mean()
        direct.append(time.perf_counter() - started)
    a, b = statistics.median(suite), statistics.median(direct)
    return {"measure": "suite_overhead", "a": "suite s", "a_value": a, "b": "direct ART s", "b_value": b,
            "ratio": a / b, "target": "<= 1.10"}


def parallel_efficiency(work: Path, dataset: str, samples: int, repeats: int) -> dict:
    grid = ["run", "-q", "--dataset", dataset, "--defense", "none", "--attack", "pgd",
            "--threat-model", "whitebox", "--samples", str(samples),
            "--eps", "0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4"]
    cache = work / "parallel-cache"
    # Train the model once, outside the timings (cells, not training, are what is parallel here).
    subprocess.run([*BENCH, *grid[:-2], "--eps", "0.01", "--samples", "1", "--out", str(work / "warmup")],
                   check=True, cwd=ROOT, env=_env(cache), stdout=subprocess.DEVNULL)
    times = {1: [], 2: []}
    for i in range(repeats):
        for jobs in (1, 2):
            shutil.rmtree(cache / "adversarial", ignore_errors=True)
            out = work / f"parallel-{jobs}-{i}"
            times[jobs].append(_timed([*BENCH, *grid, "--jobs", str(jobs), "--out", str(out)], _env(cache)))
    one, two = statistics.median(times[1]), statistics.median(times[2])
    return {"measure": "parallel_efficiency", "a": "jobs=1 s", "a_value": one, "b": "jobs=2 s",
            "b_value": two, "ratio": one / (2 * two), "target": ">= 0.80"}


def gpu_paper_grid(work: Path) -> list[dict]:
    rows = []
    for dataset in ("npz:../shared/data/mnist-subset.npz", "npz:../shared/data/cifar10-subset.npz"):
        seconds = _timed([*BENCH, "run", "-q", "--dataset", dataset, "--defense", "none,dundi",
                          "--attack", "fgsm,bim,deepfool,jsma", "--samples", "1000",
                          "--out", str(work / f"gpu-{Path(dataset).stem}")], _env(work / "gpu-cache"))
        rows.append({"measure": f"gpu_paper_grid {Path(dataset).stem}", "a": "wall s", "a_value": seconds,
                     "b": "", "b_value": float("nan"), "ratio": float("nan"), "target": "-"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="npz:../shared/data/mnist-subset.npz",
                        help="dataset for the overhead and parallel measures")
    parser.add_argument("--samples", type=int, default=500, help="images per cell (overhead, parallel)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="cold_vs_warm,suite_overhead,parallel_efficiency,gpu_paper_grid")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "speed.csv"))
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    rows = []
    if "cold_vs_warm" in only:
        rows.append(cold_vs_warm(work, args.repeats))
    if "suite_overhead" in only:
        rows.append(suite_overhead(work, args.dataset, args.samples, args.repeats))
    if "parallel_efficiency" in only:
        rows.append(parallel_efficiency(work, args.dataset, args.samples, args.repeats))
    if "gpu_paper_grid" in only and torch.cuda.is_available():
        rows.extend(gpu_paper_grid(work))
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, "
               f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}, "
               f"torch {torch.__version__}")
    table = pd.DataFrame(rows).assign(machine=machine, repeats=args.repeats)
    table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(table.drop(columns="machine").to_string(index=False))
    print(f"\nmachine: {machine}\nwritten: {args.out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
