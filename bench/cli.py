"""The ``bench`` command line: ``list``, ``run`` (and the report commands).

Options that name things (``--dataset``, ``--defense``, ``--attack``,
``--threat-model``, ``--eps``) take comma lists or repeats; ``run`` crosses them.

Startup is kept under a second or two: this module imports only click and the
cheap registries (``attacks``, ``defenses.names``, dataset and device names),
so ``bench list``, ``--help`` and a misspelt name answer before torch, ART,
pandas or scikit-learn are imported; ``run`` imports them once every name is
checked (tests/bench/test_cli.py checks the imports, benchmarks/cli_startup.py
times them).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import click

import bench
from attacks import REGISTRY as ATTACKS
from attacks import ThreatModel, get_attack
from bench.datasets import dataset_choices
from bench.devices import DEVICE_CHOICES
from bench.errors import BenchError
from bench.families import standard_budgets
from bench.parallel import BACKENDS
from bench.spec import DEFAULT_ATTACKS as DEFAULT_ATTACK_NAMES
from bench.spec import UNDEFENDED, GridSpec, names, skipped
from defenses import summaries as defense_summaries

DEFAULT_ATTACKS = ",".join(DEFAULT_ATTACK_NAMES)


def _key_values(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchError(f"--defense-option {item!r} is not KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


class _Group(click.Group):
    """The ``bench`` group: the one place a :class:`BenchError` from a command (its options, checks
    or the library under it) becomes click's one-line ``Error: <message>`` and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BenchError as error:
            raise click.ClickException(error.message) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(bench.__version__, prog_name="bench")
def cli() -> None:
    """Adversarial-robustness benchmark: defenses × ART attacks × datasets."""


@cli.command("list")
def list_command() -> None:
    """Datasets, defenses, attacks and threat models known to this install."""
    click.echo("datasets:      " + ", ".join(dataset_choices()))
    click.echo("threat models: " + ", ".join(t.value for t in ThreatModel))
    click.echo("\ndefenses:")
    for name, summary, origin in defense_summaries():  # read from source: no torch
        click.echo(f"  {name:14} {summary}  [{origin}]")
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
              "Minimal-perturbation attacks (DeepFool, C&W-L2, JSMA) run once, unbudgeted; with "
              "--eps-sweep they are also scored at each budget of their own norm.")
@click.option("--eps-sweep", is_flag=True,
              help="Run every attack over its dataset's budget grid for its norm (bench/families.py "
              "sweep; --eps replaces the L∞ grid); minimal attacks are scored at each budget from one run.")
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
    spec = GridSpec(datasets=datasets, defenses=names(defenses) or (() if model else (UNDEFENDED,)),
                    attacks=attacks, threat_models=threat_models, eps=eps, eps_sweep=eps_sweep, samples=samples,
                    seed=seed, defense_options=_key_values(defense_options))
    spec.check()
    # Every name is valid: now the heavy imports (torch, ART, pandas, scikit-learn).
    from bench import api
    from bench.progress import Progress
    from bench.runner import Settings
    from bench.summary import format_summary
    from bench.user_model import resolve

    started = time.perf_counter()
    if model:
        spec = dataclasses.replace(spec, user_model=resolve(model, weights, model_name))
    settings = Settings(out_dir=out_dir, device=device, data_dir=data_dir, cache_dir=cache_dir,
                        progress=not quiet, jobs=jobs, backend=backend, scheduler=scheduler)
    for line in _skipped_lines(spec.attacks, spec.threat_models):
        click.echo(line)
    with Progress(not quiet) as display:
        outcome = api.run(spec, settings, flags=flags, resume=not fresh, display=display,
                          on_model_check=_echo_model_check)
    elapsed = time.perf_counter() - started
    table = outcome.table
    click.echo(format_summary(table, lead=_worst_case_lead(outcome, table),
                              attacks=[name for name in ATTACKS if name in set(table["attack"])]))
    if flags:
        click.echo(_sanity_line(outcome, out_dir))
    grid = outcome.grid
    computed = grid.computed
    crafted = sum(1 for row in computed if not row.adv_cached)
    click.echo(
        f"\n{len(table)} cells in {elapsed:.1f} s: {grid.resumed} already in {out_dir}, {len(computed)} computed; "
        f"models: {grid.models_trained} trained, {grid.models_cached} from the cache; adversarial examples: "
        f"{crafted} crafted, {len(computed) - crafted} reused (cache: {settings.cache.root})")
    if flags:
        found = outcome.flags
        click.echo(f"red flags (docs/flags_doc.md): {len(found) or 'none raised'}")
        for flag in found.itertuples():
            click.echo(f"  {flag.dataset}/{flag.defense}: {flag.flag}: {flag.evidence}")
    if table["dataset_is_subset"].astype(bool).any():
        click.echo("note: some datasets are SUBSETS of the official ones (see n_train, n_test).")
    click.echo(f"results: {out_dir / 'results.csv'}  (report: bench report {out_dir} --out {out_dir / 'report.html'})")


def _worst_case_lead(outcome, table) -> dict[str, list[str]] | None:
    """The worst case per image (OUT/summary.csv) that opens each dataset's summary, ranked."""
    from bench.worst_case import lead_lines

    if outcome.summary is None or outcome.summary.empty:
        return None
    worst = outcome.summary[outcome.summary["defense"].isin(set(table["defense"]))]
    flagged = set() if outcome.flags is None else set(zip(outcome.flags["dataset"], outcome.flags["defense"]))
    lines = lead_lines(worst, flagged, standard_budgets(worst["dataset"].unique()))
    return {dataset: lines[dataset] for dataset in lines} or None


def _skipped_lines(attacks: Sequence[str], threat_models: Sequence[str]) -> list[str]:
    """One line per group of attack × threat-model combinations the grid leaves out, and why."""
    groups: dict[tuple, list[str]] = {}
    for name, missing in skipped(attacks, threat_models).items():
        supported = tuple(t.value for t in ThreatModel if t in get_attack(name).threat_models)
        groups.setdefault((tuple(missing), supported), []).append(name)
    return [f"skipped {', '.join(names)} under {', '.join(missing)}: "
            f"{'they run' if len(names) > 1 else 'it runs'} under {', '.join(supported)} only"
            for (missing, supported), names in groups.items()]


def _echo_model_check(check) -> None:
    """A ``--model`` check (``bench.user_model.ModelCheck``) before any attack runs: its line, and
    its warnings on stderr."""
    click.echo(check.summary())
    for message in check.warnings:
        click.echo(f"warning: {message}", err=True)


def _sanity_line(outcome, out_dir: Path) -> str:
    """What the red flags' sanity cells found (or why there were none), in a line or two."""
    if not outcome.checks:
        return ("sanity cells: none needed (a white-box attack of the grid already breaks every defense, "
                "so none can be hiding it)")
    keys = {cell.key for cell in outcome.checks}
    rows = outcome.sanity.table[outcome.sanity.table["cell_key"].isin(keys)]
    parts = [f"{row.dataset}/{row.defense} {row.attack}@{row.eps:.3g} {row.robust_accuracy:.3f}"
             for row in rows.itertuples()]
    return (f"sanity cells ({out_dir / 'sanity'}; pgd@1 should leave ~0, pgd-4x-steps no more than pgd): "
            + "; ".join(parts))


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
    from bench.gate import check_run, parse_tolerance, write_baseline  # pandas: only here
    from bench.results import read_results

    limits = parse_tolerance(tolerance) if tolerance else None
    if update:
        written = write_baseline(baseline, read_results(run_dir), limits)
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
