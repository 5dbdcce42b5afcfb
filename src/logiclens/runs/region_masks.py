"""Which positions belong to each region unit of a layer (``region_masks_<layer>.npz``).

Code-cluster runs (``--units code-clusters``) explain units that are sets of positions (code
clusters, activation clusters, thresholded directions, random subsets). This file keeps those
sets, one row per row of ``regions_<layer>.csv`` in the same order, so that the report can
draw their cards: ``masks`` (bits packed along positions, :func:`numpy.packbits`),
``n_positions``, ``units`` (the names, as in the CSV) and ``grid`` (``(h, w)`` of a vision
layer, whose positions run in ``(image, i, j)`` order; empty for text runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from logiclens.core.io import InputFileError, atomic_savez, read_npz

__all__ = ["RegionMasks", "load_region_masks", "save_region_masks"]


@dataclass
class RegionMasks:
    """Region units as sets of positions.

    Attributes
    ----------
    packed : uint8 array (units, ceil(n_positions / 8))
    n_positions : int
    units : list of str
    grid : tuple of int
        ``(h, w)`` for vision layers, ``()`` for text runs.
    """

    packed: NDArray[np.uint8]
    n_positions: int
    units: list[str]
    grid: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.units)

    def mask(self, row: int) -> NDArray[np.bool_]:
        """Row ``row`` as a bool array (n_positions,)."""
        return np.unpackbits(self.packed[row], count=self.n_positions).astype(bool)


def save_region_masks(
    path: str | os.PathLike[str], masks: NDArray[np.bool_], units: list[str], grid: tuple[int, ...] = ()
) -> None:
    """Write region units' masks (bool (units, positions)) atomically."""
    masks = np.asarray(masks, bool)
    if masks.ndim != 2 or len(masks) != len(units):
        raise ValueError(f"masks of shape {masks.shape} for {len(units)} units")
    if grid and masks.shape[1] % int(np.prod(grid)):
        raise ValueError(f"{masks.shape[1]} positions are no whole number of {tuple(grid)} grids")
    atomic_savez(
        path,
        {
            "masks": np.packbits(masks, axis=1),
            "n_positions": np.int64(masks.shape[1]),
            "units": np.asarray([str(u) for u in units], dtype=str),
            "grid": np.asarray(grid, np.int64),
        },
    )


def load_region_masks(path: str | os.PathLike[str]) -> RegionMasks:
    """Read ``region_masks_<layer>.npz``.

    Raises
    ------
    InputFileError
        One line naming the file, if it is missing, damaged or inconsistent.
    """
    path = Path(path)
    data = read_npz(path, ("masks", "n_positions", "units", "grid"))
    try:
        packed = np.asarray(data["masks"])
        n_positions = int(data["n_positions"])
        units = [str(u) for u in np.asarray(data["units"]).tolist()]
        grid = tuple(int(v) for v in np.asarray(data["grid"]).ravel())
    except InputFileError:
        raise
    except (ValueError, TypeError) as error:
        raise InputFileError(f"{path}: damaged ({error})") from None
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape != (len(units), -(-n_positions // 8)):
        raise InputFileError(
            f"{path}: masks of shape {packed.shape} ({packed.dtype}) do not hold {len(units)} units of "
            f"{n_positions} positions"
        )
    if grid and (len(grid) != 2 or min(grid) < 1 or n_positions % (grid[0] * grid[1])):
        raise InputFileError(f"{path}: {n_positions} positions are no whole number of {grid} grids")
    return RegionMasks(packed, n_positions, units, grid)
