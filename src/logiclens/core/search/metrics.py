"""Agreement metrics between a unit mask M and a formula mask F, computed from counts.

Every metric takes ``intersection`` = |M AND F|, ``size`` = |F| and ``n_active`` = |M|
(arrays or scalars of integers) and returns float64. Each is one division of integers, so
the fast search and a plain implementation that counts masks give identical values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.core.search.names import METRIC_NAMES

__all__ = ["METRICS", "f1", "iou", "precision", "recall"]


def _divide(numerator: NDArray, denominator: NDArray) -> NDArray[np.float64]:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def iou(intersection: ArrayLike, size: ArrayLike, n_active: ArrayLike) -> NDArray[np.float64]:
    """Intersection over union, |M AND F| / |M OR F| (Jaccard index)."""
    i, s, m = (np.asarray(x, dtype=np.int64) for x in (intersection, size, n_active))
    return _divide(i, s + m - i)


def precision(intersection: ArrayLike, size: ArrayLike, n_active: ArrayLike) -> NDArray[np.float64]:
    """|M AND F| / |F|: how much of the formula's mask the unit covers."""
    return _divide(np.asarray(intersection, np.int64), np.asarray(size, np.int64))


def recall(intersection: ArrayLike, size: ArrayLike, n_active: ArrayLike) -> NDArray[np.float64]:
    """|M AND F| / |M|: how much of the unit's mask the formula covers."""
    return _divide(np.asarray(intersection, np.int64), np.asarray(n_active, np.int64))


def f1(intersection: ArrayLike, size: ArrayLike, n_active: ArrayLike) -> NDArray[np.float64]:
    """Dice / F1 score, 2 |M AND F| / (|M| + |F|)."""
    i, s, m = (np.asarray(x, dtype=np.int64) for x in (intersection, size, n_active))
    return _divide(2 * i, s + m)


#: each metric by its name (the names, importable without numpy, live in :mod:`.names`)
METRICS: dict[str, Callable[[ArrayLike, ArrayLike, ArrayLike], NDArray[np.float64]]] = dict(
    zip(METRIC_NAMES, (iou, precision, recall, f1), strict=True)
)
