"""Build a run's report: :func:`build_report`."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from logiclens.report.analysis import analysis_record
from logiclens.report.cards import UnitCard, plain
from logiclens.report.collect import bare_cards, layer_cards
from logiclens.report.draw import COLORS
from logiclens.report.errors import ProbeUnavailableError, ReportError
from logiclens.report.output import MARKER, publish, staging_folder
from logiclens.report.page import page_context
from logiclens.report.summary import (
    DETECTOR_IOU,
    beam_gaps,
    beam_misses,
    by_category,
    by_length,
    iou_by_length,
    iou_per_category,
    layer_summary,
    searched_optimally,
)
from logiclens.runs.reading import LayerData, RunData, RunError, load_run
from logiclens.vision.probes.base import ProbeDataset
from logiclens.vision.probes.registry import check_probe, probe_from_config

if TYPE_CHECKING:
    from logiclens.runs.texts import TextRecord

__all__ = ["build_report"]

FORMAT_VERSION = 2


def _check_dependencies() -> None:
    """Fail before any work when the page or the plots cannot be made."""
    missing = [name for name in ("jinja2", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"the HTML report needs {' and '.join(missing)} (pip install jinja2 matplotlib)")


def _select_layers(run: RunData, names: Sequence[str]) -> RunData:
    """The run restricted to some of its layers, in the given order."""
    known = {layer.name: layer for layer in run.layers}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ReportError(f"the run has no layer {', '.join(map(repr, unknown))}; its layers: {', '.join(known)}")
    return replace(run, layers=[known[name] for name in dict.fromkeys(names)])


def _open_probe(run: RunData, probe: ProbeDataset | None, top_examples: int) -> tuple[ProbeDataset | None, str]:
    """The probe to draw images from, or None and the reason the report has no images."""
    if top_examples == 0:
        return None, "images were turned off (--top-examples 0)"
    if not run.signatures.is_file() or not run.concepts.is_file():
        return None, "the run's record/signatures.npy or concepts.npz is missing"
    try:
        opened = probe_from_config(run.config, probe)
        signatures = np.load(run.signatures, mmap_mode="r")
        check_probe(opened, signatures.shape[0], signatures.shape[1:])
    except ProbeUnavailableError as error:
        return None, str(error)
    missing = _missing_activations(run)
    return (None, missing) if missing else (opened, "")


def _open_texts(run: RunData, top_examples: int) -> tuple[list[TextRecord] | None, str]:
    """The probing texts of a text run, or None and the reason the report shows none."""
    from logiclens.core.io import InputFileError
    from logiclens.runs.texts import load_records

    if top_examples == 0:
        return None, "examples were turned off (--top-examples 0)"
    if not run.texts.is_file() or not run.concepts.is_file():
        return None, "the run's texts.jsonl or concepts.npz is missing"
    try:
        records = load_records(run.texts)
    except InputFileError as error:
        return None, str(error)
    missing = _missing_activations(run)
    return (None, missing) if missing else (records, "")


def _missing_activations(run: RunData) -> str:
    missing = [layer.activations.name for layer in run.layers if not layer.activations.is_file()]
    return f"the run's recorded activations are missing ({', '.join(missing)})" if missing else ""


def _plots(layer: LayerData, run: RunData, folder: Path, detector_iou: float) -> dict[str, Any]:
    """Draw a layer's three plots; returns their paths and the data behind them."""
    from logiclens.report.plots import plot_iou_by_category, plot_iou_by_length, plot_units_by_category

    (folder / "plots").mkdir(exist_ok=True)
    paths = {
        key: f"plots/{layer.file_name}-{key}.png" for key in ("iou_by_length", "iou_by_category", "units_by_category")
    }
    lengths = iou_by_length(layer.results, layer.best_by_length, run.metric)
    categories = by_category(layer.results, detector_iou)
    per_category = iou_per_category(layer.results)
    values = [per_category[row["category"]] for row in categories]
    plot_iou_by_length(lengths, folder / paths["iou_by_length"], detector_iou)
    plot_iou_by_category([row["category"] for row in categories], values, folder / paths["iou_by_category"],
                         detector_iou)  # fmt: skip
    plot_units_by_category(categories, folder / paths["units_by_category"], detector_iou)
    gaps = beam_gaps(layer.results)
    if gaps is not None:
        from logiclens.report.plots import plot_beam_gaps

        paths["beam_gaps"] = f"plots/{layer.file_name}-beam_gaps.png"
        optimal = searched_optimally(layer.results)
        plot_beam_gaps(gaps, folder / paths["beam_gaps"], optimal)
    return {"paths": paths, "iou_by_length": lengths}


def _layer_record(
    layer: LayerData, cards: list[UnitCard], plots: dict[str, Any], detector_iou: float
) -> dict[str, Any]:
    """A layer as report.json stores it."""
    return {
        "name": layer.name,
        "file_name": layer.file_name,
        "n_units": len(cards),
        "summary": layer_summary(layer.results, detector_iou),
        "by_length": by_length(layer.results, detector_iou),
        "by_category": by_category(layer.results, detector_iou),
        "iou_by_length": plots["iou_by_length"],
        "beam_misses": beam_misses(layer.results, layer.file_name),
        "plots": plots["paths"],
        "units": [card.to_dict() for card in cards],
    }


def build_report(
    run_dir: str | Path,
    probe: ProbeDataset | None = None,
    out: str | Path | None = None,
    top_examples: int = 6,
    detector_iou: float = DETECTOR_IOU,
    layers: Sequence[str] | None = None,
    n_jobs: int = 1,
    verbose: int = 1,
) -> Path:
    """Write the HTML report of a run.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by :func:`logiclens.vision.dissect.dissect` or
        :func:`logiclens.text.run.save_text_run`.
    probe : ProbeDataset, optional
        The probe the run was recorded on; by default reopened from ``config.json`` (see
        :func:`~logiclens.report.probe_from_config`). Without a probe the report has no images
        and says why.
    out : str or Path, optional
        The report folder (default ``run_dir/report``). An earlier report there is replaced;
        any other non-empty folder is refused.
    top_examples : int
        Top-activating images (or texts, for text runs) per unit (0: none).
    detector_iou : float
        IoU above which a unit counts as explained (NetDissect: 0.04).
    layers : sequence of str, optional
        Layers to report (default: every layer of the run).
    n_jobs : int
        Worker processes for drawing masks and images (-1: all cores).
    verbose : int
        0 is silent; 1 shows progress bars on a terminal.

    Returns
    -------
    Path
        The report folder; open its ``index.html``.

    Raises
    ------
    ReportError
        If ``run_dir`` is not a finished run or ``out`` cannot be replaced.
    """
    if top_examples < 0:
        raise ReportError(f"top_examples must be >= 0, got {top_examples}")
    _check_dependencies()
    started = time.monotonic()
    try:
        run = load_run(run_dir)
    except RunError as error:
        raise ReportError(str(error)) from None
    if layers is not None:
        run = _select_layers(run, layers)
    target = Path(out) if out is not None else run.path / "report"
    if run.text_level is None:
        source, note = _open_probe(run, probe, top_examples)
    else:
        source, note = _open_texts(run, top_examples)
    staging = staging_folder(target)
    try:
        records = _build_layers(run, source, top_examples, staging, detector_iou, n_jobs, verbose)
        examples = {
            "kind": "image" if run.text_level is None else "text",
            "level": run.text_level,
            "available": source is not None,
            "note": note,
            "per_unit": top_examples if source is not None else 0,
            "n_examples": _n_examples(run, source),
        }
        report = {
            "format": "logiclens-report",
            "format_version": FORMAT_VERSION,
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": time.monotonic() - started,
            "run": {"path": str(run.path.resolve()), "config": run.config, "environment": run.environment},
            "examples": examples,
            "detector_iou": detector_iou,
            "colors": COLORS,
            "layers": records,
            "analysis": analysis_record(run.path, staging),
        }
        report = plain(report)
        (staging / MARKER).write_text(json.dumps(report, indent=1, allow_nan=False), encoding="utf-8")
        _write_pages(report, staging)
        publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _regions_record(
    run: RunData,
    layer: LayerData,
    concepts: Any,
    source: ProbeDataset | list[TextRecord] | None,
    top_examples: int,
    folder: Path,
) -> tuple[dict[str, Any], set[int]]:
    """A layer's region units (as cards) and the size-matched comparison, when the run made them."""
    import pandas as pd

    from logiclens.report.region_cards import region_cards
    from logiclens.runs import layout

    comparison, regions = run.path / layout.comparison_file(layer.name), run.path / layout.regions_file(layer.name)
    if not comparison.is_file() or not regions.is_file():
        return {}, set()
    table = pd.read_csv(comparison)
    examples = run.signatures if isinstance(source, ProbeDataset) else source
    cards, shown, note = region_cards(
        run.path, layer.name, layer.file_name, concepts, examples, top_examples, folder, run.heldout, run.text_level
    )
    return {
        "comparison": table.astype(object).where(table.notna(), None).to_dict(orient="records"),
        "region_units": [card.to_dict() for card in cards],
        "region_note": note,
    }, shown


def _build_layers(
    run: RunData,
    source: ProbeDataset | list[TextRecord] | None,
    top_examples: int,
    folder: Path,
    detector_iou: float,
    n_jobs: int,
    verbose: int,
) -> list[dict[str, Any]]:
    """Cards, examples, overlays and plots of every layer; returns the layers' report.json records."""
    from logiclens.core.concepts import ConceptSet
    from logiclens.report.images import write_probe_images
    from logiclens.report.text_cards import text_layer_cards

    records, shown = [], set()
    concepts = ConceptSet.load(run.concepts) if source is not None else None
    for layer in run.layers:
        if source is None or concepts is None:
            cards = bare_cards(layer)
        elif isinstance(source, list):
            cards = text_layer_cards(layer, concepts, source, top_examples, str(run.text_level), run.heldout)
        else:
            cards, images = layer_cards(
                layer, concepts, run.signatures, top_examples, folder, run.heldout, n_jobs, verbose
            )
            shown |= images
        plots = _plots(layer, run, folder, detector_iou)
        regions, region_images = _regions_record(run, layer, concepts, source, top_examples, folder)
        shown |= region_images
        records.append({**_layer_record(layer, cards, plots, detector_iou), **regions})
    if isinstance(source, ProbeDataset):
        write_probe_images(source, shown, folder, n_jobs, verbose)
    return records


def _n_examples(run: RunData, source: ProbeDataset | list[TextRecord] | None) -> int | None:
    """Probing images or texts of the run, where known."""
    if isinstance(source, list):
        return len(source)
    if run.signatures.is_file():
        return int(np.load(run.signatures, mmap_mode="r").shape[0])
    probe = run.config.get("probe", {})
    return probe.get("n_examples", probe.get("n_images"))


def _write_pages(report: dict[str, Any], folder: Path) -> None:
    from logiclens.report.render import copy_static, render_page

    copy_static(folder / "static")
    render_page("index.html.j2", folder / "index.html", **page_context(report))
