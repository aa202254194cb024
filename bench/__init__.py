"""dundi-bench: an adversarial-robustness benchmarking suite.

Data flows one way: dataset -> model -> defense -> attack -> metrics ->
results table -> report.  ``bench/`` holds the CLI, runner, datasets, model
zoo, caching and the results store; ``defenses/``, ``attacks/`` and
``reports/`` hold the plugins, the ART attack registry and the reports.

From Python (see :mod:`bench.api`):

``bench.load_dataset(name, seed)``   the suite's own train / validation / test split, to train a model on
``bench.benchmark(model, ...)``      benchmark your ``nn.Module``; returns the results table
``bench.report(run_dir, out=...)``   the HTML report of a run folder

Example::

    import bench
    data = bench.load_dataset("digits")                 # train on data.x_train, never on data.x_test
    table = bench.benchmark(net.eval(), dataset="digits", defenses="none")
    bench.report(table.attrs["out_dir"], out="report.html")
"""

__version__ = "0.1.0"

__all__ = ["benchmark", "load_dataset", "report", "__version__"]


def __getattr__(name: str):
    # Imported on first use: defenses/ and attacks/ import bench submodules (importing the runner
    # here would be circular), and ``import bench`` must stay cheap for the CLI.
    if name in ("benchmark", "load_dataset", "report"):
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
