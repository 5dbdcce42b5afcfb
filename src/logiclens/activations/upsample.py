"""Bilinear upsampling of activation maps as two matrix products.

The result equals ``torch.nn.functional.interpolate(x, size, mode="bilinear",
align_corners=False)``: pixel centres are aligned (half-pixel offsets) and coordinates
outside the input are clamped to its edge. Every output value is a convex combination of
input values, so it never exceeds the map's maximum, which lets callers skip maps whose
maximum cannot reach a threshold; the result is clipped to the map's maximum so that float32
rounding (at most one unit in the last place) cannot break that rule.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["BilinearUpsampler", "interpolation_matrix"]


def interpolation_matrix(n_in: int, n_out: int) -> NDArray[np.float32]:
    """(n_out, n_in) matrix of 1-D linear interpolation weights, half-pixel aligned."""
    scale = n_in / n_out
    source = (np.arange(n_out) + 0.5) * scale - 0.5
    source = np.clip(source, 0.0, None)
    left = np.minimum(np.floor(source).astype(np.int64), n_in - 1)
    right = np.minimum(left + 1, n_in - 1)
    frac = (source - left).astype(np.float64)
    matrix = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, left), 1.0 - frac)
    np.add.at(matrix, (rows, right), frac)
    return matrix.astype(np.float32)


class BilinearUpsampler:
    """Upsample (n, h, w) maps to (n, H, W).

    Parameters
    ----------
    in_size : (h, w)
    out_size : (H, W)
    """

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
        self.in_size = (int(in_size[0]), int(in_size[1]))
        self.out_size = (int(out_size[0]), int(out_size[1]))
        self._rows = interpolation_matrix(self.in_size[0], self.out_size[0])  # (H, h)
        self._cols_t = np.ascontiguousarray(interpolation_matrix(self.in_size[1], self.out_size[1]).T)  # (w, W)

    def __call__(self, maps: NDArray[np.floating]) -> NDArray[np.float32]:
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim != 3 or maps.shape[1:] != self.in_size:
            raise ValueError(f"expected maps of shape (n, {self.in_size[0]}, {self.in_size[1]}), got {maps.shape}")
        n, h, w = maps.shape
        big_h, big_w = self.out_size
        if (h, w) == (big_h, big_w):
            return maps.copy()
        wide = (maps.reshape(n * h, w) @ self._cols_t).reshape(n, h, big_w)  # interpolate along columns
        tall = wide.transpose(0, 2, 1).reshape(n * big_w, h) @ self._rows.T  # then along rows
        out = np.ascontiguousarray(tall.reshape(n, big_w, big_h).transpose(0, 2, 1))
        return np.minimum(out, maps.max(axis=(1, 2))[:, None, None], out=out)
