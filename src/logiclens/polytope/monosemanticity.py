"""Monosemanticity, measured: every unit family through one compositional search.

The polytope-lens paper judged monosemanticity by inspecting examples. Here a unit's
**monosemanticity score** is the IoU of the best formula (length 1 to ``max_length``) over the
annotated concepts, found by :class:`logiclens.CompositionalExplainer` -- the same search for
neurons, directions, activation clusters and polytope regions (a design choice of this
package, not the paper's metric).

IoU depends on the unit's size: a random subset of half the inputs scores far higher than a
random subset of 1 %, and purity has the opposite bias. Scores are therefore compared at
matched sizes, in two ways:

* **size bins** (geometric, factor ~3): per family and bin, the median score;
* **excess over chance**: the score minus the mean score of random subsets of the same size,
  searched the same way (``null_``, interpolated in log size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.explain.base import BaseEstimator, clone
from logiclens.explain.compositional import CompositionalExplainer
from logiclens.polytope.baselines import random_subsets
from logiclens.polytope.units import UnitFamily

__all__ = ["MonosemanticityScorer", "default_size_bins", "label_purity"]


def default_size_bins(n_positions: int) -> NDArray[np.int64]:
    """Bin edges 1, 3, 10, 30, 100, ... up to and including ``n_positions + 1``."""
    edges = [1]
    k = 0
    while edges[-1] <= n_positions:
        k += 1
        edges.append(round(10 ** (k / 2)))
    edges[-1] = max(edges[-1], n_positions + 1)
    return np.unique(np.asarray(edges, np.int64))


def label_purity(masks: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """Fraction of each unit's members that carry its most common label (NaN for empty units)."""
    masks = np.asarray(masks, bool)
    labels = np.asarray(labels)
    _, coded = np.unique(labels, return_inverse=True)
    onehot = np.eye(coded.max() + 1, dtype=np.float64)[coded]
    counts = masks.astype(np.float64) @ onehot
    sizes = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sizes > 0, counts.max(axis=1) / sizes, np.nan)


class MonosemanticityScorer(BaseEstimator):
    """Score unit families by the IoU of their best formula, with size-matched comparisons.

    Parameters
    ----------
    explainer : CompositionalExplainer, optional
        The search (default ``CompositionalExplainer(beam_size=5, verbose=0)``); scores are
        reported for every length 1 .. its ``max_length``.
    size_bins : array of int, optional
        Increasing bin edges of unit size; :func:`default_size_bins` when omitted.
    null_sizes : int, default 12
        Sizes (log-spaced between the smallest and largest unit) at which random subsets are scored.
    null_repeats : int, default 4
        Random subsets per null size.
    min_size : int, default 1
        Units with fewer members are left out (and reported as such in ``summary_``).
    random_state : int, default 0

    Attributes
    ----------
    scores_ : pandas.DataFrame
        One row per unit: ``family, kind, unit, size, formula, iou, iou_1 .. iou_L`` (best IoU
        at length <= l), ``null_iou, excess, purity, size_bin``.
    null_ : pandas.DataFrame
        ``size, iou_1 .. iou_L``: mean best IoU of random subsets of each size.
    by_size_ : pandas.DataFrame
        Per family and size bin: ``units, median_iou, median_null, median_excess``.
    summary_ : pandas.DataFrame
        Per family: units, median size, coverage, noise fraction, median ``iou_1 .. iou_L``,
        median excess, median purity, fraction of units above chance.
    """

    def __init__(
        self,
        explainer: CompositionalExplainer | None = None,
        size_bins: ArrayLike | None = None,
        null_sizes: int = 12,
        null_repeats: int = 4,
        min_size: int = 1,
        random_state: int = 0,
    ) -> None:
        self.explainer = explainer
        self.size_bins = size_bins
        self.null_sizes = null_sizes
        self.null_repeats = null_repeats
        self.min_size = min_size
        self.random_state = random_state

    def _explainer(self) -> CompositionalExplainer:
        explainer = self.explainer if self.explainer is not None else CompositionalExplainer(beam_size=5, verbose=0)
        return clone(explainer)

    @property
    def _max_length(self) -> int:
        return self._explainer().beam_settings().max_length

    def _search(self, masks: NDArray[np.bool_], concepts: ConceptSet) -> pd.DataFrame:
        """Best formula and best IoU at each length <= l for every mask."""
        lengths = range(1, self._max_length + 1)
        if not len(masks):
            empty = pd.DataFrame(
                {name: pd.Series(dtype=np.float64) for name in ["iou", *(f"iou_{n}" for n in lengths)]}
            )
            empty.insert(0, "formula", pd.Series(dtype=object))
            return empty
        explainer = self._explainer().fit(masks, concepts)
        curve = explainer.best_by_length_.to_numpy(dtype=np.float64, na_value=0.0)
        best = np.maximum.accumulate(np.nan_to_num(curve), axis=1)
        frame = pd.DataFrame(best, columns=[f"iou_{n}" for n in lengths], dtype=np.float64)
        frame.insert(0, "iou", pd.to_numeric(explainer.explanations_["iou"], errors="coerce").fillna(0.0).to_numpy())
        frame.insert(0, "formula", explainer.explanations_["formula"].to_numpy())
        return frame

    def fit(
        self, families: Sequence[UnitFamily], concepts: ConceptSet, labels: ArrayLike | None = None
    ) -> MonosemanticityScorer:
        """Search every unit of every family; returns self.

        Parameters
        ----------
        families : sequence of UnitFamily
            Masks over the concept set's N positions.
        concepts : ConceptSet
        labels : array (N,), optional
            A label per position (e.g. the class) for ``purity``.
        """
        n = concepts.n_positions
        rows = []
        all_sizes = []
        for family in families:
            if family.masks.shape[1] != n:
                raise ValueError(f"family {family.name!r} has masks over {family.masks.shape[1]} positions, not {n}")
            keep = family.sizes >= max(1, self.min_size)
            kept = family.subset(keep)
            found = self._search(kept.masks, concepts)
            frame = pd.DataFrame(
                {"family": family.name, "kind": family.kind, "unit": kept.unit_names, "size": kept.sizes}
            )
            frame = pd.concat([frame, found.reset_index(drop=True)], axis=1)
            frame["purity"] = label_purity(kept.masks, labels) if labels is not None and len(kept) else np.nan
            rows.append(frame)
            all_sizes.extend(kept.sizes.tolist())
        scores = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
        self.null_ = self._null(np.asarray(all_sizes), concepts)
        lengths = [f"iou_{k}" for k in range(1, self._max_length + 1)]
        if len(scores):
            log_sizes = np.log(self.null_["size"].to_numpy(dtype=np.float64))
            scores["null_iou"] = np.interp(
                np.log(scores["size"].to_numpy(dtype=np.float64)), log_sizes, self.null_[lengths[-1]].to_numpy()
            )
            scores["excess"] = scores[lengths[-1]] - scores["null_iou"]
            bins = np.asarray(self.size_bins if self.size_bins is not None else default_size_bins(n))
            index = np.clip(np.searchsorted(bins, scores["size"].to_numpy(), side="right") - 1, 0, len(bins) - 2)
            scores["size_bin"] = [f"{bins[i]}-{bins[i + 1] - 1}" for i in index]
            scores["_bin"] = index
        self.scores_ = scores
        self.by_size_ = self._by_size(scores)
        self.summary_ = self._summary(families, scores)
        return self

    def _null(self, sizes: NDArray[np.int64], concepts: ConceptSet) -> pd.DataFrame:
        n = concepts.n_positions
        lengths = [f"iou_{k}" for k in range(1, self._max_length + 1)]
        if not len(sizes):
            return pd.DataFrame(columns=["size", *lengths])
        low, high = max(1, int(sizes.min())), min(n, int(sizes.max()))
        grid = np.unique(np.round(np.geomspace(low, max(low, high), self.null_sizes)).astype(np.int64))
        repeated = np.repeat(grid, self.null_repeats)
        control = random_subsets(n, repeated, self.random_state)
        found = self._search(control.masks, concepts)
        found["size"] = repeated
        return found.groupby("size", as_index=False)[lengths].mean()

    def _by_size(self, scores: pd.DataFrame) -> pd.DataFrame:
        if not len(scores):
            return pd.DataFrame()
        grouped = scores.groupby(["family", "_bin", "size_bin"], sort=True)
        frame = grouped.agg(
            units=("unit", "size"),
            median_iou=(f"iou_{self._max_length}", "median"),
            median_null=("null_iou", "median"),
            median_excess=("excess", "median"),
        ).reset_index()
        return frame.drop(columns="_bin")

    def _summary(self, families: Sequence[UnitFamily], scores: pd.DataFrame) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        for family in families:
            row = family.summary()
            part = scores[scores["family"] == family.name] if len(scores) else scores
            row["scored_units"] = len(part)
            for k in range(1, self._max_length + 1):
                row[f"median_iou_{k}"] = float(part[f"iou_{k}"].median()) if len(part) else np.nan
            row["median_excess"] = float(part["excess"].median()) if len(part) else np.nan
            row["above_chance"] = float((part["excess"] > 0).mean()) if len(part) else np.nan
            row["median_purity"] = float(part["purity"].median()) if len(part) else np.nan
            rows.append(row)
        return pd.DataFrame(rows)
