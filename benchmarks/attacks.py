"""Attack speed and strength: the suite vs torchattacks vs a plain torch loop, side by side.

Every implementation attacks the same trained ``none`` model of one dataset (from
the cache, trained if absent) on the same test images (the suite's
``eval_indices``), in one process, one after the other, so load on the machine
hits all alike; the ratio column is each time over the fastest peer's.  Strength
is measured the same way for all: success rate among the images the model gets
right, and the mean L2 / L∞ / L0 of the perturbations of the images fooled.

Implementations per attack (``suite`` is what ``bench run`` runs, through
``attacks.art_adapter.run_attack``):

* ``fgsm``, ``bim``, ``pgd``: suite (ART's class, fed with frozen weights),
  ``suite-unfrozen`` (the same ART call with trainable weights, as before issue 18),
  torchattacks, and a plain torch loop (same ε, step, steps, random start);
* ``deepfool``, ``jsma``, ``cw-l2``: suite (the batched torch class in
  ``attacks/``), ART's original (``deepfool-art``, …), torchattacks;
* ``square``: suite (``attacks/square.py``) and ART's original (``square-art``), both
  through the black-box query function, and torchattacks' Square; all on the model's
  logits (margin loss), same budget.

``--dundi DATASET`` adds DunDi's two-step ``predict`` vs the undefended model's
forward, images per second at the same batch size and device.

Needs the ``bench`` extra (``pip install -e '.[bench]'``: torchattacks).

Example::

    BENCH_CACHE_DIR=~/bench-cache .venv/bin/python benchmarks/attacks.py \\
        --dataset npz:../shared/data/mnist-subset.npz --samples 300 --dundi digits
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attacks import get_attack  # noqa: E402
from attacks.art_adapter import BATCH_SIZE, art_classifier, blackbox_classifier, run_attack  # noqa: E402
from attacks.catalog import default_params  # noqa: E402
from bench.cache import Cache, default_cache_dir  # noqa: E402
from bench.datasets import load_dataset  # noqa: E402
from bench.metrics import perturbation_norms  # noqa: E402
from bench.models import classify  # noqa: E402
from bench.runner import eval_indices, trained_model  # noqa: E402

ATTACKS = ("fgsm", "bim", "pgd", "deepfool", "jsma", "cw-l2", "square")


# ---------------------------------------------------------------- plain torch loops
def plain_pgd(model, x, y, eps, step, steps, random_start):
    """Madry et al.'s L∞ PGD (FGSM: one step of ε, no start; BIM: no random start)."""
    x_adv = x.clone()
    if random_start:
        x_adv = (x_adv + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + step * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


# ---------------------------------------------------------------- the runs
def _suite(name, data, model, x, y, device, seed, blackbox=False):
    spec = get_attack(name)
    params = default_params(spec, data.family)
    if blackbox:
        estimator, _ = blackbox_classifier(model, data.input_shape, data.num_classes, device)
    else:
        estimator = art_classifier(model, data.input_shape, data.num_classes, device)
    return lambda: run_attack(spec, params, estimator, x, y, seed=seed, device=device)


def _unfrozen(name, data, model, x, y, device, seed):
    """The suite's ART call as it was before issue 18: weights trainable, so ART's backward
    computes their gradients every step."""
    spec = get_attack(name)
    params = default_params(spec, data.family)
    estimator = art_classifier(model, data.input_shape, data.num_classes, device)

    def run():
        attack = spec.make(estimator, dict(params))
        extra = {"batch_size": BATCH_SIZE[device.type], "verbose": False}
        attack.set_params(**{k: v for k, v in extra.items() if k in type(attack).attack_params})
        np.random.seed(seed)
        torch.manual_seed(seed)
        return attack.generate(x=x.astype(np.float32), y=np.eye(data.num_classes, dtype=np.float32)[y])
    return run


def _torch_runner(fn, model, x, y, device, batch):
    def run():
        xs = torch.as_tensor(x, device=device)
        ys = torch.as_tensor(y, device=device, dtype=torch.long)
        with _frozen_params(model):
            return torch.cat([fn(xs[i:i + batch], ys[i:i + batch]) for i in range(0, len(xs), batch)]
                             ).detach().cpu().numpy()
    return run


@contextlib.contextmanager
def _frozen_params(model):
    from attacks._torch import frozen

    with frozen(model):
        yield


def implementations(name, data, model, x, y, device, seed, skip):
    """``[(implementation, run)]`` for attack ``name``."""
    import torchattacks as ta

    family = data.family
    params = default_params(get_attack(name), family) if name in ("fgsm", "bim", "pgd", "square") else None
    batch = BATCH_SIZE[device.type]
    runs = [("suite", _suite(name, data, model, x, y, device, seed, blackbox=name == "square"))]
    if name in ("fgsm", "bim", "pgd"):
        eps = params["eps"]
        step, steps, start = {"fgsm": (eps, 1, False), "bim": (params.get("eps_step"), params.get("max_iter"), False),
                              "pgd": (params.get("eps_step"), params.get("max_iter"), True)}[name]
        runs.append(("suite-unfrozen", _unfrozen(name, data, model, x, y, device, seed)))
        peer = {"fgsm": lambda: ta.FGSM(model, eps=eps),
                "bim": lambda: ta.BIM(model, eps=eps, alpha=step, steps=steps),
                "pgd": lambda: ta.PGD(model, eps=eps, alpha=step, steps=steps, random_start=True)}[name]()
        runs.append(("torchattacks", _torch_runner(peer, model, x, y, device, batch)))
        runs.append(("plain-torch", _torch_runner(
            lambda xb, yb: plain_pgd(model, xb, yb, eps, step, steps, start), model, x, y, device, batch)))
    elif name == "deepfool":
        runs.append(("deepfool-art", _suite("deepfool-art", data, model, x, y, device, seed)))
        peer = ta.DeepFool(model, steps=50, overshoot=0.02)
        runs.append(("torchattacks", _torch_runner(lambda xb, yb: peer(xb, yb), model, x, y, device, batch)))
    elif name == "jsma":
        runs.append(("jsma-art", _suite("jsma-art", data, model, x, y, device, seed)))
        # torchattacks' JSMA is the paper's pairwise saliency map (features² per image), so it
        # runs 16 images at a time; random targets like the suite's (from the seeded RNG).
        peer = ta.JSMA(model, theta=1.0, gamma=0.1)
        rng = np.random.default_rng(seed)
        targets = (y + rng.integers(1, data.num_classes, size=len(y))) % data.num_classes

        def jsma_run():
            out = []
            for i in range(0, len(x), 16):
                xb = torch.as_tensor(x[i:i + 16], device=device)
                tb = torch.as_tensor(targets[i:i + 16], device=device, dtype=torch.long)
                peer.set_mode_targeted_by_label(quiet=True)
                out.append(peer(xb, tb).detach().cpu().numpy())
            return np.concatenate(out)
        runs.append(("torchattacks", jsma_run))
    elif name == "cw-l2":
        runs.append(("cw-l2-art", _suite("cw-l2-art", data, model, x, y, device, seed)))
        # torchattacks' CW has no search over c: one c = 1 for 250 Adam steps (the suite's 5 × 50).
        peer = ta.CW(model, c=1.0, kappa=0, steps=250, lr=0.05)
        runs.append(("torchattacks", _torch_runner(lambda xb, yb: peer(xb, yb), model, x, y, device, batch)))
    elif name == "square":
        runs.append(("square-art", _suite("square-art", data, model, x, y, device, seed, blackbox=True)))
        peer = ta.Square(model, norm="Linf", eps=params["eps"], n_queries=params["max_iter"], n_restarts=1,
                         p_init=params["p_init"], loss="margin", seed=seed)
        runs.append(("torchattacks", _torch_runner(lambda xb, yb: peer(xb, yb), model, x, y, device, batch)))
    return [(impl, run) for impl, run in runs if impl not in skip]


def warm_up(model, x, device, batch) -> None:
    """One input gradient of ``model`` per batch shape of ``x``, untimed, before an attack's group:
    torch's first call on a new shape builds its kernels, which would otherwise be charged to
    whichever implementation runs first (the suite: measured 1.40× instead of 1.07× on FGSM).
    Each implementation then runs once on two images, untimed, for its own first-call costs
    (the first Adam step imports part of torch: 1.6 s charged to the suite's C&W on digits)."""
    xs = torch.as_tensor(x, device=device)
    for i in range(0, len(xs), batch):
        xb = xs[i:i + batch].clone().requires_grad_(True)
        torch.autograd.grad(model(xb).sum(), xb)


def strength(model, x, y, x_adv, device) -> dict:
    clean = classify(model, x, device)
    adv = classify(model, x_adv, device)
    right = clean == y
    fooled = right & (adv != y)
    norms = perturbation_norms(x, x_adv)
    mean = {k: float(norms[k][fooled].mean()) if fooled.any() else float("nan") for k in ("l2", "linf", "l0")}
    return {"success": float(fooled.sum() / max(right.sum(), 1)), "robust_accuracy": float((adv == y).mean()),
            "mean_l2": mean["l2"], "mean_linf": mean["linf"], "mean_l0": mean["l0"]}


def dundi_throughput(dataset: str, device, cache, batch: int, repeats: int) -> list[dict]:
    data = load_dataset(dataset, 0)
    x = torch.as_tensor(data.x_test[:batch], device=device)
    rows = []
    for defense, call in (("none", "forward"), ("dundi", "forward"), ("dundi", "predict")):
        model = trained_model(data, defense, {}, 0, device, cache, False).module.eval()
        fn = model if call == "forward" else model.predict
        with torch.no_grad():
            fn(x)  # warm up
            started = time.perf_counter()
            for _ in range(repeats):
                fn(x)
            seconds = (time.perf_counter() - started) / repeats
        rows.append({"dataset": data.name, "model": f"{defense}.{call}", "batch": len(x),
                     "seconds_per_batch": seconds, "images_per_second": len(x) / seconds})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="npz:../shared/data/mnist-subset.npz")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--skip", default="",
                        help="comma list of implementations not to run, e.g. torchattacks (its slow JSMA), cw-l2-art")
    parser.add_argument("--dundi", default="", help="dataset for DunDi's predict vs forward (empty: skip)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "attacks.csv"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cache = Cache(default_cache_dir())
    skip = set(filter(None, args.skip.split(",")))
    data = load_dataset(args.dataset, 0)
    model = trained_model(data, "none", {}, 0, device, cache, False).module.eval()
    idx = eval_indices(data.n_test, args.samples, 0)
    x, y = data.x_test[idx].astype(np.float32), data.y_test[idx]
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, {device}, torch {torch.__version__}"
    print(f"# {data.name}, {len(x)} images, {machine}", flush=True)
    rows = []
    for name in filter(None, args.attacks.split(",")):
        group = []
        warm_up(model, x, device, BATCH_SIZE[device.type])
        for _, run in implementations(name, data, model, x[:2], y[:2], device, 0, skip):
            run()  # each implementation's first call (imports such as torch.optim's, set-up) untimed
        for impl, run in implementations(name, data, model, x, y, device, 0, skip):
            np.random.seed(0)
            torch.manual_seed(0)
            wall, cpu = time.perf_counter(), time.process_time()
            x_adv = np.clip(np.asarray(run(), dtype=np.float32), 0, 1)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            row = {"dataset": data.name, "samples": len(x), "attack": name, "implementation": impl,
                   "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
                   **{k: round(v, 4) for k, v in strength(model, x, y, x_adv, device).items()}}
            group.append(row)
            print(row, flush=True)
        fastest_peer = min((r["cpu_seconds"] for r in group
                            if r["implementation"] not in ("suite", "suite-unfrozen")), default=float("nan"))
        for row in group:
            row["cpu_ratio_to_fastest_peer"] = round(row["cpu_seconds"] / fastest_peer, 3)
        rows += group
    if rows:
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if rows:
        print("\n| attack | implementation | wall s | CPU s | CPU ÷ fastest peer | success | mean L2 | mean L∞ | mean L0 |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['attack']} | {r['implementation']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
              f"{r['cpu_ratio_to_fastest_peer']:.2f} | {r['success']:.3f} | {r['mean_l2']:.3f} | "
              f"{r['mean_linf']:.3f} | {r['mean_l0']:.1f} |")
    if args.dundi:
        print("\n| dataset | model | batch | s per batch | images/s |\n| --- | --- | ---: | ---: | ---: |")
        for r in dundi_throughput(args.dundi, device, cache, 512, 20):
            print(f"| {r['dataset']} | {r['model']} | {r['batch']} | {r['seconds_per_batch']:.4f} | "
                  f"{r['images_per_second']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
