"""The report's plots, drawn with matplotlib's Agg canvas (no display, no global backend change)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_beam_gaps", "plot_iou_by_category", "plot_iou_by_length", "plot_units_by_category"]

_SIZE = (5.6, 3.4)
_DPI = 110
_MAX_CATEGORIES = 20
_LABEL_CHARACTERS = 22
_BLUE, _ORANGE, _GREY = "#0072B2", "#E69F00", "#999999"


def _figure() -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARACTERS else label[: _LABEL_CHARACTERS - 1] + "…"


def _literal_tick_labels(axis: Any, labels: Sequence[str]) -> None:
    """Category names as tick labels, never read as mathtext (``$`` in a name stays a ``$``)."""
    axis.set_xticks(range(1, len(labels) + 1), [_short(label) for label in labels])
    for text in axis.get_xticklabels():
        text.set_parse_math(False)
    if len(labels) > 4:
        axis.tick_params(axis="x", labelrotation=35)
        for text in axis.get_xticklabels():
            text.set_horizontalalignment("right")


def _span(axis: Any, n_groups: int) -> None:
    """Room for at least three groups, so that one or two groups are not stretched across the plot."""
    margin = max(0.6, (3 - n_groups) / 2 + 0.5)
    axis.set_xlim(1 - margin, n_groups + margin)


def _save(figure: Any, path: Path) -> None:
    figure.savefig(path, format="png", dpi=_DPI)


def _empty(axis: Any, message: str) -> None:
    axis.text(0.5, 0.5, message, ha="center", va="center", transform=axis.transAxes, color=_GREY)
    axis.set_xticks([])
    axis.set_yticks([])


def _distribution(axis: Any, values: Sequence[Sequence[float]]) -> None:
    """Violins where there are enough values, with each group's points jittered over them."""
    positions = np.arange(1, len(values) + 1)
    dense = [i for i, v in enumerate(values) if len(v) > 2 and np.ptp(v) > 0]
    if dense:
        parts = axis.violinplot([values[i] for i in dense], positions=positions[dense], showextrema=False, widths=0.8)
        for body in parts["bodies"]:
            body.set_facecolor(_BLUE)
            body.set_alpha(0.25)
    rng = np.random.default_rng(0)
    for position, group in zip(positions, values):
        if len(group):
            jitter = rng.uniform(-0.18, 0.18, size=len(group))
            axis.scatter(position + jitter, group, s=5, color=_BLUE, alpha=0.45, linewidths=0)


def plot_iou_by_length(data: dict[str, Any], path: Path, detector_iou: float) -> None:
    """IoU per formula length: the paper's Figure 3 (see :func:`~logiclens.report.summary.iou_by_length`)."""
    figure = _figure()
    axis = figure.add_subplot()
    values = list(data["values"])
    if not any(values):
        _empty(axis, "no unit has a formula")
    else:
        _distribution(axis, values)
        positions = np.arange(1, len(values) + 1)
        means = [np.nan if m is None else m for m in data["means"]]
        axis.plot(positions, means, color=_ORANGE, marker="o", label="mean")
        axis.axhline(detector_iou, color=_GREY, linestyle="--", linewidth=1, label=f"IoU {detector_iou}")
        axis.set_xticks(positions, [str(n) for n in data["lengths"]])
        _span(axis, len(values))
        metric = "IoU" if data["metric"] == "iou" else data["metric"]
        if data["source"] == "best_by_length":
            axis.set_xlabel("maximum formula length N (N = 1: NetDissect)")
            axis.set_ylabel(f"best {metric}")
            axis.set_title(f"{metric} vs maximum formula length")
        else:
            axis.set_xlabel("length of the unit's formula")
            axis.set_ylabel("IoU")
            axis.set_title("IoU by formula length")
        axis.legend(loc="best", fontsize="small", frameon=False)
        axis.set_ylim(bottom=0)
    _save(figure, path)


def plot_iou_by_category(categories: Sequence[str], values: Sequence[Sequence[float]], path: Path,
                         detector_iou: float) -> None:  # fmt: skip
    """IoU of the units' formulas per category (the most populous categories)."""
    figure = _figure()
    axis = figure.add_subplot()
    if not categories:
        _empty(axis, "no unit has a formula")
    else:
        categories, values = list(categories)[:_MAX_CATEGORIES], list(values)[:_MAX_CATEGORIES]
        _distribution(axis, values)
        means = [float(np.mean(v)) if len(v) else np.nan for v in values]
        axis.scatter(np.arange(1, len(values) + 1), means, color=_ORANGE, marker="D", s=28, zorder=3, label="mean")
        axis.axhline(detector_iou, color=_GREY, linestyle="--", linewidth=1, label=f"IoU {detector_iou}")
        _literal_tick_labels(axis, categories)
        _span(axis, len(values))
        axis.set_ylabel("IoU")
        axis.set_title("IoU by concept category")
        axis.legend(loc="best", fontsize="small", frameon=False)
        axis.set_ylim(bottom=0)
    _save(figure, path)


def plot_units_by_category(rows: Sequence[dict[str, Any]], path: Path, detector_iou: float) -> None:
    """Units per category, split into explained (IoU above the line) and the rest."""
    figure = _figure()
    axis = figure.add_subplot()
    rows = list(rows)[:_MAX_CATEGORIES]
    if not rows:
        _empty(axis, "no unit has a formula")
    else:
        positions = np.arange(1, len(rows) + 1)
        explained = np.array([row["explained"] for row in rows])
        rest = np.array([row["units"] for row in rows]) - explained
        axis.bar(positions, explained, width=0.7, color=_BLUE, label=f"IoU > {detector_iou}")
        axis.bar(positions, rest, width=0.7, bottom=explained, color=_GREY, alpha=0.5, label="other units")
        _literal_tick_labels(axis, [row["category"] for row in rows])
        _span(axis, len(rows))
        axis.set_ylabel("units")
        axis.set_title("Units per concept category")
        axis.legend(loc="upper right", fontsize="small", frameon=False)
    _save(figure, path)


def plot_beam_gaps(gaps: Sequence[float], path: Path, optimal: bool) -> None:
    """Distribution of ``upper_bound - beam IoU`` over a layer's units (:func:`~logiclens.report.summary.beam_gaps`)."""
    figure = _figure()
    axis = figure.add_subplot()
    values = np.asarray(list(gaps), float)
    if not len(values):
        _empty(axis, "no unit has a formula")
    else:
        top = max(float(values.max()), 1e-3)
        axis.hist(values, bins=np.linspace(0.0, top, 31), color=_BLUE, alpha=0.8)
        zero = int(np.count_nonzero(values == 0))
        axis.set_xlabel("upper bound - beam IoU")
        axis.set_ylabel("units")
        what = "the beam's distance to the proven optimum" if optimal else "how far the beam may be from the best"
        axis.set_title(f"{what}\n({zero} of {len(values)} units at 0)", fontsize="medium")
    _save(figure, path)
