"""Activation ranges (Clustered Compositional Explanations, La Rosa et al. 2023).

Each unit's activations at the layer's own positions are split into K ranges by 1-D k-means:
its non-zero values, or all its values when the unit takes negative values. Each range is
the inclusive interval ``[low, high]`` between the smallest and largest value of its cluster
(CCE's code compares strictly on both ends, which drops each cluster's extreme values; here
they belong to the range). A pixel is in range k where its upsampled activation ``v``
satisfies ``low_k <= v <= high_k`` (:func:`~logiclens.vision.activations.active.range_pixels`);
upsampled values that fall between two ranges are in none.

Clustering (deterministic, no seed): the distinct values of a unit with their counts are
clustered exactly (the optimal 1-D k-means partition, by dynamic programming over sorted
values, O(K m^2)) when there are at most :data:`EXACT_LIMIT` distinct values; above that,
by Lloyd's algorithm on the weighted distinct values, started at the weighted quantiles
(2j + 1) / 2K and run until the partition no longer changes (at most 300 rounds), which
reaches a local optimum. A unit with fewer than K distinct values gets fewer ranges; the
others are empty (``low = inf``, ``high = -inf``) and never active.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["EXACT_LIMIT", "activation_ranges", "kmeans_1d"]

#: most distinct values clustered exactly
EXACT_LIMIT = 400


def _cluster_cost(prefix_w: NDArray, prefix_wx: NDArray, prefix_wxx: NDArray, i: NDArray, j: NDArray) -> NDArray:
    """Within-cluster sum of squares of sorted values i..j-1 (half-open), from prefix sums."""
    w = prefix_w[j] - prefix_w[i]
    wx = prefix_wx[j] - prefix_wx[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w > 0, prefix_wxx[j] - prefix_wxx[i] - wx * wx / np.where(w > 0, w, 1), 0.0)


def _exact(values: NDArray[np.float64], weights: NDArray[np.float64], k: int) -> NDArray[np.intp]:
    """Start index of each of the k clusters of sorted distinct values (optimal partition)."""
    m = len(values)
    prefix_w = np.concatenate([[0.0], np.cumsum(weights)])
    prefix_wx = np.concatenate([[0.0], np.cumsum(weights * values)])
    prefix_wxx = np.concatenate([[0.0], np.cumsum(weights * values * values)])
    starts = np.arange(m + 1)[:, None]
    ends = np.arange(m + 1)[None, :]
    cost = np.where(starts < ends, _cluster_cost(prefix_w, prefix_wx, prefix_wxx, starts, ends), np.inf)
    best = cost[0].copy()  # best[j]: the first j values in one cluster
    choice = np.zeros((k, m + 1), np.intp)
    for level in range(1, k):
        total = best[:, None] + cost  # split at i: first i values in `level` clusters, i..j-1 in one
        choice[level] = np.argmin(total, axis=0)
        best = total[choice[level], np.arange(m + 1)]
    starts, end = [], m
    for level in range(k - 1, 0, -1):
        end = int(choice[level][end])
        starts.append(end)
    return np.array([0, *reversed(starts)], np.intp)


def _lloyd(values: NDArray[np.float64], weights: NDArray[np.float64], k: int) -> NDArray[np.intp]:
    cumulative = np.cumsum(weights)
    total = cumulative[-1]
    first = np.searchsorted(cumulative, (2 * np.arange(k) + 1) / (2 * k) * total)
    centres = np.unique(values[np.minimum(first, len(values) - 1)])
    prefix_w = np.concatenate([[0.0], cumulative])
    prefix_wx = np.concatenate([[0.0], np.cumsum(weights * values)])
    starts = None
    for _ in range(300):
        bounds = (centres[:-1] + centres[1:]) / 2
        new = np.concatenate([[0], np.searchsorted(values, bounds, side="right")])
        new = np.unique(new[new < len(values)])
        if starts is not None and np.array_equal(new, starts):
            break
        starts = new
        ends = np.concatenate([starts[1:], [len(values)]])
        centres = (prefix_wx[ends] - prefix_wx[starts]) / (prefix_w[ends] - prefix_w[starts])
    assert starts is not None
    return starts


def kmeans_1d(values: NDArray[np.floating], k: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Inclusive [low, high] bounds of the k clusters of 1-D values (see the module's description).

    Parameters
    ----------
    values : array of float
    k : int

    Returns
    -------
    low, high : float64 arrays (k,)
        Ascending; clusters that could not be formed are ``(inf, -inf)``.
    """
    distinct, counts = np.unique(np.asarray(values, np.float64).ravel(), return_counts=True)
    low, high = np.full(k, np.inf), np.full(k, -np.inf)
    if len(distinct) == 0:
        return low, high
    n = min(k, len(distinct))
    weights = counts.astype(np.float64)
    starts = _exact(distinct, weights, n) if len(distinct) <= EXACT_LIMIT else _lloyd(distinct, weights, n)
    ends = np.concatenate([starts[1:], [len(distinct)]]) - 1
    low[: len(starts)], high[: len(starts)] = distinct[starts], distinct[ends]
    return low, high


def activation_ranges(activations: np.ndarray, k: int, batch_units: int = 64) -> tuple[NDArray, NDArray]:
    """Each unit's K ranges from (images, units, h, w) activations (read a block of units at a time).

    Returns
    -------
    low, high : float64 arrays (units, K)
    """
    n_units = activations.shape[1]
    low, high = np.full((n_units, k), np.inf), np.full((n_units, k), -np.inf)
    for start in range(0, n_units, batch_units):
        block = np.asarray(activations[:, start : start + batch_units], np.float32)
        for offset in range(block.shape[1]):
            values = block[:, offset].ravel()
            if values.min() >= 0:
                values = values[values != 0]
            low[start + offset], high[start + offset] = kmeans_1d(values, k)
    return low, high
