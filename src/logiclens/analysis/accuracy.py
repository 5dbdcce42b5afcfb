"""Is the model more accurate when a well-explained unit fires? (Mu & Andreas, section 5, Figure 7)

Images count as the examples: an image is one where a unit is *active* when its unit mask
is non-empty, i.e. at least one annotation pixel of its bilinearly upsampled map exceeds the
unit's threshold (the same rule as the masks the search explains,
:mod:`logiclens.vision.activations.active`). Accuracy when active is the fraction of those
images, among the ones with a ground-truth label, that the model classifies right. The
numbers themselves come from :mod:`logiclens.explain.accuracy`, the one implementation that
text runs use too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from logiclens.core.batching import batch_slices
from logiclens.explain.accuracy import accuracy_when_active, correlation_by_length, iou_accuracy_correlation
from logiclens.runs.reading import LayerData
from logiclens.vision.activations.active import active_pixels, can_be_active
from logiclens.vision.activations.upsample import BilinearUpsampler

__all__ = [
    "accuracy_when_active",
    "correlation_by_length",
    "correlations",
    "image_activity",
    "iou_accuracy_correlation",
]


def image_activity(
    activations: NDArray[np.floating],
    thresholds: NDArray[np.floating],
    mask_size: tuple[int, int],
    tie_cuts: NDArray[np.floating] | None = None,
    batch_size: int = 32,
) -> NDArray[np.bool_]:
    """Which images each unit is active on: its unit mask there is non-empty.

    Parameters
    ----------
    activations : (images, units, h, w) array (a memmap is read batch by batch)
    thresholds : (units,) array
        NaN for a unit that is never active.
    mask_size : (H, W)
        The annotation resolution the maps are upsampled to.
    tie_cuts : (units,) array, optional

    Returns
    -------
    bool array, shape (units, images)
    """
    n_images, n_units, h, w = activations.shape
    limits = np.where(np.isfinite(thresholds), thresholds, np.inf).astype(np.float32)
    ties = None if tie_cuts is None else np.asarray(tie_cuts) >= 0
    upsampler = BilinearUpsampler((h, w), mask_size)
    active = np.zeros((n_units, n_images), bool)
    for part in batch_slices(n_images, batch_size):
        maps = np.asarray(activations[part], np.float32)
        maxima = maps.reshape(len(maps), n_units, -1).max(axis=2)
        image, unit = np.nonzero(can_be_active(maxima, limits, ties))
        if not len(image):
            continue
        index, _ = active_pixels(upsampler, maps[image, unit], limits[unit], unit, image + part.start, tie_cuts)
        hit = np.unique(index)
        active[unit[hit], image[hit] + part.start] = True
    return active


def correlations(
    layer: LayerData,
    accuracy: NDArray[np.float64],
    source: str = "model",
    heldout_by_length: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Pearson r (with p and n) between IoU and accuracy when active, per maximum formula length.

    Search IoU at every maximum length comes from ``best_by_length`` (the best formula of
    length at most l). Held-out IoU at every maximum length comes from ``heldout_by_length``
    (:func:`logiclens.analysis.heldout.heldout_by_length`, in unit order); without it, from
    the reported formulas' ``heldout_iou``: one row, at the run's maximum length.

    Returns
    -------
    DataFrame
        ``layer, source, iou_kind (search|heldout), max_length, mean_iou, r, p, n_units``.
    """
    frames = []
    if layer.best_by_length is not None:
        table = correlation_by_length(layer.best_by_length, accuracy)
        table.insert(0, "iou_kind", "search")
        frames.append(table)
    else:
        frames.append(_row(layer.results["iou"].to_numpy(float), accuracy, _run_length(layer), "search"))
    if heldout_by_length is not None:
        for length, part in heldout_by_length.groupby("max_length", sort=True):
            frames.append(_row(part["heldout_iou"].to_numpy(float), accuracy, int(length), "heldout"))
    elif "heldout_iou" in layer.results and layer.results["heldout_iou"].notna().any():
        length = int(frames[0]["max_length"].max())
        frames.append(_row(layer.results["heldout_iou"].to_numpy(float), accuracy, length, "heldout"))
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "source", source)
    table.insert(0, "layer", layer.name)
    return table


def _run_length(layer: LayerData) -> int:
    lengths = layer.results["length"]
    return int(lengths.max()) if lengths.notna().any() else 0


def _row(iou: NDArray[np.float64], accuracy: NDArray[np.float64], length: int, kind: str) -> pd.DataFrame:
    r, p, n = iou_accuracy_correlation(iou, accuracy)
    mean = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    return pd.DataFrame([{"iou_kind": kind, "max_length": length, "mean_iou": mean, "r": r, "p": p, "n_units": n}])
