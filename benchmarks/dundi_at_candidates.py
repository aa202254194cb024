"""Train one ``dundi-at`` candidate on digits and print what its defaults were chosen by.

The choice reads only the validation split: the epoch-selection score per epoch
(two-step accuracy under the 5-step training attacks with both objectives) and
the clean validation accuracy.  With ``--test`` it then prints robust accuracy
on the first 100 test images under ``pgd`` and ``embedding-pgd`` at the
catalog's digits ε: reported in docs/dundi.md, never used to choose.

Usage::

    BENCH_CACHE_DIR=~/bench-cache python benchmarks/dundi_at_candidates.py \\
        '{"ce_weight": 1.0, "clean_weight": 1.0, "eps_warmup": 10, "attack_loss": "margin"}' --test
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the suite's attacks/, not benchmarks/attacks.py

import defenses.dundi_at as dundi_at  # noqa: E402
from attacks import get_attack  # noqa: E402
from attacks.art_adapter import art_classifier, run_attack  # noqa: E402
from attacks.catalog import default_params  # noqa: E402
from bench.cache import Cache, default_cache_dir  # noqa: E402
from bench.datasets import load_dataset  # noqa: E402
from bench.models import classify  # noqa: E402
from bench.runner import trained_model  # noqa: E402

CPU = torch.device("cpu")


def main(overrides: dict, test: bool) -> None:
    histories = []
    train = dundi_at.train

    def recording_train(*args, **kwargs):
        histories.append(train(*args, **kwargs))
        return histories[-1]

    dundi_at.train = recording_train  # the per-epoch validation scores train() returns
    data = load_dataset("digits", seed=0)
    started = time.perf_counter()
    model = trained_model(data, "dundi-at", overrides, 0, CPU, Cache(default_cache_dir()), False).module
    print(f"overrides {overrides}: {time.perf_counter() - started:.0f} s (0 s when cached)")
    if histories:
        print("validation score per epoch", [round(v, 3) for v in histories[0]], "best", max(histories[0]))
    print("clean validation accuracy", float((classify(model, data.x_val, CPU) == data.y_val).mean()))
    if test:
        x, y = data.x_test[:100], data.y_test[:100]
        estimator = art_classifier(model, data.input_shape, data.num_classes, CPU)
        print("test clean", float((classify(model, x, CPU) == y).mean()))
        for name in ("pgd", "embedding-pgd"):
            spec = get_attack(name)
            x_adv = run_attack(spec, default_params(spec, "digits"), estimator, x, y, seed=0, device=CPU)
            print("test", name, float((classify(model, x_adv, CPU) == y).mean()))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}, "--test" in sys.argv)
