"""Boundary crossings along a path by dense sampling and bisection, for any model with codes.

Exact traversal (:mod:`logiclens.polytope.traversal`) needs a piecewise-linear
``nn.Sequential``. For any other model (residual networks, transformers, GELU codes by the
sign convention) :func:`sampled_crossings` counts code changes along a straight segment:

1. evaluate the code at ``n_samples + 1`` evenly spaced points;
2. bisect every interval whose two ends have different codes until it is at most
   ``resolution`` long (a fraction of the segment), so that crossings are located to that
   resolution and two different bits changing in one coarse interval are both counted;
3. the count is the sum of Hamming distances between neighbouring points of the refined grid.

What sampling cannot see is a bit that changes an even number of times inside an interval
whose ends agree (the count is a lower bound of the exact number of crossings). The estimate of
these **missed crossings** compares the count with a count at half the precision (every other
initial sample, refined to twice the resolution): if missed crossings shrink in proportion to
the spacing, those the full precision still misses number about ``count - count_at_half``.
Both numbers are reported, with the resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.polytope.codes import PolytopeCodes

__all__ = ["SampledCrossings", "network_code_function", "sampled_crossings"]

CodeFunction = Callable[[NDArray[np.float64]], "NDArray[np.bool_] | PolytopeCodes"]


@dataclass(frozen=True)
class SampledCrossings:
    """Code changes along a segment found by sampling and bisection.

    Attributes
    ----------
    count : int
        Code bits that change between neighbouring points of the refined grid.
    t : float64 array (k,)
        Where (as a fraction of the segment) each refined interval with changes lies (its midpoint).
    changes : int64 array (k,)
        Bits changing in each of those intervals.
    resolution : float
        Largest length (fraction of the segment) of a refined interval with changes.
    n_samples : int
        Initial samples (intervals).
    n_evaluations : int
        Points whose code was computed, refinement included.
    count_at_half : int
        The same count from every other initial sample, refined to twice the resolution.
    missed_estimate : float
        Estimated crossings still missed: ``count - count_at_half`` (module docstring).
    length : float
        Euclidean length of the segment.
    """

    count: int
    t: NDArray[np.float64]
    changes: NDArray[np.int64]
    resolution: float
    n_samples: int
    n_evaluations: int
    count_at_half: int
    missed_estimate: float
    length: float

    @property
    def density(self) -> float:
        """Crossings per unit length of the segment."""
        return self.count / self.length if self.length > 0 else float("nan")


def _bits(code_function: CodeFunction, points: NDArray[np.float64]) -> NDArray[np.bool_]:
    found = code_function(points)
    return found.unpack() if isinstance(found, PolytopeCodes) else np.asarray(found, bool).reshape(len(points), -1)


def _refine(
    code_function: CodeFunction,
    start: NDArray[np.float64],
    direction: NDArray[np.float64],
    t: NDArray[np.float64],
    bits: NDArray[np.bool_],
    resolution: float,
    max_evaluations: int,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], int]:
    """Bisect intervals with code changes until they are at most ``resolution`` long."""
    evaluations = 0
    while True:
        differs = (bits[1:] != bits[:-1]).any(axis=1)
        wide = differs & (np.diff(t) > resolution)
        if not wide.any() or evaluations >= max_evaluations:
            return t, bits, evaluations
        index = np.flatnonzero(wide)
        middle = (t[index] + t[index + 1]) / 2
        new_bits = _bits(code_function, start[None, :] + middle[:, None] * direction[None, :])
        evaluations += len(middle)
        t = np.insert(t, index + 1, middle)
        bits = np.insert(bits, index + 1, new_bits, axis=0)


def sampled_crossings(
    code_function: CodeFunction,
    start: ArrayLike,
    end: ArrayLike,
    n_samples: int = 64,
    resolution: float = 1e-5,
    max_evaluations: int = 200_000,
) -> SampledCrossings:
    """Count code changes along the segment from ``start`` to ``end`` by sampling and bisection.

    Parameters
    ----------
    code_function : callable
        Maps points (m, d) to their codes: a bool array (m, bits) or a PolytopeCodes (e.g.
        :func:`network_code_function`, or a closure around
        :func:`logiclens.polytope.hooked.record_codes` for any torch model).
    start, end : array (d,)
    n_samples : int, default 64
        Initial evenly spaced intervals (at least 2).
    resolution : float, default 1e-5
        Refine intervals with changes until at most this long (fraction of the segment).
    max_evaluations : int, default 200000
        Budget of refinement evaluations (the reported ``resolution`` says how far it got).

    Returns
    -------
    SampledCrossings
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    if not 0 < resolution < 1:
        raise ValueError(f"resolution must lie in (0, 1), got {resolution}")
    start = np.asarray(start, np.float64).ravel()
    direction = np.asarray(end, np.float64).ravel() - start
    t0 = np.linspace(0.0, 1.0, int(n_samples) + 1)
    bits0 = _bits(code_function, start[None, :] + t0[:, None] * direction[None, :])
    budget = int(max_evaluations)
    t, bits, used = _refine(code_function, start, direction, t0, bits0, resolution, budget)
    changes = (bits[1:] != bits[:-1]).sum(axis=1)
    changed = np.flatnonzero(changes)
    widths = np.diff(t)[changed]
    _, half_bits, _ = _refine(
        code_function, start, direction, t0[::2] if n_samples % 2 == 0 else np.append(t0[:-1:2], 1.0),
        bits0[::2] if n_samples % 2 == 0 else np.vstack([bits0[:-1:2], bits0[-1:]]), min(0.5, 2 * resolution),
        budget,
    )  # fmt: skip
    count = int(changes.sum())
    count_at_half = int((half_bits[1:] != half_bits[:-1]).sum())
    return SampledCrossings(
        count=count,
        t=(t[changed] + t[changed + 1]) / 2,
        changes=changes[changed].astype(np.int64),
        resolution=float(widths.max()) if len(widths) else 0.0,
        n_samples=int(n_samples),
        n_evaluations=len(t0) + used,
        count_at_half=count_at_half,
        missed_estimate=float(max(0, count - count_at_half)),
        length=float(np.linalg.norm(direction)),
    )


def network_code_function(network: object, layers: list[int | str] | None = None) -> CodeFunction:
    """The code function of a :class:`~logiclens.polytope.network.PiecewiseLinearNetwork` (for tests and checks)."""

    def codes(points: NDArray[np.float64]) -> PolytopeCodes:
        return network.codes(points, layers)  # type: ignore[attr-defined]

    return codes
