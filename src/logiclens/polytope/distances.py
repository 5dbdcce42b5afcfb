"""Distances between packed codes by popcount (``np.bitwise_count``), computed in row blocks.

* Hamming: ``popcount(a XOR b)``, normalised by the number of bits (so in [0, 1]);
* Jaccard on the set bits: ``1 - popcount(a AND b) / popcount(a OR b)`` (0 when both are empty);
* layer-weighted Hamming: the mean over layers of each layer's normalised Hamming distance, so
  a wide layer does not drown a narrow one;
* soft L1 between soft codes: ``mean_k |p_k - p'_k|`` (equals normalised Hamming on hard codes).

Memory is bounded by ``block_bytes`` of temporaries whatever the number of codes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.polytope.codes import PolytopeCodes

__all__ = [
    "code_distances",
    "hamming_counts",
    "hamming_distances",
    "jaccard_distances",
    "layer_hamming_distances",
    "soft_l1_distances",
]

Words = NDArray[np.uint64]
METRICS = ("hamming", "jaccard", "layer_hamming")


def _words(codes: PolytopeCodes | ArrayLike) -> Words:
    if isinstance(codes, PolytopeCodes):
        return codes.words
    words = np.asarray(codes)
    if words.dtype != np.uint64 or words.ndim != 2:
        raise ValueError(f"packed codes must be a 2-D uint64 array, got {words.dtype} {words.shape}")
    return words


def _block_rows(n_other: int, n_words: int, block_bytes: int) -> int:
    return max(1, int(block_bytes) // max(1, 8 * n_other * max(1, n_words)))


def hamming_counts(
    a: PolytopeCodes | Words, b: PolytopeCodes | Words | None = None, block_bytes: int = 2**26
) -> NDArray[np.int64]:
    """Number of differing bits between every code of ``a`` and every code of ``b`` (int64 (n_a, n_b)).

    ``b`` defaults to ``a`` (the pairwise matrix).
    """
    wa = _words(a)
    wb = wa if b is None else _words(b)
    if wa.shape[1] != wb.shape[1]:
        raise ValueError(f"codes have {wa.shape[1]} and {wb.shape[1]} words")
    out = np.empty((len(wa), len(wb)), np.int64)
    step = _block_rows(len(wb), wa.shape[1], block_bytes)
    for start in range(0, len(wa), step):
        block = np.bitwise_xor(wa[start : start + step, None, :], wb[None, :, :])
        out[start : start + step] = np.bitwise_count(block).sum(axis=2, dtype=np.int64)
    return out


def hamming_distances(
    a: PolytopeCodes | Words,
    b: PolytopeCodes | Words | None = None,
    n_bits: int | None = None,
    block_bytes: int = 2**26,
) -> NDArray[np.float64]:
    """Hamming distance normalised by the number of bits (taken from ``a`` if it is a PolytopeCodes)."""
    if n_bits is None:
        if not isinstance(a, PolytopeCodes):
            raise ValueError("n_bits is needed for raw words")
        n_bits = a.n_bits
    return hamming_counts(a, b, block_bytes) / max(1, int(n_bits))


def jaccard_distances(
    a: PolytopeCodes | Words, b: PolytopeCodes | Words | None = None, block_bytes: int = 2**26
) -> NDArray[np.float64]:
    """``1 - |a AND b| / |a OR b|`` on the set bits; 0 between two empty codes."""
    wa = _words(a)
    wb = wa if b is None else _words(b)
    if wa.shape[1] != wb.shape[1]:
        raise ValueError(f"codes have {wa.shape[1]} and {wb.shape[1]} words")
    out = np.empty((len(wa), len(wb)), np.float64)
    step = _block_rows(len(wb), wa.shape[1], block_bytes // 2)
    for start in range(0, len(wa), step):
        left = wa[start : start + step, None, :]
        both = np.bitwise_count(np.bitwise_and(left, wb[None])).sum(axis=2, dtype=np.int64)
        either = np.bitwise_count(np.bitwise_or(left, wb[None])).sum(axis=2, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + step] = np.where(either > 0, 1.0 - both / np.maximum(either, 1), 0.0)
    return out


def layer_hamming_distances(
    a: PolytopeCodes, b: PolytopeCodes | None = None, block_bytes: int = 2**26
) -> NDArray[np.float64]:
    """Mean over layers of each layer's normalised Hamming distance (every layer weighs the same)."""
    other = a if b is None else b
    if other.layer_bits != a.layer_bits:
        raise ValueError("both code sets need the same layers")
    total = np.zeros((len(a), len(other)))
    used = 0
    for s, bits in zip(a.word_slices, a.layer_bits):
        if bits == 0:
            continue
        total += hamming_counts(a.words[:, s], other.words[:, s], block_bytes) / bits
        used += 1
    return total / max(1, used)


def soft_l1_distances(p: ArrayLike, q: ArrayLike | None = None, block_bytes: int = 2**26) -> NDArray[np.float64]:
    """Mean absolute difference between soft codes ``(n, m)`` and ``(n', m)``: the soft Hamming distance."""
    p = np.asarray(p, dtype=np.float64)
    q = p if q is None else np.asarray(q, dtype=np.float64)
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1]:
        raise ValueError(f"soft codes must be (n, m) with the same m, got {p.shape} and {q.shape}")
    out = np.empty((len(p), len(q)))
    step = _block_rows(len(q), p.shape[1], block_bytes)
    for start in range(0, len(p), step):
        out[start : start + step] = np.abs(p[start : start + step, None, :] - q[None]).mean(axis=2)
    return out


def code_distances(
    codes: PolytopeCodes, metric: str = "hamming", other: PolytopeCodes | None = None
) -> NDArray[np.float64]:
    """Pairwise distances by name: ``hamming``, ``jaccard`` or ``layer_hamming`` (float64 (n, n'))."""
    if metric == "hamming":
        return hamming_distances(codes, other)
    if metric == "jaccard":
        return jaccard_distances(codes, other)
    if metric == "layer_hamming":
        return layer_hamming_distances(codes, other)
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
