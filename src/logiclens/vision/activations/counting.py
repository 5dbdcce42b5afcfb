"""Turn activation maps into unit masks in count form, without storing full-size masks.

Each (image, unit) map is upsampled to the annotation resolution, thresholded, and its
active pixels are counted per signature of the concept set. Maps whose maximum does not
exceed the unit's threshold are skipped, and within a map only the blocks of pixels that can
exceed it are upsampled (upsampling never exceeds the input cells it mixes). With activation
ranges, whole regions of a map are assigned to a range at once
(:mod:`logiclens.vision.activations.regions`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from logiclens.core.masks import UnitMasks
from logiclens.vision.activations import compiled_ranges
from logiclens.vision.activations.active import active_pixels, can_be_active
from logiclens.vision.activations.regions import RegionGrid
from logiclens.vision.activations.ties import NO_TIES
from logiclens.vision.activations.upsample import BilinearUpsampler

__all__ = ["UnitCountAccumulator", "ranged_units_per_pass"]

#: computes the active pixels of (image, unit) maps (the signature of ``active_pixels``)
ActivePixels = Callable[..., tuple[NDArray[np.intp], NDArray[np.intp]]]

_PAIRS_PER_CHUNK = 4096
#: units of one image whose ranges are assigned together
_UNITS_PER_ASSIGN = 2048
#: most memory the compiled path's dense counts of one accumulator may take. Passes cost time
#: (each re-reads the signature maps, and their results are stacked: a copy) and, where the
#: counts are not very sparse, memory too: at the default dissection's ``conv_head`` with
#: ``--ranges 5`` a third of the dense counts are non-zero, so the sparse result (12 bytes a
#: non-zero) is as large as the dense counts (4 bytes an entry), and one pass of 1.4 GB
#: peaks 0.4 GB lower than two (``BENCHMARKS.md``).
DENSE_COUNTS_BYTES = 2 * 2**30


def ranged_units_per_pass(n_ranges: int, n_variants: int, n_signatures: int, compiled: bool | None = None) -> int:
    """How many units one ranged accumulator may count at once (the compiled path keeps dense counts)."""
    if not (compiled_ranges.available() if compiled is None else compiled):
        return 2**62
    row_bytes = n_ranges * n_variants * n_signatures * np.dtype(np.int32).itemsize
    return max(1, DENSE_COUNTS_BYTES // row_bytes)


class UnitCountAccumulator:
    """Running per-unit, per-signature counts of positions where a unit exceeds its threshold.

    Several *variants* can be counted in one pass: each pairs the batch's activation maps
    with its own signature maps (the images of a held-out split, or the annotations of other
    images for a permutation null), sharing the upsampling and thresholding.

    Parameters
    ----------
    thresholds : array of float, shape (U,)
        A unit is active at a pixel where its upsampled activation is ``> threshold``.
    n_signatures : int
        Signatures of the concept set the counts refer to.
    upsampler : BilinearUpsampler
        From the layer's map size to the annotation size.
    n_variants : int, default 1
    tie_cuts : array of float, shape (U,), optional
        Units with a cut >= 0 are also active where the activation equals the threshold and
        the pixel's tie key is at most the cut (see :mod:`logiclens.vision.activations.ties`).
    ranges : (low, high) float arrays of shape (U, K), optional
        Count K activation ranges per unit instead (rows ``u * K + k``), every range of a
        map from the same upsampling (see :func:`~logiclens.vision.activations.active.range_pixels`);
        ``thresholds`` and ``tie_cuts`` are then ignored.
    first_unit : int
        The layer's index of the first unit counted here (a block of the layer's units; tie
        keys are the layer unit's).
    active : callable, optional
        Computes the active pixels (default
        :func:`~logiclens.vision.activations.active.active_pixels`; a
        :class:`~logiclens.vision.activations.torch_counting.TorchActivePixels` runs it in torch).
    compiled : bool, optional
        Count ranges with the compiled kernel (:mod:`~logiclens.vision.activations.compiled_ranges`,
        dense counts: see :func:`ranged_units_per_pass`) or with NumPy; default: compiled
        where numba is installed. The counts are the same.
    """

    def __init__(
        self,
        thresholds: ArrayLike,
        n_signatures: int,
        upsampler: BilinearUpsampler,
        n_variants: int = 1,
        tie_cuts: ArrayLike | None = None,
        ranges: tuple[ArrayLike, ArrayLike] | None = None,
        first_unit: int = 0,
        active: ActivePixels = active_pixels,
        compiled: bool | None = None,
    ) -> None:
        self.first_unit = int(first_unit)
        self.active = active
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.ranges = None
        self.n_ranges = 1
        self._grid: RegionGrid | None = None
        self._kernel: compiled_ranges.RangeKernel | None = None
        if ranges is not None:
            low, high = (np.asarray(r, np.float32) for r in ranges)
            self.ranges = (low, high)
            self.n_ranges = low.shape[1]
            self.thresholds = low[:, 0]
            if compiled is None:
                compiled = compiled_ranges.available()
            elif compiled and not compiled_ranges.available():
                raise ValueError("compiled ranged counting needs numba: pip install 'logiclens[fast]'")
            if compiled:
                self._kernel = compiled_ranges.RangeKernel(upsampler)
            else:
                self._grid = RegionGrid(upsampler)
        self.tie_cuts = np.full(len(self.thresholds), NO_TIES) if tie_cuts is None else np.asarray(tie_cuts, float)
        self.n_units = len(self.thresholds)
        self.n_signatures = int(n_signatures)
        self.upsampler = upsampler
        self.n_variants = int(n_variants)
        self._rows = self.n_units * self.n_ranges
        # with ranges, one matrix holds every variant side by side (columns variant * S + signature)
        widths = [self.n_variants * self.n_signatures] if ranges is not None else [self.n_signatures] * n_variants
        self._counts = [sp.csr_array((self._rows, width), dtype=np.int64) for width in widths]
        # the compiled path's counts, transposed: (variants x S, units x K)
        self._dense = np.zeros((widths[0], self._rows) if self._kernel is not None else (0, 0), np.int32)
        self._pixels_counted = 0
        self._pending: list[list[tuple[NDArray, NDArray, NDArray]]] = [[] for _ in range(n_variants)]
        self._pending_size = 0
        self._seen = np.zeros(self.n_signatures, bool)
        self._local = np.zeros(self.n_signatures, np.int64)

    def add(
        self,
        maps: NDArray[np.floating],
        signature_ids: NDArray[np.integer] | Sequence[NDArray[np.integer]],
        first_image: int = 0,
    ) -> None:
        """Count one batch.

        Parameters
        ----------
        maps : float array, shape (n, U, h, w)
            Activations of the batch's images at the layer's resolution.
        signature_ids : int array (n, H, W), or one such array per variant
            Signature of every annotation pixel to count the maps against; -1 leaves a
            pixel (or a whole image) out of that variant.
        first_image : int
            Index of the batch's first image in the probe (for tie keys).
        """
        variants = [signature_ids] if isinstance(signature_ids, np.ndarray) else list(signature_ids)
        n, n_units = maps.shape[:2]
        if n_units != self.n_units:
            raise ValueError(f"maps have {n_units} units, thresholds {self.n_units}")
        if len(variants) != self.n_variants:
            raise ValueError(f"{len(variants)} signature maps for {self.n_variants} variants")
        for ids in variants:
            if ids.shape != (n, *self.upsampler.out_size):
                raise ValueError(f"signature ids must have shape {(n, *self.upsampler.out_size)}, got {ids.shape}")
        maxima = maps.reshape(n, n_units, -1).max(axis=2)
        if not np.isfinite(maxima).all():
            raise ValueError("activations contain NaN or infinite values")
        flat = [ids.reshape(n, -1) for ids in variants]
        if self._kernel is not None:
            self._add_ranges_compiled(maps, variants)
        elif self.ranges is not None:
            self._add_ranges(maps, maxima, flat)
        else:
            self._add_above(maps, maxima, flat, first_image)
        if self._pending_size > 5_000_000:
            self._compact()

    def _add_ranges(self, maps: NDArray, maxima: NDArray, flat: list[NDArray]) -> None:
        """Count every range of every map of the batch, a few images at a time.

        The maps are cut into regions wholly in one range
        (:meth:`~logiclens.vision.activations.regions.RegionGrid.assign`: blocks and tiles
        bounded by their corners, quads and pixels evaluated); each region adds its
        per-signature pixel counts, in every variant, through one sparse product per image.
        """
        assert self.ranges is not None and self._grid is not None
        low, high = self.ranges
        grid = self._grid
        for image in range(len(maps)):
            units = np.flatnonzero(maxima[image] >= low[:, 0])  # upsampling never exceeds the maximum
            if len(units) == 0:
                continue
            parts = [  # a block of units at a time bounds the memory of wide layers
                (chosen, *grid.assign(maps[image, chosen], low[chosen], high[chosen]))
                for chosen in np.array_split(units, -(-len(units) // _UNITS_PER_ASSIGN))
            ]
            index = np.concatenate([chosen[i] for chosen, i, _, _ in parts])
            region = np.concatenate([r for _, _, r, _ in parts])
            k = np.concatenate([kk for _, _, _, kk in parts]).astype(np.intp)
            if len(index) == 0:
                continue
            histograms = self._histograms([ids[image] for ids in flat])
            row = index * self.n_ranges + k
            # regions of one map never overlap: the pairs are distinct, so the CSR form is built
            # directly (rows grouped by a stable sort, radix for small row counts)
            order = np.argsort(row.astype(np.int16 if self._rows < 2**15 else np.int64), kind="stable")
            indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=self._rows))])
            indicator = sp.csr_array(
                (np.ones(len(row), np.int64), region[order], indptr), shape=(self._rows, grid.n_regions)
            )
            product = (indicator @ histograms).tocoo()  # columns: variant * n_signatures + signature
            self._pending[0].append((product.row, product.col, product.data))
            self._pending_size += product.nnz

    def _add_ranges_compiled(self, maps: NDArray, variants: list[NDArray]) -> None:
        """Count every range of every map of the batch into the dense counts, compiled."""
        assert self.ranges is not None and self._kernel is not None
        self._pixels_counted += variants[0].size
        if self._pixels_counted > np.iinfo(np.int32).max and self._dense.dtype == np.int32:
            self._dense = self._dense.astype(np.int64)  # a count could reach 2**31
        self._kernel.add(maps, np.stack(variants), *self.ranges, self._dense)

    def _histograms(self, ids: list[NDArray]) -> sp.csr_array:
        """(regions, variants x signatures) pixel counts of one image's signature maps.

        The pixels' rows are built directly in CSR form (each pixel's columns ascend with the
        variant), the coarser regions' rows by summing their pixels' rows.
        """
        assert self._grid is not None
        stacked = np.stack(ids)  # (variants, pixels)
        used = stacked >= 0
        columns = stacked + (np.arange(len(ids)) * self.n_signatures)[:, None]
        indptr = np.concatenate([[0], np.cumsum(used.sum(axis=0))])
        shape = (stacked.shape[1], self.n_variants * self.n_signatures)
        pixels = sp.csr_array((np.ones(int(indptr[-1]), np.int64), columns.T[used.T], indptr), shape=shape)
        return sp.vstack([*(level @ pixels for level in self._grid.pixel_sums), pixels], format="csr")

    def _add_above(self, maps: NDArray, maxima: NDArray, flat: list[NDArray], first_image: int) -> None:
        images, units = np.nonzero(can_be_active(maxima, self.thresholds, self.tie_cuts >= 0))
        for start in range(0, len(images), _PAIRS_PER_CHUNK):
            image_chunk, unit_chunk = images[start : start + _PAIRS_PER_CHUNK], units[start : start + _PAIRS_PER_CHUNK]
            pair, pixel = self.active(
                self.upsampler, maps[image_chunk, unit_chunk], self.thresholds[unit_chunk], unit_chunk,
                image_chunk + first_image, self.tie_cuts, self.first_unit,
            )  # fmt: skip
            active_images, active_units = image_chunk[pair], unit_chunk[pair]
            for variant, ids in enumerate(flat):
                signatures = ids[active_images, pixel]
                keep = signatures >= 0
                self._tally(variant, active_units[keep], signatures[keep])

    def _tally(self, variant: int, units: NDArray[np.intp], signatures: NDArray[np.integer]) -> None:
        """Add one count per (unit, signature) pair."""
        if len(units) == 0:
            return
        self._seen[signatures] = True
        present = np.flatnonzero(self._seen)
        self._seen[present] = False
        self._local[present] = np.arange(len(present))
        keys = units.astype(np.int64) * len(present) + self._local[signatures]
        if self._rows * len(present) <= 4 * len(keys) + 65536:
            per_key = np.bincount(keys, minlength=self._rows * len(present))
            keys = np.flatnonzero(per_key)
            counts = per_key[keys]
        else:
            keys, counts = np.unique(keys, return_counts=True)
        unit_index, local_index = np.divmod(keys, len(present))
        self._pending[variant].append((unit_index, present[local_index], counts))
        self._pending_size += len(keys)

    def _compact(self) -> None:
        for variant, pending in enumerate(self._pending):
            if pending:
                rows, cols, vals = (np.concatenate(parts) for parts in zip(*pending))
                shape = self._counts[variant].shape
                self._counts[variant] = self._counts[variant] + sp.csr_array((vals, (rows, cols)), shape=shape)
        self._pending = [[] for _ in range(self.n_variants)]
        self._pending_size = 0

    def counts(self, variant: int = 0) -> sp.csr_array:
        """The (U, S) count matrix of a variant so far."""
        if self._kernel is not None:
            return self._kernel.counts_of(self._dense, variant, self.n_signatures)
        self._compact()
        if self.ranges is not None:
            first = variant * self.n_signatures
            return sp.csr_array(self._counts[0][:, first : first + self.n_signatures])
        return self._counts[variant]

    def unit_masks(self, names: Sequence[str] | None = None, variant: int = 0) -> UnitMasks:
        """The accumulated counts of a variant as :class:`UnitMasks`."""
        return UnitMasks(self.counts(variant), names)
