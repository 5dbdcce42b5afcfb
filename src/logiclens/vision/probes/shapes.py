"""A procedural probe: geometric shapes on textured backgrounds, with pixel-exact labels.

:class:`ShapesProbe` is the built-in fallback probing set. Every image is rendered on the fly
from ``(seed, index)``, so access is random, nothing is stored, and the annotations are exact:

* ``scene`` — the background kind (plain colours and procedural textures), one per image,
  repeated over every annotation pixel like Broden's scene labels;
* ``object`` — the shape class (circle, square, ...); one to three shapes per image, later
  shapes drawn over earlier ones;
* ``part`` — ``<shape>/border`` (the band of pixels within the border width of the shape's
  outline) and ``<shape>/fill`` (the rest of the shape); the two partition the shape;
* ``color`` — one of Broden's eleven colour names (:mod:`logiclens.vision.probes.colors`),
  computed from the rendered pixels.

Annotation grid
---------------
The image (``H x W``) and the annotations (``h x w``, ``h <= H``) are tied as follows. Mask
row ``i`` covers the image rows ``floor(i * H / h) .. floor((i + 1) * H / h) - 1`` (its
*block*; columns likewise), and its *centre pixel* is the middle row of that block,
``(start + stop) // 2`` (for 224 -> 112: block rows ``2i, 2i + 1``, centre row ``2i + 1``).

* The object and part labels of a mask pixel are those of its centre pixel, which the image
  renders without anti-aliasing, so labels and pixels agree exactly.
* The colour label is :func:`~logiclens.vision.probes.colors.color_labels` of the block's mean
  colour (:func:`block_mean`, computed in float64 from the returned float32 image).

The helpers that render backgrounds (:func:`render_background`, :data:`SCENE_NAMES`) and map
between the two grids (:func:`block_bounds`, :func:`block_mean`, :func:`centre_pixels`) are
shared with :mod:`logiclens.vision.probes.stamps`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from logiclens.vision.probes.base import ProbeDataset
from logiclens.vision.probes.colors import COLOR_NAMES, color_labels

__all__ = [
    "PART_NAMES",
    "SCENE_NAMES",
    "SHAPE_NAMES",
    "Shape",
    "ShapesProbe",
    "as_size",
    "block_bounds",
    "block_mean",
    "centre_pixels",
    "draw_shape",
    "random_color",
    "render_background",
    "sample_background",
    "sample_centres",
]

#: bump when rendering changes, so that caches keyed by ``config()`` notice
SHAPES_VERSION = 1

#: background kinds (image-level ``scene`` concepts; the ``-s`` suffix is Broden's scene convention)
SCENE_NAMES: tuple[str, ...] = (
    "plain-white-s",
    "plain-grey-s",
    "plain-blue-s",
    "plain-green-s",
    "stripes-s",
    "checkerboard-s",
    "dots-s",
    "grid-s",
    "noise-s",
    "gradient-s",
)
#: shape classes (``object`` concepts)
SHAPE_NAMES: tuple[str, ...] = ("circle", "ellipse", "square", "triangle", "hexagon", "star", "cross", "ring")
#: parts of every shape (``part`` concepts are ``<shape>/<part>``)
PART_NAMES: tuple[str, ...] = ("border", "fill")

_PLAIN_COLORS = {
    "plain-white-s": (0.95, 0.95, 0.95),
    "plain-grey-s": (0.5, 0.5, 0.5),
    "plain-blue-s": (0.2, 0.4, 0.85),
    "plain-green-s": (0.25, 0.6, 0.25),
}

Size = tuple[int, int]
Image = NDArray[np.float32]


# ---------------------------------------------------------------------- annotation grid
def as_size(size: int | tuple[int, int]) -> Size:
    """``(height, width)`` from an int or a pair."""
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    height, width = size
    return int(height), int(width)


def block_bounds(image_length: int, mask_length: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """First and one-past-last image row of each mask row's block.

    Parameters
    ----------
    image_length, mask_length : int
        Image and mask extent along one axis, ``mask_length <= image_length``.

    Returns
    -------
    starts, stops : ndarray of intp, shape (mask_length,)
        ``floor(i * H / h)`` and ``floor((i + 1) * H / h)``.
    """
    if not 0 < mask_length <= image_length:
        raise ValueError(f"mask length {mask_length} must be in 1 .. image length {image_length}")
    edges = (np.arange(mask_length + 1) * image_length) // mask_length
    return edges[:-1], edges[1:]


def centre_pixels(image_length: int, mask_length: int) -> NDArray[np.intp]:
    """Image row (or column) whose labels each mask row takes: the middle of its block."""
    starts, stops = block_bounds(image_length, mask_length)
    return (starts + stops) // 2


def block_mean(image: NDArray[np.floating], mask_size: int | tuple[int, int]) -> NDArray[np.float64]:
    """Mean of each mask pixel's block of image pixels.

    Parameters
    ----------
    image : float array, shape (H, W, C)
    mask_size : int or (h, w)

    Returns
    -------
    ndarray of float64, shape (h, w, C)
    """
    h, w = as_size(mask_size)
    height, width = image.shape[:2]
    if height % h == 0 and width % w == 0:  # equal blocks: add strided views, one per offset in the block
        rh, rw = height // h, width // w
        sums = np.zeros((h, w, image.shape[2]), np.float64)
        for dr in range(rh):
            for dc in range(rw):
                sums += image[dr::rh, dc::rw]
        return sums / (rh * rw)
    row_starts, row_stops = block_bounds(height, h)
    col_starts, col_stops = block_bounds(width, w)
    sums = np.add.reduceat(np.add.reduceat(image.astype(np.float64), row_starts, axis=0), col_starts, axis=1)
    counts = (row_stops - row_starts)[:, None] * (col_stops - col_starts)[None, :]
    return sums / counts[..., None]


def sample_centres(array: NDArray[Any], mask_size: Size) -> NDArray[Any]:
    """The values of ``array`` (H, W, ...) at the centre pixels of the mask grid."""
    rows = centre_pixels(array.shape[0], mask_size[0])
    cols = centre_pixels(array.shape[1], mask_size[1])
    return array[np.ix_(rows, cols)]


# ---------------------------------------------------------------------- colours and backgrounds
def _hsv_to_rgb(hue: float, saturation: float, value: float) -> NDArray[np.float32]:
    """One HSV colour (components in [0, 1]) as RGB."""
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    rgb = value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return rgb.astype(np.float32)


def random_color(rng: np.random.Generator) -> NDArray[np.float32]:
    """A random RGB colour: a grey level one time in five, else a random hue of medium-high saturation."""
    if rng.random() < 0.2:
        return np.full(3, rng.uniform(0.05, 0.95), np.float32)
    return _hsv_to_rgb(rng.random(), rng.uniform(0.35, 1.0), rng.uniform(0.35, 1.0))


def _two_colors(rng: np.random.Generator) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Two random colours that differ visibly (a few redraws at most)."""
    first = random_color(rng)
    second = random_color(rng)
    for _ in range(8):
        if np.abs(first - second).sum() > 0.45:
            break
        second = random_color(rng)
    return first, second


@lru_cache(maxsize=8)
def _pixel_grid(size: Size) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Row and column coordinates of the pixel centres (read-only, broadcastable)."""
    rows = np.arange(size[0], dtype=np.float32)[:, None] + 0.5
    cols = np.arange(size[1], dtype=np.float32)[None, :] + 0.5
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


def _rotated_grid(rng: np.random.Generator, size: Size) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Pixel coordinates in a randomly rotated and shifted frame."""
    rows, cols = _pixel_grid(size)
    angle = rng.uniform(0.0, np.pi)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    shift = rng.uniform(0.0, 100.0, size=2).astype(np.float32)
    return cols * cos + rows * sin + shift[0], rows * cos - cols * sin + shift[1]


def _mix(first: NDArray[np.float32], second: NDArray[np.float32], weight: NDArray[np.generic]) -> Image:
    """Per-pixel blend ``first * (1 - weight) + second * weight``; weight (H, W) is boolean or in [0, 1]."""
    if weight.dtype == bool:
        return np.where(weight[..., None], second, first)
    weight = weight.astype(np.float32)[..., None]
    out = weight * (second - first)
    out += first
    return out


def _scale(size: Size) -> float:
    """Pattern scale: 1 at 224 pixels."""
    return min(size) / 224.0


def _plain(kind: str) -> Callable[[np.random.Generator, Size], Image]:
    """Renderer of a plain background: the kind's colour, each channel jittered by up to 0.06."""
    base = np.array(_PLAIN_COLORS[kind], np.float32)

    def render(rng: np.random.Generator, size: Size) -> Image:
        color = np.clip(base + rng.uniform(-0.06, 0.06, 3).astype(np.float32), 0.0, 1.0)
        return np.broadcast_to(color, (*size, 3)).copy()

    return render


def _stripes(rng: np.random.Generator, size: Size) -> Image:
    u, _ = _rotated_grid(rng, size)
    period = rng.uniform(8.0, 32.0) * _scale(size)
    return _mix(*_two_colors(rng), (u % period) < period / 2)


def _checkerboard(rng: np.random.Generator, size: Size) -> Image:
    u, v = _rotated_grid(rng, size)
    cell = rng.uniform(8.0, 32.0) * _scale(size)
    return _mix(*_two_colors(rng), (np.floor(u / cell) + np.floor(v / cell)) % 2 == 1)


def _dots(rng: np.random.Generator, size: Size) -> Image:
    u, v = _rotated_grid(rng, size)
    spacing = rng.uniform(12.0, 32.0) * _scale(size)
    radius = rng.uniform(0.2, 0.4) * spacing
    du, dv = u % spacing - spacing / 2, v % spacing - spacing / 2
    return _mix(*_two_colors(rng), du * du + dv * dv < radius * radius)


def _grid(rng: np.random.Generator, size: Size) -> Image:
    u, v = _rotated_grid(rng, size)
    spacing = rng.uniform(12.0, 32.0) * _scale(size)
    width = rng.uniform(2.0, 5.0) * _scale(size)
    return _mix(*_two_colors(rng), ((u % spacing) < width) | ((v % spacing) < width))


def _upsample(grid: NDArray[np.float64], size: Size) -> NDArray[np.float32]:
    """Bilinear upsampling of a small (n, m) grid to ``size``, corners aligned."""
    rows = np.linspace(0.0, grid.shape[0] - 1, size[0])
    cols = np.linspace(0.0, grid.shape[1] - 1, size[1])
    r0 = np.minimum(rows.astype(np.intp), grid.shape[0] - 2)
    c0 = np.minimum(cols.astype(np.intp), grid.shape[1] - 2)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c0 + 1] * fc
    bottom = grid[r0 + 1][:, c0] * (1 - fc) + grid[r0 + 1][:, c0 + 1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def _noise(rng: np.random.Generator, size: Size) -> Image:
    coarse = _upsample(rng.random((5, 5)), size)
    fine = _upsample(rng.random((14, 14)), size)
    return _mix(*_two_colors(rng), np.clip(0.7 * coarse + 0.3 * fine, 0.0, 1.0))


def _gradient(rng: np.random.Generator, size: Size) -> Image:
    u, _ = _rotated_grid(rng, size)
    low, high = float(u.min()), float(u.max())
    return _mix(*_two_colors(rng), (u - low) / max(high - low, 1e-6))


_BACKGROUNDS: dict[str, Callable[[np.random.Generator, Size], Image]] = {
    **{kind: _plain(kind) for kind in _PLAIN_COLORS},
    "stripes-s": _stripes,
    "checkerboard-s": _checkerboard,
    "dots-s": _dots,
    "grid-s": _grid,
    "noise-s": _noise,
    "gradient-s": _gradient,
}


def render_background(kind: str, rng: np.random.Generator, size: int | tuple[int, int]) -> Image:
    """Render a background of one of the :data:`SCENE_NAMES` kinds.

    Parameters
    ----------
    kind : str
        A name from :data:`SCENE_NAMES`.
    rng : numpy.random.Generator
        Source of the random colours and pattern parameters.
    size : int or (H, W)

    Returns
    -------
    ndarray of float32, shape (H, W, 3)
        RGB in [0, 1].
    """
    return np.clip(_BACKGROUNDS[kind](rng, as_size(size)), 0.0, 1.0).astype(np.float32, copy=False)


def sample_background(rng: np.random.Generator, size: int | tuple[int, int]) -> tuple[int, Image]:
    """A background of a uniformly drawn kind: its index in :data:`SCENE_NAMES` and its pixels."""
    kind = int(rng.integers(len(SCENE_NAMES)))
    return kind, render_background(SCENE_NAMES[kind], rng, size)


# ---------------------------------------------------------------------- shapes
def _regular_polygon(n: int, phase: float = -np.pi / 2) -> NDArray[np.float64]:
    """Vertices of a regular n-gon inscribed in the unit circle."""
    angles = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star_polygon(points: int = 5, inner: float = 0.45) -> NDArray[np.float64]:
    """Vertices of a star with unit outer radius."""
    radii = np.tile([1.0, inner], points)
    angles = -np.pi / 2 + np.pi * np.arange(2 * points) / points
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _cross_polygon(half_width: float = 0.33) -> NDArray[np.float64]:
    """Vertices of a plus sign whose arm corners lie on the unit circle."""
    h = half_width
    a = np.sqrt(1.0 - h * h)
    return np.array(
        [(a, -h), (a, h), (h, h), (h, a), (-h, a), (-h, h), (-a, h), (-a, -h), (-h, -h), (-h, -a), (h, -a), (h, -h)]
    )


_POLYGONS: dict[str, NDArray[np.float64]] = {
    "square": _regular_polygon(4, np.pi / 4),
    "triangle": _regular_polygon(3),
    "hexagon": _regular_polygon(6, 0.0),
    "star": _star_polygon(),
    "cross": _cross_polygon(),
}


@dataclass(frozen=True)
class Shape:
    """One shape to draw: class, placement (image pixels), border width, colours and form parameters."""

    kind: int
    centre: tuple[float, float]  # (row, column)
    radius: float  # circumradius
    angle: float
    border: float
    fill_color: NDArray[np.float32]
    border_color: NDArray[np.float32]
    form: float  # ellipse aspect ratio or ring hole ratio


def _polygon_depth(
    x: NDArray[np.float32], y: NDArray[np.float32], vertices: NDArray[np.float64]
) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
    """Inside test (crossing number) and distance to the outline, looping over edges only."""
    inside = np.zeros(np.broadcast_shapes(x.shape, y.shape), bool)
    squared = np.full(inside.shape, np.inf, np.float32)
    for (ax, ay), (bx, by) in zip(vertices, np.roll(vertices, -1, axis=0)):
        px, py = x - np.float32(ax), y - np.float32(ay)
        ex, ey = np.float32(bx - ax), np.float32(by - ay)
        if ay != by:
            inside ^= ((py < 0) != (y < by)) & (px < ex / ey * py)
        t = px * ex
        t += py * ey
        t *= 1.0 / (ex * ex + ey * ey)
        np.clip(t, 0.0, 1.0, out=t)
        px -= t * ex
        py -= t * ey
        np.minimum(squared, px * px + py * py, out=squared)
    return inside, np.sqrt(squared)


def _shape_depth(
    shape: Shape, x: NDArray[np.float32], y: NDArray[np.float32]
) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
    """Inside mask and distance to the outline (in radii) at local, rotated coordinates (in radii)."""
    name = SHAPE_NAMES[shape.kind]
    if name in _POLYGONS:
        return _polygon_depth(x, y, _POLYGONS[name])
    distance = np.hypot(x, y)
    if name == "circle":
        return distance <= 0.85, 0.85 - distance
    if name == "ring":
        hole = 0.9 * shape.form
        return (distance <= 0.9) & (distance >= hole), np.minimum(0.9 - distance, distance - hole)
    return _ellipse_depth(x, y, 1.0, shape.form)


def _ellipse_depth(
    x: NDArray[np.float32], y: NDArray[np.float32], a: float, b: float
) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
    """Inside mask and first-order distance to the outline of an axis-aligned ellipse."""
    q = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    gradient = np.sqrt((x / a**2) ** 2 + (y / b**2) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(gradient > 0, (1.0 - q) * q / gradient, b)
    return q <= 1.0, np.minimum(depth, b).astype(np.float32)


def _random_shape(rng: np.random.Generator, size: Size, min_border: float) -> Shape:
    """Draw the class, placement, border and colours of one shape."""
    kind = int(rng.integers(len(SHAPE_NAMES)))
    radius = rng.uniform(0.12, 0.28) * min(size)
    centre = (rng.uniform(0.1, 0.9) * size[0], rng.uniform(0.1, 0.9) * size[1])
    form = rng.uniform(0.45, 0.7) if SHAPE_NAMES[kind] == "ellipse" else rng.uniform(0.4, 0.55)
    border = max(rng.uniform(0.12, 0.22) * radius, min_border)
    if SHAPE_NAMES[kind] == "ring":
        border = min(border, 0.3 * 0.9 * (1.0 - form) * radius)
    fill_color = random_color(rng)
    if rng.random() < 0.5:
        border_color = (fill_color * rng.uniform(0.2, 0.5)).astype(np.float32)
    else:
        border_color = _two_colors(rng)[1]
    return Shape(kind, centre, radius, rng.uniform(0.0, 2 * np.pi), border, fill_color, border_color, form)


def _bounding_box(shape: Shape, size: Size) -> tuple[slice, slice]:
    """Pixel rows and columns that the shape can touch."""
    (row, col), r = shape.centre, shape.radius
    rows = slice(max(0, int(np.floor(row - r))), min(size[0], int(np.ceil(row + r)) + 1))
    cols = slice(max(0, int(np.floor(col - r))), min(size[1], int(np.ceil(col + r)) + 1))
    return rows, cols


def _local_coordinates(shape: Shape, rows: slice, cols: slice) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Pixel centres of a box in the shape's rotated frame, in units of its radius."""
    dy = (np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] + 0.5 - shape.centre[0]) / shape.radius
    dx = (np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] + 0.5 - shape.centre[1]) / shape.radius
    cos, sin = np.float32(np.cos(shape.angle)), np.float32(np.sin(shape.angle))
    return dx * cos + dy * sin, dy * cos - dx * sin


def draw_shape(image: Image, owner: NDArray[np.int8], part: NDArray[np.int8], shape: Shape, number: int) -> None:
    """Paint a shape over ``image`` and record it in the ``owner`` and ``part`` maps, in place.

    Parameters
    ----------
    image : float32 (H, W, 3)
    owner : int8 (H, W)
        Number of the topmost shape at every pixel (-1: background); set to ``number`` here.
    part : int8 (H, W)
        Index into :data:`PART_NAMES` of the topmost shape's part at every pixel.
    shape : Shape
    number : int
    """
    rows, cols = _bounding_box(shape, image.shape[:2])
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return
    x, y = _local_coordinates(shape, rows, cols)
    inside, depth = _shape_depth(shape, x, y)
    is_border = inside & (depth * shape.radius < shape.border)
    is_fill = inside & ~is_border
    image[rows, cols][is_border] = shape.border_color
    image[rows, cols][is_fill] = shape.fill_color
    owner[rows, cols][inside] = number
    part[rows, cols][is_border] = PART_NAMES.index("border")
    part[rows, cols][is_fill] = PART_NAMES.index("fill")


# ---------------------------------------------------------------------- the probe
class ShapesProbe(ProbeDataset):
    """Procedurally rendered shapes with exact scene, object, part and colour labels.

    Parameters
    ----------
    n_images : int, default 2000
    seed : int, default 0
        Image ``i`` is drawn from ``numpy.random.default_rng([seed, i])``; the same seed and
        index always give the same image, whatever else was loaded.
    image_size : int or (H, W), default 224
    mask_size : int or (h, w), default 112
        Annotation resolution, at most ``image_size``; see the module docstring for how
        mask pixels map to image pixels.

    Notes
    -----
    Labels have four channels: ``[scene, object, part, color]``; object and part are -1 on
    the background. Concepts are ordered scenes, objects, parts, colours.
    """

    def __init__(
        self,
        n_images: int = 2000,
        seed: int = 0,
        image_size: int | tuple[int, int] = 224,
        mask_size: int | tuple[int, int] = 112,
    ) -> None:
        if n_images < 0 or seed < 0:
            raise ValueError("n_images and seed must be non-negative")
        self.n_images = int(n_images)
        self.seed = int(seed)
        self.image_size = as_size(image_size)
        self.mask_size = as_size(mask_size)
        for image_length, mask_length in zip(self.image_size, self.mask_size):
            block_bounds(image_length, mask_length)  # validates
        parts = [f"{shape}/{part}" for shape in SHAPE_NAMES for part in PART_NAMES]
        groups = [(SCENE_NAMES, "scene"), (SHAPE_NAMES, "object"), (parts, "part"), (COLOR_NAMES, "color")]
        self.concept_names = [name for names, _ in groups for name in names]
        self.concept_categories = [category for names, category in groups for _ in names]
        self._object_offset = len(SCENE_NAMES)
        self._part_offset = self._object_offset + len(SHAPE_NAMES)
        self._color_offset = self._part_offset + len(parts)

    def __len__(self) -> int:
        return self.n_images

    def config(self) -> dict[str, Any]:
        """Kind, version, seed, number of images and sizes."""
        return {
            "kind": "shapes",
            "version": SHAPES_VERSION,
            "seed": self.seed,
            "n_images": self.n_images,
            "image_size": list(self.image_size),
            "mask_size": list(self.mask_size),
        }

    def render(self, index: int) -> tuple[Image, int, list[Shape], NDArray[np.int8], NDArray[np.int8]]:
        """Render image ``index`` at full resolution.

        Returns
        -------
        image : float32 (H, W, 3)
        scene : int
            Index into :data:`SCENE_NAMES`.
        shapes : list of Shape
            In drawing order.
        owner, part : int8 (H, W)
            Topmost shape number (-1: background) and its part (index into :data:`PART_NAMES`).
        """
        if not 0 <= index < self.n_images:
            raise IndexError(f"image index {index} out of range 0 .. {self.n_images - 1}")
        rng = np.random.default_rng([self.seed, int(index)])
        scene, image = sample_background(rng, self.image_size)
        owner = np.full(self.image_size, -1, np.int8)
        part = np.full(self.image_size, -1, np.int8)
        ratio = max(i / m for i, m in zip(self.image_size, self.mask_size))
        shapes = [_random_shape(rng, self.image_size, 2.0 * ratio) for _ in range(int(rng.integers(1, 4)))]
        for number, shape in enumerate(shapes):
            draw_shape(image, owner, part, shape, number)
        return image, scene, shapes, owner, part

    def load(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        """Image ``index`` as float32 (3, H, W) and its labels int32 (h, w, 4)."""
        image, scene, shapes, owner, part = self.render(index)
        kinds = np.array([shape.kind for shape in shapes] + [-1], np.int32)  # owner -1 picks the last entry
        owner_m = sample_centres(owner, self.mask_size).astype(np.intp)
        part_m = sample_centres(part, self.mask_size).astype(np.int32)
        labels = np.empty((*self.mask_size, 4), np.int32)
        labels[..., 0] = scene
        on_shape = owner_m >= 0
        labels[..., 1] = np.where(on_shape, self._object_offset + kinds[owner_m], -1)
        labels[..., 2] = np.where(on_shape, self._part_offset + len(PART_NAMES) * kinds[owner_m] + part_m, -1)
        labels[..., 3] = self._color_offset + color_labels(block_mean(image, self.mask_size))
        return np.ascontiguousarray(image.transpose(2, 0, 1)), labels
