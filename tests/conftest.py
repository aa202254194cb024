"""Shared fixtures: one model/adversarial cache per test session, real digits data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_SUBSET = SHARED_DATA / "mnist-subset.npz"

# Two cores: one torch thread per process keeps parallel tests from oversubscribing.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Path:
    """Every test shares one cache, so the digits models train once per session."""
    root = tmp_path_factory.mktemp("bench-cache")
    previous = os.environ.get("BENCH_CACHE_DIR")
    os.environ["BENCH_CACHE_DIR"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("BENCH_CACHE_DIR", None)
    else:
        os.environ["BENCH_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def digits():
    from bench.datasets import load_dataset

    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def mnist_subset() -> Path:
    """The real MNIST subset shipped in ../shared/data (skips where it is absent)."""
    if not MNIST_SUBSET.exists():
        pytest.skip(f"{MNIST_SUBSET} not present")
    return MNIST_SUBSET
