"""Top-activating images per unit, and the unit's and its formula's masks on them.

Masks are computed exactly as the dissection computes them: each (image, unit) map is
upsampled bilinearly to the annotation size and compared with the unit's threshold in
float32 (``activation > T``, plus the run's tie-breaking rule where it has one); the
formula's mask is the formula evaluated on the signature of every annotation pixel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from logiclens.core.batching import batch_slices
from logiclens.vision.activations.active import active_pixels, can_be_active, range_pixels
from logiclens.vision.activations.upsample import BilinearUpsampler

__all__ = ["ExampleMasks", "example_masks", "image_statistics", "range_statistics", "top_examples"]


def image_statistics(
    activations: np.ndarray, batch_size: int = 64, verbose: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Per image and unit, the largest and the mean activation, in one pass over the record.

    Parameters
    ----------
    activations : array (images, units, h, w)
        Usually a float16 memmap.
    batch_size : int
    verbose : int

    Returns
    -------
    maxima, means : float32 arrays (images, units)
    """
    n_images, n_units = activations.shape[:2]
    maxima = np.empty((n_images, n_units), np.float32)
    means = np.empty((n_images, n_units), np.float32)
    for part in tqdm(
        batch_slices(n_images, batch_size), desc="top images", unit="batch", disable=None if verbose else True
    ):
        maps = np.asarray(activations[part], dtype=np.float32).reshape(part.stop - part.start, n_units, -1)
        maxima[part] = maps.max(axis=2)
        means[part] = maps.mean(axis=2)
    return maxima, means


def range_statistics(
    activations: np.ndarray,
    channels: NDArray[np.intp],
    low: NDArray[np.floating],
    high: NDArray[np.floating],
    batch_size: int = 64,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Per image and range (rows of a ranged run): positions in the range, and the largest value in it.

    Parameters
    ----------
    activations : array (images, channels, h, w)
    channels : int array (rows,)
        Each range's channel.
    low, high : arrays (rows,)
        Each range's inclusive bounds (compared in float32, as the masks compare).

    Returns
    -------
    inside : float32 array (images, rows)
        How many of the layer's positions lie in the range (0: none).
    largest : float32 array (images, rows)
        The largest activation in the range (-inf where none is).
    """
    n_images = activations.shape[0]
    channels = np.asarray(channels, np.intp)
    lower = np.asarray(low, np.float32)[None, :, None]
    upper = np.asarray(high, np.float32)[None, :, None]
    inside = np.empty((n_images, len(channels)), np.float32)
    largest = np.empty((n_images, len(channels)), np.float32)
    positions = int(np.prod(activations.shape[2:]))
    batch_size = max(1, min(batch_size, 8_000_000 // max(1, len(channels) * positions)))  # bounded memory
    for part in batch_slices(n_images, batch_size):
        maps = np.asarray(activations[part], dtype=np.float32).reshape(part.stop - part.start, activations.shape[1], -1)
        values = maps[:, channels]
        holds = (values >= lower) & (values <= upper)
        inside[part] = holds.sum(axis=2)
        largest[part] = np.where(holds, values, -np.inf).max(axis=2)
    return inside, largest


def top_examples(
    maxima: NDArray[np.floating],
    means: NDArray[np.floating],
    thresholds: NDArray[np.floating],
    k: int,
    ties_broken: NDArray[np.bool_] | None = None,
) -> NDArray[np.int64]:
    """The ``k`` images with the largest maximum activation per unit, among those that can be active.

    An image can be active when its maximum exceeds the unit's threshold (compared in the
    maxima's precision, as the masks compare), or equals it for units whose ties are broken. Equal maxima (saturated
    units) are ordered by mean activation, then by image index.

    Parameters
    ----------
    maxima, means : arrays (images, units)
    thresholds : array (units,)
    k : int
    ties_broken : bool array (units,), optional

    Returns
    -------
    int64 array (units, k)
        Image indices, best first, padded with -1 where fewer images can be active.
    """
    n_images, n_units = maxima.shape
    if k <= 0 or n_images == 0:
        return np.full((n_units, max(k, 0)), -1, np.int64)
    eligible = can_be_active(maxima, thresholds, ties_broken)
    score = np.where(eligible, maxima, -np.inf)
    keep = min(k, n_images)
    if keep < n_images:  # candidates: the k largest maxima plus every image tied with the k-th
        kth = -np.partition(-score, keep - 1, axis=0)[keep - 1]
        candidates = score >= kth[None, :]
    else:
        candidates = np.ones_like(eligible)
    out = np.full((n_units, k), -1, np.int64)
    for unit in range(n_units):
        images = np.flatnonzero(candidates[:, unit] & eligible[:, unit])
        order = np.lexsort((images, -means[images, unit], -maxima[images, unit]))[:k]
        out[unit, : len(order)] = images[order]
    return out


@dataclass
class ExampleMasks:
    """Masks of (unit, image) pairs at the annotation size.

    Attributes
    ----------
    unit : bool array (n, H, W)
        Where the unit is active.
    formula : bool array (n, H, W)
        Where its formula holds (all False for units without a formula).
    iou : float array (n,)
        Per-image IoU of the two masks; NaN where both are empty.
    """

    unit: NDArray[np.bool_]
    formula: NDArray[np.bool_]
    iou: NDArray[np.float64]


def example_masks(
    activations: np.ndarray,
    signatures: np.ndarray,
    units: NDArray[np.intp],
    images: NDArray[np.intp],
    thresholds: NDArray[np.floating],
    formula_signatures: Mapping[int, NDArray[np.bool_] | None],
    tie_cuts: NDArray[np.floating] | None = None,
    channels: NDArray[np.intp] | None = None,
    ranges: tuple[NDArray[np.floating], NDArray[np.floating]] | None = None,
) -> ExampleMasks:
    """The unit's and the formula's masks on given (unit, image) pairs.

    Parameters
    ----------
    activations : array (images, units, h, w)
    signatures : int array (images, H, W)
    units, images : int arrays (n,)
        The pairs.
    thresholds : array (all units,)
    formula_signatures : mapping of unit -> bool array (signatures,) or None
        Where each unit's formula holds, per signature (None: no formula), for the units of
        the pairs.
    tie_cuts : array (all units,), optional
    channels : int array (all units,), optional
        The channel of ``activations`` of each unit (for ranged runs, where a unit is one
        range of a channel); default: unit ``u`` is channel ``u``.
    ranges : (low, high) arrays (all units,), optional
        Each unit's inclusive activation range: the unit is active where its upsampled
        activation lies in it (``thresholds`` and ``tie_cuts`` are then not used).

    Returns
    -------
    ExampleMasks
    """
    units, images = np.asarray(units, np.intp), np.asarray(images, np.intp)
    n = len(units)
    height, width = signatures.shape[1:]
    upsampler = BilinearUpsampler(activations.shape[2:], (height, width))
    order = np.argsort(images, kind="stable")  # memmaps read fastest in order
    maps = np.empty((n, *activations.shape[2:]), np.float32)
    sources = units if channels is None else np.asarray(channels, np.intp)[units]
    maps[order] = np.asarray(activations[images[order], sources[order]], dtype=np.float32)
    if ranges is None:
        limits = np.asarray(thresholds, np.float32)[units]
        cuts = None if tie_cuts is None else np.asarray(tie_cuts, np.float64)
        index, pixel = active_pixels(upsampler, maps, limits, units, images, cuts)
    else:
        low, high = (np.asarray(bound, np.float32)[units][:, None] for bound in ranges)
        index, pixel, _ = range_pixels(upsampler, maps, low, high)
    unit_masks = np.zeros((n, height * width), bool)
    unit_masks[index, pixel] = True
    unit_masks = unit_masks.reshape(n, height, width)
    ids = np.empty((n, height, width), np.int64)
    ids[order] = np.asarray(signatures[images[order]])
    formula_masks = np.zeros((n, height, width), bool)
    for i, unit in enumerate(units):
        holds = formula_signatures[int(unit)]
        if holds is not None:
            formula_masks[i] = holds[ids[i]]
    intersection = (unit_masks & formula_masks).sum(axis=(1, 2))
    union = (unit_masks | formula_masks).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, intersection / np.maximum(union, 1), np.nan)
    return ExampleMasks(unit_masks, formula_masks, iou)
