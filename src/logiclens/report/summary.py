"""Summary statistics of a layer: units explained, IoU per formula length, breakdown by category."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from logiclens.report.cards import plain
from logiclens.runs.summary import DETECTOR_IOU, summarize

__all__ = [
    "DETECTOR_IOU",
    "beam_gaps",
    "beam_misses",
    "by_category",
    "by_length",
    "category_of",
    "iou_by_length",
    "iou_per_category",
    "layer_summary",
    "searched_optimally",
]

NO_CATEGORY = "(none)"


def _mean(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def layer_summary(results: pd.DataFrame, detector_iou: float = DETECTOR_IOU) -> dict[str, Any]:
    """A layer's row of :func:`logiclens.runs.summarize`, as ``report.json`` stores it (missing values dropped).

    Parameters
    ----------
    results : pandas.DataFrame
        The layer's rows of ``results.csv``.
    detector_iou : float
        A unit is *explained* when its formula's IoU is above this.
    """
    if not len(results):
        return {"units": 0, "with_formula": 0, "explained": 0}
    row = summarize(results.assign(layer=""), detector_iou).iloc[0]
    return plain({key: value for key, value in row.items() if pd.notna(value)})


def by_length(results: pd.DataFrame, detector_iou: float = DETECTOR_IOU) -> list[dict[str, Any]]:
    """Units with a formula, grouped by the formula's length.

    Returns
    -------
    list of dict
        Per length, ascending: ``length``, ``units``, ``explained``, ``mean_iou``,
        ``mean_atomic_iou``.
    """
    rows = results[(results["formula"] != "") & results["length"].notna()]
    out = []
    for length, group in rows.groupby(rows["length"].astype(int), sort=True):
        out.append(
            {
                "length": int(length),
                "units": len(group),
                "explained": int((group["iou"] > detector_iou).sum()),
                "mean_iou": _mean(group["iou"]),
                "mean_atomic_iou": _mean(group["best_atomic_iou"]) if "best_atomic_iou" in group else None,
            }
        )
    return plain(out)


def category_of(results: pd.DataFrame) -> pd.Series:
    """Each unit's category (the ``category`` column: that of its best single concept)."""
    if "category" not in results:
        return pd.Series(NO_CATEGORY, index=results.index)
    return results["category"].where(results["category"] != "", NO_CATEGORY)


def by_category(results: pd.DataFrame, detector_iou: float = DETECTOR_IOU) -> list[dict[str, Any]]:
    """Units with a formula, grouped by category.

    Returns
    -------
    list of dict
        Per category, most units first: ``category``, ``units``, ``explained``, ``mean_iou``,
        ``mean_atomic_iou``.
    """
    rows = results[results["formula"] != ""]
    out = []
    for category, group in rows.groupby(category_of(rows), sort=True):
        out.append(
            {
                "category": str(category),
                "units": len(group),
                "explained": int((group["iou"] > detector_iou).sum()),
                "mean_iou": _mean(group["iou"]),
                "mean_atomic_iou": _mean(group["best_atomic_iou"]) if "best_atomic_iou" in group else None,
            }
        )
    out.sort(key=lambda row: (-row["units"], row["category"]))
    return plain(out)


def iou_per_category(results: pd.DataFrame) -> dict[str, list[float]]:
    """The IoU of the units with a formula, per category (as :func:`by_category` groups them)."""
    rows = results[(results["formula"] != "") & results["iou"].notna()]
    return {
        str(category): group.to_numpy(np.float64).tolist()
        for category, group in rows["iou"].groupby(category_of(rows), sort=True)
    }


def iou_by_length(results: pd.DataFrame, best_by_length: pd.DataFrame | None, metric: str = "iou") -> dict[str, Any]:
    """The distribution of IoU per formula length (the paper's Figure 3).

    Parameters
    ----------
    results : pandas.DataFrame
    best_by_length : pandas.DataFrame or None
        Per unit and exact length, the best value found. With it, the values at length N
        are each unit's best over formulas of length at most N (N = 1 is NetDissect).
        Without it, each unit's formula IoU is grouped by that formula's length.
    metric : str
        What ``best_by_length`` holds (the search's metric).

    Returns
    -------
    dict
        ``source`` (``"best_by_length"`` or ``"formula_length"``), ``metric``, ``lengths``,
        ``values`` (one list per length) and ``means``.
    """
    if best_by_length is not None:
        table = best_by_length.to_numpy(np.float64)
        best_up_to = np.fmax.accumulate(table, axis=1)
        lengths = [int(c) for c in best_by_length.columns]
        values = [column[np.isfinite(column)].tolist() for column in best_up_to.T]
        source = "best_by_length"
    else:
        rows = results[(results["formula"] != "") & results["length"].notna() & results["iou"].notna()]
        groups = rows.groupby(rows["length"].astype(int), sort=True)["iou"]
        lengths = [int(length) for length, _ in groups]
        values = [group.to_numpy(np.float64).tolist() for _, group in groups]
        source, metric = "formula_length", "iou"
    means = [float(np.mean(v)) if v else None for v in values]
    return plain({"source": source, "metric": metric, "lengths": lengths, "values": values, "means": means})


def beam_gaps(results: pd.DataFrame) -> list[float] | None:
    """Per unit with a formula, how far the beam's answer may be from the best: ``upper_bound - beam_iou``.

    For a beam run ``beam_iou`` is the answer's IoU (the cheap certificate's gap); for an optimal
    run it is what the seeding beam found, so the gap is how much the beam missed (exactly, where
    the optimum was proven). None when the run has no certificate columns.
    """
    if "upper_bound" not in results:
        return None
    upper = pd.to_numeric(results["upper_bound"], errors="coerce")
    beam = pd.to_numeric(results["beam_iou"], errors="coerce") if "beam_iou" in results else None
    if beam is None or beam.isna().all():
        beam = pd.to_numeric(results["iou"], errors="coerce")
    gaps = (upper - beam).dropna()
    if not len(gaps):
        return None
    return [float(max(g, 0.0)) for g in gaps]


def beam_misses(results: pd.DataFrame, file_name: str) -> list[dict[str, Any]]:
    """Units where the certified search found a better formula than the beam, both side by side.

    Returns
    -------
    list of dict
        Largest gain first: ``unit``, ``anchor`` (the unit's card), ``beam_formula``,
        ``beam_iou``, ``formula``, ``iou``, ``gain``, ``upper_bound``, ``certificate``.
    """
    if "beam_iou" not in results or "upper_bound" not in results:
        return []
    iou = pd.to_numeric(results["iou"], errors="coerce")
    beam = pd.to_numeric(results["beam_iou"], errors="coerce")
    rows = []
    for position, (index, row) in enumerate(results.iterrows()):
        if not (pd.notna(iou[index]) and pd.notna(beam[index]) and beam[index] < iou[index]):
            continue
        rows.append(
            {
                "unit": str(row["unit"]),
                "anchor": f"u-{file_name}-{position}",
                "beam_formula": str(row.get("beam_formula", "")),
                "beam_iou": float(beam[index]),
                "formula": str(row["formula"]),
                "iou": float(iou[index]),
                "gain": float(iou[index] - beam[index]),
                "upper_bound": _number_or_none(row.get("upper_bound")),
                "certificate": None if _is_blank(row.get("certificate")) else str(row.get("certificate")),
            }
        )
    rows.sort(key=lambda r: -r["gain"])
    return plain(rows)


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value))


def _number_or_none(value: Any) -> float | None:
    number = pd.to_numeric(pd.Series([value]), errors="coerce")[0]
    return None if pd.isna(number) else float(number)


def searched_optimally(results: pd.DataFrame) -> bool:
    """Whether the layer's answers differ from the beam's anywhere, or a certified search ran out of budget."""
    if "beam_iou" not in results:
        return False
    budget = results["certificate"].astype(str) == "budget" if "certificate" in results else pd.Series(False)
    differs = pd.to_numeric(results["beam_iou"], errors="coerce") < pd.to_numeric(results["iou"], errors="coerce")
    return bool(budget.any() or differs.any())
