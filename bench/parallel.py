"""Run independent jobs through joblib: in-process, local worker processes, or a Dask cluster.

``jobs == 1`` with the default backend runs in this process (no pickling, easy
debugging). Otherwise joblib dispatches to ``jobs`` local processes (``loky``)
or, with ``backend="dask"``, to the Dask cluster at ``scheduler`` (a local
``dask.distributed`` cluster of ``jobs`` single-threaded workers when none is
given). Workers share results through the run folder and the on-disk cache,
so on a multi-machine cluster both must be on a shared filesystem.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterable, Iterator, TypeVar

from bench.errors import BenchError

BACKENDS = ("loky", "dask")
T = TypeVar("T")
R = TypeVar("R")


@contextlib.contextmanager
def _dask_backend(jobs: int, scheduler: str | None) -> Iterator[None]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise BenchError("--backend dask needs dask.distributed: pip install 'dundi-bench[dask]'") from None
    if scheduler:
        try:
            client = Client(scheduler)
        except Exception as error:  # OSError/TimeoutError (unreachable), ValueError (bad address)
            text = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise BenchError(f"cannot reach the Dask scheduler {scheduler!r}: {text}") from None
    else:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    import joblib

    with client, joblib.parallel_config(backend="dask"):
        yield
    if not scheduler:
        cluster.close()


def _limit_threads(jobs: int, func: Callable[[T], R]) -> Callable[[T], R]:
    """Give each worker its share of the cores, so ``jobs`` workers do not oversubscribe them."""
    threads = max(1, (os.cpu_count() or 1) // jobs)

    def limited(item: T) -> R:
        import torch

        torch.set_num_threads(threads)
        return func(item)

    return limited


def parallel_map(func: Callable[[T], R], items: Iterable[T], *, jobs: int = 1, backend: str = "loky",
                 scheduler: str | None = None) -> Iterator[R]:
    """``func(item)`` for every item, yielded as each finishes (in completion order)."""
    items = list(items)
    if backend not in BACKENDS:
        raise BenchError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if jobs < 1:
        raise BenchError(f"--jobs must be at least 1, got {jobs}")
    if jobs == 1 and backend == "loky":
        yield from map(func, items)
        return
    import joblib  # here: the CLI reads BACKENDS for its help text

    context = _dask_backend(jobs, scheduler) if backend == "dask" else contextlib.nullcontext()
    with context:
        runner = joblib.Parallel(n_jobs=jobs, return_as="generator_unordered")
        yield from runner(joblib.delayed(_limit_threads(jobs, func))(item) for item in items)
