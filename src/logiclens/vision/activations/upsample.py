"""Bilinear upsampling of activation maps, in full or only where it can exceed a threshold.

Upsampling follows ``torch.nn.functional.interpolate(x, size, mode="bilinear",
align_corners=False)``: pixel centres are aligned (half-pixel offsets) and coordinates
outside the input are clamped to its edge. Output pixel (y, x) mixes the four input cells
``(i0, j0), (i0, j1), (i1, j0), (i1, j1)`` around it, and its value is clipped to the largest
of those four, so that float32 rounding cannot lift it above them.

The output grid splits into rectangular *blocks* whose pixels share the same four cells. A
block whose four cells are all at or below a threshold holds no pixel above it, so
:meth:`BilinearUpsampler.above` evaluates only the other blocks: with sparse top-quantile
activations that is a small part of the image. Full and block-wise evaluation use the same
float32 arithmetic, pixel for pixel, so they agree exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BilinearUpsampler", "bilinear_mix", "interpolation_matrix"]


def _axis_sources(n_in: int, n_out: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
    """For each output index: left and right input index, and the right one's weight."""
    source = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    source = np.clip(source, 0.0, None)
    left = np.minimum(np.floor(source).astype(np.intp), n_in - 1)
    right = np.minimum(left + 1, n_in - 1)
    return left, right, (source - left).astype(np.float32)


def interpolation_matrix(n_in: int, n_out: int) -> NDArray[np.float32]:
    """(n_out, n_in) matrix of 1-D linear interpolation weights, half-pixel aligned."""
    left, right, frac = _axis_sources(n_in, n_out)
    matrix = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, left), 1.0 - frac)
    np.add.at(matrix, (rows, right), frac)
    return matrix.astype(np.float32)


@dataclass
class _Axis:
    """One axis of the output grid: per-pixel sources and their grouping into blocks."""

    left: NDArray[np.intp]  # (n_out,)
    right: NDArray[np.intp]
    weight: NDArray[np.float32]  # weight of `right`
    rest: NDArray[np.float32]  # 1 - weight, computed once so every path uses the same value
    block_start: NDArray[np.intp]  # (n_blocks,)
    block_length: NDArray[np.intp]
    padded: NDArray[np.intp]  # (n_blocks, longest): output index of each block slot (clamped)
    valid: NDArray[np.bool_]  # (n_blocks, longest): slot holds a real pixel

    @classmethod
    def build(cls, n_in: int, n_out: int) -> _Axis:
        left, right, weight = _axis_sources(n_in, n_out)
        change = np.flatnonzero((np.diff(left) != 0) | (np.diff(right) != 0)) + 1
        starts = np.concatenate([[0], change]).astype(np.intp)
        lengths = np.diff(np.concatenate([starts, [n_out]])).astype(np.intp)
        slots = np.arange(lengths.max())
        padded = starts[:, None] + slots[None, :]
        valid = slots[None, :] < lengths[:, None]
        padded = np.where(valid, padded, starts[:, None])
        rest = (np.float32(1.0) - weight).astype(np.float32)
        return cls(left, right, weight, rest, starts, lengths, padded, valid)


def bilinear_mix(
    corners: tuple[Any, Any, Any, Any],
    row_weight: Any,
    row_rest: Any,
    col_weight: Any,
    col_rest: Any,
    maximum: Callable[[Any, Any], Any] = np.maximum,
    minimum: Callable[[Any, Any], Any] = np.minimum,
) -> Any:
    """The upsampled value from the four input cells around a pixel: the one arithmetic of every path.

    Each product and sum in this order, in float32, then clipped to the largest cell. Arrays of
    another library (torch tensors) give the same values with that library's ``maximum`` and
    ``minimum``, every operation being elementwise and rounded the same way.
    """
    top_left, top_right, bottom_left, bottom_right = corners
    top = top_left * col_rest + top_right * col_weight
    bottom = bottom_left * col_rest + bottom_right * col_weight
    value = top * row_rest + bottom * row_weight
    ceiling = maximum(maximum(top_left, top_right), maximum(bottom_left, bottom_right))
    return minimum(value, ceiling)


class BilinearUpsampler:
    """Upsample (n, h, w) maps to (n, H, W), in full or only above a threshold.

    Parameters
    ----------
    in_size : (h, w)
    out_size : (H, W)
    """

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
        self.in_size = (int(in_size[0]), int(in_size[1]))
        self.out_size = (int(out_size[0]), int(out_size[1]))
        self._rows = _Axis.build(*(self.in_size[0], self.out_size[0]))
        self._cols = _Axis.build(*(self.in_size[1], self.out_size[1]))

    def sources(self) -> tuple[tuple[NDArray, NDArray, NDArray, NDArray], tuple[NDArray, NDArray, NDArray, NDArray]]:
        """Per output row, then per output column: left and right input index, the right one's weight, 1 - it."""
        rows, cols = self._rows, self._cols
        return (rows.left, rows.right, rows.weight, rows.rest), (cols.left, cols.right, cols.weight, cols.rest)

    def _check(self, maps: NDArray[np.floating]) -> NDArray[np.float32]:
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim != 3 or maps.shape[1:] != self.in_size:
            raise ValueError(f"expected maps of shape (n, {self.in_size[0]}, {self.in_size[1]}), got {maps.shape}")
        return maps

    def __call__(self, maps: NDArray[np.floating]) -> NDArray[np.float32]:
        """Upsample every pixel of every map."""
        return self.grid_values(maps, np.arange(self.out_size[0]), np.arange(self.out_size[1]))

    def grid_values(
        self, maps: NDArray[np.floating], row: NDArray[np.intp], col: NDArray[np.intp]
    ) -> NDArray[np.float32]:
        """Upsampled values of the output pixels at the given rows and columns: (n, rows, columns)."""
        maps = self._check(maps)
        rows, cols = self._rows, self._cols
        top, bottom = maps[:, rows.left[row], :], maps[:, rows.right[row], :]
        left, right = cols.left[col], cols.right[col]
        corners = (top[:, :, left], top[:, :, right], bottom[:, :, left], bottom[:, :, right])
        return bilinear_mix(
            corners, rows.weight[row][None, :, None], rows.rest[row][None, :, None], cols.weight[col][None, None, :],
            cols.rest[col][None, None, :],
        )  # fmt: skip

    def block_grid(self) -> tuple[tuple[NDArray[np.intp], NDArray[np.intp]], tuple[NDArray[np.intp], NDArray[np.intp]]]:
        """(first pixel, length) of the blocks along the rows and along the columns."""
        return (self._rows.block_start, self._rows.block_length), (self._cols.block_start, self._cols.block_length)

    def block_cells(self, maps: NDArray[np.floating]) -> tuple[NDArray[np.float32], ...]:
        """The four input cells mixed by each block: top left, top right, bottom left, bottom right.

        Each is a float32 array (n, blocks along the rows, blocks along the columns).
        """
        maps = self._check(maps)
        rows, cols = self._rows, self._cols
        top, bottom = maps[:, rows.left[rows.block_start], :], maps[:, rows.right[rows.block_start], :]
        col_left, col_right = cols.left[cols.block_start], cols.right[cols.block_start]
        return top[:, :, col_left], top[:, :, col_right], bottom[:, :, col_left], bottom[:, :, col_right]

    def values_at(
        self, maps: NDArray[np.floating], index: NDArray[np.intp], row: NDArray[np.intp], col: NDArray[np.intp]
    ) -> NDArray[np.float32]:
        """Upsampled values of pixels ``(row, col)`` of ``maps[index]`` (broadcast together).

        The same float32 arithmetic as :meth:`__call__`, so the same values.
        """
        maps = self._check(maps)
        rows, cols = self._rows, self._cols
        top, bottom = rows.left[row], rows.right[row]
        left, right = cols.left[col], cols.right[col]
        corners = (
            maps[index, top, left],
            maps[index, top, right],
            maps[index, bottom, left],
            maps[index, bottom, right],
        )
        return bilinear_mix(corners, rows.weight[row], rows.rest[row], cols.weight[col], cols.rest[col])

    def values_in_blocks(
        self,
        maps: NDArray[np.floating],
        index: NDArray[np.intp],
        block_row: NDArray[np.intp],
        block_col: NDArray[np.intp],
        row: NDArray[np.intp],
        col: NDArray[np.intp],
    ) -> NDArray[np.float32]:
        """Like :meth:`values_at` for pixels known to lie in blocks ``(block_row, block_col)`` of ``maps[index]``.

        ``index`` and the blocks are (n,) arrays; ``row`` and ``col`` broadcast against
        ``(n, ...)``. The four cells are read once per block; the values are the same.
        """
        maps = self._check(maps)
        rows, cols = self._rows, self._cols
        top, bottom = rows.left[rows.block_start[block_row]], rows.right[rows.block_start[block_row]]
        left, right = cols.left[cols.block_start[block_col]], cols.right[cols.block_start[block_col]]
        extra = (slice(None),) + (None,) * (np.ndim(row) - 1)
        corners = tuple(
            maps[index, y, x][extra] for y, x in ((top, left), (top, right), (bottom, left), (bottom, right))
        )
        return bilinear_mix(corners, rows.weight[row], rows.rest[row], cols.weight[col], cols.rest[col])  # type: ignore[arg-type]

    def _candidate_blocks(
        self, maps: NDArray[np.floating], lower: NDArray[np.float32]
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], NDArray[np.float32], NDArray[np.bool_]]:
        """Blocks that may exceed ``lower``: map index, row and column slots, values, validity."""
        maps = self._check(maps)
        rows, cols = self._rows, self._cols
        row_left, row_right = rows.left[rows.block_start], rows.right[rows.block_start]
        col_left, col_right = cols.left[cols.block_start], cols.right[cols.block_start]
        top, bottom = maps[:, row_left, :], maps[:, row_right, :]
        corners = (top[:, :, col_left], top[:, :, col_right], bottom[:, :, col_left], bottom[:, :, col_right])
        ceiling = np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3]))
        index, block_row, block_col = np.nonzero(ceiling > lower[:, None, None])
        picked = tuple(c[index, block_row, block_col][:, None, None] for c in corners)
        y = rows.padded[block_row]  # (k, longest block of rows)
        x = cols.padded[block_col]
        values = bilinear_mix(
            picked, rows.weight[y][:, :, None], rows.rest[y][:, :, None], cols.weight[x][:, None, :],
            cols.rest[x][:, None, :],
        )  # fmt: skip
        valid = rows.valid[block_row][:, :, None] & cols.valid[block_col][:, None, :]
        return index, y, x, values, valid

    def blocks(
        self, maps: NDArray[np.floating], lower: NDArray[np.floating]
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
        """Every pixel of the blocks that may exceed ``lower``, with its value.

        Parameters
        ----------
        maps : float array, shape (n, h, w)
        lower : float array, shape (n,)
            Per-map bound: blocks whose four cells are all ``<= lower`` are left out (none
            of their pixels exceeds it).

        Returns
        -------
        map_index, row, col : int arrays
            The pixels of the evaluated blocks.
        values : float32 array
            Their upsampled values.
        """
        lower = np.asarray(lower, dtype=np.float32).reshape(-1)
        index, y, x, values, valid = self._candidate_blocks(maps, lower)
        block, dy, dx = np.nonzero(valid)
        return index[block], y[block, dy], x[block, dx], values[block, dy, dx]

    def above(
        self, maps: NDArray[np.floating], thresholds: NDArray[np.floating]
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Pixels whose upsampled value exceeds the map's threshold.

        Returns
        -------
        map_index, pixel : int arrays
            ``pixel = row * W + col`` on the output grid.
        """
        thresholds = np.asarray(thresholds, dtype=np.float32).reshape(-1)
        index, y, x, values, valid = self._candidate_blocks(maps, thresholds)
        block, dy, dx = np.nonzero(valid & (values > thresholds[index][:, None, None]))
        return index[block], y[block, dy] * self.out_size[1] + x[block, dx]
