"""Build a layer's unit cards: top-activating images, per-image IoU and mask overlays."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.core.formula import Formula, FormulaSyntaxError, parse
from logiclens.report.cards import ImageExample, UnitCard, plain
from logiclens.report.draw import save_overlays
from logiclens.report.errors import ReportError
from logiclens.report.examples import example_masks, image_statistics, range_statistics, top_examples
from logiclens.report.parallel import run_tasks
from logiclens.runs.reading import LayerData

__all__ = [
    "bare_cards",
    "formula_signatures",
    "heldout_flags",
    "image_path",
    "layer_cards",
    "overlay_path",
    "stored_formula",
]

_UNITS_PER_CHUNK = 256


def image_path(index: int) -> str:
    """Where a probe image lies in the report folder."""
    return f"images/{int(index)}.jpg"


def bare_cards(layer: LayerData) -> list[UnitCard]:
    """A card per unit of the layer, with its results and no examples."""
    records = layer.results.to_dict("records")
    return [
        UnitCard(layer.name, position, f"u-{layer.file_name}-{position}", plain(record))
        for position, record in enumerate(records)
    ]


def stored_formula(text: str, where: str = "results.csv") -> Formula | None:
    """A formula as results.csv stores it; None for an empty one.

    Raises
    ------
    ReportError
        If the text does not parse: logiclens always writes formulas that do, so the run's
        results were damaged or edited (``where`` says which row).
    """
    if not text:
        return None
    try:
        return parse(text)
    except FormulaSyntaxError as error:
        raise ReportError(f"{where}: formula {text!r} does not parse ({error}); rerun to rewrite the results") from None


def heldout_flags(heldout: NDArray[np.integer] | None, n_examples: int) -> NDArray[np.bool_]:
    """Per example: held out of the search (``split.npz``)."""
    flags = np.zeros(n_examples, bool)
    if heldout is not None and len(heldout):
        indices = np.asarray(heldout, np.int64)
        if indices.min() < 0 or indices.max() >= n_examples:
            raise ReportError(
                f"split.npz: held-out examples must lie in [0, {n_examples}), got {indices.min()} to {indices.max()}"
            )
        flags[indices] = True
    return flags


def formula_signatures(concepts: ConceptSet, text: str, where: str) -> NDArray[np.bool_] | None:
    """Where a formula holds, per signature; None for an empty formula (ReportError for a damaged one)."""
    formula = stored_formula(text, where)
    if formula is None:
        return None
    try:
        return concepts.signature_mask(formula)
    except (KeyError, ValueError) as error:
        raise ReportError(f"{where}: formula {text!r} names a concept the run's concepts.npz lacks ({error})") from None


def _draw_units(
    activations_path: Path,
    signatures_path: Path,
    folder: Path,
    layer_file: str,
    thresholds: NDArray[np.floating],
    tie_cuts: NDArray[np.floating] | None,
    channels: NDArray[np.intp] | None,
    ranges: tuple[NDArray[np.floating], NDArray[np.floating]] | None,
    units: NDArray[np.intp],
    images: NDArray[np.intp],
    holds: dict[int, NDArray[np.bool_] | None],
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Masks of some units' (unit, image) pairs, written as one overlay strip per unit.

    Returns
    -------
    iou, unit_pixels, formula_pixels : arrays (pairs,)
    """
    activations = np.load(activations_path, mmap_mode="r")
    signatures = np.load(signatures_path, mmap_mode="r")
    masks = example_masks(activations, signatures, units, images, thresholds, holds, tie_cuts, channels, ranges)
    for unit in np.unique(units):
        pairs = np.flatnonzero(units == unit)
        save_overlays(masks.unit[pairs], masks.formula[pairs], folder / overlay_path(layer_file, int(unit)))
    return masks.iou, masks.unit.sum(axis=(1, 2)), masks.formula.sum(axis=(1, 2))


def overlay_path(layer_file: str, unit: int) -> str:
    """Where a unit's overlay strip lies in the report folder."""
    return f"overlays/{layer_file}/{unit}.png"


def layer_cards(
    layer: LayerData,
    concepts: ConceptSet,
    signatures: Path,
    top_k: int,
    folder: Path,
    heldout: NDArray[np.integer] | None = None,
    n_jobs: int = 1,
    verbose: int = 0,
) -> tuple[list[UnitCard], set[int]]:
    """Cards with the top-activating images of every unit of a layer; writes their overlays.

    Parameters
    ----------
    layer : LayerData
    concepts : ConceptSet
        The run's concept set (``concepts.npz``).
    signatures : Path
        ``record/signatures.npy``: int (images, H, W).
    top_k : int
        Images per unit.
    folder : Path
        The report folder; overlays go to ``overlays/<layer file name>/``.
    heldout : int array, optional
        Images held out of the search.
    n_jobs : int
        Worker processes for the masks and overlays (-1: all cores).
    verbose : int

    Returns
    -------
    cards : list of UnitCard
    images : set of int
        The probe images the cards show.
    """
    cards = bare_cards(layer)
    activations = np.load(layer.activations, mmap_mode="r")
    n_images = np.load(signatures, mmap_mode="r").shape[0]
    n_channels = len(cards) if layer.channels is None else int(layer.channels.max(initial=-1)) + 1
    if (
        activations.ndim != 4
        or activations.shape[0] != n_images
        or activations.shape[1] < n_channels
        or (layer.channels is None and activations.shape[1] != n_channels)
    ):
        raise ReportError(
            f"{layer.activations}: shape {activations.shape} does not match {n_images} images and {n_channels} units"
        )
    if layer.ranges is None:
        maxima, means = image_statistics(activations, verbose=verbose)
        ties = None if layer.tie_cuts is None else layer.tie_cuts >= 0
        top = top_examples(maxima, means, layer.thresholds, top_k, ties)
    else:  # a range's top images: most positions in the range, then its largest value there
        inside, maxima = range_statistics(activations, layer.row_channels, *layer.ranges)
        top = top_examples(inside, maxima, np.zeros(len(cards)), top_k)
    units, ranks = np.nonzero(top >= 0)  # unit by unit, best image first
    images = top[units, ranks]
    frames = np.bincount(units, minlength=len(cards))
    formulas = list(layer.results["formula"])
    signatures_of = {
        u: formula_signatures(
            concepts, formulas[u], f"results.csv, layer {layer.name}, unit {layer.results['unit'][u]}"
        )
        for u in range(len(cards))
    }
    (folder / "overlays" / layer.file_name).mkdir(parents=True, exist_ok=True)
    # each task holds whole units, so that a unit's overlays are written as one file
    bounds = np.searchsorted(units, np.arange(0, len(cards) + _UNITS_PER_CHUNK, _UNITS_PER_CHUNK))
    chunks = [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    tasks = [(units[c], images[c], {int(u): signatures_of[int(u)] for u in np.unique(units[c])}) for c in chunks]
    shared = (
        layer.activations, signatures, folder, layer.file_name, layer.thresholds, layer.tie_cuts, layer.channels,
        layer.ranges,
    )  # fmt: skip
    weights = [len(np.unique(task[0])) for task in tasks]
    results = run_tasks(_draw_units, tasks, n_jobs, shared, f"masks {layer.name}", "unit", weights, verbose)
    is_heldout = heldout_flags(heldout, n_images)
    for chunk, (iou, unit_pixels, formula_pixels) in zip(chunks, results):
        for j, pair in enumerate(range(chunk.start, chunk.stop)):
            unit, image = int(units[pair]), int(images[pair])
            cards[unit].examples.append(
                ImageExample(
                    index=image,
                    activation=float(maxima[image, unit]),
                    iou=float(iou[j]) if np.isfinite(iou[j]) else None,
                    unit_pixels=int(unit_pixels[j]),
                    formula_pixels=int(formula_pixels[j]),
                    image=image_path(image),
                    overlay=overlay_path(layer.file_name, unit),
                    overlay_frame=int(ranks[pair]),
                    overlay_frames=int(frames[unit]),
                    heldout=bool(is_heldout[image]),
                )
            )
    return cards, {int(i) for i in np.unique(images)}
