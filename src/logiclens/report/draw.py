"""Image files of the report: probe images as JPEG, mask overlays as small palette PNGs.

An overlay is transparent at the annotation size, drawn over its image (scaled up with
square pixels): the unit's mask, the formula's mask and their overlap in three colours, each
filled lightly and outlined. A unit's overlays are stacked into one PNG (one file per unit
rather than per image: thousands of small files are slow to write and to delete).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["COLORS", "overlay_image", "save_overlays", "save_probe_image"]

#: colours of the legend (Okabe-Ito palette, distinguishable with colour blindness)
COLORS = {"unit": "#E69F00", "formula": "#56B4E9", "both": "#009E73"}
_FILL_ALPHA = 90
_EDGE_ALPHA = 255
_EDGE_WIDTH = 2


def _rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def _palette() -> tuple[list[int], bytes]:
    """Palette and transparency of overlays: index 0 clear, 1-3 fills, 4-6 edges."""
    colors = [(0, 0, 0)] + [_rgb(COLORS[k]) for k in ("unit", "formula", "both")] * 2
    alpha = bytes([0] + [_FILL_ALPHA] * 3 + [_EDGE_ALPHA] * 3)
    return [channel for color in colors for channel in color], alpha


def _erode(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels of a mask whose 4-neighbours are all in it (the image border counts as outside)."""
    padded = np.pad(mask, 1)
    return mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]


def _edges(mask: NDArray[np.bool_], width: int = _EDGE_WIDTH) -> NDArray[np.bool_]:
    """The inner band of a mask, ``width`` pixels wide."""
    inner = mask
    for _ in range(width):
        inner = _erode(inner)
    return mask & ~inner


def overlay_image(unit: NDArray[np.bool_], formula: NDArray[np.bool_]) -> NDArray[np.uint8]:
    """Palette indices of an overlay.

    Parameters
    ----------
    unit, formula : bool arrays (H, W)

    Returns
    -------
    uint8 array (H, W)
        0 outside both masks; 1, 2, 3 inside the unit's mask only, the formula's only, both;
        4, 5, 6 the same on the masks' outlines.
    """
    region = unit.astype(np.uint8) + 2 * formula.astype(np.uint8)  # 1 unit, 2 formula, 3 both
    edge = _edges(unit) | _edges(formula)
    return np.where(edge & (region > 0), region + 3, region).astype(np.uint8)


def save_overlays(units: NDArray[np.bool_], formulas: NDArray[np.bool_], path: Path) -> None:
    """Write the overlays of n pairs of masks, stacked top to bottom, as one palette PNG.

    Parameters
    ----------
    units, formulas : bool arrays (n, H, W)
    path : Path
        The PNG (W x n*H pixels, transparent outside the masks). Frame i is shown by
        scaling the strip to the frame's width and shifting it up by i frames.
    """
    from PIL import Image

    indices = np.concatenate([overlay_image(u, f) for u, f in zip(units, formulas)], axis=0)
    image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), np.ascontiguousarray(indices).tobytes())
    palette, alpha = _palette()
    image.putpalette(palette)
    image.save(path, format="PNG", transparency=alpha, optimize=False, compress_level=6)


def save_probe_image(image: NDArray[np.floating], path: Path, quality: int = 85) -> None:
    """Write a probe image, float RGB (3, H, W) in [0, 1], as JPEG."""
    from PIL import Image

    pixels = np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0))).save(path, format="JPEG", quality=quality)
