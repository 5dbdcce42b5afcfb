"""Held-out scoring, permutation null and automatic length for ``CompositionalExplainer.fit``.

Used when ``fit`` receives ``examples`` (the example each position belongs to): the search
runs on a part of the examples, every answer is scored on the rest, and a permutation null
(each unit's per-example masks reassigned to other examples) gives p-values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from logiclens.concepts import ConceptSet
from logiclens.masks import UnitMasks
from logiclens.search.beam import BeamSettings, PrimitiveTable, UnitResult
from logiclens.validation import benjamini_hochberg, choose_length, empirical_p_value, gumbel_p_value, split_examples

if TYPE_CHECKING:
    from logiclens.explainer import CompositionalExplainer

__all__ = ["add_heldout_columns", "add_null_columns", "fit_validated"]

VALIDATION_COLUMNS = [
    "heldout_iou", "heldout_n_active", "auto_length", "auto_formula", "auto_heldout_iou",
    "null_mean", "p_value", "p_empirical", "q_value", "significant",
]  # fmt: skip


def _unit_matrix(units: Any, n_positions: int) -> sp.csr_array:
    if isinstance(units, UnitMasks):
        raise ValueError("held-out scoring and the null need per-position unit masks, not UnitMasks counts")
    matrix = sp.csr_array(units) if sp.issparse(units) else sp.csr_array(np.asarray(units))
    if matrix.ndim != 2 or matrix.shape[1] != n_positions:
        raise ValueError(f"unit masks must have shape (U, {n_positions}), got {matrix.shape}")
    if matrix.dtype.kind == "f" and np.isnan(matrix.data).any():
        raise ValueError("unit masks contain NaN; threshold activations before building masks")
    return matrix.astype(bool)


def _example_ids(examples: NDArray, n_positions: int) -> NDArray[np.intp]:
    if examples.shape != (n_positions,) or examples.dtype.kind not in "iu":
        raise ValueError(
            f"examples must be an integer array of shape ({n_positions},), got {examples.dtype} {examples.shape}"
        )
    if len(examples) and examples.min() < 0:
        raise ValueError("example ids must be non-negative")
    return examples.astype(np.intp)


def add_heldout_columns(explainer: CompositionalExplainer, heldout: pd.DataFrame) -> None:
    """Add held-out IoU and the automatically chosen length to ``explanations_``."""
    frame = explainer.explanations_
    frame["heldout_iou"] = heldout["iou"].to_numpy()
    frame["heldout_n_active"] = heldout["n_active"].to_numpy()
    by_length = heldout[[f"iou_length_{n}" for n in range(1, explainer.max_length + 1)]].to_numpy(float)
    chosen = [choose_length(row) for row in by_length]
    frame["auto_length"] = pd.array([c or pd.NA for c in chosen], dtype="Int64")
    frame["auto_formula"] = [
        str(result.per_length[c - 1].formula) if c else None  # type: ignore[union-attr]
        for result, c in zip(explainer.results_, chosen)
    ]
    frame["auto_heldout_iou"] = [row[c - 1] if c else np.nan for row, c in zip(by_length, chosen)]


def add_null_columns(explainer: CompositionalExplainer, null_values: NDArray[np.float64], alpha: float) -> None:
    """Add permutation p-values, BH q-values and the ``significant`` flag to ``explanations_``.

    ``null_values[u, r]`` is the best metric value the search found for unit u under
    permutation r (NaN when it found nothing, counted as 0).
    """
    frame = explainer.explanations_
    observed = [r.best.value if r.best is not None else np.nan for r in explainer.results_]
    nulls = np.nan_to_num(null_values, nan=0.0)
    p_gumbel = np.array([gumbel_p_value(o, n) if not np.isnan(o) else np.nan for o, n in zip(observed, nulls)])
    p_empirical = np.array([empirical_p_value(o, n) if not np.isnan(o) else np.nan for o, n in zip(observed, nulls)])
    significant, q_values = benjamini_hochberg(p_gumbel, alpha)
    frame["null_mean"] = nulls.mean(axis=1)
    frame["p_value"] = p_gumbel
    frame["p_empirical"] = p_empirical
    frame["q_value"] = q_values
    frame["significant"] = significant
    explainer.null_values_ = null_values


def _null_values(
    unit_matrix: sp.csr_array,
    concepts: ConceptSet,
    blocks: NDArray[np.intp],
    settings: BeamSettings,
    n_permutations: int,
    random_state: int,
    n_jobs: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Best values (U, R) and best values per length (U, R, L) under example permutations."""
    from logiclens.explainer import _run_units

    rng = np.random.default_rng([random_state, 1])
    assert concepts.position_signatures is not None
    base = concepts.position_signatures
    table = PrimitiveTable(concepts, settings.min_support, settings.use_neighbors)
    n_units = unit_matrix.shape[0]
    best = np.full((n_units, n_permutations), np.nan)
    by_length = np.full((n_units, n_permutations, settings.max_length), np.nan)
    for r in range(n_permutations):
        shuffled = base.copy()
        shuffled[blocks.ravel()] = base[blocks[rng.permutation(len(blocks))].ravel()]
        view = ConceptSet(
            concepts.names, concepts.signature_concepts, concepts.signature_weights, concepts.categories,
            shuffled, concepts.neighbors,
        )  # fmt: skip
        results: list[UnitResult] = _run_units(table, UnitMasks.from_sparse(unit_matrix, view), settings, n_jobs, 0)
        for u, result in enumerate(results):
            if result.best is not None:
                best[u, r] = result.best.value
            if result.best_by_length is not None:
                by_length[u, r] = result.best_by_length
    return best, by_length


def _example_blocks(examples: NDArray[np.intp], keep: NDArray[np.intp]) -> NDArray[np.intp]:
    """Positions (numbered within ``keep``) of each kept example, one row per example."""
    local_examples = examples[keep]
    order = np.argsort(local_examples, kind="stable")
    _, sizes = np.unique(local_examples, return_counts=True)
    if len(sizes) and (sizes != sizes[0]).any():
        raise ValueError("the permutation null needs examples of equal size (images of one size, or one position each)")
    return order.reshape(len(sizes), -1)


def fit_validated(
    explainer: CompositionalExplainer,
    units: Any,
    concepts: ConceptSet,
    unit_names: Sequence[str] | None,
    examples: NDArray,
    groups: Sequence[object] | None,
) -> None:
    """Fit on the search part of the examples, score on the held-out part, run the null."""
    if concepts.position_signatures is None:
        raise ValueError("held-out scoring needs a concept set with position_signatures")
    settings = explainer._settings()
    matrix = _unit_matrix(units, concepts.n_positions)
    example_of = _example_ids(examples, concepts.n_positions)
    n_examples = int(example_of.max()) + 1 if len(example_of) else 0
    if explainer.holdout:
        search_examples, held_examples = split_examples(n_examples, explainer.holdout, explainer.random_state, groups)
    else:
        search_examples, held_examples = np.arange(n_examples), np.empty(0, np.intp)
    in_search = np.isin(example_of, search_examples)
    search_positions, held_positions = np.flatnonzero(in_search), np.flatnonzero(~in_search)
    search_concepts = concepts.subset(search_positions)
    search_matrix = matrix[:, search_positions]
    explainer._fit_masks(UnitMasks.from_sparse(search_matrix, search_concepts, unit_names), search_concepts, settings)
    explainer.split_ = (search_examples, held_examples)
    for column in VALIDATION_COLUMNS:
        explainer.explanations_[column] = np.nan
    if len(held_positions):
        held_concepts = concepts.subset(held_positions)
        held = explainer.evaluate(
            UnitMasks.from_sparse(matrix[:, held_positions], held_concepts, unit_names), held_concepts
        )
        add_heldout_columns(explainer, held)
    if explainer.n_null:
        blocks = _example_blocks(example_of, search_positions)
        best, by_length = _null_values(
            search_matrix, search_concepts, blocks, settings, explainer.n_null, explainer.random_state, explainer.n_jobs
        )
        add_null_columns(explainer, best, explainer.alpha)
        explainer.null_by_length_ = by_length
