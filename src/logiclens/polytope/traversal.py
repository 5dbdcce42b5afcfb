"""Exact polytope-boundary crossings along straight segments and polylines.

Along a segment ``x(t) = x0 + t (x1 - x0)``, ``t`` in [0, 1], the pre-activations of the first
layer are affine in ``t``. Those of layer l are continuous and piecewise affine, with kinks
only where some neuron of an earlier layer crosses one of its breakpoints. The traversal
refines layer by layer:

1. ``K_0 = {0, 1}``; the first layer's pre-activations at ``K_0`` fix them everywhere.
2. For layer l, the pre-activations at the knots ``K_{l-1}`` (all crossings of layers < l)
   determine them on the whole segment by linear interpolation, because they are affine
   between consecutive knots. A neuron crosses breakpoint ``b`` inside an interval exactly
   when ``z - b`` changes sign between its ends, at the interpolated root. Then
   ``K_l = K_{l-1} + the new roots``.
3. The values of layer l at the new knots are obtained by interpolating layer l itself
   between the knots of ``K_{l-1}``, exact for the same reason; the next layer is evaluated
   there.

Every crossing is found, with its layer, neuron and breakpoint, including neurons that cross
twice between two samples (which sampled code differences miss). Cost: one evaluation of
layer l per knot of ``K_{l-1}``.

Ties and degenerate cases (documented conventions):

* crossings at the same ``t`` (several neurons, or neurons of different layers) are all
  reported; knots are merged only when exactly equal;
* a pre-activation exactly at a breakpoint at a knot is treated as "no side": a crossing is
  counted between the nearest knots with definite sides when these differ (located at the
  first knot on the breakpoint), and a touch (same side before and after) is not counted;
* a path that starts or ends exactly on a boundary does not cross it there.

The output's arg-max is affine between consecutive knots as well, so the first change of the
predicted class along the segment is located exactly (:attr:`Traversal.decision_t`).

Curved paths (slerp) are polylines: every chord is traversed exactly; a boundary crossed by
the arc but not by its chord is missed, so use enough chords. A crossing exactly at a joint
between chords is not counted (a measure-zero event).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.polytope.network import PiecewiseLinearNetwork

__all__ = ["Traversal", "sampled_code_changes", "traverse_path", "traverse_segment"]

Array = NDArray[np.float64]
_CHUNK_ELEMENTS = 2**22


@dataclass(frozen=True)
class Traversal:
    """Every boundary crossing along a path.

    Attributes
    ----------
    t : float64 (C,)
        Where each crossing happens, as a fraction of the path's length, sorted.
    layer : int64 (C,)
        Index of the crossing neuron's layer in the network.
    neuron : int64 (C,)
        Index of the neuron in its layer.
    breakpoint : int64 (C,)
        Which breakpoint of the activation (0 for ReLU; 0 or 1 for ReLU6).
    direction : int8 (C,)
        +1 when the pre-activation rises above the breakpoint (the code bit turns on), -1 otherwise.
    length : float
        Euclidean length of the path.
    layer_names : tuple of str
        Names of the network's layers (``layer`` indexes them).
    decision_t : float
        First change of the output's arg-max, as a fraction of the length; NaN if none.
    start_class, end_class : int
        Arg-max of the output at the two ends.
    n_knots : int
        Distinct crossing positions plus the two ends.
    """

    t: Array
    layer: NDArray[np.int64]
    neuron: NDArray[np.int64]
    breakpoint: NDArray[np.int64]
    direction: NDArray[np.int8]
    length: float
    layer_names: tuple[str, ...]
    decision_t: float = float("nan")
    start_class: int = -1
    end_class: int = -1
    n_knots: int = 2

    def __len__(self) -> int:
        return len(self.t)

    def counts(self) -> dict[str, int]:
        """Number of crossings per layer name (every layer, zeros included)."""
        totals = np.bincount(self.layer, minlength=len(self.layer_names))
        return {name: int(n) for name, n in zip(self.layer_names, totals)}

    def histogram(self, n_bins: int, layers: ArrayLike | None = None) -> Array:
        """Crossings per unit length in ``n_bins`` equal bins of the path (optionally some layers only)."""
        keep = np.ones(len(self.t), bool) if layers is None else np.isin(self.layer, np.asarray(layers))
        counts, _ = np.histogram(self.t[keep], bins=n_bins, range=(0.0, 1.0))
        return counts / max(self.length / n_bins, np.finfo(float).tiny)


def _interpolate(knots: Array, values: Array, query: Array) -> Array:
    """Piecewise-linear interpolation of ``values`` (rows at ``knots``) at ``query`` (within [knots[0], knots[-1]])."""
    if len(knots) == 1:
        return np.repeat(values[:1], len(query), axis=0)
    if len(knots) == 2:  # one affine piece (the first layer): no gathers
        span = knots[1] - knots[0]
        weight = (query - knots[0]) / span if span > 0 else np.zeros_like(query)
        return values[0][None, :] + weight[:, None] * (values[1] - values[0])[None, :]
    index = np.clip(np.searchsorted(knots, query, side="right") - 1, 0, len(knots) - 2)
    left, right = knots[index], knots[index + 1]
    weight = np.where(right > left, (query - left) / np.where(right > left, right - left, 1.0), 0.0)
    return values[index] + weight[:, None] * (values[index + 1] - values[index])


def _chunked(query: Array, width: int, function: Callable[[Array], Array]) -> Array:
    rows = max(1, _CHUNK_ELEMENTS // max(1, width))
    parts = [function(query[start : start + rows]) for start in range(0, len(query), rows)]
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def _crossings_of(knots: Array, values: Array, level: float) -> tuple[Array, NDArray[np.int64], NDArray[np.int8]]:
    """Zeros of the piecewise-linear columns ``values - level`` over ``knots``: (t, column, direction)."""
    signs = np.sign(values - level).astype(np.int8)
    columns, rows = np.nonzero(signs.T)  # column-major: for each column, its rows in order
    if len(rows) < 2:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int8)
    s = signs[rows, columns]
    change = (columns[1:] == columns[:-1]) & (s[1:] != s[:-1])
    before, after, column = rows[:-1][change], rows[1:][change], columns[1:][change]
    direction = s[1:][change]
    adjacent = after == before + 1
    v0, v1 = values[before, column], values[after, column]
    t0, t1 = knots[before], knots[np.minimum(before + 1, len(knots) - 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.clip((level - v0) / (v1 - v0), 0.0, 1.0)
    t = np.where(adjacent, t0 + fraction * (knots[after] - t0), t1)
    return t, column.astype(np.int64), direction.astype(np.int8)


def _first_change(points: Array, evaluate: Callable[[Array], Array], width: int) -> tuple[float, int, int]:
    """Exact first arg-max change of outputs that are affine between consecutive ``points``.

    ``evaluate`` gives the outputs at some positions; they are streamed in chunks. Returns
    ``(t, start_class, end_class)`` with ``t`` NaN when the arg-max never changes.
    """
    rows = max(2, _CHUNK_ELEMENTS // max(1, width))
    first = evaluate(points[:1])[0]
    start = int(np.argmax(first))
    previous, found = first, float("nan")
    last = first
    for begin in range(0, len(points), rows):
        block = evaluate(points[begin : begin + rows])
        last = block[-1]
        if not np.isnan(found):
            continue
        changed = np.flatnonzero(np.argmax(block, axis=1) != start)
        if not len(changed):
            previous = block[-1]
            continue
        i = int(changed[0])
        before = block[i - 1] if i > 0 else previous
        t0 = points[begin + i - 1] if begin + i > 0 else points[0]
        t1 = points[begin + i]
        gap0, gap1 = before[start] - before, block[i, start] - block[i]
        overtaken = gap1 < 0
        overtaken[start] = False
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = np.clip(gap0[overtaken] / (gap0[overtaken] - gap1[overtaken]), 0.0, 1.0)
        found = float(t0 + fraction.min() * (t1 - t0)) if len(fraction) else float(t1)
    return found, start, int(np.argmax(last))


def _bracketed_change(
    knots: Array, evaluate: Callable[[Array], Array], width: int, grid: int
) -> tuple[float, int, int]:
    """First arg-max change on a grid of ``grid + 1`` points, then exactly within the bracketing grid interval."""
    coarse = np.linspace(knots[0], knots[-1], grid + 1)
    found, start, end = _first_change(coarse, evaluate, width)
    if np.isnan(found):
        return found, start, end
    hi = int(np.searchsorted(coarse, found, side="left"))
    lo_t, hi_t = coarse[max(0, hi - 1)], coarse[min(hi, grid)]
    inside = knots[(knots > lo_t) & (knots < hi_t)]
    refined, _, _ = _first_change(np.concatenate([[lo_t], inside, [hi_t]]), evaluate, width)
    return (refined if np.isfinite(refined) else found), start, end


def traverse_segment(
    network: PiecewiseLinearNetwork, x0: ArrayLike, x1: ArrayLike, decision: bool | int = True
) -> Traversal:
    """All boundary crossings along the segment from ``x0`` to ``x1``, exactly.

    Parameters
    ----------
    network : PiecewiseLinearNetwork
        Piecewise linear (GELU/SiLU are refused).
    x0, x1 : array (in_features,) or of the input shape
    decision : bool or int, default True
        Also locate the first change of the output's arg-max (``decision_t``). True: exactly,
        evaluating the output at every knot. An int G: first on a grid of G + 1 points, then
        exactly inside the grid interval where the class first differs -- much cheaper for
        wide outputs with many knots, but a change that reverts within one grid step
        (1 / G of the path) before the first grid-detected change is missed. False: skip.

    Returns
    -------
    Traversal
    """
    network.require_piecewise_linear("exact traversal")
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    x1 = np.asarray(x1, dtype=np.float64).reshape(-1)
    if x0.shape != (network.in_features,) or x1.shape != x0.shape:
        raise ValueError(f"end points must have {network.in_features} features, got {x0.shape} and {x1.shape}")
    layers = network.layers
    knots = np.array([0.0, 1.0])
    # (knots, values): the previous layer's pre-activations at the knots of the layers before it
    previous: tuple[Array, Array] | None = None
    found: list[tuple[Array, int, NDArray[np.int64], int, NDArray[np.int8]]] = []
    for index, layer in enumerate(layers):
        last = index == len(layers) - 1
        if last and not layer.activation.n_breakpoints:
            break  # an affine output layer crosses nothing; the decision is streamed below
        if previous is None:
            values = layer.affine(np.stack([x0, x1]))
        else:
            values = _chunked(knots, max(layers[index - 1].width, layer.width), _next_layer(previous, index, layers))
        new = []
        for j, level in enumerate(layer.activation.breakpoints):
            t, neuron, direction = _crossings_of(knots, values, level)
            found.append((t, index, neuron, j, direction))
            new.append(t)
        previous = (knots, values)
        if new:
            knots = np.unique(np.concatenate([knots, *new]))
    decision_t, start_class, end_class = float("nan"), -1, -1
    if decision:
        final = layers[-1]
        evaluate = _output_at(network, previous, x0, x1)
        width = max(final.width, layers[-2].width if len(layers) > 1 else network.in_features)
        if decision is True:
            decision_t, start_class, end_class = _first_change(knots, evaluate, width)
        else:
            decision_t, start_class, end_class = _bracketed_change(knots, evaluate, width, int(decision))
    t = np.concatenate([f[0] for f in found]) if found else np.zeros(0)
    order = np.argsort(t, kind="stable")

    def column(values: list[NDArray], dtype: type) -> NDArray:
        return np.concatenate(values).astype(dtype)[order] if values else np.zeros(0, dtype)

    return Traversal(
        t=t[order],
        layer=column([np.full(len(f[0]), f[1], np.int64) for f in found], np.int64),
        neuron=column([f[2] for f in found], np.int64),
        breakpoint=column([np.full(len(f[0]), f[3], np.int64) for f in found], np.int64),
        direction=column([f[4] for f in found], np.int8),
        length=float(np.linalg.norm(x1 - x0)),
        layer_names=tuple(network.names),
        decision_t=decision_t,
        start_class=start_class,
        end_class=end_class,
        n_knots=len(knots),
    )


def _output_at(
    network: PiecewiseLinearNetwork, previous: tuple[Array, Array] | None, x0: Array, x1: Array
) -> Callable[[Array], Array]:
    """The network's output at positions along the segment, from the last stored knot values."""
    layers = network.layers
    final = layers[-1]
    if previous is None:  # a single affine layer

        def direct(query: Array) -> Array:
            return final.affine(x0[None] + query[:, None] * (x1 - x0)[None])

        return direct
    if final.activation.n_breakpoints:  # the last layer's own values were stored

        def activated(query: Array) -> Array:
            return final.activation(_interpolate(*previous, query))

        return activated
    return _next_layer(previous, len(layers) - 1, layers)


def _next_layer(previous: tuple[Array, Array], index: int, layers: list) -> Callable[[Array], Array]:
    """Pre-activations of ``layers[index]`` at query positions, from the previous layer's knot values."""
    knots, values = previous
    before, layer = layers[index - 1], layers[index]

    def evaluate(query: Array) -> Array:
        return layer.affine(before.activation(_interpolate(knots, values, query)))

    return evaluate


def traverse_path(network: PiecewiseLinearNetwork, points: ArrayLike, decision: bool | int = True) -> Traversal:
    """All boundary crossings along a polyline (each chord exactly), positions as fractions of its length.

    Parameters
    ----------
    network : PiecewiseLinearNetwork
    points : array (m + 1, in_features)
        The polyline's vertices (e.g. from :func:`logiclens.polytope.paths.slerp_path`).
    decision : bool or int, default True
        Locate the first arg-max change along the whole polyline (see :func:`traverse_segment`).
    """
    points = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if len(points) < 2:
        raise ValueError("a path needs at least two points")
    chord_lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    total = float(chord_lengths.sum())
    offsets = np.concatenate([[0.0], np.cumsum(chord_lengths)])
    parts = []
    decision_t, start_class, end_class = float("nan"), -1, -1
    n_knots = 1
    for i in range(len(points) - 1):
        part = traverse_segment(network, points[i], points[i + 1], decision)
        scale = chord_lengths[i] / total if total > 0 else 0.0
        base = offsets[i] / total if total > 0 else 0.0
        parts.append((base + part.t * scale, part))
        n_knots += part.n_knots - 1
        if decision:
            if i == 0:
                start_class = part.start_class
            end_class = part.end_class
            if np.isnan(decision_t):
                if not np.isnan(part.decision_t):
                    decision_t = base + part.decision_t * scale
                elif part.end_class != start_class:  # the class changed exactly at a joint
                    decision_t = base + scale
    t = np.concatenate([p[0] for p in parts])
    return Traversal(
        t=t,
        layer=np.concatenate([p[1].layer for p in parts]),
        neuron=np.concatenate([p[1].neuron for p in parts]),
        breakpoint=np.concatenate([p[1].breakpoint for p in parts]),
        direction=np.concatenate([p[1].direction for p in parts]),
        length=total,
        layer_names=tuple(network.names),
        decision_t=decision_t,
        start_class=start_class,
        end_class=end_class,
        n_knots=n_knots,
    )


def sampled_code_changes(network: PiecewiseLinearNetwork, points: ArrayLike) -> NDArray[np.int64]:
    """Code bits that differ between consecutive points, per layer: int64 (m - 1, n_layers).

    The sampling estimate of boundary crossings; a lower bound of the exact count on every
    interval (a bit that flips twice between samples counts 0).
    """
    points = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    pre = network.preactivations(points)
    out = np.zeros((len(points) - 1, len(network.layers)), np.int64)
    for i, (layer, z) in enumerate(zip(network.layers, pre)):
        if layer.activation.n_breakpoints:
            bits = layer.activation.code(z)
            out[:, i] = (bits[1:] != bits[:-1]).sum(axis=1)
    return out
