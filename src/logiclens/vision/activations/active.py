"""Where a unit is active: the one rule that the masks, the report's masks and its top images share.

A unit is active at an annotation pixel where its bilinearly upsampled activation, in
float32, is greater than its threshold; for units whose ties are broken (see
:mod:`logiclens.vision.activations.ties`), also where it equals the threshold and the
pixel's tie key is at most the unit's cut.

With activation ranges (:mod:`logiclens.vision.activations.ranges`), a unit's range k is
active where that upsampled value lies in ``[low_k, high_k]`` (:func:`range_pixels`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from logiclens.vision.activations.ties import tie_keys
from logiclens.vision.activations.upsample import BilinearUpsampler

__all__ = ["active_pixels", "can_be_active", "range_pixels"]


def can_be_active(
    maxima: NDArray[np.floating], thresholds: NDArray[np.floating], ties_broken: NDArray[np.bool_] | None = None
) -> NDArray[np.bool_]:
    """Which (image, unit) maps can hold an active pixel, from their maxima (images, units).

    Upsampling never exceeds the input cells it mixes, so a map whose maximum does not
    reach the threshold has no active pixel. Compared in the maxima's precision.
    """
    limit = np.asarray(thresholds).astype(maxima.dtype)[None, :]
    possible = maxima > limit
    if ties_broken is not None:
        possible |= (maxima == limit) & np.asarray(ties_broken, bool)[None, :]
    return possible


def active_pixels(
    upsampler: BilinearUpsampler,
    maps: NDArray[np.float32],
    thresholds: NDArray[np.float32],
    units: NDArray[np.intp],
    images: NDArray[np.intp],
    tie_cuts: NDArray[np.float64] | None = None,
    unit_offset: int = 0,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(map index, flat pixel) of the active pixels of (image, unit) maps.

    Parameters
    ----------
    upsampler : BilinearUpsampler
        From the layer's map size to the annotation size.
    maps : float32 array (n, h, w)
        One map per (image, unit) pair.
    thresholds : float32 array (n,)
        Each map's unit's threshold.
    units, images : int arrays (n,)
        The pairs (for tie keys).
    tie_cuts : float array (all units,), optional
        Tie-breaking cuts; a cut < 0 means the unit's ties are not broken.
    unit_offset : int
        The layer's index of unit 0 of ``units`` and ``tie_cuts`` (a block of the layer's
        units): tie keys are always those of the layer's unit.
    """
    if tie_cuts is None or not (tie_cuts[units] >= 0).any():
        return upsampler.above(maps, thresholds)
    lower = np.nextafter(thresholds, np.float32(-np.inf))
    index, row, col, values = upsampler.blocks(maps, lower)
    pixel = row * upsampler.out_size[1] + col
    keep = values > thresholds[index]
    tied = np.flatnonzero((values == thresholds[index]) & (tie_cuts[units[index]] >= 0))
    keys = tie_keys(units[index[tied]] + unit_offset, images[index[tied]], pixel[tied])
    keep[tied] = keys <= tie_cuts[units[index[tied]]]
    return index[keep], pixel[keep]


def range_pixels(
    upsampler: BilinearUpsampler, maps: NDArray[np.float32], low: NDArray[np.float32], high: NDArray[np.float32]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """(map index, flat pixel, range index) of every pixel in one of its map's ranges.

    Parameters
    ----------
    upsampler : BilinearUpsampler
    maps : float32 array (n, h, w)
    low, high : float32 arrays (n, K)
        Each map's unit's ascending, disjoint, inclusive ranges (empty ones ``(inf, -inf)``).
    """
    lower = np.nextafter(low[:, 0], np.float32(-np.inf))
    index, row, col, values = upsampler.blocks(maps, lower)
    k = np.zeros(len(values), np.intp)
    for bound in range(1, low.shape[1]):  # K is small: the range below which each value lies
        k += values >= low[index, bound]
    keep = (values >= low[index, k]) & (values <= high[index, k])
    return index[keep], (row * upsampler.out_size[1] + col)[keep], k[keep]
