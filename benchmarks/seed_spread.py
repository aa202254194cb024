"""Measure the seed-to-seed spread of the regression gate's grid, to choose its tolerance.

Runs the grid a baseline records (its ``run`` entry, e.g. tests/baselines/digits.json)
once per seed, then prints, per metric, how far each seed's numbers are from the
baseline seed's (``|x_seed − x_base|`` per cell) and where the largest move is.
A change that only reshuffles randomness (another seed, a reordered draw, other
hardware) moves the numbers about this much, so the suggested tolerance is the
largest such move per metric, rounded up to 0.01: the gate then never fails on a
reshuffle it has seen, and fails on anything larger.

    .venv/bin/python benchmarks/seed_spread.py --seeds 0,1,2,3,4 --out /tmp/seed-spread

Each seed trains every defense anew (seeds change splits, training and attacks),
so this takes a while; run folders under ``--out`` resume if interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from bench.cli import cli
from bench.gate import IDENTITY, METRICS, identify, run_arguments
from bench.results import read_results

ROOT = Path(__file__).resolve().parents[1]


def run_seeds(baseline: dict, seeds: list[int], out: Path) -> dict[int, pd.DataFrame]:
    """Run the baseline's grid for each seed (through the CLI) and return each run's table."""
    frames = {}
    for seed in seeds:
        folder = out / f"seed-{seed}"
        print(f"seed {seed}: bench run {' '.join(run_arguments(baseline, seed))} --out {folder}", flush=True)
        cli.main(["run", *run_arguments(baseline, seed), "--out", str(folder), "-q"], standalone_mode=False)
        frames[seed] = identify(read_results(folder), f"run {folder}")
    return frames


def spread(frames: dict[int, pd.DataFrame], base_seed: int) -> pd.DataFrame:
    """Per metric: median, 90th percentile and max over cells of |x_seed − x_base|, and the max's cell."""
    base = frames[base_seed]
    moves = []
    for seed, frame in frames.items():
        if seed == base_seed:
            continue
        common = base.index.intersection(frame.index)
        for metric in METRICS:
            delta = (frame.loc[common, metric] - base.loc[common, metric]).abs()
            moves.append(pd.DataFrame({"metric": metric, "seed": seed, "cell": common,
                                       "move": delta.to_numpy()}))
    moves = pd.concat(moves, ignore_index=True).dropna(subset=["move"])
    rows = []
    for metric, group in moves.groupby("metric", sort=False):
        worst = group.loc[group["move"].idxmax()]
        rows.append({"metric": metric, "cells": group["cell"].nunique(), "median": group["move"].median(),
                     "p90": group["move"].quantile(0.9), "max": worst["move"],
                     "suggested": math.ceil(round(worst["move"] * 100, 6)) / 100,
                     "max at": f"{worst['cell']} (seed {worst['seed']})"})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, default=ROOT / "tests" / "baselines" / "digits.json")
    parser.add_argument("--seeds", default="0,1,2,3,4",
                        help="comma list; the baseline's seed is compared with the others")
    parser.add_argument("--out", type=Path, default=Path("runs/seed-spread"))
    args = parser.parse_args()
    baseline = json.loads(args.baseline.read_text())
    seeds = [int(s) for s in args.seeds.split(",")]
    arguments = run_arguments(baseline)
    base_seed = int(arguments[arguments.index("--seed") + 1]) if "--seed" in arguments else 0
    if base_seed not in seeds:
        sys.exit(f"--seeds must include the baseline's seed {base_seed}")
    frames = run_seeds(baseline, seeds, args.out)
    table = spread(frames, base_seed)
    with pd.option_context("display.width", 200, "display.max_colwidth", 80, "display.precision", 3):
        print(f"\n|x_seed − x_seed{base_seed}| per cell over seeds {args.seeds} "
              f"({len(frames[base_seed])} cells; identity: {', '.join(IDENTITY)}):")
        print(table.to_string(index=False))
    tolerance = ",".join(f"{row.metric}={row.suggested:g}" for row in table.itertuples())
    print(f"\nbench check {args.out / f'seed-{base_seed}'} --baseline {args.baseline} --update "
          f"--tolerance {tolerance}")


if __name__ == "__main__":
    main()
