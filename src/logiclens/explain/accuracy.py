"""Does explaining a unit well go with the model being right when it fires? (Mu & Andreas, §5)

For each unit n, the accuracy of the model on the examples where the unit is active
(M_n(x) = 1), set against the unit's IoU; the paper reports Pearson r = -0.60 for NLI at
length 3 and r = 0.31 for vision. :func:`correlation_by_length` gives r for every maximum
formula length from one search (the paper's Figure 7, bottom).

This is the one implementation for images and text: text runs call it on sentence or pair
masks, :mod:`logiclens.analysis` on per-image activity (an image counts as an example where
the unit is active when its unit mask, the upsampled map above the threshold, is non-empty).
numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

__all__ = ["accuracy_when_active", "correlation_by_length", "iou_accuracy_correlation"]


def accuracy_when_active(unit_masks: ArrayLike, correct: ArrayLike) -> NDArray[np.float64]:
    """Per unit, the fraction of correct predictions among the examples where it is active.

    Parameters
    ----------
    unit_masks : bool array, shape (U, N)
    correct : bool array, shape (N,)
        Whether the model's prediction on each example is right.

    Returns
    -------
    ndarray, shape (U,)
        NaN for a unit that is never active.
    """
    masks = np.asarray(unit_masks, dtype=bool)
    right = np.asarray(correct, dtype=bool)
    if masks.ndim != 2 or masks.shape[1] != right.shape[0]:
        raise ValueError(f"unit masks of shape {masks.shape} do not match {right.shape[0]} examples")
    active = masks.sum(axis=1)
    hits = masks.astype(np.int64) @ right.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(active > 0, hits / np.maximum(active, 1), np.nan)


def iou_accuracy_correlation(iou: ArrayLike, accuracy: ArrayLike) -> tuple[float, float, int]:
    """Pearson r and its two-sided p-value over the units where both values are finite.

    Returns
    -------
    r, p, n : float, float, int
        NaN for r and p with fewer than 3 units or a constant input.
    """
    x, y = np.asarray(iou, dtype=float), np.asarray(accuracy, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return float("nan"), float("nan"), n
    result = stats.pearsonr(x[keep], y[keep])
    return float(result.statistic), float(result.pvalue), n


def correlation_by_length(best_by_length: pd.DataFrame, accuracy: ArrayLike) -> pd.DataFrame:
    """Pearson r between IoU and accuracy-when-active, for every maximum formula length.

    Parameters
    ----------
    best_by_length : DataFrame
        Units x exact lengths 1..L (an explainer's ``best_by_length_``); the IoU at maximum
        length l is the best over lengths 1..l.
    accuracy : array, shape (U,)
        :func:`accuracy_when_active`, in the same unit order.

    Returns
    -------
    DataFrame
        ``max_length, mean_iou, r, p, n_units``.
    """
    best = best_by_length.to_numpy(dtype=float)
    cumulative = np.fmax.accumulate(best, axis=1)
    rows = []
    for j, length in enumerate(best_by_length.columns):
        r, p, n = iou_accuracy_correlation(cumulative[:, j], accuracy)
        column = cumulative[:, j]
        mean = float(column[np.isfinite(column)].mean()) if np.isfinite(column).any() else float("nan")
        rows.append({"max_length": int(length), "mean_iou": mean, "r": r, "p": p, "n_units": n})
    return pd.DataFrame(rows)
