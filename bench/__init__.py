"""dundi-bench: an adversarial-robustness benchmarking suite.

Data flows one way: dataset -> model -> defense -> attack -> metrics ->
results table -> report.  ``bench/`` holds the CLI, runner, datasets, model
zoo, caching and the results store; ``defenses/``, ``attacks/`` and
``reports/`` hold the plugins, the ART attack registry and the reports.
"""

__version__ = "0.1.0"
