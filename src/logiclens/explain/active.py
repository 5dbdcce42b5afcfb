"""Unit masks from activations, and explanations that skip rarely active units.

Mu & Andreas (2020) binarise the post-ReLU units of the NLI model at 0 and analyse only the
units active on at least 500 of the 10,000 probing pairs (5 %). :func:`threshold_units`
binarises (at a fixed value or at a per-unit top quantile); :class:`ActiveUnitsExplainer`
wraps a :class:`~logiclens.CompositionalExplainer`, searches only the units active often
enough and reports the others with status ``skipped`` and no formula (the reference code
gives them its first feature with IoU 0, which reads as a real explanation).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.core.formula import Formula
from logiclens.explain.base import BaseEstimator, clone
from logiclens.explain.compositional import RESULT_COLUMNS, CompositionalExplainer

__all__ = ["ActiveUnitsExplainer", "threshold_units", "unit_thresholds"]


def unit_thresholds(
    activations: ArrayLike, threshold: float | ArrayLike = 0.0, top_fraction: float | None = None
) -> NDArray[np.float64]:
    """Each unit's threshold T: it is active where its activation is greater than T.

    Parameters
    ----------
    activations : array, shape (N, U)
        One row per position (pair, sentence or token), one column per unit.
    threshold : float or array (U,), default 0.0
        The same T for every unit (the paper's rule for post-ReLU units is 0), or one per unit.
    top_fraction : float in (0, 1), optional
        Instead of ``threshold``, a per-unit T with P(activation > T) = q: the ``1 - q``
        quantile of the unit's activations (``np.nanquantile``, linear), as in NetDissect.

    Returns
    -------
    ndarray of float64, shape (U,)
    """
    acts = np.asarray(activations)
    if acts.ndim != 2:
        raise ValueError(f"activations must be a 2-D (positions, units) array, got shape {acts.shape}")
    if top_fraction is None:
        cuts = np.asarray(threshold, np.float64)
        if cuts.shape not in ((), (acts.shape[1],)):
            raise ValueError(f"threshold must be a number or one per unit ({acts.shape[1]}), got shape {cuts.shape}")
        return np.broadcast_to(cuts, (acts.shape[1],)).copy()
    if not 0.0 < top_fraction < 1.0:
        raise ValueError(f"top_fraction must lie in (0, 1), got {top_fraction}")
    if not len(acts):
        return np.zeros(acts.shape[1])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN units: threshold NaN, never active
        return np.nanquantile(acts.astype(np.float64), 1.0 - top_fraction, axis=0)


def threshold_units(
    activations: ArrayLike, threshold: float | ArrayLike = 0.0, top_fraction: float | None = None
) -> NDArray[np.bool_]:
    """Binary unit masks from an activation matrix.

    Parameters
    ----------
    activations : array, shape (N, U)
        One row per position (pair, sentence or token), one column per unit. NaN is never
        active.
    threshold, top_fraction
        See :func:`unit_thresholds`.

    Returns
    -------
    ndarray of bool, shape (U, N)
        Masks in the layout :class:`~logiclens.CompositionalExplainer` takes.
    """
    acts = np.asarray(activations)
    cuts = unit_thresholds(acts, threshold, top_fraction)
    with np.errstate(invalid="ignore"):
        return (acts > cuts).T  # compared in float64 without a float64 copy of the activations


class ActiveUnitsExplainer(BaseEstimator):
    """Explain only the units that are active often enough; mark the others ``skipped``.

    Parameters
    ----------
    explainer : CompositionalExplainer, optional
        The search to run (default: ``CompositionalExplainer()``).
    min_active : int or float, default 500
        An int: the least number of active positions; a float in (0, 1): that fraction of
        the positions (the paper's 500 of 10,000 is ``0.05``).

    Attributes
    ----------
    explanations_ : pandas.DataFrame
        The explainer's columns for every unit, in order; skipped units have status
        ``skipped``, their ``n_active`` and no formula.
    best_by_length_ : pandas.DataFrame
        Per unit and formula length (NaN rows for skipped units).
    formulas_by_length_ : pandas.DataFrame
        The formulas of those values, as text (None for skipped units).
    top_formulas_ : pandas.DataFrame
        The explainer's top formulas of the searched units.
    formulas_ : list of Formula or None
    skipped_ : list of str
        Names of the skipped units.
    min_active_ : int
        The resolved minimum count.
    explainer_ : CompositionalExplainer
        The fitted explainer (on the searched units only; None when every unit is skipped).
        Its ``split_`` holds the (search, held-out) examples when ``examples`` were given.
    """

    def __init__(self, explainer: CompositionalExplainer | None = None, min_active: int | float = 500) -> None:
        self.explainer = explainer
        self.min_active = min_active

    def resolve_min_active(self, n_positions: int) -> int:
        """The minimum number of active positions, for a problem of ``n_positions``."""
        value = self.min_active
        if isinstance(value, float) and not value.is_integer():
            if not 0.0 < value < 1.0:
                raise ValueError(f"a fractional min_active must lie in (0, 1), got {value}")
            return int(np.ceil(value * n_positions))
        if value < 0:
            raise ValueError(f"min_active must be >= 0, got {value}")
        return int(value)

    def fit(
        self,
        units: ArrayLike,
        concepts: ConceptSet,
        unit_names: Sequence[str] | None = None,
        examples: ArrayLike | None = None,
        groups: Sequence[object] | None = None,
    ) -> ActiveUnitsExplainer:
        """Search the units with at least ``min_active`` active positions.

        Parameters
        ----------
        units : bool array, shape (U, N)
            Unit masks over the concept set's positions (see :func:`threshold_units`).
        concepts : ConceptSet
        unit_names : sequence of str, optional
            Default ``"0"``, ``"1"``, ...
        examples, groups : optional
            Passed to :meth:`CompositionalExplainer.fit <logiclens.CompositionalExplainer.fit>`:
            the example (pair, sentence) of each position and a group key per example, for the
            held-out split and the null (the explainer's ``holdout`` and ``n_null``). The
            minimum activity is counted over all positions.
        """
        masks = np.asarray(units, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] != concepts.n_positions:
            raise ValueError(f"unit masks must have shape (U, {concepts.n_positions}), got {masks.shape}")
        names = [str(n) for n in unit_names] if unit_names is not None else [str(i) for i in range(len(masks))]
        if len(names) != len(masks):
            raise ValueError(f"{len(names)} names for {len(masks)} units")
        explainer = self.explainer if self.explainer is not None else CompositionalExplainer()
        self.min_active_ = self.resolve_min_active(concepts.n_positions)
        n_active = masks.sum(axis=1)
        keep = np.flatnonzero(n_active >= self.min_active_)
        self.skipped_ = [names[i] for i in np.flatnonzero(n_active < self.min_active_)]
        lengths = pd.RangeIndex(1, explainer.beam_settings().max_length + 1, name="length")
        by_length = pd.DataFrame(np.nan, index=pd.Index(names, name="unit"), columns=lengths)
        formulas_by_length = pd.DataFrame(None, index=by_length.index, columns=lengths, dtype=object)
        formulas: list[Formula | None] = [None] * len(names)
        columns = list(RESULT_COLUMNS)
        rows = [
            dict.fromkeys(columns) | {"unit": name, "n_active": int(count), "status": "skipped"}
            for name, count in zip(names, n_active)
        ]
        self.explainer_: CompositionalExplainer | None = None
        self.top_formulas_ = pd.DataFrame(columns=["unit", "rank", "formula", "score", "iou", "length"])
        if len(keep):
            fitted = clone(explainer)
            fitted.fit(masks[keep], concepts, [names[i] for i in keep], examples, groups)
            columns = list(fitted.explanations_.columns)
            for i, record in zip(keep, fitted.explanations_.to_dict("records")):
                rows[i] = record
            by_length.iloc[keep] = fitted.best_by_length_.to_numpy()
            formulas_by_length.iloc[keep] = fitted.formulas_by_length_.to_numpy()
            for i, formula in zip(keep, fitted.formulas_):
                formulas[i] = formula
            self.top_formulas_ = fitted.top_formulas_
            self.explainer_ = fitted
        frame = pd.DataFrame(rows, columns=columns)
        self.explanations_ = _restore_dtypes(frame)
        self.best_by_length_ = by_length
        self.formulas_by_length_ = formulas_by_length
        self.formulas_ = formulas
        return self


def _restore_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns with missing values as ``Int64``, scores as float (NaN when skipped)."""
    for column in ("length", "formula_size", "intersection", "n_negations", "reference_length"):
        if column in frame:
            frame[column] = pd.array([None if pd.isna(v) else int(v) for v in frame[column]], dtype="Int64")
    for column in ("iou", "score", "precision", "recall", "f1", "best_atomic_iou"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["n_active"] = frame["n_active"].astype(np.int64)
    return frame
