"""A plain implementation of the search of ``docs/search.md``, for checking the fast one.

Every candidate's mask is built as a boolean array over all N positions and counted with
``np.count_nonzero``; duplicates are found by comparing whole masks. Nothing is shared with
``logiclens.core.search`` or ``logiclens.core.concepts``: only the formula classes are borrowed, for
printing. Speed is irrelevant here; every step follows the text of the specification.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from logiclens.core.formula import And, Concept, Formula, Neighbors, Not, Or

__all__ = ["PlainCandidate", "PlainResult", "plain_search"]


@dataclass
class PlainCandidate:
    formula: str  # str() of the logiclens Formula, e.g. "(a OR b) AND NOT c"
    score: float
    value: float  # metric value before the complexity penalty
    size: int  # |F|
    intersection: int  # |M AND F|


@dataclass
class PlainResult:
    status: str  # "ok" | "empty" | "no_match"
    top: list[PlainCandidate]  # up to top_k, best first
    atomic: PlainCandidate | None  # best primitive
    best_by_length: list[float]  # length max_length, nan where none


def _divide(numerator: int, denominator: int) -> float:
    """One float64 division of exact integers; 0 when the denominator is 0."""
    if denominator <= 0:
        return 0.0
    return float(np.float64(numerator) / np.float64(denominator))


def metric_value(metric: str, intersection: int, size: int, n_active: int) -> float:
    if metric == "iou":
        return _divide(intersection, size + n_active - intersection)
    if metric == "precision":
        return _divide(intersection, size)
    if metric == "recall":
        return _divide(intersection, n_active)
    if metric == "f1":
        return _divide(2 * intersection, size + n_active)
    raise ValueError(f"unknown metric {metric!r}")


@dataclass
class _Scored:
    formula: Formula
    mask: np.ndarray  # bool (N,)
    length: int
    size: int
    intersection: int
    value: float
    score: float

    def public(self) -> PlainCandidate:
        return PlainCandidate(str(self.formula), self.score, self.value, self.size, self.intersection)


def _ranked(items: Sequence[_Scored]) -> list[_Scored]:
    """Items with score > 0, by descending score, ties by ascending position in ``items``."""
    order = sorted(range(len(items)), key=lambda i: (-items[i].score, i))
    return [items[i] for i in order if items[i].score > 0]


def _primitives(
    masks: np.ndarray,
    names: Sequence[str],
    min_support: int,
    neighbors: Mapping[str, Sequence[str]] | None,
    use_neighbors: bool,
) -> list[tuple[Formula, np.ndarray]]:
    out: list[tuple[Formula, np.ndarray]] = []
    for name, mask in zip(names, masks):
        if np.count_nonzero(mask) >= min_support:
            out.append((Concept(name), mask))
    if neighbors is not None and use_neighbors:
        index = {name: i for i, name in enumerate(names)}
        for i, name in enumerate(names):
            others = {index[o] for o in neighbors.get(name, ()) if o in index and index[o] != i}
            if not others:
                continue
            mask = masks[i].copy()
            for j in others:
                mask |= masks[j]
            if not np.array_equal(mask, masks[i]) and np.count_nonzero(mask) >= min_support:
                out.append((Neighbors(name), mask))
    return out


def _compose(formula: Formula, mask: np.ndarray, primitive: Formula, pmask: np.ndarray, operator: str):
    if operator == "or":
        return Or(formula, primitive), mask | pmask
    if operator == "and":
        return And(formula, primitive), mask & pmask
    if operator == "and_not":
        return And(formula, Not(primitive)), mask & ~pmask
    if operator == "or_not":
        return Or(formula, Not(primitive)), mask | ~pmask
    raise ValueError(f"unknown operator {operator!r}")


def plain_search(
    concept_masks,
    names,
    unit_mask,
    *,
    max_length=3,
    beam_size=10,
    operators=("or", "and", "and_not"),
    beam_mode="reference",
    metric="iou",
    complexity_penalty=0.0,
    min_support=1,
    max_expansion_concepts=None,
    top_k=1,
    neighbors=None,
    use_neighbors=True,
) -> PlainResult:
    """Search the best formula for one unit, as ``docs/search.md`` specifies.

    concept_masks: bool (K, N); names: list of K str; unit_mask: bool (N,);
    neighbors: dict name -> list of neighbour names (or None).
    """
    masks = np.asarray(concept_masks, dtype=bool).reshape(len(names), -1)
    unit = np.asarray(unit_mask, dtype=bool)
    n_active = int(np.count_nonzero(unit))
    curve = [math.nan] * max_length
    if n_active == 0:
        return PlainResult("empty", [], None, curve)

    def scored(formula: Formula, mask: np.ndarray) -> _Scored:
        size = int(np.count_nonzero(mask))
        intersection = int(np.count_nonzero(mask & unit))
        value = metric_value(metric, intersection, size, n_active)
        length = formula.length
        score = value * (1.0 - complexity_penalty) ** (length - 1)
        return _Scored(formula, mask, length, size, intersection, value, score)

    def note(candidate: _Scored) -> None:
        """Record a ranked formula in the length curve."""
        if candidate.score > 0:
            previous = curve[candidate.length - 1]
            if math.isnan(previous) or candidate.value > previous:
                curve[candidate.length - 1] = candidate.value

    # Seeding
    primitives = [scored(f, m) for f, m in _primitives(masks, names, min_support, neighbors, use_neighbors)]
    ranked = _ranked(primitives)
    if not ranked:
        return PlainResult("no_match", [], None, curve)
    atomic = ranked[0]
    for p in primitives:
        note(p)

    seen: list[np.ndarray] = []  # masks of every formula that entered a beam
    kept: list[_Scored] = []  # every formula that entered a beam, in order

    def is_new(mask: np.ndarray) -> bool:
        return not any(np.array_equal(mask, other) for other in seen)

    def enter(candidate: _Scored) -> None:
        seen.append(candidate.mask)
        kept.append(candidate)

    beam: list[_Scored] = []
    for p in ranked:
        if len(beam) == beam_size:
            break
        if is_new(p.mask):
            enter(p)
            beam.append(p)

    # Extension primitives
    if max_expansion_concepts is None:
        extension = primitives
    else:
        chosen = ranked[:max_expansion_concepts]
        extension = [p for p in primitives if any(p is c for c in chosen)]

    # Expansion
    for _ in range(max_length - 1):
        old = list(beam) if beam_mode == "reference" else []
        candidates = list(old)
        for parent in beam:
            for primitive in extension:
                for operator in operators:
                    formula, mask = _compose(parent.formula, parent.mask, primitive.formula, primitive.mask, operator)
                    if np.array_equal(mask, parent.mask):
                        continue  # a duplicate of its own parent: never new, not in the curve
                    child = scored(formula, mask)
                    note(child)
                    candidates.append(child)
        next_beam: list[_Scored] = []
        for candidate in _ranked(candidates):
            if len(next_beam) == beam_size:
                break
            if any(candidate is o for o in old):
                next_beam.append(candidate)
            elif is_new(candidate.mask):
                enter(candidate)
                next_beam.append(candidate)
        if not next_beam:
            break
        beam = next_beam

    top = [c.public() for c in _ranked(kept)[:top_k]]
    return PlainResult("ok", top, atomic.public(), curve)
