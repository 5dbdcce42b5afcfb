"""Held-out scoring, the permutation null and automatic length: one mechanism for every pipeline.

An explainer validated this way sees its units counted several ways (:class:`Variants`): on
the *search* part of the examples, where formulas are searched; on the *held-out* part,
where every answer is scored again; and under permutations of the *null*, in which each
unit's per-example masks are counted against other search examples' annotations. The
estimator builds the variants itself from per-position masks
(:func:`variants_from_positions`); the vision pipeline counts them in one pass over its
activation maps and hands them to
:meth:`CompositionalExplainer.fit_variants <logiclens.CompositionalExplainer.fit_variants>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.core.masks import UnitMasks
from logiclens.core.search.beam import UnitResult
from logiclens.explain.statistics import (
    benjamini_hochberg,
    choose_length,
    empirical_p_value,
    gumbel_p_value,
    null_permutations,
    split_examples,
)

__all__ = [
    "VALIDATION_COLUMNS",
    "Variants",
    "add_heldout_columns",
    "add_null_columns",
    "check_validation_params",
    "variants_from_positions",
]

VALIDATION_COLUMNS = [
    "heldout_iou", "heldout_n_active", "auto_length", "auto_formula", "auto_heldout_iou",
    "null_mean", "p_value", "p_empirical", "q_value", "significant",
]  # fmt: skip


@dataclass(frozen=True)
class Variants:
    """One set of units counted on the search part, the held-out part and under the null.

    Parameters
    ----------
    search : UnitMasks
        The units' counts on the search examples, over the signatures of ``search_concepts``.
    search_concepts : ConceptSet
    heldout : UnitMasks, optional
        The same units' counts on the held-out examples, over ``heldout_concepts``.
    heldout_concepts : ConceptSet, optional
    null : sequence of UnitMasks
        One per permutation: the units' search-part masks counted against permuted
        annotations, over the signatures of ``search_concepts``.
    split : (search examples, held-out examples), optional
        Recorded as the explainer's ``split_``.
    """

    search: UnitMasks
    search_concepts: ConceptSet
    heldout: UnitMasks | None = None
    heldout_concepts: ConceptSet | None = None
    null: Sequence[UnitMasks] = ()
    split: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None

    def __post_init__(self) -> None:
        if (self.heldout is None) != (self.heldout_concepts is None):
            raise ValueError("held-out masks and held-out concepts come together")
        self.search.check_compatible(self.search_concepts)
        if self.heldout is not None and self.heldout_concepts is not None:
            self.heldout.check_compatible(self.heldout_concepts)
            if len(self.heldout) != len(self.search):
                raise ValueError(f"{len(self.heldout)} held-out units for {len(self.search)} searched")
        for masks in self.null:
            if masks.counts.shape != self.search.counts.shape:
                raise ValueError(f"null masks of shape {masks.counts.shape}; expected {self.search.counts.shape}")

    @property
    def validated(self) -> bool:
        """Whether there is anything to validate with (a held-out part or a null)."""
        return self.heldout is not None or bool(self.null)


def check_validation_params(holdout: float, n_null: int, alpha: float) -> None:
    """Raise ValueError, naming the parameter, unless holdout is in [0, 1), n_null >= 0 and alpha in (0, 1)."""
    if not (isinstance(holdout, (int, float, np.floating)) and 0.0 <= holdout < 1.0):
        raise ValueError(f"holdout must lie in [0, 1), got {holdout!r}")
    if not (isinstance(n_null, (int, np.integer)) and not isinstance(n_null, bool) and n_null >= 0):
        raise ValueError(f"n_null must be a whole number >= 0, got {n_null!r}")
    if not (isinstance(alpha, (int, float, np.floating)) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")


def add_heldout_columns(
    frame: pd.DataFrame, results: Sequence[UnitResult], heldout: pd.DataFrame, max_length: int
) -> None:
    """Add held-out IoU and the automatically chosen length (see ``docs/validation.md``) to ``frame``.

    ``heldout`` is :meth:`CompositionalExplainer.evaluate
    <logiclens.CompositionalExplainer.evaluate>` on the held-out part.
    """
    frame["heldout_iou"] = heldout["iou"].to_numpy()
    frame["heldout_n_active"] = heldout["n_active"].to_numpy()
    by_length = heldout[[f"iou_length_{n}" for n in range(1, max_length + 1)]].to_numpy(float)
    chosen = [choose_length(row) for row in by_length]
    frame["auto_length"] = pd.array([c or pd.NA for c in chosen], dtype="Int64")
    frame["auto_formula"] = [
        str(result.per_length[c - 1].formula) if c else None  # type: ignore[union-attr]
        for result, c in zip(results, chosen)
    ]
    frame["auto_heldout_iou"] = [row[c - 1] if c else np.nan for row, c in zip(by_length, chosen)]


def add_null_columns(
    frame: pd.DataFrame, results: Sequence[UnitResult], null_values: NDArray[np.float64], alpha: float
) -> None:
    """Add permutation p-values, BH q-values and the ``significant`` flag to ``frame``.

    ``null_values[u, r]`` is the best metric value the search found for unit u under
    permutation r (NaN when it found nothing, counted as 0).
    """
    observed = [r.best.value if r.best is not None else np.nan for r in results]
    nulls = np.nan_to_num(null_values, nan=0.0)
    p_gumbel = np.array([gumbel_p_value(o, n) if not np.isnan(o) else np.nan for o, n in zip(observed, nulls)])
    p_empirical = np.array([empirical_p_value(o, n) if not np.isnan(o) else np.nan for o, n in zip(observed, nulls)])
    significant, q_values = benjamini_hochberg(p_gumbel, alpha)
    frame["null_mean"] = nulls.mean(axis=1)
    frame["p_value"] = p_gumbel
    frame["p_empirical"] = p_empirical
    frame["q_value"] = q_values
    frame["significant"] = significant


def _unit_matrix(units: Any, n_positions: int) -> sp.csr_array:
    if isinstance(units, UnitMasks):
        raise ValueError("held-out scoring and the null need per-position unit masks, not UnitMasks counts")
    matrix = sp.csr_array(units) if sp.issparse(units) else sp.csr_array(np.asarray(units))
    if matrix.ndim != 2 or matrix.shape[1] != n_positions:
        raise ValueError(f"unit masks must have shape (U, {n_positions}), got {matrix.shape}")
    if matrix.dtype.kind == "f" and np.isnan(matrix.data).any():
        raise ValueError("unit masks contain NaN; threshold activations before building masks")
    return matrix.astype(bool)


def _example_ids(examples: Any, n_positions: int) -> NDArray[np.intp]:
    examples = np.asarray(examples)
    if examples.shape != (n_positions,) or examples.dtype.kind not in "iu":
        raise ValueError(
            f"examples must be an integer array of shape ({n_positions},), got {examples.dtype} {examples.shape}"
        )
    if len(examples) and examples.min() < 0:
        raise ValueError("example ids must be non-negative")
    return examples.astype(np.intp)


def _example_blocks(examples: NDArray[np.intp], keep: NDArray[np.intp]) -> NDArray[np.intp]:
    """Positions (numbered within ``keep``) of each kept example, one row per example."""
    local_examples = examples[keep]
    order = np.argsort(local_examples, kind="stable")
    _, sizes = np.unique(local_examples, return_counts=True)
    if len(sizes) and (sizes != sizes[0]).any():
        raise ValueError("the permutation null needs examples of equal size (images of one size, or one position each)")
    return order.reshape(len(sizes), -1)


def variants_from_positions(
    units: Any,
    concepts: ConceptSet,
    examples: Any,
    *,
    holdout: float,
    n_null: int,
    random_state: int,
    unit_names: Sequence[str] | None = None,
    groups: Sequence[object] | None = None,
) -> Variants:
    """The variants of per-position unit masks: split by example, and permuted for the null.

    Parameters
    ----------
    units : bool array (U, N) or scipy sparse (U, N)
    concepts : ConceptSet
        With ``position_signatures``.
    examples : int array (N,)
        The example each position belongs to.
    holdout : float
        Fraction of examples held out (0: none).
    n_null : int
        Permutations of the null (0: none).
    random_state : int
    unit_names : sequence of str, optional
    groups : sequence, optional
        A group key per example; a group's examples stay on one side of the split.
    """
    if concepts.position_signatures is None:
        raise ValueError("held-out scoring needs a concept set with position_signatures")
    matrix = _unit_matrix(units, concepts.n_positions)
    example_of = _example_ids(examples, concepts.n_positions)
    n_examples = int(example_of.max()) + 1 if len(example_of) else 0
    if holdout:
        search_examples, held_examples = split_examples(n_examples, holdout, random_state, groups)
    else:
        search_examples, held_examples = np.arange(n_examples), np.empty(0, np.intp)
    in_search = np.isin(example_of, search_examples)
    search_positions, held_positions = np.flatnonzero(in_search), np.flatnonzero(~in_search)
    search_concepts = concepts.subset(search_positions)
    search_matrix = matrix[:, search_positions]
    heldout = heldout_concepts = None
    if len(held_positions):
        heldout_concepts = concepts.subset(held_positions)
        heldout = UnitMasks.from_sparse(matrix[:, held_positions], heldout_concepts, unit_names)
    null = []
    if n_null:
        blocks = _example_blocks(example_of, search_positions)
        base = search_concepts.position_signatures
        assert base is not None
        for order in null_permutations(len(blocks), n_null, random_state):
            shuffled = base.copy()
            shuffled[blocks.ravel()] = base[blocks[order].ravel()]
            view = ConceptSet(
                search_concepts.names, search_concepts.signature_concepts, search_concepts.signature_weights,
                search_concepts.categories, shuffled, search_concepts.neighbors,
            )  # fmt: skip
            null.append(UnitMasks.from_sparse(search_matrix, view, unit_names))
    return Variants(
        search=UnitMasks.from_sparse(search_matrix, search_concepts, unit_names),
        search_concepts=search_concepts,
        heldout=heldout,
        heldout_concepts=heldout_concepts,
        null=null,
        split=(search_examples, held_examples),
    )
