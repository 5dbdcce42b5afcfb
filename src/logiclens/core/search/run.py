"""Search many units: batches of units spread over local processes or a Ray cluster, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import scipy.sparse as sp

from logiclens.core.batching import even_batches
from logiclens.core.masks import UnitMasks
from logiclens.core.parallel import map_batches, n_workers
from logiclens.core.search.beam import BeamSettings, PrimitiveTable, UnitResult, search_units

if TYPE_CHECKING:
    from logiclens.core.search.optimal import OptimalResult

__all__ = ["certified_all", "certify_all", "search_all"]


@dataclass(frozen=True)
class _UnitBatch:
    """Some consecutive units and their rows of the count matrix (all a task needs of the masks)."""

    units: range
    counts: sp.csr_array


def _run_batches(
    work: Callable[[_UnitBatch], list[Any]], masks: UnitMasks, n_jobs: int, verbose: int, desc: str,
    backend: str = "local", address: str | None = None,
) -> list[Any]:  # fmt: skip
    """``work`` over batches of units (:func:`~logiclens.core.parallel.map_batches`); results in unit order.

    The job (the primitive table, the settings) is shipped once; each batch carries only its
    own units' counts, so a worker's memory is bounded by its batch, not by the layer.
    """
    from tqdm.auto import tqdm

    n_units = len(masks)
    workers = n_workers(backend, n_jobs, address)
    if backend == "local" and n_units < 4 * workers:  # starting processes costs more than a few units' search
        workers = 1
    batches = [
        _UnitBatch(range(b.start, b.stop), masks.counts[b.start : b.stop])
        for b in even_batches(n_units, n_units if workers == 1 else 8 * workers)
    ]
    progress = tqdm(total=n_units, desc=desc, unit="unit", disable=None if verbose else True)
    results: list[Any] = []
    with progress:
        for batch_results in map_batches(work, batches, backend, workers, address):
            results.extend(batch_results)
            progress.update(len(batch_results))
    return results


class _Beam:
    """Picklable batch job: the beam search of some units."""

    def __init__(self, table: PrimitiveTable, settings: BeamSettings) -> None:
        self.table, self.settings = table, settings

    def __call__(self, batch: _UnitBatch) -> list[UnitResult]:
        return search_units(self.table, batch.counts, range(len(batch.units)), self.settings)


class _Certified:
    """Picklable batch job: the certified search of some units."""

    def __init__(
        self, table: PrimitiveTable, settings: BeamSettings, budget_seconds: float | None, max_nodes: int | None
    ) -> None:
        self.table, self.settings = table, settings
        self.budget_seconds, self.max_nodes = budget_seconds, max_nodes

    def __call__(self, batch: _UnitBatch) -> list[OptimalResult]:
        from logiclens.core.search.optimal import optimal_units

        rows = range(len(batch.units))
        return optimal_units(self.table, batch.counts, rows, self.settings, self.budget_seconds, self.max_nodes)


class _Certify:
    """Picklable batch job: certificates and ceilings of beam results."""

    def __init__(self, table: PrimitiveTable, results: Sequence[UnitResult], settings: BeamSettings) -> None:
        self.table, self.results, self.settings = table, results, settings

    def __call__(self, batch: _UnitBatch) -> list[tuple[float, float]]:
        from logiclens.core.search.optimal import certificates

        rows = range(len(batch.units))
        return certificates(self.table, batch.counts, rows, [self.results[u] for u in batch.units], self.settings)


def search_all(
    table: PrimitiveTable,
    masks: UnitMasks,
    settings: BeamSettings,
    n_jobs: int = 1,
    verbose: int = 0,
    backend: str = "local",
    address: str | None = None,
) -> list[UnitResult]:
    """Search every unit of ``masks``, in parallel when ``n_jobs != 1``; results in unit order.

    Parameters
    ----------
    table : PrimitiveTable
        The primitives of the concept set the masks are counted over.
    masks : UnitMasks
    settings : BeamSettings
    n_jobs : int
        Processes (-1: all cores).
    verbose : int
        1 shows a progress bar on a terminal.
    backend, address
        Where the batches run (:func:`~logiclens.core.parallel.map_batches`): ``"local"``
        or ``"ray"``, and the Ray cluster.
    """
    return _run_batches(_Beam(table, settings), masks, n_jobs, verbose, "searching units", backend, address)


def certified_all(
    table: PrimitiveTable,
    masks: UnitMasks,
    settings: BeamSettings,
    budget_seconds: float | None = None,
    max_nodes: int | None = None,
    n_jobs: int = 1,
    verbose: int = 0,
    backend: str = "local",
    address: str | None = None,
) -> list[OptimalResult]:
    """Certified search (:func:`~logiclens.core.search.optimal.optimal_unit`) of every unit, like :func:`search_all`.

    Parameters
    ----------
    table, masks, settings, n_jobs, verbose, backend, address
        As for :func:`search_all`; ``settings`` must maximise the IoU without penalty.
    budget_seconds, max_nodes : optional
        Budget per unit (wall seconds of the branch and bound, expanded formulas).

    Returns
    -------
    list of OptimalResult
        In unit order.
    """
    job = _Certified(table, settings, budget_seconds, max_nodes)
    return _run_batches(job, masks, n_jobs, verbose, "certified search", backend, address)


def certify_all(
    table: PrimitiveTable,
    masks: UnitMasks,
    results: Sequence[UnitResult],
    settings: BeamSettings,
    n_jobs: int = 1,
    verbose: int = 0,
    backend: str = "local",
    address: str | None = None,
) -> list[tuple[float, float]]:
    """``(upper_bound, ceiling)`` of every unit's beam answer (:func:`~logiclens.core.search.optimal.certificates`)."""
    job = _Certify(table, results, settings)
    return _run_batches(job, masks, n_jobs, verbose, "certifying units", backend, address)
