"""Choose DunDi's defaults on the VALIDATION split (never on test).

For each candidate option set, train (or load from the cache) the ``dundi``
model and report, on ``--samples`` validation images: two-step accuracy, the
forward/predict agreement, and the transfer ``defense_rate`` of adversarial
examples crafted on the suite's ``none`` model at the attacks' default
parameters (and any ``--eps``).  Step-2 settings (``k``, ``m``) only change the
decision, so ``--decision k,m`` pairs are evaluated on each trained model
without retraining.

Example::

    BENCH_CACHE_DIR=/tmp/bcache python benchmarks/dundi_select.py \\
        --dataset npz:../shared/data/mnist-subset.npz --eps 0.1,0.3 \\
        --candidate loss=triplet,margin=0.5 --candidate loss=contrastive,margin=1.0
"""

from __future__ import annotations

import itertools

import click
import numpy as np
import pandas as pd
import torch

from attacks import get_attack
from attacks.art_adapter import art_classifier, run_attack
from attacks.catalog import default_params
from bench.cache import Cache, array_fingerprint, config_hash, default_cache_dir
from bench.datasets import load_dataset
from bench.devices import resolve_device
from bench.models import classify, logits_of
from bench.runner import trained_model
from defenses.dundi import agreement


def validation_adversarials(data, attack: str, eps: float | None, idx: np.ndarray, seed: int,
                            device: torch.device, cache: Cache) -> tuple[np.ndarray, np.ndarray]:
    """(x_adv, fooled-the-none-model mask) for validation images ``idx``, cached."""
    source = trained_model(data, "none", {}, seed, device, cache, False)
    spec = get_attack(attack)
    params = default_params(spec, data.family, eps)
    key = config_hash("val-adv", source.key, attack, params, array_fingerprint(idx), seed)
    x, y = data.x_val[idx], data.y_val[idx]
    with cache.lock("adversarial", key):
        stored = cache.load_arrays("adversarial", key)
        if stored is None:
            estimator = art_classifier(source.module, data.input_shape, data.num_classes, device)
            x_adv = run_attack(spec, params, estimator, x, y, seed=seed, device=device)
            cache.save_arrays("adversarial", key, x_adv=x_adv)
        else:
            x_adv = stored["x_adv"]
    clean = logits_of(source.module, x, device).argmax(1).cpu().numpy()
    adv = logits_of(source.module, x_adv, device).argmax(1).cpu().numpy()
    return x_adv, (clean == y) & (adv != y)


def _parse(candidate: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in candidate.split(",") if item)


@click.command()
@click.option("--dataset", default="npz:../shared/data/mnist-subset.npz", show_default=True)
@click.option("--attack", default="fgsm,bim,deepfool,jsma", show_default=True)
@click.option("--eps", default="", help="Extra ε for bounded attacks (comma list); the default ε always runs.")
@click.option("--candidate", multiple=True, help="Option overrides KEY=VALUE,KEY=VALUE (repeatable).")
@click.option("--decision", default="", help="k,m pairs to evaluate on each model, e.g. '1,1;3,5;10,5'.")
@click.option("--samples", default=1000, show_default=True, help="Validation images evaluated.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", default="", help="CSV file for the table.")
def main(dataset, attack, eps, candidate, decision, samples, seed, out):
    device = resolve_device("auto")
    cache = Cache(default_cache_dir())
    data = load_dataset(dataset, seed)
    idx = np.sort(np.random.default_rng(seed).permutation(data.n_val)[:samples])
    x, y = data.x_val[idx], data.y_val[idx]
    budgets = [None] + [float(value) for value in eps.split(",") if value]
    attacks = [(name, budget) for name, budget in itertools.product(attack.split(","), budgets)
               if budget is None or get_attack(name).bounded]
    adversarial = {(name, budget): validation_adversarials(data, name, budget, idx, seed, device, cache)
                   for name, budget in attacks}
    counts = {f"{name}@{'default' if budget is None else f'{budget:g}'}": int(fooled.sum())
              for (name, budget), (_, fooled) in adversarial.items()}
    print("adversarial examples that fool the none model (the defense_rate denominators):", counts)
    pairs = [tuple(int(v) for v in pair.split(",")) for pair in decision.split(";") if pair]
    rows = []
    for text in candidate or ("",):
        model = trained_model(data, "dundi", _parse(text), seed, device, cache, True).module
        default_k, default_m = model.k, model.m
        for k, m in pairs or [(default_k, default_m)]:
            model.k, model.m = k, m
            row = {"candidate": text or "(defaults)", "k": k, "m": m,
                   "val_accuracy": float((classify(model, x, device) == y).mean()),
                   "agreement": agreement(model, x, device)}
            for (name, budget), (x_adv, fooled) in adversarial.items():
                column = name if budget is None else f"{name}@{budget:g}"
                row[column] = float((classify(model, x_adv[fooled], device) == y[fooled]).mean())
            row["mean_default_eps"] = float(np.mean([row[name] for name, budget in attacks if budget is None]))
            rows.append(row)
        model.k, model.m = default_k, default_m
        print(pd.DataFrame(rows).round(4).to_string(), flush=True)
    table = pd.DataFrame(rows)
    if out:
        table.to_csv(out, index=False)


if __name__ == "__main__":
    main()
