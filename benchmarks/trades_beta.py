"""Compare trades' β candidates on mnist-subset VALIDATION data (not a test; trains nothing).

Loads each cached ``trades`` model (β = 6, the paper's; β = 3) and prints its
clean accuracy on every validation image and its robust accuracy under the
epoch-selection score (the 10-step training PGD, first 500 validation images),
the numbers docs/defenses.md chose MNIST's β by.  The test split is not read.

Usage::

    BENCH_CACHE_DIR=~/bench-cache python benchmarks/trades_beta.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the suite's attacks/, not benchmarks/attacks.py

from bench.cache import Cache, default_cache_dir  # noqa: E402
from bench.datasets import load_dataset  # noqa: E402
from bench.models import classify  # noqa: E402
from bench.runner import trained_model  # noqa: E402
from defenses.robust_training import robust_accuracy  # noqa: E402

CPU = torch.device("cpu")
DATASET = "npz:../shared/data/mnist-subset.npz"


def main(betas: list[float]) -> None:
    data = load_dataset(DATASET, seed=0)
    for beta in betas:
        model = trained_model(data, "trades", {"beta": beta}, 0, CPU, Cache(default_cache_dir()), False)
        if not model.cached:
            print(f"beta {beta}: trained now (not in the cache)")
        options = model.options
        clean = float((classify(model.module, data.x_val, CPU) == data.y_val).mean())
        robust = robust_accuracy(model.module, data, CPU, eps=options["eps"], step_size=options["step_size"],
                                 steps=options["steps"], start="uniform")
        print(f"beta {beta}: validation clean {clean:.3f} (n = {len(data.y_val)}), "
              f"robust {robust:.3f} (epoch score, first 500)")


if __name__ == "__main__":
    main([float(b) for b in sys.argv[1:]] or [6.0, 3.0])
