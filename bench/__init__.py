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

# bench.api imports torch, pandas and the runner inside its functions: ``import bench`` stays cheap.
from bench.api import benchmark, load_dataset, report

__version__ = "0.1.0"

__all__ = ["benchmark", "load_dataset", "report", "__version__"]
