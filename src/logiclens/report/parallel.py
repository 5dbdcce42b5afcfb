"""Run independent tasks serially or in worker processes (joblib), with a progress bar."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["run_tasks"]

T = TypeVar("T")


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


def run_tasks(
    function: Callable[..., T],
    tasks: Sequence[tuple[Any, ...]],
    n_jobs: int = 1,
    shared: tuple[Any, ...] = (),
    desc: str = "",
    unit: str = "task",
    weights: Sequence[int] | None = None,
    verbose: int = 0,
) -> Iterator[T]:
    """``function(*shared, *task)`` for every task, in order.

    Parameters
    ----------
    function : callable
        A module-level function (workers import it).
    tasks : sequence of tuples
    n_jobs : int
        Worker processes (-1: all cores); 1, a single task, or ``shared`` arguments that cannot
        be pickled (a probe holding an open file) run in this process.
    shared : tuple
        Leading arguments of every call.
    desc, unit : str
        Progress bar labels.
    weights : sequence of int, optional
        Progress per task (default 1 each).
    verbose : int

    Yields
    ------
    The results, in the order of ``tasks``.
    """
    from joblib import Parallel, delayed, effective_n_jobs

    weights = [1] * len(tasks) if weights is None else list(weights)
    workers = min(effective_n_jobs(n_jobs), len(tasks))
    if workers > 1 and not _picklable(shared):
        workers = 1
    progress = tqdm(total=sum(weights), desc=desc, unit=unit, disable=None if verbose else True)
    with progress:
        if workers <= 1:
            results: Iterator[T] = (function(*shared, *task) for task in tasks)
        else:
            results = Parallel(n_jobs=workers, return_as="generator")(
                delayed(function)(*shared, *task) for task in tasks
            )
        for result, weight in zip(results, weights):
            progress.update(weight)
            yield result
