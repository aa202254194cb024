"""Reports: tables, plots and HTML built from a run's ``results.csv``."""
