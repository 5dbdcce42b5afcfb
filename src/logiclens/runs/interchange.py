"""``results.jsonl``: one JSON record per explained unit, keyed the way SAE dashboards key features.

Each line is one unit (or one activation range of a unit)::

    {"key": "efficientnet-lite0/conv_head/17", "model": "efficientnet-lite0", "layer": "conv_head",
     "index": 17, "range": null, "formula": "dog OR cat", "iou": 0.21, "heldout_iou": 0.19,
     "significant": true, "p_value": 0.048, "q_value": 0.09, "length": 2, "status": "ok"}

``key`` is ``model/layer/index`` as Neuronpedia keys features (``modelId/source/index``),
with ``/range<k>`` appended for activation ranges, whose ``range`` is
``{"index": k, "low": ..., "high": ...}`` (inclusive bounds). Columns a run lacks (no
held-out part, no null) are ``null``; so are missing numbers and the infinite bounds of
an empty range. Extra columns of the results
(``dead`` for SAE latents, ``accuracy_when_active`` for NLI models, ...) are copied as they
are.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

__all__ = ["KEY_FIELDS", "results_jsonl"]

#: fields every record carries, in order
KEY_FIELDS = (
    "key", "model", "layer", "index", "range", "formula", "iou", "heldout_iou", "significant", "p_value", "q_value",
    "length", "status",
)  # fmt: skip
_COPIED = ("dead", "accuracy_when_active", "n_active", "best_atomic", "best_atomic_iou", "threshold")


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python ones, NaN and missing as None."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def results_jsonl(frame: pd.DataFrame, model: str) -> str:
    """The lines of ``results.jsonl`` for a results table (one row per unit or range).

    Parameters
    ----------
    frame : DataFrame
        ``results.csv``'s rows: ``layer``, ``unit``, ``formula``, ``iou`` and, where the run
        has them, ``range_index``, ``range_low``, ``range_high`` and the validation columns.
    model : str
        The model's name (the key's first part).
    """
    lines = []
    for row in frame.to_dict("records"):
        unit = str(row["unit"])
        index: Any = int(unit) if unit.lstrip("-").isdigit() else unit
        key = f"{model}/{row['layer']}/{unit}"
        span = None
        if "range_index" in row and _plain(row["range_index"]) is not None:
            span = {
                "index": int(row["range_index"]),
                "low": _plain(row["range_low"]),
                "high": _plain(row["range_high"]),
            }
            key += f"/range{span['index']}"
        record = {"key": key, "model": model, "layer": str(row["layer"]), "index": index, "range": span}
        for field in KEY_FIELDS[5:]:
            value = _plain(row.get(field))
            record[field] = "" if field == "formula" and value is None else value
        for field in _COPIED:
            if field in row:
                record[field] = _plain(row[field])
        lines.append(json.dumps(record, sort_keys=False))
    return "".join(line + "\n" for line in lines)
