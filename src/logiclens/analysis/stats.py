"""Bootstrap confidence intervals for the analyses' effects."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["bootstrap_mean"]


def bootstrap_mean(values: ArrayLike, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Mean of ``values`` with a percentile bootstrap confidence interval.

    Parameters
    ----------
    values : array of float
        NaN values are dropped.
    n_boot : int
        Resamples (with replacement, of the same size).
    seed : int
    level : float
        Coverage of the interval.

    Returns
    -------
    dict
        ``mean, low, high, n``; NaN for an empty input.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return {"mean": float(x.mean()), "low": float(low), "high": float(high), "n": len(x)}
