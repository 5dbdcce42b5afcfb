"""Unit masks in count form: for each unit, how many of its active positions fall in each signature.

Every formula is constant on a signature, so these counts are all a search needs: they are
an exact, compact stand-in for the unit's binary mask relative to a :class:`ConceptSet`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from logiclens.core.concepts import ConceptSet

__all__ = ["UnitMasks"]

FORMAT_VERSION = 1


class UnitMasks:
    """Per-unit active-position counts per signature of a concept set.

    Parameters
    ----------
    counts : sparse or dense array of int, shape (U, S)
        ``counts[u, s]`` = number of positions of signature ``s`` where unit ``u`` is active.
    names : sequence of str, optional
        Unit names; ``"0"``, ``"1"``, ... by default.

    Attributes
    ----------
    n_active : ndarray of int64, shape (U,)
        Number of active positions per unit.
    """

    def __init__(self, counts: ArrayLike | sp.sparray, names: Sequence[str] | None = None) -> None:
        matrix = sp.csr_array(counts, dtype=np.int64)
        matrix.eliminate_zeros()
        matrix.sort_indices()
        if matrix.nnz and matrix.data.min() < 0:
            raise ValueError("unit counts must be non-negative")
        self.counts = matrix
        self.names: tuple[str, ...] = (
            tuple(str(n) for n in names) if names is not None else tuple(str(i) for i in range(matrix.shape[0]))
        )
        if len(self.names) != matrix.shape[0]:
            raise ValueError(f"{len(self.names)} names for {matrix.shape[0]} units")
        self.n_active: NDArray[np.int64] = np.asarray(matrix.sum(axis=1)).ravel().astype(np.int64)

    def __len__(self) -> int:
        return self.counts.shape[0]

    def __repr__(self) -> str:
        return f"UnitMasks({len(self)} units over {self.counts.shape[1]:,} signatures)"

    @property
    def n_signatures(self) -> int:
        return self.counts.shape[1]

    def check_compatible(self, concepts: ConceptSet) -> None:
        """Raise ``ValueError`` unless these counts fit ``concepts``' signature table."""
        if self.n_signatures != concepts.n_signatures:
            raise ValueError(
                f"unit masks are over {self.n_signatures} signatures but the concept set has "
                f"{concepts.n_signatures}; build both from the same positions"
            )
        if (self.counts.data > concepts.signature_weights[self.counts.indices]).any():
            raise ValueError("a unit has more active positions in a signature than the signature holds")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def stack(cls, parts: Sequence[UnitMasks]) -> UnitMasks:
        """The units of ``parts``, one after the other (blocks of one layer's units, say)."""
        if not parts:
            raise ValueError("no unit masks to stack")
        return cls(sp.vstack([part.counts for part in parts], format="csr"), [n for part in parts for n in part.names])

    @classmethod
    def _from_position_lists(
        cls, active: Sequence[NDArray[np.integer]] | object, concepts: ConceptSet, names: Sequence[str] | None
    ) -> UnitMasks:
        if concepts.position_signatures is None:
            raise ValueError("the concept set has no position_signatures; rebuild it with keep_positions=True")
        sig_of = concepts.position_signatures
        rows, cols, vals = [], [], []
        for u, positions in enumerate(active):  # type: ignore[arg-type]
            per_signature = np.bincount(sig_of[positions], minlength=concepts.n_signatures)
            nonzero = np.flatnonzero(per_signature)
            rows.append(np.full(len(nonzero), u, np.int64))
            cols.append(nonzero)
            vals.append(per_signature[nonzero])
        n_units = len(rows)
        shape = (n_units, concepts.n_signatures)
        if n_units == 0:
            return cls(sp.csr_array(shape, dtype=np.int64), names)
        matrix = sp.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
        return cls(matrix, names)

    @classmethod
    def from_dense(cls, masks: ArrayLike, concepts: ConceptSet, names: Sequence[str] | None = None) -> UnitMasks:
        """From a (U, N) boolean array of per-position unit masks."""
        masks = np.asarray(masks)
        if masks.ndim == 1:
            masks = masks[None]
        if masks.ndim != 2 or masks.shape[1] != concepts.n_positions:
            raise ValueError(f"unit masks must have shape (U, {concepts.n_positions}), got {masks.shape}")
        if masks.dtype != bool:
            if masks.dtype.kind == "f" and np.isnan(masks).any():
                raise ValueError("unit masks contain NaN; threshold activations before building masks")
            if not np.isin(masks, (0, 1)).all():
                raise ValueError("unit masks must be boolean (0/1); threshold activations first")
        return cls._from_position_lists((np.flatnonzero(row) for row in masks), concepts, names)

    @classmethod
    def from_packed(cls, packed: ArrayLike, concepts: ConceptSet, names: Sequence[str] | None = None) -> UnitMasks:
        """From bit-packed masks, ``np.packbits(masks, axis=1, bitorder="little")``."""
        packed = np.asarray(packed)
        n = concepts.n_positions
        n_bytes = -(-n // 8)
        if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != n_bytes:
            raise ValueError(
                f"packed unit masks must be uint8 of shape (U, {n_bytes}), got {packed.dtype} {packed.shape}"
            )
        if n % 8 and len(packed):
            beyond = int(np.unpackbits(packed[:, -1] >> np.uint8(n % 8)).sum())
            if beyond:
                raise ValueError(f"packed unit masks have {beyond} bit(s) set beyond n_positions={n}")
        rows = (np.flatnonzero(np.unpackbits(row, count=n, bitorder="little")) for row in packed)
        return cls._from_position_lists(rows, concepts, names)

    @classmethod
    def from_sparse(
        cls, matrix: sp.sparray | sp.spmatrix, concepts: ConceptSet, names: Sequence[str] | None = None
    ) -> UnitMasks:
        """From a scipy sparse (U, N) matrix whose non-zeros are active positions."""
        csr = sp.csr_array(matrix)
        if csr.shape[1] != concepts.n_positions:
            raise ValueError(f"sparse unit masks must have shape (U, {concepts.n_positions}), got {csr.shape}")
        csr.eliminate_zeros()
        rows = (csr.indices[csr.indptr[u] : csr.indptr[u + 1]] for u in range(csr.shape[0]))
        return cls._from_position_lists(rows, concepts, names)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to a ``.npz`` file (atomic; no pickle)."""
        from logiclens.core.io import atomic_savez

        atomic_savez(
            path,
            {
                "format_version": np.array(FORMAT_VERSION),
                "names": np.array(self.names, dtype=str),
                "indptr": self.counts.indptr.astype(np.int64),
                "indices": self.counts.indices.astype(np.int32),
                "counts": self.counts.data,
                "n_signatures": np.array(self.n_signatures),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> UnitMasks:
        """Load unit masks written by :meth:`save`."""
        from logiclens.core.io import read_npz

        data = read_npz(Path(path), required=("format_version", "names", "indptr", "indices", "counts", "n_signatures"))
        if int(data["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"{path}: unit-mask format {int(data['format_version'])} is not supported")
        shape = (len(data["names"]), int(data["n_signatures"]))
        matrix = sp.csr_array((data["counts"], data["indices"], data["indptr"]), shape=shape)
        return cls(matrix, [str(n) for n in data["names"]])
