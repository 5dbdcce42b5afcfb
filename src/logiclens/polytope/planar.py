"""Exact linear regions of a network with 2-D inputs, inside a box (SplineCam-style splitting).

Start from the box; for each layer in turn, split every current region by the breakpoint
line of every neuron of that layer. Inside a region the layer's pre-activations are affine,
and they are continuous, so their values at the region's vertices determine them: a split
needs only the vertex values, and new vertices on an edge get linearly interpolated values.
After a layer is done, the next layer is evaluated at the vertices of every region.

Every final region is a convex polygon with its own code (two pieces of one split differ in
the splitting bit), so the number of polygons is the number of linear regions that meet the
box. Pieces with area below ``min_area`` (relative to the box) are dropped as numerical
slivers. Used by the tests to check region counts against a fine grid, and for figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from logiclens.polytope.network import PiecewiseLinearNetwork

__all__ = ["PlanarRegion", "planar_regions"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class PlanarRegion:
    """One linear region: a convex polygon (counter-clockwise vertices) and its code bits."""

    vertices: Array
    code: NDArray[np.bool_]

    @property
    def area(self) -> float:
        """Polygon area (shoelace formula)."""
        return _area(self.vertices)

    @property
    def centroid(self) -> Array:
        """Mean of the vertices (an interior point of a convex polygon)."""
        return self.vertices.mean(axis=0)


def _area(vertices: Array) -> float:
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _split(vertices: Array, values: Array, f: Array) -> list[tuple[Array, Array]]:
    """Split a convex polygon by the sign of an affine function ``f`` given at its vertices."""
    if np.all(f >= 0) or np.all(f <= 0):
        return [(vertices, values)]
    sides: list[tuple[list[Array], list[Array]]] = [([], []), ([], [])]
    m = len(vertices)
    for i in range(m):
        j = (i + 1) % m
        for side, keep in ((0, f[i] >= 0), (1, f[i] <= 0)):
            if keep:
                sides[side][0].append(vertices[i])
                sides[side][1].append(values[i])
        if f[i] * f[j] < 0:
            w = f[i] / (f[i] - f[j])
            point = vertices[i] + w * (vertices[j] - vertices[i])
            value = values[i] + w * (values[j] - values[i])
            for side in (0, 1):
                sides[side][0].append(point)
                sides[side][1].append(value)
    return [(np.array(v), np.array(z)) for v, z in sides if len(v) >= 3]


def planar_regions(
    network: PiecewiseLinearNetwork, box: tuple[float, float, float, float], min_area: float = 1e-12
) -> list[PlanarRegion]:
    """All linear regions of a 2-input network that meet the box ``(x_min, x_max, y_min, y_max)``.

    Parameters
    ----------
    network : PiecewiseLinearNetwork
        With ``in_features == 2``; piecewise linear.
    box : (x_min, x_max, y_min, y_max)
    min_area : float, default 1e-12
        Pieces smaller than this fraction of the box's area are dropped.

    Returns
    -------
    list of PlanarRegion
        Codes as in :meth:`PiecewiseLinearNetwork.codes` (all coded layers), evaluated at
        each polygon's centroid.
    """
    network.require_piecewise_linear("planar region enumeration")
    if network.in_features != 2:
        raise ValueError(f"planar regions need 2 inputs, the network takes {network.in_features}")
    x0, x1, y0, y1 = (float(v) for v in box)
    square = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    threshold = min_area * abs(_area(square))
    polygons: list[Array] = [square]
    for index, layer in enumerate(network.layers):
        if not layer.activation.n_breakpoints:
            continue
        result: list[Array] = []
        for polygon in polygons:
            values = network.preactivations(polygon)[index]
            pieces = [(polygon, values)]
            for k in range(layer.width):
                for level in layer.activation.breakpoints:
                    pieces = [
                        piece
                        for vertices, z in pieces
                        for piece in _split(vertices, z, z[:, k] - level)
                        if abs(_area(piece[0])) > threshold
                    ]
            result.extend(vertices for vertices, _ in pieces)
        polygons = result
    centroids = np.array([p.mean(axis=0) for p in polygons])
    codes = network.codes(centroids).unpack() if network.coded_layers else np.zeros((len(polygons), 0), bool)
    return [PlanarRegion(p, c) for p, c in zip(polygons, codes)]
