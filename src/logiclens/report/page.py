"""What the index page shows, derived from the report's data only (so report.json holds it all)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["COLUMNS", "page_context", "settings_sections"]

#: the unit table's columns: key in the unit records, title, kind, digits shown
COLUMNS = [
    ("layer", "Layer", "text", 0),
    ("unit", "Unit", "unit", 0),
    ("range_index", "Range", "number", 0),
    ("range_low", "Range low", "number", 3),
    ("range_high", "Range high", "number", 3),
    ("formula", "Formula", "text", 0),
    ("iou", "IoU", "number", 3),
    ("length", "Length", "number", 0),
    ("best_atomic", "NetDissect label", "text", 0),
    ("best_atomic_iou", "Label IoU", "number", 3),
    ("category", "Category", "text", 0),
    ("threshold", "Threshold", "number", 3),
    ("heldout_iou", "Held-out IoU", "number", 3),
    ("significant", "Significant", "flag", 0),
    ("upper_bound", "Upper bound", "number", 3),
    ("ceiling", "Ceiling", "number", 3),
    ("certificate", "Certificate", "text", 0),
]
#: columns shown only when some unit has a value
_OPTIONAL = (
    "range_index",
    "range_low",
    "range_high",
    "heldout_iou",
    "significant",
    "upper_bound",
    "ceiling",
    "certificate",
)
PAGE_SIZE = 24
#: what the probing examples and the positions of a run are, by text level (None: images)
_EXAMPLE_NOUNS = {"pair": "pairs", "sentence": "sentences", "token": "texts"}
_POSITION_NOUNS = {"pair": "pairs", "sentence": "sentences", "token": "tokens"}


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as (dotted key, text) rows."""
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            rows += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list):
        text = ", ".join("—" if v is None else str(v) for v in value) if value else "[]"
    else:
        text = "—" if value is None else str(value)
    return [(prefix, text)]


def settings_sections(report: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The run's model, probe, dissection settings and environment as titled rows."""
    config = report["run"]["config"]
    sections = [
        ("Model", _flatten(config.get("model", {}))),
        ("Probe", _flatten(config.get("probe", {}))),
        ("Dissection", _flatten(config.get("settings", {}))),
        ("Environment", _flatten(report["run"].get("environment", {}))),
    ]
    return [(title, rows) for title, rows in sections if rows]


def _sort_key(unit: dict[str, Any], layer: int) -> tuple[float, int, int]:
    iou = unit.get("iou")
    missing = iou is None or (isinstance(iou, float) and math.isnan(iou))
    return (math.inf if missing else -float(iou), layer, unit["position"])


def _script_record(unit: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    record = {key: unit.get(key) for key in keys}
    record["anchor"] = unit["anchor"]
    return record


def _ratio(size: Any) -> str:
    """CSS aspect ratio (width / height) of the probe's images; square when unknown."""
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        return "1 / 1"
    return f"{width} / {height}" if height > 0 and width > 0 else "1 / 1"


def page_context(report: dict[str, Any]) -> dict[str, Any]:
    """The index page's template context.

    Parameters
    ----------
    report : dict
        The report's data, as written to report.json.

    Returns
    -------
    dict
        ``report``, ``units`` (every unit of every layer, best IoU first, each with its
        ``layer`` and ``position``), ``columns``, ``filters`` and ``data`` (what the page's
        script needs, embedded as JSON).
    """
    units = []
    for layer_number, layer in enumerate(report["layers"]):
        for position, unit in enumerate(layer["units"]):
            units.append(({**unit, "layer": layer["name"], "position": position}, layer_number))
    units.sort(key=lambda pair: _sort_key(*pair))
    ordered = [unit for unit, _ in units]
    multi_layer = len(report["layers"]) > 1
    columns = [
        {"key": key, "title": title, "kind": kind, "digits": digits}
        for key, title, kind, digits in COLUMNS
        if (key != "layer" or multi_layer) and (key not in _OPTIONAL or any(u.get(key) is not None for u in ordered))
    ]
    keys = [column["key"] for column in columns]
    categories = sorted({u.get("category") or "" for u in ordered} - {""})
    lengths = sorted({int(u["length"]) for u in ordered if u.get("length") is not None})
    config = report["run"]["config"]
    probe = config.get("probe", {})
    data = {
        "units": [_script_record(u, [*keys, "best_atomic"]) for u in ordered],
        "columns": [{"key": c["key"], "kind": c["kind"]} for c in columns],
        "page_size": PAGE_SIZE,
        "sort": {"key": "iou", "direction": -1},
    }
    extras = [
        ("mean_heldout_iou", "Mean held-out IoU"),
        ("significant", "Significant"),
        ("mean_ceiling", "Mean ceiling"),
        ("mean_beam_gap", "Mean bound gap"),
        ("proven_optimal", "Proven optimal"),
        ("beam_missed", "Beam below optimum"),
    ]
    level = report["examples"].get("level")
    probe_name = f"{level} text" if level else probe.get("kind", "probe")
    return {
        "report": report,
        "summary_extras": [(k, t) for k, t in extras if any(k in layer["summary"] for layer in report["layers"])],
        "title": f"{config.get('model', {}).get('name', 'model')} · {probe_name}",
        "model": config.get("model", {}).get("name", "model"),
        "probe": probe_name,
        "example_noun": _EXAMPLE_NOUNS.get(level, "images"),
        "position_noun": _POSITION_NOUNS.get(level, "pixels"),
        "multi_layer": multi_layer,
        "certified": any(layer.get("beam_misses") or "beam_gaps" in layer["plots"] for layer in report["layers"]),
        "units": ordered,
        "columns": columns,
        "categories": categories,
        "lengths": lengths,
        "settings": settings_sections(report),
        "page_size": PAGE_SIZE,
        "image_ratio": _ratio(probe.get("image_size")),
        "data": data,
    }
