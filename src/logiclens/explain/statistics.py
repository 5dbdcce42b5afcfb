"""How much of an explanation survives: splits, permutation nulls, p-values, FDR control.

A formula's IoU on the examples it was searched on is optimistic, more so the longer the
formula and the smaller the probing set. These helpers give the pieces to measure that:
example-level splits (never by pixel or token), permutation p-values, and the
Benjamini-Hochberg procedure across units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "benjamini_hochberg",
    "choose_length",
    "empirical_p_value",
    "gumbel_p_value",
    "kfold_examples",
    "null_permutations",
    "split_examples",
]


def _group_ids(n_examples: int, groups: Sequence[object] | None) -> NDArray[np.intp]:
    if groups is None:
        return np.arange(n_examples)
    if len(groups) != n_examples:
        raise ValueError(f"{len(groups)} group keys for {n_examples} examples")
    _, ids = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return ids.ravel()


def split_examples(
    n_examples: int,
    test_size: float = 0.2,
    random_state: int = 0,
    groups: Sequence[object] | None = None,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Split examples into a search part and a held-out part.

    Parameters
    ----------
    n_examples : int
    test_size : float in (0, 1)
        Target fraction of examples held out.
    random_state : int
    groups : sequence, optional
        A group key per example (e.g. the source object of a pasted cut-out): examples of
        one group always land on the same side. Groups are shuffled and taken into the
        held-out part until it reaches ``test_size`` of the examples.

    Returns
    -------
    search, heldout : sorted int arrays of example indices
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size}")
    if n_examples < 2:
        raise ValueError("at least two examples are needed to hold some out")
    ids = _group_ids(n_examples, groups)
    n_groups = int(ids.max()) + 1
    if n_groups < 2:
        raise ValueError("all examples share one group; nothing can be held out")
    order = np.random.default_rng(random_state).permutation(n_groups)
    sizes = np.bincount(ids, minlength=n_groups)[order]
    target = test_size * n_examples
    taken = int(np.searchsorted(np.cumsum(sizes), target, side="left")) + 1
    taken = min(max(taken, 1), n_groups - 1)
    held_groups = np.zeros(n_groups, bool)
    held_groups[order[:taken]] = True
    held = held_groups[ids]
    return np.flatnonzero(~held), np.flatnonzero(held)


def kfold_examples(
    n_examples: int, n_splits: int = 5, random_state: int = 0, groups: Sequence[object] | None = None
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """K folds of examples (whole groups per fold): a list of (search, held-out) index arrays."""
    ids = _group_ids(n_examples, groups)
    n_groups = int(ids.max()) + 1
    if not 2 <= n_splits <= n_groups:
        raise ValueError(f"n_splits must lie in [2, {n_groups}] (the number of groups), got {n_splits}")
    fold_of_group = np.empty(n_groups, np.intp)
    fold_of_group[np.random.default_rng(random_state).permutation(n_groups)] = np.arange(n_groups) % n_splits
    fold = fold_of_group[ids]
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]


def empirical_p_value(observed: float, null: ArrayLike) -> float:
    """(1 + #{null >= observed}) / (1 + R): never 0, at least 1 / (R + 1)."""
    values = np.asarray(null, dtype=np.float64)
    return float((1 + np.count_nonzero(values >= observed)) / (1 + values.size))


def gumbel_p_value(observed: float, null: ArrayLike) -> float:
    """P(null maximum >= observed) under a Gumbel law fitted to the null by moments.

    The best IoU over many formulas is a maximum, whose law is close to a Gumbel
    distribution; fitting one to R permutation maxima extrapolates the tail beyond
    1 / (R + 1), which a multiple-testing correction over many units needs. With a
    degenerate null (all equal), the p-value is 1 at or below it and 0 above.
    """
    values = np.asarray(null, dtype=np.float64)
    if values.size < 2:
        raise ValueError("the Gumbel fit needs at least two null values")
    spread = float(values.std(ddof=1))
    if spread == 0.0:
        return 1.0 if observed <= values[0] else 0.0
    scale = spread * math.sqrt(6.0) / math.pi
    location = float(values.mean()) - 0.5772156649015329 * scale
    return float(-np.expm1(-np.exp(-(observed - location) / scale)))


def benjamini_hochberg(p_values: ArrayLike, alpha: float = 0.05) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Benjamini-Hochberg false-discovery-rate control.

    Parameters
    ----------
    p_values : array of float; NaN entries (untested units) are ignored
    alpha : float

    Returns
    -------
    rejected : bool array
        True where the null hypothesis is rejected at FDR ``alpha``.
    adjusted : float array
        BH-adjusted p-values (q-values), NaN where the input was NaN.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    rejected = np.zeros(p.shape, bool)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if m == 0:
        return rejected, adjusted
    order = tested[np.argsort(p[tested], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    monotone = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted[order] = np.minimum(monotone, 1.0)
    passing = np.flatnonzero(p[order] <= alpha * np.arange(1, m + 1) / m)
    if len(passing):
        rejected[order[: passing[-1] + 1]] = True
    return rejected, adjusted


def choose_length(heldout_by_length: ArrayLike) -> int:
    """The formula length with the best held-out score (the shortest among ties); 0 if none."""
    scores = np.asarray(heldout_by_length, dtype=np.float64)
    if scores.size == 0 or np.all(np.isnan(scores)):
        return 0
    best = np.nanmax(scores)
    return int(np.flatnonzero(scores == best)[0]) + 1


def null_permutations(n_examples: int, n_permutations: int, random_state: int) -> list[NDArray[np.intp]]:
    """The permutation null's orders of the search examples: ``n_permutations`` seeded permutations of ``n_examples``.

    Every pipeline draws its null from here, so that the same seed gives the same null.
    """
    rng = np.random.default_rng([random_state, 1])
    return [rng.permutation(n_examples) for _ in range(n_permutations)]
