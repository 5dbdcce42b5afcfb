"""Turn activation maps into unit masks in count form, without storing full-size masks.

Each (image, unit) map is upsampled to the annotation resolution, thresholded, and its
active pixels are counted per signature of the concept set. Maps whose maximum does not
exceed the unit's threshold are skipped, and within a map only the blocks of pixels that can
exceed it are upsampled (upsampling never exceeds the input cells it mixes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from logiclens.activations.upsample import BilinearUpsampler
from logiclens.masks import UnitMasks

__all__ = ["UnitCountAccumulator"]

_PAIRS_PER_CHUNK = 4096


class UnitCountAccumulator:
    """Running per-unit, per-signature counts of positions where a unit exceeds its threshold.

    Parameters
    ----------
    thresholds : array of float, shape (U,)
        A unit is active at a pixel where its upsampled activation is ``> threshold``.
    n_signatures : int
        Signatures of the concept set the counts refer to.
    upsampler : BilinearUpsampler
        From the layer's map size to the annotation size.
    """

    def __init__(self, thresholds: ArrayLike, n_signatures: int, upsampler: BilinearUpsampler) -> None:
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.n_units = len(self.thresholds)
        self.n_signatures = int(n_signatures)
        self.upsampler = upsampler
        self._counts = sp.csr_array((self.n_units, self.n_signatures), dtype=np.int64)
        self._pending: list[tuple[NDArray, NDArray, NDArray]] = []
        self._pending_size = 0

    def add(self, maps: NDArray[np.floating], signature_ids: NDArray[np.integer]) -> None:
        """Count one batch.

        Parameters
        ----------
        maps : float array, shape (n, U, h, w)
            Activations of the batch's images at the layer's resolution.
        signature_ids : int array, shape (n, H, W)
            Signature of every annotation pixel of the same images.
        """
        n, n_units = maps.shape[:2]
        if n_units != self.n_units:
            raise ValueError(f"maps have {n_units} units, thresholds {self.n_units}")
        if signature_ids.shape != (n, *self.upsampler.out_size):
            raise ValueError(
                f"signature ids must have shape {(n, *self.upsampler.out_size)}, got {signature_ids.shape}"
            )
        maxima = maps.reshape(n, n_units, -1).max(axis=2)
        if not np.isfinite(maxima).all():
            raise ValueError("activations contain NaN or infinite values")
        images, units = np.nonzero(maxima > self.thresholds[None, :])
        if len(images) == 0:
            return
        local_signatures, local_ids = np.unique(signature_ids, return_inverse=True)
        local_ids = local_ids.reshape(n, -1)
        n_local = len(local_signatures)
        for start in range(0, len(images), _PAIRS_PER_CHUNK):
            image_chunk, unit_chunk = images[start : start + _PAIRS_PER_CHUNK], units[start : start + _PAIRS_PER_CHUNK]
            pair, pixel = self.upsampler.above(maps[image_chunk, unit_chunk], self.thresholds[unit_chunk])
            keys = unit_chunk[pair].astype(np.int64) * n_local + local_ids[image_chunk[pair], pixel]
            per_key = np.bincount(keys, minlength=self.n_units * n_local).reshape(self.n_units, n_local)
            unit_index, local_index = np.nonzero(per_key)
            self._pending.append((unit_index, local_signatures[local_index], per_key[unit_index, local_index]))
            self._pending_size += len(unit_index)
        if self._pending_size > 5_000_000:
            self._compact()

    def _compact(self) -> None:
        if not self._pending:
            return
        rows, cols, vals = (np.concatenate(parts) for parts in zip(*self._pending))
        batch = sp.csr_array((vals, (rows, cols)), shape=(self.n_units, self.n_signatures), dtype=np.int64)
        self._counts = self._counts + batch
        self._pending, self._pending_size = [], 0

    def counts(self) -> sp.csr_array:
        """The (U, S) count matrix so far."""
        self._compact()
        return self._counts

    def unit_masks(self, names: Sequence[str] | None = None) -> UnitMasks:
        """The accumulated counts as :class:`UnitMasks`."""
        return UnitMasks(self.counts(), names)
