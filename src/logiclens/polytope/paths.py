"""Paths between inputs (or hidden states): straight segments and spherical arcs as polylines.

* ``lerp``: the straight segment ``x0 + t (x1 - x0)``. Its midpoint lies off the data
  manifold and has a smaller norm than the ends.
* ``slerp``: spherical interpolation about a centre ``c`` (the data mean by default): the
  direction of ``x - c`` moves along the great circle from ``x0 - c`` to ``x1 - c`` at constant
  angular speed while its norm moves linearly from ``|x0 - c|`` to ``|x1 - c|`` (a design
  choice that keeps the norm between the ends'). It is returned as a polyline of ``n_chords``
  chords, which :func:`~logiclens.polytope.traversal.traverse_path` traverses exactly, chord
  by chord.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["PATH_KINDS", "lerp_path", "make_path", "pick_pairs", "slerp_path"]

Array = NDArray[np.float64]
PATH_KINDS = ("lerp", "slerp")


def lerp_path(x0: ArrayLike, x1: ArrayLike) -> Array:
    """The straight segment as a two-point polyline (2, d)."""
    return np.stack([np.asarray(x0, np.float64).reshape(-1), np.asarray(x1, np.float64).reshape(-1)])


def slerp_path(x0: ArrayLike, x1: ArrayLike, center: ArrayLike | None = None, n_chords: int = 64) -> Array:
    """Spherical interpolation about ``center`` as a polyline of ``n_chords + 1`` points (module docstring).

    Parameters
    ----------
    x0, x1 : array (d,)
    center : array (d,), optional
        Origin of the sphere; 0 when omitted.
    n_chords : int, default 64

    Returns
    -------
    float64 array (n_chords + 1, d)
        Falls back to the straight segment when the two directions are (anti)parallel or one
        end is at the centre.
    """
    a = np.asarray(x0, np.float64).reshape(-1)
    b = np.asarray(x1, np.float64).reshape(-1)
    c = np.zeros_like(a) if center is None else np.asarray(center, np.float64).reshape(-1)
    if n_chords < 1:
        raise ValueError("n_chords must be at least 1")
    t = np.linspace(0.0, 1.0, n_chords + 1)[:, None]
    u, v = a - c, b - c
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return a[None] + t * (b - a)[None]
    cos = float(np.clip(u @ v / (nu * nv), -1.0, 1.0))
    theta = np.arccos(cos)
    if theta < 1e-9 or np.pi - theta < 1e-9:
        return a[None] + t * (b - a)[None]
    direction = (np.sin((1 - t) * theta) * (u / nu) + np.sin(t * theta) * (v / nv)) / np.sin(theta)
    norm = (1 - t) * nu + t * nv
    path = c[None] + norm * direction
    path[0], path[-1] = a, b
    return path


def make_path(kind: str, x0: ArrayLike, x1: ArrayLike, center: ArrayLike | None = None, n_chords: int = 64) -> Array:
    """A path by name: ``lerp`` or ``slerp``."""
    if kind == "lerp":
        return lerp_path(x0, x1)
    if kind == "slerp":
        return slerp_path(x0, x1, center, n_chords)
    raise ValueError(f"path kind must be one of {PATH_KINDS}, got {kind!r}")


def pick_pairs(
    labels: ArrayLike, n_pairs: int, same: bool = False, seed: int = 0, candidates: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Random pairs (i, j) of indices with different (or, with ``same``, equal) labels: int64 (n, 2)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pool = np.arange(len(labels)) if candidates is None else np.asarray(candidates)
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    attempts = 0
    while len(pairs) < n_pairs and attempts < 100 * n_pairs:
        attempts += 1
        i, j = (int(v) for v in rng.choice(pool, 2, replace=False))
        if (labels[i] == labels[j]) != same or (i, j) in seen:
            continue
        seen.add((i, j))
        pairs.append((i, j))
    return np.asarray(pairs, np.int64).reshape(-1, 2)
