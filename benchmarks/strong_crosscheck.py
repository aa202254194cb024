"""Cross-check the ``strong`` white-box set against an independent AutoAttack (not a test).

The suite's ``--attack strong`` (APGD-CE, APGD-T, Square on the scores, through
ART; ``attacks.catalog.STRONG``) is run white-box on a defense through the
normal runner, and its worst case per image (``bench.worst_case``, scope
``whitebox``) is compared with torchattacks' ``AutoAttack(version="standard")``
(APGD-CE, APGD-T, FAB-T, Square 5000; Croce & Hein's reference code ported to
PyTorch) on the same trained model and the same test images.  The two are
independent implementations of the same evaluation: the suite's worst case
must come within ``--tolerance`` (2 points) of torchattacks' robust accuracy.

Both accuracies are judged with the defense's decision (``predict`` when it has
one), and both with their 95% Wilson intervals.  Results are appended to
``benchmarks/strong_crosscheck.csv``.

Example::

    BENCH_CACHE_DIR=... .venv/bin/python benchmarks/strong_crosscheck.py \\
        --dataset npz:../shared/data/mnist-subset.npz --defense adv-pgd --samples 300 --device cuda
    .venv/bin/python benchmarks/strong_crosscheck.py --dataset digits --defense none --samples 64
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.families import family  # noqa: E402
from bench.datasets import load_dataset  # noqa: E402
from bench.devices import describe, resolve_device  # noqa: E402
from bench.metrics import wilson_interval  # noqa: E402
from bench.models import classify  # noqa: E402
from bench.results import ResultsStore  # noqa: E402
from bench.runner import Settings, eval_indices, make_grid, run_grid, trained_model  # noqa: E402
from bench.spec import GridSpec  # noqa: E402
from bench.worst_case import summary  # noqa: E402

CSV = ROOT / "benchmarks" / "strong_crosscheck.csv"


def independent_autoattack(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps: float, classes: int,
                           device: torch.device, seed: int, batch: int = 500) -> np.ndarray:
    """Per-image correctness after torchattacks' standard AutoAttack (the decision: ``predict`` if any)."""
    import torchattacks

    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=classes, seed=seed)
    adversarial = []
    for start in range(0, len(x), batch):
        xs = torch.as_tensor(x[start:start + batch], device=device)
        ys = torch.as_tensor(y[start:start + batch], device=device, dtype=torch.long)
        adversarial.append(attack(xs, ys).detach().cpu().numpy())
    x_adv = np.concatenate(adversarial)
    assert np.abs(x_adv - x).max() <= eps + 1e-5, "torchattacks left the ε-ball"
    return (classify(model, x, device) == y) & (classify(model, x_adv, device) == y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--defense", default="none")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--eps", type=float, default=None, help="L∞ budget (default: the dataset's standard)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("runs/strong-crosscheck"))
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args()

    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.seed)
    eps = args.eps if args.eps is not None else family(data.family).eps
    settings = Settings(out_dir=args.out, device=args.device, progress=False)
    cells = make_grid(GridSpec([args.dataset], [args.defense], ["strong"], ["whitebox"], [eps], samples=args.samples,
                               seed=args.seed))
    started = time.perf_counter()
    run_grid(cells, settings)
    suite_seconds = time.perf_counter() - started
    store = ResultsStore(args.out)
    frame = store.frame()
    frame = frame[frame["cell_key"].isin({cell.key for cell in cells})]
    worst = summary(frame, store.arrays)
    suite = worst[worst["scope"] == "whitebox"].iloc[0]

    model = trained_model(data, args.defense, {}, args.seed, device, settings.cache, False).module
    idx = eval_indices(data.n_test, args.samples, args.seed)
    started = time.perf_counter()
    robust = independent_autoattack(model, data.x_test[idx], data.y_test[idx], eps, data.num_classes, device,
                                    args.seed)
    reference_seconds = time.perf_counter() - started
    reference = float(robust.mean())
    gap = float(suite["worst_case_accuracy"]) - reference
    low, high = wilson_interval(int(robust.sum()), len(robust))
    row = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "dataset": data.name,
        "defense": args.defense, "eps": eps, "n": len(idx), "seed": args.seed, "device": describe(device),
        "strong_worst_case": suite["worst_case_accuracy"], "strong_ci_low": suite["worst_case_accuracy_ci_low"],
        "strong_ci_high": suite["worst_case_accuracy_ci_high"], "strong_broken_by": suite["broken_by"],
        "torchattacks_autoattack": reference, "torchattacks_ci_low": low, "torchattacks_ci_high": high,
        "gap": gap, "tolerance": args.tolerance, "within": abs(gap) <= args.tolerance,
        "strong_seconds": round(suite_seconds, 1), "torchattacks_seconds": round(reference_seconds, 1),
    }
    pd.DataFrame([row]).to_csv(CSV, mode="a", header=not CSV.exists(), index=False)
    print(f"{data.name} {args.defense} L∞ ε={eps:.3g}, {len(idx)} images:")
    print(f"  strong set worst case   {suite['worst_case_accuracy']:.3f} "
          f"[{suite['worst_case_accuracy_ci_low']:.3f}, {suite['worst_case_accuracy_ci_high']:.3f}]"
          f"  ({suite['broken_by']}; {suite_seconds:.0f} s)")
    print(f"  torchattacks AutoAttack {reference:.3f} [{low:.3f}, {high:.3f}]  ({reference_seconds:.0f} s)")
    print(f"  gap {gap:+.3f}: {'within' if row['within'] else 'OUTSIDE'} ±{args.tolerance}  -> {CSV}")
    raise SystemExit(0 if row["within"] else 1)


if __name__ == "__main__":
    main()
