"""The ``bench`` command line: ``list``, ``run`` (and the report commands).

Options that name things (``--dataset``, ``--defense``, ``--attack``,
``--threat-model``, ``--eps``) take comma lists or repeats; ``run`` crosses them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
import pandas as pd

import bench
from attacks import REGISTRY as ATTACKS
from attacks import ThreatModel
from bench.api import DEFAULT_ATTACKS as DEFAULT_ATTACK_NAMES
from bench.api import prepare_user_model
from bench.regression import check_run, parse_tolerance, read_run, write_baseline
from bench.checks import SANITY_DIR, red_flags, sanity_cells
from bench.datasets import dataset_choices
from bench.devices import DEVICE_CHOICES
from bench.errors import BenchError
from bench.parallel import BACKENDS
from bench.runner import Settings, make_grid, run_grid
from bench.user_model import resolve
from defenses import REGISTRY as DEFENSES
from reports.tables import summary_table

DEFAULT_ATTACKS = ",".join(DEFAULT_ATTACK_NAMES)


def _split(values: tuple[str, ...]) -> list[str]:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``, order kept, duplicates dropped."""
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    return list(dict.fromkeys(items))


def _floats(values: tuple[str, ...]) -> list[float]:
    numbers = []
    for item in _split(values):
        try:
            numbers.append(float(item))
        except ValueError:
            raise BenchError(f"--eps {item!r} is not a number; give e.g. --eps 0.1,0.3") from None
    return numbers


def _key_values(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchError(f"--defense-option {item!r} is not KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(bench.__version__, prog_name="bench")
def cli() -> None:
    """Adversarial-robustness benchmark: defenses × ART attacks × datasets."""


@cli.command("list")
def list_command() -> None:
    """Datasets, defenses, attacks and threat models known to this install."""
    click.echo("datasets:      " + ", ".join(dataset_choices()))
    click.echo("threat models: " + ", ".join(t.value for t in ThreatModel))
    click.echo("\ndefenses:")
    for defense in DEFENSES.values():
        click.echo(f"  {defense.name:14} {defense.summary}  [{defense.origin}]")
    click.echo("\nattacks:")
    for spec in ATTACKS.values():
        kind = "bounded" if spec.bounded else "minimal"
        threats = ",".join(t.value for t in ThreatModel if t in spec.threat_models)
        click.echo(f"  {spec.name:14} {spec.norm.value:5} {kind:8} {threats:26} {spec.summary}"
                   f"  [{spec.origin}]")


@cli.command()
@click.option("--dataset", "-d", "datasets", multiple=True, default=("digits",), show_default=True,
              help="Datasets (comma list): " + ", ".join(dataset_choices()) + ".")
@click.option("--defense", "defenses", multiple=True,
              help="Defenses (comma list); see `bench list`.  [default: none; with --model, only the model]")
@click.option("--model", "model", default=None, metavar="FILE.pt|MODULE:CALLABLE",
              help="Benchmark your own trained model as a defense: a TorchScript archive, or "
              "package.module:callable (or file.py:callable) returning an nn.Module.")
@click.option("--weights", default=None, type=click.Path(dir_okay=False),
              help="State dict for --model (torch.load weights_only=True, load_state_dict strict=True).")
@click.option("--model-name", default=None,
              help="The --model's name in results (default: the file stem or the callable's name).")
@click.option("--attack", "-a", "attacks", multiple=True, default=(DEFAULT_ATTACKS,),
              show_default=True, help="Attacks (comma list); see `bench list`.")
@click.option("--threat-model", "-t", "threat_models", multiple=True, default=("whitebox,transfer",),
              show_default=True, help="Threat models (comma list): "
              + ", ".join(t.value for t in ThreatModel) + ".")
@click.option("--eps", "eps", multiple=True,
              help="L∞ budgets for bounded attacks (comma list); default: the dataset's standard budget. "
              "Minimal-perturbation attacks still run once and are scored at each budget of their norm.")
@click.option("--eps-sweep", is_flag=True,
              help="Run every attack over its dataset's budget grid for its norm (attacks/catalog.py "
              "SWEEP; --eps replaces the L∞ grid); minimal attacks are scored at each budget from one run.")
@click.option("--samples", "-n", default=200, show_default=True, type=int,
              help="Test images attacked per cell (drawn by --seed, the same for every cell).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for splits, training, attacks.")
@click.option("--out", "out_dir", default="runs/default", show_default=True, type=click.Path(path_type=Path),
              help="Run folder: results.csv and per-cell files; finished cells there are not redone.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(DEVICE_CHOICES),
              help="auto uses CUDA when torch.cuda.is_available().")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Where datasets are downloaded or looked up (default: user cache dir).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Model and adversarial-example cache (default: $BENCH_CACHE_DIR or user cache dir).")
@click.option("--defense-option", "defense_options", multiple=True, metavar="KEY=VALUE",
              help="Override a defense option (repeatable): KEY=VALUE sets it for every selected "
              "defense that has KEY, DEFENSE:KEY=VALUE for that defense only.")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(min=1),
              help="Cells run in parallel (joblib worker processes; each model is trained once).")
@click.option("--backend", default="loky", show_default=True, type=click.Choice(BACKENDS),
              help="loky: local processes; dask: a Dask cluster (--scheduler, or a local one of --jobs workers).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address (tcp://host:8786) for --backend dask; needs a shared filesystem.")
@click.option("--flags/--no-flags", default=True, show_default=True,
              help="Red flags of gradient masking (docs/flags_doc.md): add two sanity cells per defense "
              "(white-box pgd at eps=1 and with 4x its steps) and print the flags raised.")
@click.option("--fresh", is_flag=True, help="Recompute cells already finished in --out (caches still used).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def run(datasets, defenses, model, weights, model_name, attacks, threat_models, eps, eps_sweep, samples, seed,
        out_dir, device, data_dir, cache_dir, defense_options, jobs, backend, scheduler, flags, fresh,
        quiet) -> None:
    """Run the grid datasets × defenses × attacks × threat models × ε and write OUT/results.csv.

    With --model, your own trained model is checked against each dataset (clean
    accuracy printed) and benchmarked like a defense, beside any --defense.
    """
    if (weights or model_name) and not model:
        raise BenchError("--weights and --model-name go with --model")
    user = resolve(model, weights, model_name) if model else None
    chosen = _split(defenses) or ([] if user else ["none"])
    cells = make_grid(_split(datasets), chosen, _split(attacks), _split(threat_models),
                      _floats(eps), samples, seed, _key_values(defense_options), data_dir, eps_sweep)
    settings = Settings(out_dir=out_dir, device=device, data_dir=data_dir, cache_dir=cache_dir,
                        progress=not quiet, jobs=jobs, backend=backend, scheduler=scheduler)
    if user:
        user_cells, model_checks = prepare_user_model(user, _split(datasets), _split(attacks),
                                                      _split(threat_models), _floats(eps), samples, seed,
                                                      settings, eps_sweep=eps_sweep)
        for model_check in model_checks:
            click.echo(model_check.summary())
            for message in model_check.warnings:
                click.echo(f"warning: {message}", err=True)
        cells += user_cells
    checks = sanity_cells(cells) if flags else []
    started = time.perf_counter()
    outcome = run_grid(cells, settings, resume=not fresh)
    # Sanity cells are diagnostics, not results: they go to OUT/sanity, beside results.csv.  They
    # run here, one after the other: in-process Dask workers are threads sharing one model, and
    # two gradient attacks on one torch module at once race on its parameters' gradients.
    serial = dataclasses.replace(settings, out_dir=out_dir / SANITY_DIR, jobs=1, backend="loky")
    sanity = run_grid(checks, serial, resume=not fresh)
    elapsed = time.perf_counter() - started
    keys = {cell.key for cell in cells}
    table = outcome.table[outcome.table["cell_key"].isin(keys)]
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.precision", 3):
        click.echo(summary_table(table).to_string())
        if checks:
            click.echo(f"\nsanity cells ({out_dir / SANITY_DIR}): white-box pgd at eps=1 should leave ~0, "
                       "and pgd with 4x its steps no more than pgd")
            sanity_keys = {cell.key for cell in checks}
            click.echo(summary_table(sanity.table[sanity.table["cell_key"].isin(sanity_keys)]).to_string())
    computed = pd.DataFrame(outcome.computed, columns=["model_cached", "adv_cached"])
    click.echo(
        f"\n{len(table)} cells in {elapsed:.1f}s: {outcome.resumed} already finished in {out_dir} "
        f"(resumed), {len(computed)} computed; cache hits: models "
        f"{int(computed['model_cached'].sum())}/{len(computed)}, adversarial examples "
        f"{int(computed['adv_cached'].sum())}/{len(computed)} (cache: {settings.cache.root})"
        + (f"; plus {len(checks)} sanity cells" if checks else "")
    )
    if flags:
        found = red_flags(table, out_dir)
        click.echo(f"red flags (docs/flags_doc.md): {len(found) or 'none raised'}")
        for flag in found.itertuples():
            click.echo(f"  {flag.dataset}/{flag.defense}: {flag.flag}: {flag.evidence}")
    if table["dataset_is_subset"].astype(bool).any():
        click.echo("note: some datasets are SUBSETS of the official ones (see n_train, n_test).")
    click.echo(f"results: {out_dir / 'results.csv'}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_path", default="report.html", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The HTML file to write.")
def report(run_dirs, out_path) -> None:
    """Write one self-contained HTML report (tables, heatmaps, curves, gallery) of RUN_DIR...;
    several runs are compared side by side with the first."""
    from reports.html import write_report  # matplotlib/seaborn load only when a report is made

    write_report(run_dirs, out_path)
    click.echo(f"report: {out_path}")


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Baseline JSON file (e.g. tests/baselines/digits.json).")
@click.option("--tolerance", default=None, metavar="T",
              help="Allowed |now - baseline| of clean_accuracy, robust_accuracy and defense_rate: one "
              "number for all, or METRIC=NUMBER,...; default: the baseline file's.")
@click.option("--update", is_flag=True,
              help="Write RUN_DIR's cells as the new baseline (a deliberate change) instead of checking.")
def check(run_dir, baseline, tolerance, update) -> None:
    """Compare RUN_DIR's metrics with a baseline; exit 1 and list every cell that moved beyond
    tolerance (either direction) or is missing from the run or the baseline."""
    limits = parse_tolerance(tolerance) if tolerance else None
    if update:
        written = write_baseline(baseline, read_run(run_dir), limits)
        click.echo(f"baseline: {baseline} ({len(written['cells'])} cells, tolerance {written['tolerance']})")
        return
    passed, text = check_run(run_dir, baseline, limits)
    click.echo(text)
    if not passed:
        raise SystemExit(1)


def main() -> None:
    cli(prog_name="bench")


if __name__ == "__main__":
    main()
