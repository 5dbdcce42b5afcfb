"""Exact streaming quantile thresholds.

A unit's threshold T is chosen so that a fraction ``q`` (default 0.005) of its activations
lies above it: T is the ``1 - q`` quantile with NumPy's default (linear) interpolation,
computed exactly. The total number of values N is known in advance, and that quantile only
depends on the order statistics at ranks ``floor((N - 1)(1 - q))`` and the next one, which
lie among the ``m = N - floor((N - 1)(1 - q))`` largest values. A buffer of the m largest
values seen so far therefore gives the exact answer (equal to ``np.quantile``), in memory
m, whatever N is; ``torch.quantile`` refuses inputs above 2**24 values and sketches are
approximate.

Once the buffer holds m values, its smallest is a lower bound of the final threshold's
support: values at or below it can be skipped without being looked at (see
:meth:`StreamingTopQuantile.floor`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["StreamingTopQuantile"]


class StreamingTopQuantile:
    """The exact ``1 - q`` quantile of a stream of N values, in memory ``~ q * N``.

    Parameters
    ----------
    n_total : int
        Number of values the stream will hold (N).
    top_fraction : float
        q, the fraction of values meant to lie above the threshold (0.005 in NetDissect).
    """

    def __init__(self, n_total: int, top_fraction: float) -> None:
        if n_total < 1:
            raise ValueError(f"n_total must be >= 1, got {n_total}")
        if not 0.0 < top_fraction < 1.0:
            raise ValueError(f"top_fraction must lie in (0, 1), got {top_fraction}")
        self.n_total = int(n_total)
        self.top_fraction = float(top_fraction)
        position = (self.n_total - 1) * (1.0 - self.top_fraction)
        self._low_rank = math.floor(position)
        self._fraction = position - self._low_rank
        self.m = self.n_total - self._low_rank
        self._buffer = np.empty(0, np.float64)
        self._pending: list[NDArray[np.float64]] = []
        self._pending_size = 0
        self.n_seen = 0

    def floor(self) -> float:
        """Values ``<= floor()`` cannot change the result; ``-inf`` until m values were seen."""
        self._compact()
        return float(self._buffer[0]) if len(self._buffer) >= self.m else -math.inf

    def add(self, values: ArrayLike) -> None:
        """Add values (any shape); NaN or infinite values raise ``ValueError``."""
        flat = np.asarray(values, dtype=np.float64).ravel()
        if not np.isfinite(flat).all():
            raise ValueError("activations contain NaN or infinite values")
        self._count(flat.size)
        if len(self._buffer) >= self.m:
            flat = flat[flat > self._buffer[0]]
        if flat.size:
            self._pending.append(flat)
            self._pending_size += flat.size
            if self._pending_size >= max(self.m, 4096):
                self._compact()

    def skip(self, count: int) -> None:
        """Account for ``count`` values known to be ``<= floor()`` without adding them."""
        self._count(int(count))

    def _count(self, count: int) -> None:
        if self.n_seen + count > self.n_total:
            raise ValueError(f"more than the announced {self.n_total} values were added")
        self.n_seen += count

    def _compact(self) -> None:
        if not self._pending:
            return
        merged = np.concatenate([self._buffer, *self._pending])
        self._pending, self._pending_size = [], 0
        if len(merged) > self.m:
            merged = np.partition(merged, len(merged) - self.m)[len(merged) - self.m :]
        self._buffer = np.sort(merged)

    def threshold(self) -> float:
        """The exact ``1 - q`` quantile (linear interpolation, as ``np.quantile``)."""
        if self.n_seen != self.n_total:
            raise ValueError(f"{self.n_seen} values were added, {self.n_total} announced")
        self._compact()
        low, high = self._buffer[0], self._buffer[min(1, len(self._buffer) - 1)]
        if self._fraction == 0.0:
            return float(low)
        return float(np.quantile(np.array([low, high]), self._fraction))

    def count_above(self, value: float) -> int:
        """How many values are ``> value``; exact for any value at or above the threshold."""
        self._compact()
        return int(len(self._buffer) - np.searchsorted(self._buffer, value, side="right"))

    def state_dict(self) -> dict[str, NDArray]:
        """Arrays to checkpoint the running state."""
        self._compact()
        return {
            "n_total": np.array(self.n_total),
            "top_fraction": np.array(self.top_fraction),
            "n_seen": np.array(self.n_seen),
            "buffer": self._buffer,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, NDArray]) -> StreamingTopQuantile:
        """Restore a state written by :meth:`state_dict`."""
        quantile = cls(int(state["n_total"]), float(state["top_fraction"]))
        quantile.n_seen = int(state["n_seen"])
        quantile._buffer = np.asarray(state["buffer"], np.float64)
        return quantile
