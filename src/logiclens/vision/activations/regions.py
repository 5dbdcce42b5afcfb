"""Where each activation range of a map lies, as whole regions of the annotation grid.

With activation ranges (:mod:`logiclens.vision.activations.ranges`) most pixels of a map lie
in some range, so counting them one by one is slow. The upsampled grid is cut into nested
regions: the upsampler's *blocks* (pixels mixing the same four input cells), each cut into
*tiles* of at most 4 x 4 pixels, each cut into *quads* of at most 2 x 2 pixels, each cut
into pixels. A region is assigned to a range as a whole when all its pixels lie in it, and
is left out when none of them lies in any range; only the other regions are refined.

Why a region can be decided without evaluating its pixels: inside a block the upsampled
value is a bilinear function of the pixel's row and column weights, which grow with the
pixel's index, so on any rectangle of pixels of one block it lies between its values at the
rectangle's four corner pixels (for a whole block: between its four input cells). Float32
rounding moves a computed value from that exact one by at most about ``12 * 2**-24`` times
the largest input cell's magnitude; a region is decided only when the corners' interval,
widened by :data:`MARGIN` times that magnitude (much more than the rounding can reach), lies
inside one range or inside one gap between ranges. Quads and pixels are decided from their
pixels' computed values, evaluated with exactly the arithmetic of
:class:`~logiclens.vision.activations.upsample.BilinearUpsampler`, so every pixel lands in
the range that :func:`~logiclens.vision.activations.active.range_pixels` gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from logiclens.vision.activations.upsample import BilinearUpsampler

__all__ = ["MARGIN", "TILE", "TINY", "RegionGrid", "classify_intervals"]

#: relative widening of a region's corner interval (float32 rounding reaches about 7e-7)
MARGIN = 2.0**-18
#: absolute widening (covers rounding among subnormal numbers)
TINY = 2.0**-120
#: side of a tile, in pixels
TILE = 4


def _span(a: NDArray, b: NDArray, c: NDArray, d: NDArray) -> tuple[NDArray, NDArray]:
    """Elementwise smallest and largest of four arrays (a region's corners)."""
    return np.minimum(np.minimum(a, b), np.minimum(c, d)), np.maximum(np.maximum(a, b), np.maximum(c, d))


@dataclass
class _Segments:
    """One axis cut into segments that each lie within one block (or one coarser segment)."""

    start: NDArray[np.intp]
    length: NDArray[np.intp]
    parent: NDArray[np.intp]  # the coarser segment each one lies in
    of_pixel: NDArray[np.intp]  # (n_out,) the segment of each output index
    children: NDArray[np.intp]  # (parents, most children): segment indices, clamped to the last
    n_children: NDArray[np.intp]  # (parents,)

    @classmethod
    def cut(cls, starts: NDArray[np.intp], lengths: NDArray[np.intp], size: int) -> _Segments:
        start, length, parent = [], [], []
        for index, (first, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
            for offset in range(0, n, size):
                start.append(first + offset)
                length.append(min(size, n - offset))
                parent.append(index)
        start_a, length_a, parent_a = (np.array(a, np.intp) for a in (start, length, parent))
        of_pixel = np.repeat(np.arange(len(start_a)), length_a)
        n_children = np.bincount(parent_a, minlength=len(starts))
        first_child = np.concatenate([[0], np.cumsum(n_children)[:-1]])
        slots = np.arange(n_children.max())
        children = first_child[:, None] + np.minimum(slots[None, :], n_children[:, None] - 1)
        return cls(start_a, length_a, parent_a, of_pixel, children, n_children)


def classify_intervals(
    lo: NDArray[np.float64], hi: NDArray[np.float64], low: NDArray[np.float64], high: NDArray[np.float64]
) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Which range holds all of ``[lo, hi]``, if any.

    Parameters
    ----------
    lo, hi : float arrays (n,)
    low, high : float arrays (n, K)
        Each interval's unit's ascending, disjoint, inclusive ranges (empty ones at the end,
        ``(inf, -inf)``).

    Returns
    -------
    k : int array (n,)
        The range that holds the whole interval, or -1.
    decided : bool array (n,)
        True where the interval lies in range ``k``, or (``k = -1``) in no range at all.
    """
    below_lo = np.full(len(lo), -1, np.intp)
    below_hi = np.full(len(lo), -1, np.intp)
    for bound in range(low.shape[1]):  # K is small
        below_lo += low[:, bound] <= lo
        below_hi += low[:, bound] <= hi
    top = high[np.arange(len(lo)), np.maximum(below_lo, 0)]
    same = below_lo == below_hi
    inside = same & (below_lo >= 0) & (hi <= top)
    outside = same & ((below_lo < 0) | (lo > top))
    return np.where(inside, below_lo, -1), inside | outside


def _range_of(values: NDArray[np.float32], low: NDArray[np.float32], high: NDArray[np.float32]) -> NDArray[np.intp]:
    """Range index of each value of (n, ...) values (-1: in none); ``low, high`` (n, K) float32.

    Compared in float32, as :func:`~logiclens.vision.activations.active.range_pixels` does.
    """
    expand = (slice(None),) + (None,) * (values.ndim - 1)
    k = np.zeros(values.shape, np.int8 if low.shape[1] < 127 else np.int32)
    for bound in range(1, low.shape[1]):
        k += values >= low[:, bound][expand]
    rows = np.arange(len(values))[expand]
    return np.where((values >= low[rows, k]) & (values <= high[rows, k]), k, -1).astype(k.dtype)


class RegionGrid:
    """The nested regions (blocks, tiles, quads, pixels) of an upsampler's output grid.

    Region ids run over blocks, then tiles, then quads, then pixels (``n_regions`` in all);
    :attr:`region_of_pixel` gives, for each level, the region of every pixel.
    """

    def __init__(self, upsampler: BilinearUpsampler) -> None:
        self.upsampler = upsampler
        (row_start, row_length), (col_start, col_length) = upsampler.block_grid()
        height, width = upsampler.out_size
        self.rows = [_Segments.cut(row_start, row_length, max(height, 1))]
        self.cols = [_Segments.cut(col_start, col_length, max(width, 1))]
        for size in (TILE, 2):
            self.rows.append(_Segments.cut(self.rows[-1].start, self.rows[-1].length, size))
            self.cols.append(_Segments.cut(self.cols[-1].start, self.cols[-1].length, size))
        self.rows.append(_Segments.cut(self.rows[-1].start, self.rows[-1].length, 1))
        self.cols.append(_Segments.cut(self.cols[-1].start, self.cols[-1].length, 1))
        self._corner_rows = np.stack([self.rows[1].start, self.rows[1].start + self.rows[1].length - 1], 1).ravel()
        self._corner_cols = np.stack([self.cols[1].start, self.cols[1].start + self.cols[1].length - 1], 1).ravel()
        counts = [len(r.start) * len(c.start) for r, c in zip(self.rows, self.cols)]
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.n_regions = int(self.offsets[-1])
        self.region_of_pixel = [
            (offset + r.of_pixel[:, None] * len(c.start) + c.of_pixel[None, :]).ravel()
            for offset, r, c in zip(self.offsets[:-1], self.rows, self.cols)
        ]
        pixels = height * width
        #: for the blocks, tiles and quads: (regions, pixels) sums of their pixels
        self.pixel_sums = [
            sp.csr_array((np.ones(pixels, np.int64), (level - offset, np.arange(pixels))), shape=(count, pixels))
            for level, offset, count in zip(self.region_of_pixel[:-1], self.offsets[:-2], counts[:-1])
        ]
        self.work = {"blocks": 0, "blocks_decided": 0, "tiles": 0, "tiles_decided": 0, "quads": 0,
                     "quads_decided": 0, "pixels": 0}  # fmt: skip

    def _region(self, level: int, row: NDArray[np.intp], col: NDArray[np.intp]) -> NDArray[np.intp]:
        return self.offsets[level] + row * len(self.cols[level].start) + col

    def _children(self, level: int, parents: tuple[NDArray, NDArray, NDArray]) -> tuple[NDArray, ...]:
        """(map, row segment, column segment) of the children of (map, row, column) regions."""
        index, row, col = parents
        rows, cols = self.rows[level + 1], self.cols[level + 1]
        child_rows = rows.children[row]  # (n, most)
        child_cols = cols.children[col]
        valid_rows = np.arange(child_rows.shape[1])[None, :] < rows.n_children[row][:, None]
        valid_cols = np.arange(child_cols.shape[1])[None, :] < cols.n_children[col][:, None]
        parent, a, b = np.nonzero(valid_rows[:, :, None] & valid_cols[:, None, :])
        return index[parent], child_rows[parent, a], child_cols[parent, b], parent

    def assign(
        self, maps: NDArray[np.float32], low: NDArray[np.float32], high: NDArray[np.float32]
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
        """Regions of the maps wholly in one range: (map index, region id, range index).

        Every pixel in a range is covered by exactly one returned region (regions of one map
        do not overlap), and no returned region holds a pixel outside its range.

        Parameters
        ----------
        maps : float32 array (n, h, w)
        low, high : float32 arrays (n, K)
            Each map's unit's ranges (see :func:`classify_intervals`).
        """
        up = self.upsampler
        low64, high64 = low.astype(np.float64), high.astype(np.float64)
        out: list[tuple[NDArray, NDArray, NDArray]] = []
        cells = up.block_cells(maps)
        cell_lo, cell_hi = (bound.astype(np.float64) for bound in _span(*cells))
        scale = np.maximum(np.abs(cell_lo), np.abs(cell_hi)) * MARGIN + TINY
        index, row, col = (a.ravel() for a in np.indices(cell_lo.shape))
        lo, hi, margin = cell_lo.ravel() - scale.ravel(), cell_hi.ravel() + scale.ravel(), scale.ravel()
        k, decided = classify_intervals(lo, hi, low64[index], high64[index])
        self.work["blocks"] += len(k)
        self.work["blocks_decided"] += int(decided.sum())
        take = decided & (k >= 0)
        out.append((index[take], self._region(0, row[take], col[take]), k[take]))
        # tiles of undecided blocks, bounded by their corner pixels
        rest = ~decided
        index, row, col, parent = self._children(0, (index[rest], row[rest], col[rest]))
        margin = margin[rest][parent]
        rows, cols = self.rows[1], self.cols[1]
        grid = up.grid_values(maps, self._corner_rows, self._corner_cols)  # first and last pixels of tiles
        corners = np.stack([grid[index, 2 * row, 2 * col], grid[index, 2 * row, 2 * col + 1],
                            grid[index, 2 * row + 1, 2 * col], grid[index, 2 * row + 1, 2 * col + 1]], 1)  # fmt: skip
        lo, hi = _span(corners[:, 0], corners[:, 1], corners[:, 2], corners[:, 3])
        lo, hi = lo.astype(np.float64) - 2 * margin, hi.astype(np.float64) + 2 * margin
        k, decided = classify_intervals(lo, hi, low64[index], high64[index])
        self.work["tiles"] += len(k)
        self.work["tiles_decided"] += int(decided.sum())
        take = decided & (k >= 0)
        out.append((index[take], self._region(1, row[take], col[take]), k[take]))
        # every pixel of the undecided tiles, then their quads and pixels
        rest = ~decided
        index, row, col = index[rest], row[rest], col[rest]
        slots = np.arange(TILE)
        y = rows.start[row][:, None] + np.minimum(slots[None, :], rows.length[row][:, None] - 1)  # (n, T)
        x = cols.start[col][:, None] + np.minimum(slots[None, :], cols.length[col][:, None] - 1)
        block_row, block_col = rows.parent[row], cols.parent[col]
        values = up.values_in_blocks(maps, index, block_row, block_col, y[:, :, None], x[:, None, :])  # (n, T, T)
        r = _range_of(values, low[index], high[index])
        quarters = [r[:, dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]  # each (n, quad row, quad column)
        lowest, highest = _span(*quarters)
        quad_rows = self.rows[2].children[row][:, :2]
        quad_cols = self.cols[2].children[col][:, :2]
        real = (np.arange(2)[None, :, None] < self.rows[2].n_children[row][:, None, None]) & (
            np.arange(2)[None, None, :] < self.cols[2].n_children[col][:, None, None]
        )
        pure = real & (lowest == highest)
        self.work["quads"] += int(real.sum())
        self.work["quads_decided"] += int(pure.sum())
        t, a, b = np.nonzero(pure & (lowest >= 0))
        out.append((index[t], self._region(2, quad_rows[t, a], quad_cols[t, b]), lowest[t, a, b]))
        mixed = np.repeat(np.repeat(real & ~pure, 2, axis=1), 2, axis=2)  # (n, T, T)
        valid = (slots[None, :, None] < rows.length[row][:, None, None]) & (
            slots[None, None, :] < cols.length[col][:, None, None]
        )
        t, a, b = np.nonzero(mixed & valid & (r >= 0))
        self.work["pixels"] += int((mixed & valid).sum())
        out.append((index[t], self._region(3, y[t, a], x[t, b]), r[t, a, b]))
        return tuple(np.concatenate(parts) for parts in zip(*out))  # type: ignore[return-value]
