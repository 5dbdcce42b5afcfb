"""Streaming grouping of positions into signatures (sets of concepts they belong to).

Positions arrive in chunks as *label rows*: a 2-D integer array with one row per position
listing the concept ids present there, padded with -1. The index assigns every distinct
concept set a signature id, in order of first appearance, and counts positions per
signature. Nothing of size K x N is ever built.

Within a chunk, rows are grouped with a 64-bit hash and a hash table (pandas.factorize),
then every row is compared with its group's representative, so a hash collision is
detected, never trusted; a chunk with a collision falls back to an exact sort. Across
chunks, signatures are matched by their exact concept tuple.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from numpy.typing import NDArray

_HASH_SEED = 0x5EED


def canonical_rows(labels: NDArray[np.integer]) -> NDArray[np.int32]:
    """Sort each row ascending, drop repeated ids, and move the -1 padding to the end."""
    rows = np.asarray(labels)
    if rows.ndim != 2:
        raise ValueError(f"label rows must be 2-D (positions x labels), got shape {rows.shape}")
    rows = rows.astype(np.int64, copy=True)
    if rows.shape[1] == 0:
        return rows.astype(np.int32)
    big = np.iinfo(np.int64).max
    rows[rows < 0] = big
    rows.sort(axis=1)
    if rows.shape[1] > 1:
        repeated = (rows[:, 1:] == rows[:, :-1]) & (rows[:, 1:] != big)
        if repeated.any():
            rows[:, 1:][repeated] = big
            rows.sort(axis=1)
    rows[rows == big] = -1
    return rows.astype(np.int32)


class SignatureIndex:
    """Assigns signature ids to label rows, chunk by chunk.

    Parameters
    ----------
    n_concepts : int
        Number of concepts K; label ids must lie in ``[0, K)``.
    """

    def __init__(self, n_concepts: int) -> None:
        self.n_concepts = int(n_concepts)
        rng = np.random.default_rng(_HASH_SEED)
        # position 0 is the padding label -1, which contributes nothing to the hash
        self._keys = np.concatenate(
            [[0], rng.integers(1, np.iinfo(np.uint64).max, self.n_concepts, dtype=np.uint64, endpoint=True)]
        ).astype(np.uint64)
        self._ids: dict[bytes, int] = {}
        self._concepts: list[NDArray[np.int32]] = []
        self._weights = np.zeros(1024, np.int64)
        self.n_positions = 0

    @property
    def n_signatures(self) -> int:
        return len(self._concepts)

    def add(self, labels: NDArray[np.integer]) -> NDArray[np.int32]:
        """Add one chunk of positions and return their signature ids.

        Parameters
        ----------
        labels : array of int, shape (n, L)
            Concept ids present at each position, -1 for none; order and repeats do not
            matter.

        Returns
        -------
        ndarray of int32, shape (n,)
        """
        rows = canonical_rows(labels)
        if rows.size and (rows.max() >= self.n_concepts):
            raise ValueError(f"label id {int(rows.max())} out of range for {self.n_concepts} concepts")
        n = rows.shape[0]
        if n == 0:
            return np.empty(0, np.int32)
        local, representatives = self._group(rows)
        global_ids = np.empty(len(representatives), np.int32)
        for i, row in enumerate(rows[representatives]):
            global_ids[i] = self._id_of(row[row >= 0])
        ids = global_ids[local]
        self._count(ids)
        self.n_positions += n
        return ids

    def _id_of(self, concepts: NDArray[np.int32]) -> int:
        """The id of the signature of these (sorted) concepts, numbered next if it is new."""
        key = concepts.tobytes()
        sig = self._ids.get(key)
        if sig is None:
            sig = len(self._concepts)
            self._ids[key] = sig
            self._concepts.append(concepts)
        return sig

    def _group(self, rows: NDArray[np.int32]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Group identical rows: local group per row and one representative row per group."""
        hashes = np.zeros(rows.shape[0], np.uint64)
        with np.errstate(over="ignore"):
            for column in range(rows.shape[1]):
                hashes += self._keys[rows[:, column] + 1] * np.uint64(2 * column + 1)
        codes, _ = pd.factorize(hashes, sort=False)
        codes = codes.astype(np.intp)
        representatives = np.zeros(codes.max() + 1, np.intp)
        representatives[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # first occurrence
        if np.array_equal(rows, rows[representatives[codes]]):
            return codes, representatives
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # number groups by first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return rank[inverse.ravel()], first[order]

    def _grow(self) -> None:
        """Make room for the counts of every signature."""
        if self.n_signatures > len(self._weights):
            grown = np.zeros(max(2 * len(self._weights), self.n_signatures), np.int64)
            grown[: len(self._weights)] = self._weights
            self._weights = grown

    def _count(self, ids: NDArray[np.int32]) -> None:
        self._grow()
        counts = np.bincount(ids, minlength=self.n_signatures)
        self._weights[: len(counts)] += counts

    def weights(self) -> NDArray[np.int64]:
        """Number of positions in each signature so far."""
        return self._weights[: self.n_signatures].copy()

    def incidence_csr(self) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
        """CSR ``(indptr, indices)`` of the signatures x concepts incidence, sorted indices."""
        lengths = np.fromiter((len(c) for c in self._concepts), np.int64, self.n_signatures)
        indptr = np.zeros(self.n_signatures + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.concatenate(self._concepts) if self._concepts else np.empty(0, np.int32)
        return indptr, indices.astype(np.int32)

    def state_dict(self) -> dict[str, NDArray]:
        """Arrays that restore this index with :meth:`from_state_dict` (for resumable builds)."""
        indptr, indices = self.incidence_csr()
        return {
            "n_concepts": np.array(self.n_concepts),
            "indptr": indptr,
            "indices": indices,
            "weights": self.weights(),
            "n_positions": np.array(self.n_positions),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, NDArray]) -> SignatureIndex:
        """Restore an index saved with :meth:`state_dict`."""
        index = cls(int(state["n_concepts"]))
        indptr, indices = state["indptr"], state["indices"].astype(np.int32)
        for start, stop in itertools.pairwise(indptr):
            concepts = indices[start:stop]
            index._ids[concepts.tobytes()] = len(index._concepts)
            index._concepts.append(concepts)
        index._weights = np.asarray(state["weights"], np.int64).copy()
        index.n_positions = int(state["n_positions"])
        return index

    def absorb(self, other: SignatureIndex) -> NDArray[np.int32]:
        """Add the positions another index counted after this one's; returns its ids in this index.

        Signatures new to this index are numbered in ``other``'s order, which is their order of
        first appearance there: absorbing the indexes of consecutive chunks of positions, in
        order, numbers every signature exactly as one index over all the positions would.

        Returns
        -------
        ndarray of int32, shape (other.n_signatures,)
            ``remap[i]`` is the id here of ``other``'s signature ``i``.
        """
        if other.n_concepts != self.n_concepts:
            raise ValueError(f"an index over {other.n_concepts} concepts cannot join one over {self.n_concepts}")
        remap = np.array([self._id_of(concepts) for concepts in other._concepts], np.int32).reshape(-1)
        self._grow()
        np.add.at(self._weights, remap, other.weights())
        self.n_positions += other.n_positions
        return remap
