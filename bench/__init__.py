"""dundi-bench: an adversarial-robustness benchmarking suite.

Data flows one way: dataset -> model -> defense -> attack -> metrics ->
results table -> report.  ``bench/`` holds the CLI, runner, datasets, model
zoo, caching and the results store; ``defenses/``, ``attacks/`` and
``reports/`` hold the plugins, the ART attack registry and the reports.

``bench.benchmark(model)`` benchmarks your own ``nn.Module`` from Python and
returns the results table (see :mod:`bench.api`).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``bench.benchmark`` is imported on first use: defenses/ and attacks/ import bench
    # submodules, so importing the runner here would be circular (and slow).
    if name == "benchmark":
        from bench.api import benchmark

        return benchmark
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
