"""Held-out IoU at every maximum formula length (the held-out curve of Figure 7, bottom).

The search keeps, per unit and exact length l, its best formula (``formula_<l>`` of
``best_by_length_<layer>.csv``). At maximum length L the unit's answer is the best of the
formulas of lengths 1..L by *search* value (ties: the shorter one), as in the search curve;
its held-out IoU is that formula's IoU on the held-out part, never the best held-out value
(which would choose by the held-out data). Runs:

* vision: the units' held-out counts (variant 1 of ``units_<layer>.npz``) over the concept
  set restricted to the held-out images (:func:`logiclens.vision.dissect.search.variants_of`);
* text (pair and sentence runs, where a position is an example): the units' masks
  (activation > threshold) on the held-out examples and the concepts there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from logiclens.core.concepts import ConceptSet
from logiclens.core.masks import UnitMasks
from logiclens.core.search.metrics import METRICS

__all__ = ["chosen_lengths", "heldout_by_length"]


def chosen_lengths(best: pd.DataFrame) -> np.ndarray:
    """Per unit and maximum length L, the exact length (1-based) of the answer: argmax of values 1..L.

    Returns
    -------
    int array (units, L)
        0 where no formula of length at most L was scored.
    """
    values = best.to_numpy(float)
    out = np.zeros(values.shape, np.int64)
    for j in range(values.shape[1]):
        head = values[:, : j + 1]
        finite = np.isfinite(head).any(axis=1)
        pick = np.argmax(np.where(np.isfinite(head), head, -np.inf), axis=1)  # first maximum: the shorter
        out[:, j] = np.where(finite, pick + 1, 0)
    return out


def heldout_by_length(
    best: pd.DataFrame,
    formulas: pd.DataFrame,
    heldout: UnitMasks,
    concepts: ConceptSet,
) -> pd.DataFrame:
    """Held-out IoU of each unit's answer at every maximum formula length.

    Parameters
    ----------
    best : DataFrame (units, lengths 1..L)
        The search's best value per exact length.
    formulas : DataFrame (units, lengths 1..L)
        The formulas of those values, as text (None where none).
    heldout : UnitMasks
        The units' counts on the held-out part, over the signatures of ``concepts``.
    concepts : ConceptSet
        The concepts on the held-out part.

    Returns
    -------
    DataFrame
        One row per unit and maximum length: ``unit, max_length, length, formula,
        search_value, heldout_iou`` (NaN where the unit has no formula up to that length; 0
        where it is never active on the held-out part, as the run's ``heldout_iou``).
    """
    if best.shape != formulas.shape or len(heldout) != len(best):
        raise ValueError(f"values {best.shape}, formulas {formulas.shape} and {len(heldout)} held-out units differ")
    heldout.check_compatible(concepts)
    chosen = chosen_lengths(best)
    values, texts = best.to_numpy(float), formulas.to_numpy(object)
    counts = heldout.counts.tocsr()
    inside_of: dict[str, np.ndarray] = {}
    sizes = concepts.signature_weights
    rows = []
    for u in range(len(best)):
        row_counts = counts[[u]].toarray().ravel()
        n_active = int(row_counts.sum())
        for j in range(best.shape[1]):
            length = int(chosen[u, j])
            text = texts[u, length - 1] if length else None
            iou = np.nan
            if text is not None:
                if text not in inside_of:
                    inside_of[text] = concepts.signature_mask(str(text))
                inside = inside_of[text]
                iou = float(METRICS["iou"](int(row_counts[inside].sum()), int(sizes[inside].sum()), n_active))
            rows.append({"unit": str(best.index[u]), "max_length": j + 1, "length": length or np.nan,
                         "formula": text, "search_value": values[u, length - 1] if length else np.nan,
                         "heldout_iou": iou})  # fmt: skip
    return pd.DataFrame(rows)
