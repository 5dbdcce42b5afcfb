"""Search many units: batches of units spread over processes (joblib), with a progress bar."""

from __future__ import annotations

from logiclens.core.batching import even_batches
from logiclens.core.masks import UnitMasks
from logiclens.core.search.beam import BeamSettings, PrimitiveTable, UnitResult, search_units

__all__ = ["search_all"]


def search_all(
    table: PrimitiveTable, masks: UnitMasks, settings: BeamSettings, n_jobs: int = 1, verbose: int = 0
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
    """
    from joblib import Parallel, delayed, effective_n_jobs
    from tqdm.auto import tqdm

    n_units = len(masks)
    workers = effective_n_jobs(n_jobs)
    if n_units < 4 * workers:  # starting worker processes costs more than a few units' search
        workers = 1
    batches = [range(b.start, b.stop) for b in even_batches(n_units, n_units if workers == 1 else 8 * workers)]
    progress = tqdm(total=n_units, desc="searching units", unit="unit", disable=None if verbose else True)
    results: list[UnitResult] = []
    with progress:
        if workers == 1:
            outputs = (search_units(table, masks.counts, batch, settings) for batch in batches)
        else:
            outputs = Parallel(n_jobs=workers, return_as="generator")(
                delayed(search_units)(table, masks.counts, batch, settings) for batch in batches
            )
        for batch_results in outputs:
            results.extend(batch_results)
            progress.update(len(batch_results))
    return results
