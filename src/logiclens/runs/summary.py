"""The per-layer summary of a run's results: the one definition that the command line and the report show."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["DETECTOR_IOU", "summarize"]

#: NetDissect's line above which a unit counts as a detector of its label
DETECTOR_IOU = 0.04


def _flags(column: pd.Series) -> pd.Series:
    """True where a flag column holds True (bools, or objects read back from CSV); missing is False."""
    return column.map(lambda flag: flag is True or flag is np.True_).astype(bool)


def summarize(results: pd.DataFrame, detector_iou: float = DETECTOR_IOU) -> pd.DataFrame:
    """Per layer: how many units are explained, how well, and how much survives validation.

    Parameters
    ----------
    results : pandas.DataFrame
        ``results.csv`` rows (a ``layer`` column, ``formula``, ``iou``, ...).
    detector_iou : float
        A unit is *explained* when its formula's IoU is above this (NetDissect's 0.04).

    Returns
    -------
    pandas.DataFrame
        One row per layer, in order of appearance: ``units``, ``with_formula``,
        ``explained`` (IoU > ``detector_iou`` on the search images), ``explained_fraction``,
        ``mean_iou``, ``median_iou``, ``mean_atomic_iou`` (single concepts); where the run
        has them, ``mean_heldout_iou``; and with a null, ``significant`` (units whose best
        formula beats the permutation null at the run's false-discovery rate),
        ``significant_heldout_iou`` (their mean held-out IoU) and ``null_explained`` (units
        whose mean best IoU under the null is above the line). Where the run has the
        certificate columns (``docs/search.md``): ``mean_ceiling`` (best IoU of any union of
        signatures), ``mean_upper_bound``, ``mean_beam_gap`` (``upper_bound - iou``),
        ``proven_optimal`` (units whose answer is proven best) and ``beam_missed`` (units where
        an optimal search found more than the beam).
    """
    iou = pd.to_numeric(results["iou"], errors="coerce")
    layer = results["layer"]
    grouped = iou.groupby(layer, sort=False)
    formula = results["formula"].fillna("").astype(str) if "formula" in results else pd.Series("", results.index)
    summary = pd.DataFrame(
        {
            "units": grouped.size(),
            "with_formula": (formula != "").groupby(layer, sort=False).sum().astype(int),
            "explained": (iou > detector_iou).groupby(layer, sort=False).sum().astype(int),
        }
    )
    summary["explained_fraction"] = summary["explained"] / summary["units"]
    summary["mean_iou"] = grouped.mean()
    summary["median_iou"] = grouped.median()
    if "best_atomic_iou" in results:
        summary["mean_atomic_iou"] = (
            pd.to_numeric(results["best_atomic_iou"], errors="coerce").groupby(layer, sort=False).mean()
        )
    heldout = pd.to_numeric(results["heldout_iou"], errors="coerce") if "heldout_iou" in results else None
    if heldout is not None and heldout.notna().any():
        summary["mean_heldout_iou"] = heldout.groupby(layer, sort=False).mean()
    if "null_mean" in results and pd.to_numeric(results["null_mean"], errors="coerce").notna().any():
        flags = _flags(results["significant"])
        summary["significant"] = flags.groupby(layer, sort=False).sum().astype(int)
        if heldout is not None:
            summary["significant_heldout_iou"] = heldout.where(flags).groupby(layer, sort=False).mean()
        null_mean = pd.to_numeric(results["null_mean"], errors="coerce")
        summary["null_explained"] = (null_mean > detector_iou).groupby(layer, sort=False).sum().astype(int)
    for column, name in (("ceiling", "mean_ceiling"), ("upper_bound", "mean_upper_bound")):
        values = pd.to_numeric(results[column], errors="coerce") if column in results else None
        if values is not None and values.notna().any():
            summary[name] = values.groupby(layer, sort=False).mean()
    if "mean_upper_bound" in summary:
        gap = pd.to_numeric(results["upper_bound"], errors="coerce") - iou
        summary["mean_beam_gap"] = gap.groupby(layer, sort=False).mean()
    if "certificate" in results and results["certificate"].notna().any():
        proven = results["certificate"].astype(str) == "optimal"
        summary["proven_optimal"] = proven.groupby(layer, sort=False).sum().astype(int)
    if "beam_iou" in results and "mean_upper_bound" in summary:
        missed = pd.to_numeric(results["beam_iou"], errors="coerce") < iou
        summary["beam_missed"] = missed.groupby(layer, sort=False).sum().astype(int)
    summary.index.name = "layer"
    return summary
