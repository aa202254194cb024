"""The ``bench`` command line: ``list``, ``run`` (and the report commands).

Options that name things (``--dataset``, ``--defense``, ``--attack``,
``--threat-model``, ``--eps``) take comma lists or repeats; ``run`` crosses them.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import pandas as pd

import bench
from attacks import REGISTRY as ATTACKS
from attacks import ThreatModel
from bench.datasets import dataset_choices
from bench.devices import DEVICE_CHOICES
from bench.errors import BenchError
from bench.runner import Settings, make_grid, run_grid
from defenses import REGISTRY as DEFENSES
from reports.tables import summary_table

DEFAULT_ATTACKS = "fgsm,bim,deepfool,jsma,pgd"


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
@click.option("--defense", "defenses", multiple=True, default=("none",), show_default=True,
              help="Defenses (comma list); see `bench list`.")
@click.option("--attack", "-a", "attacks", multiple=True, default=(DEFAULT_ATTACKS,),
              show_default=True, help="Attacks (comma list); see `bench list`.")
@click.option("--threat-model", "-t", "threat_models", multiple=True, default=("whitebox,transfer",),
              show_default=True, help="Threat models (comma list): "
              + ", ".join(t.value for t in ThreatModel) + ".")
@click.option("--eps", "eps", multiple=True,
              help="L∞ budgets for bounded attacks (comma list); default: the dataset's standard budget.")
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
@click.option("--fresh", is_flag=True, help="Recompute cells already finished in --out (caches still used).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def run(datasets, defenses, attacks, threat_models, eps, samples, seed, out_dir, device, data_dir,
        cache_dir, defense_options, fresh, quiet) -> None:
    """Run the grid datasets × defenses × attacks × threat models × ε and write OUT/results.csv."""
    cells = make_grid(_split(datasets), _split(defenses), _split(attacks), _split(threat_models),
                      _floats(eps), samples, seed, _key_values(defense_options), data_dir)
    settings = Settings(out_dir=out_dir, device=device, data_dir=data_dir, cache_dir=cache_dir,
                        progress=not quiet)
    started = time.perf_counter()
    outcome = run_grid(cells, settings, resume=not fresh)
    elapsed = time.perf_counter() - started
    keys = {cell.key for cell in cells}
    table = outcome.table[outcome.table["cell_key"].isin(keys)]
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.precision", 3):
        click.echo(summary_table(table).to_string())
    computed = pd.DataFrame(outcome.computed, columns=["model_cached", "adv_cached"])
    click.echo(
        f"\n{len(table)} cells in {elapsed:.1f}s: {outcome.resumed} already finished in {out_dir} "
        f"(resumed), {len(computed)} computed; cache hits: models "
        f"{int(computed['model_cached'].sum())}/{len(computed)}, adversarial examples "
        f"{int(computed['adv_cached'].sum())}/{len(computed)} (cache: {settings.cache.root})"
    )
    if table["dataset_is_subset"].astype(bool).any():
        click.echo("note: some datasets are SUBSETS of the official ones (see n_train, n_test).")
    click.echo(f"results: {out_dir / 'results.csv'}")


def main() -> None:
    cli(prog_name="bench")


if __name__ == "__main__":
    main()
