"""Consistent tie-breaking at the threshold, so that saturated units keep the requested fraction.

ReLU6 networks (EfficientNet-Lite0) clamp many activations at exactly 6.0. When more than a
fraction q of a unit's values equal its maximum, the 1 - q quantile T is that maximum and
the mask ``activation > T`` is empty: the unit would look dead. The rule used here ranks
tied values by a fixed pseudo-random key, a hash of (unit, image, position): the mask is

    activation > T,  or  activation == T and key <= cut,

with ``cut`` chosen so that exactly ``round(q * N)`` values are in the mask, at the
resolution where the threshold is computed (the layer's positions or the upsampled pixels).
In the default layer convention the annotation-resolution mask applies the same rule to
its pixels' own keys, so its tied pixels are kept in the same proportion.

Ties are broken only when T > 0: a unit with fewer than q * N positive values keeps the
mask ``activation > 0`` rather than random zero positions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.vision.activations.upsample import BilinearUpsampler

__all__ = ["NO_TIES", "tie_cuts", "tie_keys"]

#: the cut of units whose ties are not broken (no key is <= -1)
NO_TIES = -1.0


def tie_keys(unit: ArrayLike, image: ArrayLike, position: ArrayLike) -> NDArray[np.float64]:
    """Deterministic pseudo-random keys in [0, 1) for (unit, image, position) triples (splitmix64)."""
    with np.errstate(over="ignore"):
        x = (
            np.asarray(unit, np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            + np.asarray(image, np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
            + np.asarray(position, np.uint64) * np.uint64(0x94D049BB133111EB)
        )
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def tie_cuts(
    activations: np.ndarray,
    thresholds: ArrayLike,
    above: ArrayLike,
    top_fraction: float,
    upsampler: BilinearUpsampler | None,
    batch_size: int = 64,
) -> NDArray[np.float64]:
    """Per unit, the key cut that brings the mask to ``round(q * N)`` values (or :data:`NO_TIES`).

    Parameters
    ----------
    activations : (images, units, h, w) array
    thresholds : (units,) array
        T per unit (compared in float32, as the masks are).
    above : (units,) int array
        How many values are ``> T`` per unit (see ``StreamingTopQuantile.count_above``).
    top_fraction : float
        q.
    upsampler : BilinearUpsampler or None
        Count at the upsampled resolution (the "upsampled" convention) or, when None, at the
        layer's positions.
    """
    n_images, n_units, h, w = activations.shape
    threshold32 = np.asarray(thresholds, dtype=np.float32)
    per_image = h * w if upsampler is None else upsampler.out_size[0] * upsampler.out_size[1]
    target = round(top_fraction * n_images * per_image)
    needed = target - np.asarray(above, np.int64)
    units = np.flatnonzero((needed > 0) & (threshold32 > 0))
    cuts = np.full(n_units, NO_TIES)
    if len(units) == 0:
        return cuts
    tied = {unit: _BottomKeys(int(needed[unit])) for unit in units}
    for start in range(0, n_images, batch_size):
        maps = np.asarray(activations[start : start + batch_size, units], dtype=np.float32)
        for column, unit in enumerate(units):
            which, position, values = _values_at_least(maps[:, column], threshold32[unit], upsampler)
            at = values == threshold32[unit]
            if at.any():
                tied[unit].add(tie_keys(unit, start + which[at], position[at]))
    for unit, keys in tied.items():
        if keys.seen:
            cuts[unit] = keys.kth_smallest(int(needed[unit]))
    return cuts


class _BottomKeys:
    """The smallest ``capacity`` keys of a stream."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys = np.empty(0, np.float64)
        self.seen = 0

    def add(self, keys: NDArray[np.float64]) -> None:
        self.seen += len(keys)
        merged = np.concatenate([self._keys, keys])
        if len(merged) > self.capacity:
            merged = np.partition(merged, self.capacity - 1)[: self.capacity]
        self._keys = merged

    def kth_smallest(self, k: int) -> float:
        """The k-th smallest key (1-based), or the largest kept when fewer were seen."""
        keys = np.sort(self._keys)
        return float(keys[min(k, len(keys)) - 1])


def _values_at_least(
    maps: NDArray[np.float32], threshold: np.float32, upsampler: BilinearUpsampler | None
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
    """(map index, flat position, value) of every value >= threshold in (n, h, w) maps."""
    if upsampler is None:
        flat = maps.reshape(len(maps), -1)
        which, position = np.nonzero(flat >= threshold)
        return which, position, flat[which, position]
    lower = np.full(len(maps), np.nextafter(threshold, np.float32(-np.inf)), np.float32)
    which, row, col, values = upsampler.blocks(maps, lower)
    keep = values >= threshold
    return which[keep], (row * upsampler.out_size[1] + col)[keep], values[keep]
