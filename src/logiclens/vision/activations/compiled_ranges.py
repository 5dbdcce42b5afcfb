"""Ranged counting compiled with numba: the fast path of :mod:`logiclens.vision.activations.regions`.

The same bound: a block is decided from its four input cells, an 8 x 8 sub-block or a 4 x 4
tile of an undecided block from its corner pixels, each widened by
:data:`~logiclens.vision.activations.regions.MARGIN`; the pixels of undecided tiles are
evaluated with the upsampler's float32 arithmetic. The counts are therefore the same as the
NumPy path's (the tests check both against a pixel-by-pixel count).

What makes it fast is how the signature maps are read. Each variant's map of an image is
summarised once: per block and per sub-block, a histogram of its signatures; per tile, each
signature's pixels as a 16-bit mask. A region decided for range k adds its histogram (a
tile, its masks' popcounts); an undecided tile builds a 16-bit mask per range from its
evaluated pixels and adds the popcount of (range mask & signature mask). The label that
most of a unit's input cells take (a range, or the gap) is never counted: it is the image's
counts less the other labels'. Counts go straight into a dense array, transposed
``(variants x S, units x K)``, so that a group of units is added one contiguous run per
column.

numba is an optional dependency (the ``fast`` extra); :func:`available` says whether it is
installed, and :class:`~logiclens.vision.activations.counting.UnitCountAccumulator` falls back
to the NumPy path without it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from logiclens.vision.activations.regions import TILE
from logiclens.vision.activations.upsample import BilinearUpsampler

__all__ = ["RangeKernel", "available"]


def available() -> bool:
    """Whether numba can be imported (the compiled path can run)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _children(
    starts: NDArray[np.integer], lengths: NDArray[np.integer], size: int
) -> tuple[tuple[NDArray[np.int64], NDArray[np.int64]], NDArray[np.int64]]:
    """Segments of one axis cut into children of at most ``size``: (child start, child length), first child of each."""
    start, length, first = [], [], [0]
    for segment_start, segment_length in zip(starts.tolist(), lengths.tolist()):
        for offset in range(0, segment_length, size):
            start.append(segment_start + offset)
            length.append(min(size, segment_length - offset))
        first.append(len(start))
    return (np.array(start, np.int64), np.array(length, np.int64)), np.array(first, np.int64)


def _levels(start: NDArray[np.integer], length: NDArray[np.integer]) -> tuple[tuple[NDArray[np.int64], ...], ...]:
    """One axis' blocks, sub-blocks and tiles, each as (start, length, first child)."""
    subs, first_sub = _children(start, length, 2 * TILE)
    tiles, first_tile = _children(*subs, TILE)
    blocks = (np.asarray(start, np.int64), np.asarray(length, np.int64), first_sub)
    return blocks, (*subs, first_tile), (*tiles, np.zeros(len(tiles[0]) + 1, np.int64))


class RangeKernel:
    """The compiled ranged counting for one upsampler's grid.

    Parameters
    ----------
    upsampler : BilinearUpsampler
    """

    def __init__(self, upsampler: BilinearUpsampler) -> None:
        self.upsampler = upsampler
        (row_start, row_length), (col_start, col_length) = upsampler.block_grid()
        rows, cols = _levels(row_start, row_length), _levels(col_start, col_length)
        self._levels = tuple(zip(rows, cols))  # blocks, sub-blocks, tiles: each (rows, columns)
        self._sources = tuple(
            (left.astype(np.int64), right.astype(np.int64), weight, rest)
            for left, right, weight, rest in upsampler.sources()
        )

    def add(
        self,
        maps: NDArray[np.float32],
        signature_ids: NDArray[np.integer],
        low: NDArray[np.float32],
        high: NDArray[np.float32],
        counts: NDArray[np.integer],
    ) -> None:
        """Add the ranges of a batch of maps to ``counts`` in place.

        Parameters
        ----------
        maps : float32 array (n, U, h, w)
        signature_ids : int array (variants, n, H, W)
            Each variant's signature map of each image (-1: pixel left out).
        low, high : float32 arrays (U, K)
            Ascending, disjoint, inclusive ranges (empty ones ``(inf, -inf)`` at the end).
        counts : int32 or int64 array (variants * S, U * K), C-contiguous
            Transposed: row ``variant * S + signature``, column ``u * K + k``.
        """
        from logiclens.vision.activations.range_kernels import count

        if not counts.flags.c_contiguous or counts.shape[1] != low.size:
            raise ValueError(f"counts must be C-contiguous with {low.size} columns, got {counts.shape}")
        n_signatures = counts.shape[0] // signature_ids.shape[0]
        count(
            np.ascontiguousarray(maps, np.float32), np.ascontiguousarray(signature_ids, np.int32),
            np.ascontiguousarray(low, np.float32), np.ascontiguousarray(high, np.float32), self._sources,
            *self._levels, counts, n_signatures,
        )  # fmt: skip

    @staticmethod
    def counts_of(counts: NDArray[np.integer], variant: int, n_signatures: int) -> sp.csr_array:
        """A variant's (U x K, S) counts, as CSR, from the transposed counts of :meth:`add`."""
        from logiclens.vision.activations.range_kernels import transposed_csr

        indptr, indices, data = transposed_csr(counts, variant * n_signatures, n_signatures)
        if indptr[-1] < np.iinfo(np.int32).max:
            indptr = indptr.astype(np.int32)  # the indices' type: scipy would otherwise widen them
        return sp.csr_array((data, indices, indptr), shape=(counts.shape[1], n_signatures))
