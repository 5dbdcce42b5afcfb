"""The report's analysis section: what ``logiclens analyze`` wrote under ``RUN/analysis/``.

Figure 7-style plots (accuracy when active against IoU at the longest formulas; Pearson r
against the maximum formula length, for search and held-out IoU), per-class contributions with the units' formulas, the
copy-paste effects against their controls (with a plain statement where targeted edits did
not beat them), and a gallery of the strongest edits. Reads files only; every label reaches
the page through the template's autoescaping.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logiclens.runs import layout

__all__ = ["analysis_record"]

#: classes and units per class shown in the contributions table
_CLASSES, _UNITS = 12, 5
#: units (those with the largest contributions) and classes per unit and sign shown in the units' classes table
_UNIT_ROWS, _UNIT_CLASSES = 20, 3


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


def _plots(accuracy: pd.DataFrame, correlations: pd.DataFrame, folder: Path) -> dict[str, str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths = {}
    model = accuracy[accuracy["source"] == "model"]
    for layer, rows in model.groupby("layer", sort=False):
        figure = Figure(figsize=(8.4, 3.2), dpi=110, layout="constrained")
        FigureCanvasAgg(figure)
        left, right = figure.subplots(1, 2)
        keep = rows["accuracy_when_active"].notna()
        left.scatter(rows.loc[keep, "iou"], rows.loc[keep, "accuracy_when_active"], s=6, alpha=0.5, color="#0072B2")
        left.set_xlabel("IoU (search, longest formulas)")
        left.set_ylabel("accuracy when active")
        curve = correlations[correlations["layer"] == layer]
        for (source, kind), part in curve.groupby(["source", "iou_kind"], sort=False):
            style = "-" if kind == "search" else "--"
            name = "held-out" if kind == "heldout" else str(kind)
            right.plot(part["max_length"], part["r"], style, marker="o", label=f"{source}, {name} IoU")
        right.set_xticks(sorted(int(x) for x in curve["max_length"].unique()))
        right.axhline(0, color="#999999", linewidth=0.8)
        right.set_xlabel("maximum formula length")
        right.set_ylabel("Pearson r")
        right.legend(fontsize=8)
        name = f"plots/analysis-{layout.layer_file_name(str(layer))}.png"
        (folder / "plots").mkdir(exist_ok=True)
        figure.savefig(folder / name, format="png", dpi=110)
        paths[str(layer)] = name
    return paths


def _unit_classes(path: Path) -> list[dict[str, Any]]:
    """Per unit (the largest contributions first): its formula, IoU, and top positive and negative classes."""
    table = pd.read_csv(path, dtype={"formula": str, "class_name": str}, keep_default_na=False,
                        na_values={"weight": [""], "iou": [""], "heldout_iou": [""]})  # fmt: skip
    if not len(table):
        return []
    strength = table.assign(size=table["weight"].abs()).groupby("unit", sort=False)["size"].max()
    rows, columns = [], ["class", "class_name", "weight"]
    for unit in strength.sort_values(ascending=False, kind="stable").index[:_UNIT_ROWS]:
        part = table[table["unit"] == unit]
        rows.append({
            "unit": int(unit), "formula": str(part["formula"].iloc[0]), "iou": float(part["iou"].iloc[0]),
            "heldout_iou": float(part["heldout_iou"].iloc[0]),
            "positive": _records(part[part["sign"] == "positive"].head(_UNIT_CLASSES)[columns]),
            "negative": _records(part[part["sign"] == "negative"].head(_UNIT_CLASSES)[columns]),
        })  # fmt: skip
    return rows


def analysis_record(run: Path, folder: Path) -> dict[str, Any] | None:
    """The analysis part of report.json (None where the run has no analysis); copies plots and gallery.

    Parameters
    ----------
    run : Path
        The run directory.
    folder : Path
        The report folder being written.
    """
    summary_path = run / layout.ANALYSIS_SUMMARY
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    record: dict[str, Any] = {
        "n_images": summary.get("n_images"),
        "n_labelled": summary.get("n_labelled"),
        "active_rule": summary.get("active_rule", ""),
        "correlations": summary.get("correlations", []),
        "plots": {},
        "contributions": [],
        "unit_classes": [],
        "copy_paste": [],
        "gallery": [],
        "overall": None,
        "seconds": summary.get("seconds"),
    }
    if (run / layout.ACCURACY).is_file() and record["correlations"]:
        accuracy = pd.read_csv(run / layout.ACCURACY, keep_default_na=False, na_values=[""])
        record["plots"] = _plots(accuracy, pd.DataFrame(record["correlations"]), folder)
    if (run / layout.CONTRIBUTIONS).is_file():
        missing = {"weight": [""], "iou": [""], "heldout_iou": [""]}
        table = pd.read_csv(
            run / layout.CONTRIBUTIONS, dtype={"formula": str, "class_name": str}, keep_default_na=False,
            na_values=missing,
        )  # fmt: skip
        record["contributions_method"] = str(table["method"].iloc[0]) if len(table) else ""
        record["contributions_layer"] = str(table["layer"].iloc[0]) if len(table) else ""
        wanted = [int(c["target"]) for c in summary.get("copy_paste", {}).get("classes", []) if "units" in c]
        others = [c for c in table["class"].drop_duplicates().tolist() if c not in wanted]
        for c in (wanted + others)[:_CLASSES]:
            rows = table[table["class"] == c]
            record["contributions"].append({
                "class": int(c), "class_name": str(rows["class_name"].iloc[0]),
                "positive": _records(rows[rows["sign"] == "positive"].head(_UNITS)),
                "negative": _records(rows[rows["sign"] == "negative"].head(_UNITS)),
            })  # fmt: skip
    if (run / layout.UNIT_CLASSES).is_file():
        record["unit_classes"] = _unit_classes(run / layout.UNIT_CLASSES)
    copy_paste = summary.get("copy_paste")
    if copy_paste and (run / layout.COPY_PASTE).is_file():
        edits = pd.read_csv(run / layout.COPY_PASTE, keep_default_na=False, na_values={"delta_logp": [""]})
        names = edits.drop_duplicates("target").set_index("target")["target_name"].astype(str).to_dict()
        record["overall"] = copy_paste.get("overall")
        for key, block in copy_paste.get("per_class", {}).items():
            plan = next((c for c in copy_paste.get("classes", []) if str(c["target"]) == key), {})
            record["copy_paste"].append({
                "target": int(key), "target_name": names.get(int(key), key),
                "targeted_concepts": plan.get("targeted", []), "controls": plan.get("controls", []),
                "negated": plan.get("negated", []), **block,
            })  # fmt: skip
        gallery_out = folder / "analysis"
        for item in summary.get("gallery", []):
            row = edits.iloc[int(item["row"])]
            entry = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for which in ("before", "after"):
                source = run / layout.ANALYSIS / item[which]
                if source.is_file():
                    gallery_out.mkdir(exist_ok=True)
                    shutil.copyfile(source, gallery_out / source.name)
                    entry[f"{which}_image"] = f"analysis/{source.name}"
            record["gallery"].append(entry)
    return record
