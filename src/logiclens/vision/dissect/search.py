"""The search stage: the compositional search for every unit, validated on the held-out part and the null."""

from __future__ import annotations

import numpy as np
import pandas as pd

from logiclens.core.concepts import ConceptSet
from logiclens.core.fingerprint import fingerprint
from logiclens.core.io import atomic_write_text, read_npz
from logiclens.core.masks import UnitMasks
from logiclens.explain.base import result_params
from logiclens.explain.validation import Variants
from logiclens.runs import layout
from logiclens.runs.by_length import by_length_csv
from logiclens.runs.directory import RunDirectory
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.dissect.split import Split, split_weights

__all__ = ["search_stage"]


def _weighted(concepts: ConceptSet, weights: np.ndarray, masks: list[UnitMasks]) -> tuple[ConceptSet, list[UnitMasks]]:
    """The concept set over the positions counted by ``weights``, empty signatures dropped."""
    keep = np.flatnonzero(weights > 0)
    view = ConceptSet(
        concepts.names, concepts.signature_concepts[keep], weights[keep], concepts.categories, None,
        concepts.neighbors,
    )  # fmt: skip
    return view, [UnitMasks(m.counts[:, keep], m.names) for m in masks]


def variants_of(concepts: ConceptSet, masks: list[UnitMasks], split: Split, signatures: np.ndarray) -> Variants:
    """The explainer's variants from the masks stage's output (search, held-out, then the null's permutations)."""
    search_weights = split_weights(signatures, split.search, concepts.n_signatures)
    heldout = heldout_concepts = None
    if len(split.heldout):
        held_weights = split_weights(signatures, split.heldout, concepts.n_signatures)
        heldout_concepts, (heldout,) = _weighted(concepts, held_weights, [masks[1]])
        masks = [masks[0], *masks[2:]]
    search_concepts, (search, *null) = _weighted(concepts, search_weights, masks)
    return Variants(search, search_concepts, heldout, heldout_concepts, null, (split.search, split.heldout))


def search_stage(
    run: RunDirectory,
    layer: str,
    masks_key: str,
    masks: list[UnitMasks],
    concepts: ConceptSet,
    thresholds: np.ndarray,
    split: Split,
    settings: DissectionSettings,
    verbose: int,
) -> pd.DataFrame:
    """Explain every unit of ``layer``; writes ``results_<layer>.csv`` and the top formulas."""
    key = fingerprint(
        "search", masks_key, run.output_digest(f"masks:{layer}", layout.units_file(layer)),
        run.output_digest("record", layout.CONCEPTS), result_params(settings.explainer),
    )  # fmt: skip
    path = run / layout.results_file(layer)
    if run.is_done(f"search:{layer}", key):
        return pd.read_csv(path, dtype={"unit": str})
    signatures = np.load(run / layout.SIGNATURES, mmap_mode="r")
    explainer = settings.run_explainer(verbose)
    explainer.fit_variants(variants_of(concepts, masks, split, signatures))
    frame = explainer.explanations_.copy()
    frame.insert(0, "layer", layer)
    stored = read_npz(run / layout.thresholds_file(layer))
    if "range_low" in stored:  # activation ranges: unit u's range k was row "u:k"
        low, high = stored["range_low"], stored["range_high"]
        parts = frame.unit.astype(str).str.split(":", expand=True)
        unit, index = parts[0].astype(int).to_numpy(), parts[1].astype(int).to_numpy()
        frame["unit"] = parts[0]
        at = frame.columns.get_loc("unit") + 1
        frame.insert(at, "range_index", index)
        frame.insert(at + 1, "range_low", low[unit, index])
        frame.insert(at + 2, "range_high", high[unit, index])
        thresholds = low[unit, index]
    frame.insert(frame.columns.get_loc("length") + 1, "threshold", thresholds)
    if settings.sae is not None:  # SAE latents never active on the probe
        dead = set(run.manifest["record"].get("dead_units", {}).get(layer, []))
        frame["dead"] = [int(str(unit).split(":")[0]) in dead for unit in frame.unit]
    atomic_write_text(path, frame.to_csv(index=False))
    atomic_write_text(
        run / layout.top_formulas_file(layer), explainer.top_formulas_.assign(layer=layer).to_csv(index=False)
    )
    atomic_write_text(
        run / layout.best_by_length_file(layer),
        by_length_csv(explainer.best_by_length_, explainer.formulas_by_length_),
    )
    files = [layout.results_file(layer), layout.top_formulas_file(layer), layout.best_by_length_file(layer)]
    run.finish(f"search:{layer}", key, files)
    return frame
