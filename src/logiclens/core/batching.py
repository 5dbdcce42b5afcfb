"""Cutting ``n`` items into consecutive batches: the one batching rule of the package."""

from __future__ import annotations

__all__ = ["batch_slices", "even_batches"]


def batch_slices(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` items covering ``range(n)``."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def even_batches(n: int, n_batches: int) -> list[slice]:
    """About ``n_batches`` consecutive slices of equal size covering ``range(n)``."""
    return batch_slices(n, max(1, -(-n // max(1, n_batches))))
