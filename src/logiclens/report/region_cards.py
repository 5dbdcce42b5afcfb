"""Cards of the region units of code-cluster runs: code clusters, activation clusters, directions.

A region unit is a set of positions (``region_masks_<layer>.npz``, one row per row of
``regions_<layer>.csv``). Its card shows the examples with the largest share of their
positions inside the unit:

* vision runs: images ranked by the share of their grid positions in the unit ("act" is
  that share); the unit's mask on an image is its map over the layer's grid upsampled
  bilinearly and thresholded at 0.5, exactly as the dissection explained it, and the
  formula's mask is drawn as for neurons;
* text runs: texts ranked the same way, marked like a neuron's (the unit is "active" on its
  positions: activation 1 inside, 0 outside, threshold 0.5).

The random subsets (the chance level) get no cards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from logiclens.core.concepts import ConceptSet
from logiclens.core.io import InputFileError
from logiclens.report.cards import ImageExample, UnitCard, plain
from logiclens.report.collect import formula_signatures, heldout_flags, image_path
from logiclens.report.draw import save_overlays
from logiclens.report.errors import ReportError
from logiclens.report.examples import example_masks, top_examples
from logiclens.runs import layout
from logiclens.runs.reading import COUNT_COLUMNS
from logiclens.runs.region_masks import RegionMasks, load_region_masks

if TYPE_CHECKING:
    from logiclens.runs.texts import TextRecord

__all__ = ["CONTROL_FAMILY", "region_anchor", "region_cards"]

#: the family that is the chance level, shown in the comparison but not as cards
CONTROL_FAMILY = "random subsets"


def region_anchor(layer_file: str, row: int) -> str:
    """The HTML id of a region unit's card (row of ``regions_<layer>.csv``)."""
    return f"r-{layer_file}-{row}"


def _masks(run_path: Path, layer: str, regions: pd.DataFrame, n_positions: int | None) -> RegionMasks:
    path = run_path / layout.region_masks_file(layer)
    try:
        masks = load_region_masks(path)
    except InputFileError as error:
        raise ReportError(str(error)) from None
    if masks.units != [str(u) for u in regions["unit"]]:
        raise ReportError(f"{path}: its units are not the rows of {layout.regions_file(layer)}; rerun to rewrite both")
    if n_positions is not None and masks.n_positions != n_positions:
        raise ReportError(f"{path}: {masks.n_positions} positions, but the run has {n_positions}")
    return masks


def _image_examples(
    masks: RegionMasks,
    row: int,
    overlays: str,
    concepts: ConceptSet,
    signatures: np.ndarray,
    formula: str,
    top_k: int,
    folder: Path,
    is_heldout: np.ndarray,
    where: str,
) -> tuple[list[ImageExample], list[int]]:
    """The top images of region unit ``row`` and their indices; writes its overlay strip under ``folder``."""
    h, w = masks.grid
    n_images = masks.n_positions // (h * w)
    maps = masks.mask(row).reshape(n_images, h * w)
    share = (maps.sum(axis=1) / (h * w)).astype(np.float32)[:, None]
    top = top_examples(share, share, np.zeros(1), top_k)[0]
    top = top[top >= 0]
    if not len(top):
        return [], []
    holds = formula_signatures(concepts, formula, where)
    chosen = np.asarray(signatures[np.sort(top)])[np.argsort(np.argsort(top))]  # in the order of ``top``
    unit_maps = maps[top].reshape(len(top), 1, h, w).astype(np.float32)
    ranks = np.arange(len(top))
    found = example_masks(unit_maps, chosen, np.zeros(len(top), np.intp), ranks, np.full(1, 0.5), {0: holds})
    overlay = f"{overlays}/{row}.png"
    save_overlays(found.unit, found.formula, folder / overlay)
    examples = [
        ImageExample(
            index=int(image),
            activation=float(share[image, 0]),
            iou=float(found.iou[rank]) if np.isfinite(found.iou[rank]) else None,
            unit_pixels=int(found.unit[rank].sum()),
            formula_pixels=int(found.formula[rank].sum()),
            image=image_path(int(image)),
            overlay=overlay,
            overlay_frame=int(rank),
            overlay_frames=len(top),
            heldout=bool(is_heldout[image]),
        )
        for rank, image in enumerate(top.tolist())
    ]
    return examples, top.tolist()


def region_cards(
    run_path: Path,
    layer: str,
    layer_file: str,
    concepts: ConceptSet | None,
    source: Sequence[TextRecord] | Path | None,
    top_k: int,
    folder: Path,
    heldout: np.ndarray | None = None,
    level: str | None = None,
) -> tuple[list[UnitCard], set[int], str]:
    """Cards of a layer's region units: families in the CSV's order, best IoU first within each.

    Parameters
    ----------
    run_path : Path
    layer, layer_file : str
        The layer's name and file-system-safe name.
    concepts : ConceptSet or None
        None: cards without examples.
    source : sequence of TextRecord, or Path, or None
        A text run's records, or a vision run's ``record/signatures.npy``; None: no examples.
    top_k : int
        Examples per unit.
    folder : Path
        The report folder; overlays go to ``overlays/<layer file>-regions/``.
    heldout : int array, optional
    level : {"pair", "sentence", "token"}, optional
        Text runs only.

    Returns
    -------
    cards : list of UnitCard
    images : set of int
        Probe images the cards show (vision runs).
    note : str
        Why the cards have no examples ("" when they have them).

    Raises
    ------
    ReportError
        If the run's region files disagree with each other or with the run.
    """
    path = run_path / layout.regions_file(layer)
    regions = pd.read_csv(path, dtype={"unit": str, "formula": str}, keep_default_na=False, na_values=[""])
    regions["formula"] = regions["formula"].fillna("") if "formula" in regions else ""
    for column in set(COUNT_COLUMNS) & set(regions.columns):  # 3, not 3.0
        regions[column] = pd.to_numeric(regions[column], errors="coerce").astype("Int64")
    keep = np.flatnonzero((regions["family"] != CONTROL_FAMILY).to_numpy())
    families = {name: i for i, name in enumerate(dict.fromkeys(regions["family"]))}  # code clusters first
    order = sorted(keep, key=lambda r: (families[regions.at[r, "family"]], -_number(regions.at[r, "iou"]), r))
    cards = [
        UnitCard(layer, int(r), region_anchor(layer_file, int(r)), plain({**regions.iloc[r].to_dict(), "layer": layer}))
        for r in order
    ]
    shown: set[int] = set()
    if concepts is None or source is None or top_k == 0:
        return cards, shown, "no examples"
    if not (run_path / layout.region_masks_file(layer)).is_file():
        return cards, shown, f"the run has no {layout.region_masks_file(layer)} (made before region cards); rerun it"
    where = [f"{layout.regions_file(layer)}, unit {u}" for u in regions["unit"]]
    if isinstance(source, Path):
        signatures = np.load(source, mmap_mode="r")
        masks = _masks(run_path, layer, regions, None)
        if len(masks.grid) != 2 or masks.n_positions != len(signatures) * masks.grid[0] * masks.grid[1]:
            raise ReportError(
                f"{run_path / layout.region_masks_file(layer)}: grid {masks.grid} does not cover the run's "
                f"{len(signatures)} images"
            )
        is_heldout = heldout_flags(heldout, len(signatures))
        overlays = f"overlays/{layer_file}-regions"
        (folder / overlays).mkdir(parents=True, exist_ok=True)
        for card in cards:
            row = card.position
            card.examples, images = _image_examples(
                masks, row, overlays, concepts, signatures, regions.at[row, "formula"], top_k,
                folder, is_heldout, where[row],
            )  # fmt: skip
            shown.update(images)
        return cards, shown, ""
    from logiclens.report.text_cards import fill_text_cards

    records = list(source)
    offsets = np.zeros(len(records) + 1, np.int64)
    np.cumsum([record.n_positions for record in records], out=offsets[1:])
    masks = _masks(run_path, layer, regions, int(offsets[-1]))
    rows = np.asarray(order, np.int64)
    activations = np.stack([masks.mask(int(r)) for r in rows], axis=1).astype(np.float32)
    fill_text_cards(
        cards, activations, offsets, np.full(len(rows), 0.5), [regions.at[r, "formula"] for r in rows],
        [where[r] for r in rows], concepts, records, top_k, str(level), heldout,
    )  # fmt: skip
    for column, card in enumerate(cards):  # "act": the share of the example's positions in the unit
        for example in card.examples:
            example.activation = float(
                activations[offsets[example.index] : offsets[example.index + 1], column].mean(dtype=np.float64)
            )
    return cards, shown, ""


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -np.inf
    return number if np.isfinite(number) else -np.inf
