"""Today's (pre-issue-16) dense and packed ConceptSet constructors, kept as the reference.

These are the constructors as they were before the fast ingest path: every chunk of K x n
mask bits is turned into padded label rows with ``np.nonzero`` and fed to
:meth:`ConceptSet.from_label_chunks` (a :class:`SignatureIndex`). The fast
:meth:`ConceptSet.from_dense` / :meth:`ConceptSet.from_packed` must give exactly the same
signature table (same ids, same order) and the same ``position_signatures``.
Speed is irrelevant here. (Input validation is not part of the reference.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.core.concepts import ConceptSet

__all__ = ["reference_from_dense", "reference_from_packed"]

CHUNK_ELEMENTS = 1 << 25  # concepts x positions unpacked at once


def _pairs_to_rows(positions: NDArray[np.intp], concepts: NDArray[np.intp], n: int) -> NDArray[np.int32]:
    """Padded label rows from (position, concept) pairs sorted by position."""
    counts = np.bincount(positions, minlength=n)
    width = int(counts.max()) if n else 0
    rows = np.full((n, max(width, 1)), -1, np.int32)
    if len(positions):
        starts = np.zeros(n, np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        rank = np.arange(len(positions)) - starts[positions]
        rows[positions, rank] = concepts
    return rows


def dense_to_label_rows(block: NDArray[np.bool_]) -> NDArray[np.int32]:
    """Turn a (n positions x K) boolean block into padded label rows."""
    positions, concepts = np.nonzero(block)
    return _pairs_to_rows(positions, concepts, block.shape[0])


def reference_from_dense(
    masks: ArrayLike,
    names: Sequence[str],
    categories: Sequence[str] | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> ConceptSet:
    """Build from a dense (K, N) boolean array of concept masks (the old way)."""
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.shape[0] != len(names):
        raise ValueError(f"masks must have shape ({len(names)}, N), got {masks.shape}")
    step = max(1, chunk_elements // max(1, masks.shape[0]))
    chunks = (
        dense_to_label_rows(masks[:, start : start + step].astype(bool).T) for start in range(0, masks.shape[1], step)
    )
    return ConceptSet.from_label_chunks(chunks, names, categories)


def reference_from_packed(
    packed: ArrayLike,
    n_positions: int,
    names: Sequence[str],
    categories: Sequence[str] | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> ConceptSet:
    """Build from ``np.packbits(masks, axis=1, bitorder="little")`` (the old way; padding bits ignored)."""
    packed = np.asarray(packed)
    n_bytes = -(-int(n_positions) // 8)
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape != (len(names), n_bytes):
        raise ValueError(
            f"packed masks must be uint8 of shape ({len(names)}, {n_bytes}) for "
            f"{n_positions} positions, got {packed.dtype} {packed.shape}"
        )
    step = max(8, (chunk_elements // max(1, packed.shape[0])) // 8 * 8)

    def chunks() -> Iterable[NDArray[np.int32]]:
        for start in range(0, int(n_positions), step):
            stop = min(start + step, int(n_positions))
            block = np.unpackbits(packed[:, start // 8 : -(-stop // 8)], axis=1, bitorder="little")
            yield dense_to_label_rows(block[:, : stop - start].astype(bool).T)

    return ConceptSet.from_label_chunks(chunks(), names, categories)
