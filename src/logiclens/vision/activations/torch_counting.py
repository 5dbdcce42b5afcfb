"""The active pixels of (image, unit) maps computed in torch, on a GPU or on the CPU.

:class:`TorchActivePixels` is a drop-in for
:func:`~logiclens.vision.activations.active.active_pixels` (same arguments, same pixels):
the maps are upsampled in full on ``device`` with
:func:`~logiclens.vision.activations.upsample.bilinear_mix`, the NumPy path's float32
arithmetic (each product and sum a separate elementwise operation in the same order, so every
value is rounded as NumPy rounds it), compared with the thresholds there, and only the
active pixels come back. Tied values of units whose ties are broken are resolved on the CPU
with the same tie keys. The counts per signature are then tallied on the CPU as before, so a
masks stage with ``count_device`` set writes the same counts as without.

A GPU upsamples every pixel of every candidate map faster than the CPU upsamples only the
blocks that can exceed the threshold; on the CPU the NumPy path is the faster one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from logiclens.vision.activations.ties import tie_keys
from logiclens.vision.activations.upsample import BilinearUpsampler, bilinear_mix

__all__ = ["TorchActivePixels"]

#: upsampled pixels per piece of work (bounds the device memory: about 6 float32 copies)
_PIXELS_PER_PIECE = 1 << 24


class TorchActivePixels:
    """``active_pixels`` on a torch device (see the module's docstring).

    Parameters
    ----------
    device : str
        ``"cuda"``, ``"cuda:1"``, ``"cpu"``, ...
    """

    def __init__(self, device: str) -> None:
        self.device = str(device)
        self._grids: dict[tuple[tuple[int, int], tuple[int, int]], tuple[torch.Tensor, ...]] = {}

    def __getstate__(self) -> dict[str, Any]:  # sent to workers without its device tensors
        return {"device": self.device, "_grids": {}}

    def _grid(self, upsampler: BilinearUpsampler) -> tuple[torch.Tensor, ...]:
        key = (upsampler.in_size, upsampler.out_size)
        if key not in self._grids:
            rows, cols = upsampler.sources()
            arrays = (*rows, *cols)
            self._grids[key] = tuple(torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays)
        return self._grids[key]

    def upsample(self, upsampler: BilinearUpsampler, maps: torch.Tensor) -> torch.Tensor:
        """Every pixel of (n, h, w) float32 maps on the device, as ``upsampler(maps)`` computes it."""
        row_left, row_right, row_weight, row_rest, col_left, col_right, col_weight, col_rest = self._grid(upsampler)
        top, bottom = maps[:, row_left, :], maps[:, row_right, :]
        corners = (top[:, :, col_left], top[:, :, col_right], bottom[:, :, col_left], bottom[:, :, col_right])
        return bilinear_mix(
            corners, row_weight[None, :, None], row_rest[None, :, None], col_weight[None, None, :],
            col_rest[None, None, :], torch.maximum, torch.minimum,
        )  # fmt: skip

    def __call__(
        self,
        upsampler: BilinearUpsampler,
        maps: NDArray[np.float32],
        thresholds: NDArray[np.float32],
        units: NDArray[np.intp],
        images: NDArray[np.intp],
        tie_cuts: NDArray[np.float64] | None = None,
        unit_offset: int = 0,
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(map index, flat pixel) of the active pixels, as ``active_pixels`` finds them."""
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim != 3 or maps.shape[1:] != upsampler.in_size:
            h, w = upsampler.in_size
            raise ValueError(f"expected maps of shape (n, {h}, {w}), got {maps.shape}")
        thresholds = np.asarray(thresholds, dtype=np.float32).reshape(-1)
        height, width = upsampler.out_size
        step = max(1, _PIXELS_PER_PIECE // (height * width))
        indices, pixels = [], []
        for start in range(0, len(maps), step):
            part = slice(start, start + step)
            index, pixel = self._piece(upsampler, maps[part], thresholds[part], units[part], images[part], tie_cuts,
                                       unit_offset)  # fmt: skip
            indices.append(index + start)
            pixels.append(pixel)
        if not indices:
            return np.zeros(0, np.intp), np.zeros(0, np.intp)
        return np.concatenate(indices), np.concatenate(pixels)

    def _piece(
        self,
        upsampler: BilinearUpsampler,
        maps: NDArray[np.float32],
        thresholds: NDArray[np.float32],
        units: NDArray[np.intp],
        images: NDArray[np.intp],
        tie_cuts: NDArray[np.float64] | None,
        unit_offset: int,
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        with torch.no_grad():
            values = self.upsample(upsampler, torch.from_numpy(np.ascontiguousarray(maps)).to(self.device))
            values = values.reshape(len(maps), -1)
            limit = torch.from_numpy(thresholds).to(self.device)[:, None]
            index, pixel = (t.cpu().numpy().astype(np.intp) for t in torch.nonzero(values > limit, as_tuple=True))
            if tie_cuts is None or not (tie_cuts[units] >= 0).any():
                return index, pixel
            broken = torch.from_numpy(tie_cuts[units] >= 0).to(self.device)[:, None]
            tied = torch.nonzero((values == limit) & broken, as_tuple=True)
            tied_index, tied_pixel = (t.cpu().numpy().astype(np.intp) for t in tied)
        keys = tie_keys(units[tied_index] + unit_offset, images[tied_index], tied_pixel)
        keep = keys <= tie_cuts[units[tied_index]]
        return np.concatenate([index, tied_index[keep]]), np.concatenate([pixel, tied_pixel[keep]])
