"""A user's model factory, as `--model digits_factory:build` imports it (tests/bench/test_user_model.py)."""

from bench.datasets import load_dataset
from bench.models import build_classifier


def build():
    """The suite's digits architecture, untrained: the weights come with --weights."""
    return build_classifier(load_dataset("digits"))
