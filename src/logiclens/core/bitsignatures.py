"""Fast grouping of positions into signatures straight from bit-packed concept masks.

The general :class:`~logiclens.core.signatures.SignatureIndex` takes per-position *label
rows*; building those from K x N mask bits needs ``np.nonzero`` over the whole K x N array,
which dominates ingest time. Here every position instead gets a *bit key*: its K concept bits
as ``ceil(K / 64)`` little-endian uint64 words (bit ``b`` of word ``w`` is concept
``64 * w + b``), obtained from ``np.packbits(..., axis=1, bitorder="little")`` rows by an
8 x 8 bit-matrix transpose per byte. Positions are then grouped by their exact key (a
``pandas.factorize`` of the key itself when it has one word; of a 64-bit hash of the words
otherwise, checked row by row against each group's first row, with an exact word-by-word
fallback on a collision, so a hash is never trusted), and
signatures are numbered in order of first appearance, exactly as ``SignatureIndex`` numbers
them; the resulting table and ``position_signatures`` are therefore identical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["BitSignatureIndex", "factorize_rows", "packed_to_keys"]

_U64 = np.dtype("<u8")
_TRANSPOSE_STEPS = (
    (np.uint64(7), np.uint64(0x00AA00AA00AA00AA)),
    (np.uint64(14), np.uint64(0x0000CCCC0000CCCC)),
    (np.uint64(28), np.uint64(0x00000000F0F0F0F0)),
)


def n_words(n_concepts: int) -> int:
    """Number of uint64 words in a bit key of ``n_concepts`` concepts (at least 1)."""
    return max(1, -(-int(n_concepts) // 64))


def _transpose8(x: NDArray[np.uint64]) -> None:
    """Transpose, in place, the 8 x 8 bit matrix held in each uint64 (bit 8r + c -> bit 8c + r)."""
    for shift, mask in _TRANSPOSE_STEPS:
        t = x >> shift
        t ^= x
        t &= mask
        x ^= t
        t <<= shift
        x ^= t


def packed_to_keys(packed: NDArray[np.uint8], n_positions: int) -> NDArray[np.uint64]:
    """Per-position bit keys from bit-packed concept masks.

    Parameters
    ----------
    packed : uint8 array, shape (K, B)
        ``np.packbits(masks, axis=1, bitorder="little")`` of K masks over (up to) 8 B positions.
    n_positions : int
        Number of leading positions to return (at most 8 B); later padding bits are dropped.

    Returns
    -------
    ndarray of uint64, shape (n_positions, ceil(K / 64))
        Row p holds the concepts of position p: bit ``b`` of word ``w`` is concept ``64 w + b``.
    """
    k, n_bytes = packed.shape
    full, rest = divmod(k, 8)
    words = n_words(k)
    # (group, byte, concept-in-group): each uint64 is an 8 x 8 bit matrix, byte r = concept, bit c = position
    grouped = np.empty((full + (rest > 0), n_bytes, 8), np.uint8)
    grouped[:full] = packed[: 8 * full].reshape(full, 8, n_bytes).transpose(0, 2, 1)
    if rest:
        grouped[full, :, :rest] = packed[8 * full :].T
        grouped[full, :, rest:] = 0
    matrices = grouped.view(_U64)[..., 0]
    _transpose8(matrices)  # now byte c = position, bit r = concept
    groups = grouped.shape[0]
    per_group = matrices.astype(_U64, copy=False).view(np.uint8).reshape(groups, n_bytes * 8)
    key_bytes = np.zeros((n_positions, words * 8), np.uint8)
    key_bytes[:, :groups] = per_group[:, :n_positions].T
    return key_bytes.view(_U64).astype(np.uint64, copy=False)


def keys_to_concepts(keys: NDArray[np.uint64], n_concepts: int) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """Decode bit keys into CSR ``(indptr, indices)`` of concepts, sorted within each row."""
    n = keys.shape[0]
    lengths = np.zeros(n, np.int64)
    indices = []
    step = max(1, (1 << 24) // max(1, keys.shape[1] * 64))
    for start in range(0, n, step):
        block = keys[start : start + step].astype(_U64, copy=False)
        bits = np.unpackbits(block.view(np.uint8), axis=1, bitorder="little")[:, :n_concepts]
        rows, cols = np.nonzero(bits)
        lengths[start : start + len(block)] = np.bincount(rows, minlength=len(block))
        indices.append(cols.astype(np.int32))
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return indptr, (np.concatenate(indices) if indices else np.empty(0, np.int32))


def factorize_rows(keys: NDArray[np.uint64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Group identical rows exactly, numbering groups in order of first appearance.

    Parameters
    ----------
    keys : uint64 array, shape (n, W)

    Returns
    -------
    codes : ndarray of intp, shape (n,)
        Group of every row; group ``g`` first appears before group ``g + 1``.
    representatives : ndarray of intp, shape (n_groups,)
        Index of the first row of every group.
    """
    n = keys.shape[0]
    if n == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    used = [w for w in range(keys.shape[1]) if w == 0 or keys[:, w].any()]  # an all-zero word splits no group
    # neighbouring positions (pixels of one region) often share a signature: group runs of equal rows
    change = np.empty(n, bool)
    change[0] = True
    np.not_equal(keys[1:, used[0]], keys[:-1, used[0]], out=change[1:])
    for w in used[1:]:
        change[1:] |= keys[1:, w] != keys[:-1, w]
    starts = np.flatnonzero(change)
    if 2 * len(starts) > n:
        return _factorize_words(keys, used)
    run_codes, run_representatives = _factorize_words(keys[starts], used)
    lengths = np.diff(starts, append=n)
    return np.repeat(run_codes, lengths), starts[run_representatives]


def _factorize_words(keys: NDArray[np.uint64], used: list[int]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """:func:`factorize_rows` on the words ``used`` (the others are zero in every row)."""
    if len(used) == 1:
        return _first_occurrences(pd.factorize(keys[:, used[0]], sort=False)[0])
    # one factorize of a 64-bit hash of the words, trusted only once every row has been
    # compared with its group's first row; on a collision, group exactly word by word.
    # For fixed earlier words the hash is a bijection of the last word, so comparing the
    # earlier words suffices.
    hashed = keys[:, used[0]].copy()
    with np.errstate(over="ignore"):
        for w in used[1:]:
            hashed *= _HASH_MULTIPLIER
            hashed ^= hashed >> np.uint64(29)
            hashed ^= keys[:, w]
    codes, representatives = _first_occurrences(pd.factorize(hashed, sort=False)[0])
    first_rows = representatives[codes]
    if all(np.array_equal(keys[:, w], keys[first_rows, w]) for w in used[:-1]):
        return codes, representatives
    return _factorize_rows_exact(keys[:, used])


_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def _first_occurrences(codes: NDArray[np.integer]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``codes`` as intp and the index of every code's first row (codes numbered by first appearance)."""
    codes = codes.astype(np.intp, copy=False)
    representatives = np.empty(int(codes.max()) + 1, np.intp)
    representatives[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write wins: first occurrence
    return codes, representatives


def _factorize_rows_exact(keys: NDArray[np.uint64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """:func:`factorize_rows` without hashing: one factorize per word, codes combined pairwise."""
    codes = pd.factorize(keys[:, 0], sort=False)[0]
    for w in range(1, keys.shape[1]):
        word_codes = pd.factorize(keys[:, w], sort=False)[0]
        # both codes are < n < 2**32, so the pair fits one uint64 exactly
        pairs = (codes.astype(np.uint64) << np.uint64(32)) | word_codes.astype(np.uint64)
        codes = pd.factorize(pairs, sort=False)[0]
    return _first_occurrences(codes)


class BitSignatureIndex:
    """Assigns signature ids to positions given by bit keys, chunk by chunk.

    Ids are given in order of first appearance over all positions added so far, as
    :class:`~logiclens.core.signatures.SignatureIndex` gives them.

    Parameters
    ----------
    n_concepts : int
        Number of concepts K; keys have ``ceil(K / 64)`` words.
    """

    def __init__(self, n_concepts: int) -> None:
        self.n_concepts = int(n_concepts)
        self.n_words = n_words(self.n_concepts)
        self._keys = np.zeros((64, self.n_words), np.uint64)
        self._weights = np.zeros(64, np.int64)
        self.n_signatures = 0
        self.n_positions = 0

    def add(self, keys: NDArray[np.uint64]) -> NDArray[np.int32]:
        """Add one chunk of positions (bit keys, shape (n, W)) and return their signature ids."""
        if keys.ndim != 2 or keys.shape[1] != self.n_words:
            raise ValueError(f"bit keys must have shape (n, {self.n_words}), got {keys.shape}")
        n = keys.shape[0]
        if n == 0:
            return np.empty(0, np.int32)
        codes, representatives = factorize_rows(keys)
        local = keys[representatives]
        s = self.n_signatures
        if s:
            # known signatures come first and are distinct, so they keep codes 0..s-1; the
            # chunk's new ones get s, s+1, ... in order of first appearance
            merged, _ = factorize_rows(np.concatenate([self._keys[:s], local]))
            global_ids = merged[s:]
        else:
            global_ids = np.arange(len(local), dtype=np.intp)
        new = global_ids >= s
        n_new = int(new.sum())
        self._grow(s + n_new)
        self._keys[s : s + n_new] = local[new]
        self.n_signatures = s + n_new
        ids = global_ids[codes].astype(np.int32)
        self._weights[: self.n_signatures] += np.bincount(ids, minlength=self.n_signatures)
        self.n_positions += n
        return ids

    def _grow(self, size: int) -> None:
        if size <= len(self._weights):
            return
        capacity = max(size, 2 * len(self._weights))
        keys = np.zeros((capacity, self.n_words), np.uint64)
        keys[: self.n_signatures] = self._keys[: self.n_signatures]
        weights = np.zeros(capacity, np.int64)
        weights[: self.n_signatures] = self._weights[: self.n_signatures]
        self._keys, self._weights = keys, weights

    def weights(self) -> NDArray[np.int64]:
        """Number of positions in each signature so far."""
        return self._weights[: self.n_signatures].copy()

    def incidence_csr(self) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
        """CSR ``(indptr, indices)`` of the signatures x concepts incidence, sorted indices."""
        return keys_to_concepts(self._keys[: self.n_signatures], self.n_concepts)
