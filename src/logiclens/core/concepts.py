"""Concept sets: K named concepts over N positions, stored as a signature table.

Positions (pixels, tokens, sentence pairs) that belong to exactly the same concepts cannot be
told apart by any formula over those concepts. A :class:`ConceptSet` therefore groups
positions by their concept set (their *signature*) and keeps, per signature, the concepts it
holds and how many positions it covers. Every count a search needs is a weighted sum over
signatures, which on segmentation data shrinks the problem by orders of magnitude.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from logiclens.core.bitsignatures import BitSignatureIndex, packed_to_keys
from logiclens.core.formula import And, Concept, Formula, Neighbors, Not, Or, parse
from logiclens.core.signatures import SignatureIndex

__all__ = ["ConceptSet"]

FORMAT_VERSION = 1
_DENSE_CHUNK_ELEMENTS = 1 << 25  # concepts x positions read at once by the dense and packed readers


def _chunk_positions(n_concepts: int) -> int:
    """Positions per chunk for the dense and packed readers: a multiple of 8, at least 8."""
    return max(8, (_DENSE_CHUNK_ELEMENTS // max(1, n_concepts)) // 8 * 8)


def _check_binary(block: NDArray, names: Sequence[str]) -> None:
    """Raise ``ValueError`` unless every value of a (K, n) mask block is 0 or 1 (no NaN)."""
    if block.dtype.kind == "f":
        nan = np.isnan(block)
        if nan.any():
            concept = int(np.flatnonzero(nan.any(axis=1))[0])
            raise ValueError(f"concept masks contain NaN (first in concept {names[concept]!r}); masks must be 0/1")
    bad = (block != 0) & (block != 1)
    if bad.any():
        concept, position = (int(i[0]) for i in np.nonzero(bad))
        raise ValueError(
            f"concept masks must be boolean (0/1); concept {names[concept]!r} holds {block[concept, position].item()!r}"
        )


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


class ConceptSet:
    """K named, categorised concepts over N positions, stored by signature.

    Build one with :meth:`from_labels`, :meth:`from_label_chunks`, :meth:`from_dense`,
    :meth:`from_packed` or :meth:`from_sparse`; save and load it with :meth:`save` and
    :meth:`load` (plain ``.npz``, no pickle).

    Parameters
    ----------
    names : sequence of str
        Unique concept names.
    signature_concepts : scipy.sparse.csr_array, shape (S, K)
        Boolean incidence: which concepts each signature holds.
    signature_weights : array of int, shape (S,)
        Number of positions in each signature.
    categories : sequence of str, optional
        Category of each concept (e.g. ``object``, ``color``); ``""`` when omitted.
    position_signatures : array of int, shape (N,), optional
        Signature of every position. Needed to turn per-position unit masks into counts
        and to draw formula masks; not needed by the search itself.
    neighbors : scipy.sparse.csr_array, shape (K, K), optional
        ``neighbors[i, j]`` is true when concept j is one of concept i's nearest
        neighbours, which enables ``NEIGHBORS(i)`` (concept i OR its neighbours).

    Attributes
    ----------
    n_concepts, n_signatures, n_positions : int
    sizes : ndarray of int64, shape (K,)
        Number of positions in each concept.
    """

    def __init__(
        self,
        names: Sequence[str],
        signature_concepts: sp.csr_array,
        signature_weights: ArrayLike,
        categories: Sequence[str] | None = None,
        position_signatures: ArrayLike | None = None,
        neighbors: sp.csr_array | None = None,
    ) -> None:
        self.names: tuple[str, ...] = tuple(str(n) for n in names)
        k = len(self.names)
        if len(set(self.names)) != k:
            duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"concept names must be unique; repeated: {duplicates[:5]}")
        self.categories: tuple[str, ...] = tuple(str(c) for c in categories) if categories is not None else ("",) * k
        if len(self.categories) != k:
            raise ValueError(f"{len(self.categories)} categories for {k} concepts")
        incidence = sp.csr_array(signature_concepts, dtype=bool)
        incidence.sort_indices()
        if incidence.shape[1] != k:
            raise ValueError(f"signature table has {incidence.shape[1]} concept columns for {k} names")
        self.signature_concepts = incidence
        self.signature_weights = np.asarray(signature_weights, dtype=np.int64)
        if self.signature_weights.shape != (incidence.shape[0],):
            raise ValueError(
                f"signature_weights has shape {self.signature_weights.shape}, expected ({incidence.shape[0]},)"
            )
        if (self.signature_weights < 0).any():
            raise ValueError("signature weights must be non-negative")
        self.n_positions = int(self.signature_weights.sum())
        self.position_signatures: NDArray[np.int32] | None = None
        if position_signatures is not None:
            positions = np.asarray(position_signatures)
            if positions.shape != (self.n_positions,):
                raise ValueError(f"position_signatures has shape {positions.shape}, expected ({self.n_positions},)")
            self.position_signatures = positions.astype(np.int32, copy=False)
        self.neighbors: sp.csr_array | None = None
        if neighbors is not None:
            nb = sp.csr_array(neighbors, dtype=bool)
            if nb.shape != (k, k):
                raise ValueError(f"neighbors must be {k} x {k}, got {nb.shape}")
            nb.setdiag(False)
            nb.eliminate_zeros()
            self.neighbors = nb

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_label_chunks(
        cls,
        chunks: Iterable[ArrayLike],
        names: Sequence[str],
        categories: Sequence[str] | None = None,
        *,
        keep_positions: bool = True,
    ) -> ConceptSet:
        """Build from per-position label arrays, streamed chunk by chunk.

        Parameters
        ----------
        chunks : iterable of int arrays, shape (n_i, L_i)
            For each position, the ids of the concepts present there (several label
            channels, e.g. object, part and colour; an image-level scene label repeated
            over the image's pixels), padded with -1. Positions are numbered in the
            order they arrive.
        names, categories : sequence of str
            See :class:`ConceptSet`.
        keep_positions : bool, default True
            Keep the signature id of every position (4 bytes per position).
        """
        index = SignatureIndex(len(names))
        ids = []
        for chunk in chunks:
            rows = np.asarray(chunk)
            if rows.ndim == 1:
                rows = rows[:, None]
            chunk_ids = index.add(rows)
            if keep_positions:
                ids.append(chunk_ids)
        positions = (np.concatenate(ids) if ids else np.empty(0, np.int32)) if keep_positions else None
        return cls._from_index(index, names, categories, positions)

    @classmethod
    def from_labels(
        cls, labels: ArrayLike, names: Sequence[str], categories: Sequence[str] | None = None
    ) -> ConceptSet:
        """Build from one (N, L) label array; see :meth:`from_label_chunks`."""
        return cls.from_label_chunks([labels], names, categories)

    @classmethod
    def from_dense(cls, masks: ArrayLike, names: Sequence[str], categories: Sequence[str] | None = None) -> ConceptSet:
        """Build from a dense (K, N) array of concept masks.

        Parameters
        ----------
        masks : array, shape (K, N)
            Boolean, or integers / floats that are exactly 0 or 1 (NaN, 0.3 and the like
            are rejected with a ``ValueError``).
        names, categories : sequence of str
            See :class:`ConceptSet`.

        Notes
        -----
        Positions are packed into per-position bit keys a chunk at a time and grouped by
        key (see :mod:`logiclens.core.bitsignatures`); signature ids are numbered in order
        of first appearance, as by :meth:`from_label_chunks`.
        """
        masks = np.asarray(masks)
        if masks.ndim != 2 or masks.shape[0] != len(names):
            raise ValueError(f"masks must have shape ({len(names)}, N), got {masks.shape}")
        if masks.dtype.kind not in "biuf":
            raise ValueError(f"concept masks must be boolean (or 0/1 numbers), got dtype {masks.dtype}")
        k, n = masks.shape
        step = _chunk_positions(k)

        def chunks() -> Iterable[tuple[NDArray[np.uint8], int]]:
            for start in range(0, n, step):
                block = masks[:, start : start + step]
                if block.dtype != bool:
                    _check_binary(block, names)
                    block = block != 0
                yield np.packbits(block, axis=1, bitorder="little"), block.shape[1]

        return cls._from_packed_chunks(chunks(), names, categories)

    @classmethod
    def from_packed(
        cls,
        packed: ArrayLike,
        n_positions: int,
        names: Sequence[str],
        categories: Sequence[str] | None = None,
    ) -> ConceptSet:
        """Build from bit-packed masks, ``np.packbits(masks, axis=1, bitorder="little")``.

        Parameters
        ----------
        packed : uint8 array, shape (K, ceil(N / 8))
        n_positions : int
            N. The padding bits after position N in the last byte must be zero; set ones
            raise a ``ValueError`` (they usually mean a wrong ``n_positions``).
        names, categories : sequence of str
            See :class:`ConceptSet`.
        """
        packed = np.asarray(packed)
        n = int(n_positions)
        if n < 0:
            raise ValueError(f"n_positions must be non-negative, got {n}")
        n_bytes = -(-n // 8)
        if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape != (len(names), n_bytes):
            raise ValueError(
                f"packed masks must be uint8 of shape ({len(names)}, {n_bytes}) for "
                f"{n_positions} positions, got {packed.dtype} {packed.shape}"
            )
        if n % 8 and packed.shape[0]:
            extra = packed[:, -1] >> np.uint8(n % 8)
            n_extra = int(np.unpackbits(extra).sum())
            if n_extra:
                first = int(np.flatnonzero(extra)[0])
                raise ValueError(
                    f"packed masks have {n_extra} bit(s) set beyond n_positions={n} (in "
                    f"{np.count_nonzero(extra)} concept(s), first {names[first]!r}); check n_positions"
                )
        step = _chunk_positions(packed.shape[0])  # a multiple of 8

        def chunks() -> Iterable[tuple[NDArray[np.uint8], int]]:
            for start in range(0, n, step):
                stop = min(start + step, n)
                yield packed[:, start // 8 : -(-stop // 8)], stop - start

        return cls._from_packed_chunks(chunks(), names, categories)

    @classmethod
    def _from_packed_chunks(
        cls,
        chunks: Iterable[tuple[NDArray[np.uint8], int]],
        names: Sequence[str],
        categories: Sequence[str] | None,
    ) -> ConceptSet:
        """Build from ``(packed (K, ceil(n / 8)) uint8, n)`` chunks of consecutive positions."""
        index = BitSignatureIndex(len(names))
        ids = [index.add(packed_to_keys(block, n)) for block, n in chunks]
        positions = np.concatenate(ids) if ids else np.empty(0, np.int32)
        return cls._from_index(index, names, categories, positions)

    @classmethod
    def from_sparse(
        cls, matrix: sp.sparray | sp.spmatrix, names: Sequence[str], categories: Sequence[str] | None = None
    ) -> ConceptSet:
        """Build from a scipy sparse (K, N) matrix whose non-zeros mark concept membership."""
        if matrix.ndim != 2 or matrix.shape[0] != len(names):
            raise ValueError(f"sparse masks must have shape ({len(names)}, N), got {matrix.shape}")
        by_position = sp.csr_array(matrix).T.tocsr()
        by_position.eliminate_zeros()
        by_position.sort_indices()
        n = by_position.shape[0]
        step = max(1, _DENSE_CHUNK_ELEMENTS // 64)

        def chunks() -> Iterable[NDArray[np.int32]]:
            for start in range(0, n, step):
                block = by_position[start : start + step]
                counts = np.diff(block.indptr)
                positions = np.repeat(np.arange(block.shape[0]), counts)
                yield _pairs_to_rows(positions, block.indices, block.shape[0])

        return cls.from_label_chunks(chunks(), names, categories)

    @classmethod
    def _from_index(
        cls,
        index: SignatureIndex | BitSignatureIndex,
        names: Sequence[str],
        categories: Sequence[str] | None,
        position_signatures: NDArray[np.int32] | None,
    ) -> ConceptSet:
        indptr, indices = index.incidence_csr()
        incidence = sp.csr_array((np.ones(len(indices), bool), indices, indptr), shape=(index.n_signatures, len(names)))
        return cls(names, incidence, index.weights(), categories, position_signatures)

    def subset(self, positions: ArrayLike) -> ConceptSet:
        """The concept set restricted to some positions (e.g. the images of a held-out split).

        Signatures absent from those positions are dropped, so signature ids differ from
        this set's; names, categories and neighbours are kept. Needs ``position_signatures``.
        """
        if self.position_signatures is None:
            raise ValueError("subset() needs position_signatures; build the set with keep_positions=True")
        old_ids = self.position_signatures[np.asarray(positions)]
        present, new_ids = np.unique(old_ids, return_inverse=True)
        weights = np.bincount(new_ids.ravel(), minlength=len(present))
        return ConceptSet(
            self.names, self.signature_concepts[present], weights, self.categories,
            new_ids.ravel().astype(np.int32), self.neighbors,
        )  # fmt: skip

    # ------------------------------------------------------------------ neighbours
    def with_neighbors(self, neighbors: Mapping[str, Sequence[str]] | sp.sparray | sp.spmatrix) -> ConceptSet:
        """Return a copy whose concepts carry a neighbour relation for ``NEIGHBORS``.

        Parameters
        ----------
        neighbors : mapping or sparse (K, K)
            ``{"hyp:couch": ["hyp:sofa", "hyp:bed", ...], ...}`` or a boolean matrix.
            Neighbour names that are not concepts of this set are ignored (a word's
            neighbour may never occur in the probing data).
        """
        if isinstance(neighbors, Mapping):
            rows, cols = [], []
            for name, others in neighbors.items():
                i = self.index(name)
                for other in others:
                    j = self._name_to_index.get(other)
                    if j is not None and j != i:
                        rows.append(i)
                        cols.append(j)
            k = self.n_concepts
            matrix = sp.csr_array((np.ones(len(rows), bool), (rows, cols)), shape=(k, k))
        else:
            matrix = sp.csr_array(neighbors, dtype=bool)
        return ConceptSet(
            self.names,
            self.signature_concepts,
            self.signature_weights,
            self.categories,
            self.position_signatures,
            matrix,
        )

    # ------------------------------------------------------------------ properties
    @property
    def n_concepts(self) -> int:
        return len(self.names)

    @property
    def n_signatures(self) -> int:
        return self.signature_concepts.shape[0]

    def __len__(self) -> int:
        return self.n_concepts

    def __repr__(self) -> str:
        return (
            f"ConceptSet({self.n_concepts} concepts, {self.n_positions:,} positions, {self.n_signatures:,} signatures)"
        )

    @cached_property
    def _name_to_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @cached_property
    def _by_concept(self) -> sp.csc_array:
        return self.signature_concepts.tocsc()

    @cached_property
    def sizes(self) -> NDArray[np.int64]:
        """Number of positions in each concept."""
        return np.bincount(
            self.signature_concepts.indices,
            weights=np.repeat(self.signature_weights, np.diff(self.signature_concepts.indptr)),
            minlength=self.n_concepts,
        ).astype(np.int64)

    def index(self, name: str) -> int:
        """Column index of the concept called ``name``."""
        try:
            return self._name_to_index[name]
        except KeyError:
            raise KeyError(f"no concept named {name!r}") from None

    def neighbor_names(self, name: str) -> list[str]:
        """Names of the neighbours of ``name`` (empty without a neighbour relation)."""
        if self.neighbors is None:
            return []
        i = self.index(name)
        row = self.neighbors.indices[self.neighbors.indptr[i] : self.neighbors.indptr[i + 1]]
        return [self.names[j] for j in row]

    # ------------------------------------------------------------------ evaluation
    def concept_signatures(self, i: int) -> NDArray[np.bool_]:
        """Boolean vector over signatures: which signatures hold concept ``i``."""
        column = np.zeros(self.n_signatures, bool)
        by_concept = self._by_concept
        column[by_concept.indices[by_concept.indptr[i] : by_concept.indptr[i + 1]]] = True
        return column

    def signature_mask(self, formula: Formula | str) -> NDArray[np.bool_]:
        """Evaluate a formula on every signature."""
        if isinstance(formula, str):
            formula = parse(formula)
        if isinstance(formula, Concept):
            return self.concept_signatures(self.index(formula.name))
        if isinstance(formula, Neighbors):
            if self.neighbors is None:
                raise ValueError("this concept set has no neighbour relation; see with_neighbors()")
            mask = self.concept_signatures(self.index(formula.name))
            for other in self.neighbor_names(formula.name):
                mask |= self.concept_signatures(self.index(other))
            return mask
        if isinstance(formula, Not):
            return ~self.signature_mask(formula.operand)
        if isinstance(formula, (And, Or)):
            masks = [self.signature_mask(op) for op in formula.operands]
            combine = np.logical_and if isinstance(formula, And) else np.logical_or
            return combine.reduce(masks)
        raise TypeError(f"not a formula: {formula!r}")

    def mask(self, formula: Formula | str) -> NDArray[np.bool_]:
        """Evaluate a formula on every position (needs ``position_signatures``)."""
        if self.position_signatures is None:
            raise ValueError("this concept set was built without position_signatures")
        return self.signature_mask(formula)[self.position_signatures]

    def count(self, formula: Formula | str) -> int:
        """Number of positions where ``formula`` holds."""
        return int(self.signature_weights[self.signature_mask(formula)].sum())

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to a ``.npz`` file (written atomically; no pickle)."""
        arrays: dict[str, NDArray] = {
            "format_version": np.array(FORMAT_VERSION),
            "names": np.array(self.names, dtype=str),
            "categories": np.array(self.categories, dtype=str),
            "indptr": self.signature_concepts.indptr.astype(np.int64),
            "indices": self.signature_concepts.indices.astype(np.int32),
            "weights": self.signature_weights,
        }
        if self.position_signatures is not None:
            arrays["position_signatures"] = self.position_signatures
        if self.neighbors is not None:
            arrays["neighbor_indptr"] = self.neighbors.indptr.astype(np.int64)
            arrays["neighbor_indices"] = self.neighbors.indices.astype(np.int32)
        from logiclens.core.io import atomic_savez

        atomic_savez(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ConceptSet:
        """Load a concept set written by :meth:`save`."""
        from logiclens.core.io import read_npz

        data = read_npz(Path(path), required=("format_version", "names", "indptr", "indices", "weights"))
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: concept set format {version} is not supported (expected {FORMAT_VERSION})")
        names = [str(n) for n in data["names"]]
        k = len(names)
        weights = data["weights"]
        incidence = sp.csr_array(
            (np.ones(len(data["indices"]), bool), data["indices"], data["indptr"]), shape=(len(weights), k)
        )
        neighbors = None
        if "neighbor_indptr" in data:
            neighbors = sp.csr_array(
                (np.ones(len(data["neighbor_indices"]), bool), data["neighbor_indices"], data["neighbor_indptr"]),
                shape=(k, k),
            )
        categories = [str(c) for c in data["categories"]] if "categories" in data else None
        return cls(names, incidence, weights, categories, data.get("position_signatures"), neighbors)
