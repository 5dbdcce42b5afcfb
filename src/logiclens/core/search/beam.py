"""Exact beam search for compositional explanations, on signature counts.

The search follows Mu & Andreas (2020, section 2) and the authors' code; the rules, including
tie-breaking, are specified in ``docs/search.md``. No candidate mask is ever built: for a
beam formula F and every primitive C at once, two sparse products give |F AND C| and
|M AND F AND C|, and the counts of ``F OR C``, ``F AND C``, ``F AND NOT C`` and
``F OR NOT C`` follow by inclusion-exclusion.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.core.formula import And, Concept, Formula, Neighbors, Not, Or
from logiclens.core.search.metrics import METRICS, iou
from logiclens.core.search.names import BEAM_MODES, OPERATORS

__all__ = ["OPERATORS", "BeamSettings", "Candidate", "PrimitiveTable", "UnitResult", "search_unit"]


@dataclass(frozen=True)
class BeamSettings:
    """Validated search parameters; see :class:`logiclens.CompositionalExplainer`."""

    max_length: int = 3
    beam_size: int = 10
    operators: tuple[str, ...] = ("or", "and", "and_not")
    beam_mode: str = "reference"
    metric: str = "iou"
    complexity_penalty: float = 0.0
    min_support: int = 1
    max_expansion_concepts: int | None = None
    top_k: int = 1
    use_neighbors: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.max_length, (int, np.integer)) and self.max_length >= 1):
            raise ValueError(f"max_length must be an integer >= 1, got {self.max_length!r}")
        if not (isinstance(self.beam_size, (int, np.integer)) and self.beam_size >= 1):
            raise ValueError(f"beam_size must be an integer >= 1, got {self.beam_size!r}")
        unknown = [op for op in self.operators if op not in OPERATORS]
        if unknown or not self.operators or len(set(self.operators)) != len(self.operators):
            raise ValueError(f"operators must be distinct names from {OPERATORS}, got {self.operators!r}")
        if self.beam_mode not in BEAM_MODES:
            raise ValueError(f"beam_mode must be one of {BEAM_MODES}, got {self.beam_mode!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {tuple(METRICS)}, got {self.metric!r}")
        if not 0.0 <= self.complexity_penalty < 1.0:
            raise ValueError(f"complexity_penalty must lie in [0, 1), got {self.complexity_penalty!r}")
        if self.min_support < 1:
            raise ValueError(f"min_support must be >= 1, got {self.min_support!r}")
        if self.max_expansion_concepts is not None and self.max_expansion_concepts < 1:
            raise ValueError(f"max_expansion_concepts must be None or >= 1, got {self.max_expansion_concepts!r}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k!r}")

    def length_factor(self, length: int) -> float:
        """Multiplier of the metric for a formula of ``length`` leaves."""
        return (1.0 - self.complexity_penalty) ** (length - 1)


class PrimitiveTable:
    """The primitives a search composes: concepts (and NEIGHBORS terms) as signature columns.

    Columns are the concepts with at least ``min_support`` positions, in concept order,
    followed, when the concept set has a neighbour relation and ``use_neighbors`` is set,
    by ``NEIGHBORS(c)`` for every concept c with neighbours whose mask differs from c's.
    Column order is the tie-breaking order of the search.
    """

    def __init__(self, concepts: ConceptSet, min_support: int = 1, use_neighbors: bool = True) -> None:
        incidence = concepts.signature_concepts.tocsc().astype(np.float64)
        keep = np.flatnonzero(concepts.sizes >= min_support)
        formulas: list[Formula] = [Concept(concepts.names[i]) for i in keep]
        columns = [incidence[:, keep]]
        if use_neighbors and concepts.neighbors is not None and concepts.neighbors.nnz:
            with_self = (concepts.neighbors + sp.eye_array(concepts.n_concepts, dtype=bool, format="csr")).astype(
                np.float64
            )
            spread = (incidence @ with_self.T).tocsc()
            spread.data[:] = 1.0
            has_neighbors = np.flatnonzero(np.diff(concepts.neighbors.indptr) > 0)
            sizes = np.asarray(concepts.signature_weights @ spread).ravel()
            differs = [
                i
                for i in has_neighbors
                if sizes[i] >= min_support
                and spread.indptr[i + 1] - spread.indptr[i] != incidence.indptr[i + 1] - incidence.indptr[i]
            ]
            if differs:
                formulas += [Neighbors(concepts.names[i]) for i in differs]
                columns.append(spread[:, differs])
        by_column = sp.hstack(columns, format="csc")
        by_column.sort_indices()
        self.formulas: list[Formula] = formulas
        self.by_column: sp.csc_array = sp.csc_array(by_column)
        self.by_signature: sp.csr_array = sp.csr_array(by_column.tocsr())
        self.weights: NDArray[np.float64] = concepts.signature_weights.astype(np.float64)
        self.sizes: NDArray[np.int64] = np.rint(self.weights @ self.by_signature).astype(np.int64)
        self.n_positions = concepts.n_positions

    def __len__(self) -> int:
        return len(self.formulas)

    def column_sums(self, rows: NDArray[np.intp], weights: NDArray[np.float64]) -> NDArray[np.int64]:
        """Per primitive, the sum of ``weights`` over the given signatures that hold it.

        A plain gather over the CSR arrays (no sparse-matrix objects: this runs thousands of
        times per unit). Weights are integer counts, so the float sums are exact.
        """
        indptr = self.by_signature.indptr
        starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(len(self.formulas), np.int64)
        shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        columns = self.by_signature.indices[shift + np.arange(total)]
        sums = np.bincount(columns, weights=np.repeat(weights, lengths), minlength=len(self.formulas))
        return np.rint(sums).astype(np.int64)

    def column(self, j: int) -> NDArray[np.intp]:
        """Signatures held by primitive ``j``."""
        return self.by_column.indices[self.by_column.indptr[j] : self.by_column.indptr[j + 1]]


@dataclass
class Candidate:
    """A scored formula: counts over the probing positions and its score."""

    formula: Formula
    score: float
    value: float
    size: int
    intersection: int

    @property
    def length(self) -> int:
        return self.formula.length


@dataclass
class _BeamEntry:
    candidate: Candidate
    members: NDArray[np.bool_]  # signatures where the formula holds
    overlap: NDArray[np.int64] | None = None  # |F AND C| per primitive
    unit_overlap: NDArray[np.int64] | None = None  # |M AND F AND C| per primitive


class _SeenMasks:
    """The signature masks of every formula kept so far, for exact duplicate detection."""

    def __init__(self) -> None:
        self._by_hash: dict[int, list[NDArray[np.uint8]]] = {}

    def add(self, members: NDArray[np.bool_]) -> bool:
        """Record ``members``; return False if an identical mask was recorded before."""
        packed = np.packbits(members)
        bucket = self._by_hash.setdefault(hash(packed.tobytes()), [])
        if any(np.array_equal(packed, other) for other in bucket):
            return False
        bucket.append(packed)
        return True


@dataclass
class UnitResult:
    """Outcome of one unit's search.

    ``status`` is ``"ok"``, ``"empty"`` (the unit is never active) or ``"no_match"`` (no
    primitive overlaps the unit). ``top`` lists up to ``top_k`` distinct formulas, best
    first; ``best_by_length[l - 1]`` is the best metric value among all scored formulas of
    exactly ``l`` leaves (NaN where none was scored); ``per_length[l - 1]`` is the best
    formula of exactly ``l`` leaves that entered a beam (None where none did).
    """

    n_active: int
    status: str
    top: list[Candidate] = field(default_factory=list)
    atomic: Candidate | None = None
    best_by_length: NDArray[np.float64] | None = None
    per_length: list[Candidate | None] = field(default_factory=list)

    @property
    def best(self) -> Candidate | None:
        return self.top[0] if self.top else None


def _ranked(scores: NDArray[np.float64], start: int) -> Iterator[int]:
    """Indices of positive scores by descending score, ties by ascending index, lazily."""
    valid = np.flatnonzero(scores > 0)
    values = scores[valid]
    done = 0
    take = start
    while done < len(valid):
        take = min(take, len(valid))
        if take < len(valid):
            threshold = np.partition(values, len(valid) - take)[len(valid) - take]
            chosen = valid[values >= threshold]
        else:
            chosen = valid
        order = chosen[np.argsort(-scores[chosen], kind="stable")]
        yield from order[done:].tolist()
        done = len(order)
        take *= 4


def _compose(parent: Formula, primitive: Formula, operator: str) -> Formula:
    if operator == "or":
        return Or(parent, primitive)
    if operator == "and":
        return And(parent, primitive)
    if operator == "and_not":
        return And(parent, Not(primitive))
    return Or(parent, Not(primitive))


def _overlap(
    table: PrimitiveTable,
    rows: NDArray[np.intp],
    weights: NDArray[np.float64],
    members: NDArray[np.bool_],
    totals: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Per primitive, the weight of the member rows (signatures) it holds.

    Sums over the member rows, or over the other rows and subtracts from ``totals`` when
    those are fewer.
    """
    if 2 * np.count_nonzero(members) <= len(members):
        return table.column_sums(rows[members], weights[members])
    return totals - table.column_sums(rows[~members], weights[~members])


def _combine(members: NDArray[np.bool_], column: NDArray[np.intp], operator: str) -> NDArray[np.bool_]:
    """Signatures of ``F op C`` from those of F and the signature list of C."""
    inside = np.zeros(len(members), bool)
    inside[column] = True
    if operator == "or":
        return members | inside
    if operator == "and":
        return members & inside
    if operator == "and_not":
        return members & ~inside
    return members | ~inside


def operator_counts(
    f_size: NDArray[np.int64],
    f_hits: NDArray[np.int64],
    c_size: NDArray[np.int64],
    c_hits: NDArray[np.int64],
    both: NDArray[np.int64],
    unit_both: NDArray[np.int64],
    n_positions: int,
    n_active: int,
    operators: Sequence[str],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """|F op C| and |M AND (F op C)| from the counts of F and C and of their overlap: the count identities.

    Parameters
    ----------
    f_size, f_hits : int arrays broadcasting to ``both``
        |F| and |M AND F|.
    c_size, c_hits : int arrays broadcasting to ``both``
        |C| and |M AND C|.
    both, unit_both : int arrays
        |F AND C| and |M AND F AND C|.
    n_positions, n_active : int
        N and |M|.
    operators : sequence of {"or", "and", "and_not", "or_not"}

    Returns
    -------
    size, hits : int arrays, shape ``both.shape + (len(operators),)``
    no_op : bool array, same shape
        Extensions whose mask equals F's.
    """
    n = n_positions
    shape = (*np.shape(both), len(operators))
    size, hits, no_op = np.empty(shape, np.int64), np.empty(shape, np.int64), np.empty(shape, bool)
    for o, operator in enumerate(operators):
        if operator == "or":
            size[..., o] = f_size + c_size - both
            hits[..., o] = f_hits + c_hits - unit_both
            no_op[..., o] = c_size == both
        elif operator == "and":
            size[..., o] = both
            hits[..., o] = unit_both
            no_op[..., o] = both == f_size
        elif operator == "and_not":
            size[..., o] = f_size - both
            hits[..., o] = f_hits - unit_both
            no_op[..., o] = both == 0
        else:  # or_not
            size[..., o] = n - c_size + both
            hits[..., o] = n_active - c_hits + unit_both
            no_op[..., o] = n - f_size - c_size + both == 0
    return size, hits, no_op


def _extension_counts(
    beam: list[_BeamEntry],
    expand: NDArray[np.intp],
    expand_sizes: NDArray[np.int64],
    expand_hits: NDArray[np.int64],
    n_positions: int,
    n_active: int,
    operators: Sequence[str],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """:func:`operator_counts` for every beam formula F, primitive C and operator: (beam, primitives, operators)."""
    f_size = np.array([entry.candidate.size for entry in beam])[:, None]
    f_hits = np.array([entry.candidate.intersection for entry in beam])[:, None]
    both = np.stack([entry.overlap[expand] for entry in beam])  # type: ignore[index]
    unit_both = np.stack([entry.unit_overlap[expand] for entry in beam])  # type: ignore[index]
    return operator_counts(f_size, f_hits, expand_sizes, expand_hits, both, unit_both, n_positions, n_active, operators)


def _update_length_curve(
    best_by_length: NDArray[np.float64], lengths: NDArray[np.intp], values: NDArray[np.float64]
) -> None:
    """Raise ``best_by_length[l - 1]`` to the best positive value among extensions of length l."""
    for length in np.unique(lengths):
        best = values[lengths == length].max()
        if best > 0:
            previous = best_by_length[length - 1]
            best_by_length[length - 1] = best if np.isnan(previous) else max(previous, best)


def search_unit(
    table: PrimitiveTable,
    unit_signatures: NDArray[np.integer],
    unit_counts: NDArray[np.integer],
    settings: BeamSettings,
) -> UnitResult:
    """Beam-search the best formula for one unit.

    Parameters
    ----------
    table : PrimitiveTable
    unit_signatures, unit_counts : int arrays
        The signatures where the unit is active and its number of active positions in each.
    settings : BeamSettings
    """
    metric = METRICS[settings.metric]
    n_active = int(np.sum(unit_counts))
    max_length = settings.max_length
    best_by_length = np.full(max_length, np.nan)
    if n_active == 0:
        return UnitResult(0, "empty", best_by_length=best_by_length)

    unit_weights = np.asarray(unit_counts, dtype=np.float64)
    unit_index = np.asarray(unit_signatures, dtype=np.intp)
    primitive_hits = table.column_sums(unit_index, unit_weights)
    all_signatures = np.arange(len(table.weights))
    sizes = table.sizes
    values = metric(primitive_hits, sizes, n_active)
    scores = values * settings.length_factor(1)

    ranked = list(_ranked(scores, settings.beam_size))
    if not ranked:
        return UnitResult(n_active, "no_match", best_by_length=best_by_length)
    best_by_length[0] = values[ranked[0]]

    def primitive_candidate(j: int) -> Candidate:
        return Candidate(table.formulas[j], float(scores[j]), float(values[j]), int(sizes[j]), int(primitive_hits[j]))

    atomic = primitive_candidate(ranked[0])
    seen = _SeenMasks()
    beam: list[_BeamEntry] = []
    for j in ranked:
        members = np.zeros(len(table.weights), bool)
        members[table.column(j)] = True
        if seen.add(members):
            beam.append(_BeamEntry(primitive_candidate(j), members))
        if len(beam) == settings.beam_size:
            break
    kept: list[Candidate] = [entry.candidate for entry in beam]  # every formula ever in a beam

    if settings.max_expansion_concepts is None:
        expand = np.arange(len(table))
    else:
        expand = np.sort(np.asarray(ranked[: settings.max_expansion_concepts]))
    operators = settings.operators
    n_ops = len(operators)
    expand_sizes = sizes[expand]
    expand_hits = primitive_hits[expand]

    for _ in range(max_length - 1):
        for entry in beam:
            if entry.overlap is None:
                entry.overlap = _overlap(table, all_signatures, table.weights, entry.members, sizes)
                inside = entry.members[unit_index]
                entry.unit_overlap = _overlap(table, unit_index, unit_weights, inside, primitive_hits)

        lengths = np.array([entry.candidate.length + 1 for entry in beam])
        cand_size, cand_hits, no_op = _extension_counts(
            beam, expand, expand_sizes, expand_hits, table.n_positions, n_active, operators
        )
        cand_values = metric(cand_hits, cand_size, n_active)
        cand_values[no_op] = 0.0
        cand_scores = cand_values * np.array([settings.length_factor(int(n)) for n in lengths])[:, None, None]
        _update_length_curve(best_by_length, lengths, cand_values)

        old = beam if settings.beam_mode == "reference" else []
        pool = np.concatenate([[entry.candidate.score for entry in old], cand_scores.ravel()])
        next_beam: list[_BeamEntry] = []
        for index in _ranked(pool, 4 * settings.beam_size):
            if index < len(old):
                next_beam.append(old[index])
            else:
                b, rest = divmod(index - len(old), len(expand) * n_ops)
                c, o = divmod(rest, n_ops)
                parent = beam[b]
                primitive = int(expand[c])
                formula = _compose(parent.candidate.formula, table.formulas[primitive], operators[o])
                members = _combine(parent.members, table.column(primitive), operators[o])
                if not seen.add(members):
                    continue
                candidate = Candidate(
                    formula,
                    float(cand_scores[b, c, o]),
                    float(cand_values[b, c, o]),
                    int(cand_size[b, c, o]),
                    int(cand_hits[b, c, o]),
                )
                next_beam.append(_BeamEntry(candidate, members))
                kept.append(candidate)
            if len(next_beam) == settings.beam_size:
                break
        if not next_beam:
            break
        beam = next_beam

    order = sorted(range(len(kept)), key=lambda i: (-kept[i].score, i))
    top = [kept[i] for i in order[: settings.top_k]]
    per_length: list[Candidate | None] = [None] * max_length
    for i in order:
        if per_length[kept[i].length - 1] is None:
            per_length[kept[i].length - 1] = kept[i]
    return UnitResult(n_active, "ok", top, atomic, best_by_length, per_length)


def iou_of(candidate: Candidate, n_active: int) -> float:
    """IoU of a scored candidate, whatever metric it was searched with."""
    return float(iou(candidate.intersection, candidate.size, n_active))


def search_units(
    table: PrimitiveTable,
    counts: sp.csr_array,
    units: Sequence[int],
    settings: BeamSettings,
) -> list[UnitResult]:
    """Search several units (rows of a UnitMasks count matrix) in one process."""
    results = []
    for u in units:
        start, stop = counts.indptr[u], counts.indptr[u + 1]
        results.append(search_unit(table, counts.indices[start:stop], counts.data[start:stop], settings))
    return results
