"""The regions stage (``units="code-clusters"``): code clusters of a layer as units, with baselines.

Per layer: the codes of every (image, position) at the layer's nonlinearity (recorded in the
record stage's forward pass, or here by :func:`logiclens.polytope.hooked.record_codes` for a
run recorded without them) are clustered and turned, with the baselines of
:func:`logiclens.polytope.position_units.position_families`, into binary maps over the
layer's grid. A map is 1 where the position belongs to the unit; it is upsampled bilinearly
and thresholded at 0.5 like any unit's map, so the masks stage, the search, the held-out
part and the null are exactly those of neurons. The layer's neurons themselves come from the
usual stages of the same run. Writes ``regions_<layer>.csv`` (one row per unit, with
``family`` and ``size``, in layer positions), ``region_masks_<layer>.npz`` (the positions of
each of those units, for the report's cards) and ``comparison_<layer>.csv`` (the size-matched
comparison of all families, neurons included).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from logiclens.core.concepts import ConceptSet
from logiclens.core.fingerprint import fingerprint
from logiclens.core.io import atomic_write_text
from logiclens.explain.base import result_params
from logiclens.polytope.codes import PolytopeCodes
from logiclens.polytope.position_units import position_families, size_matched_comparison
from logiclens.runs import layout
from logiclens.runs.directory import RunDirectory
from logiclens.runs.region_masks import save_region_masks
from logiclens.vision.dissect.masks import count_unit_masks
from logiclens.vision.dissect.record import codes_key
from logiclens.vision.dissect.search import variants_of
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.dissect.split import Split
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["family_maps", "layer_codes", "regions_stage"]


def layer_codes(
    run: RunDirectory, model: Any, probe: ProbeDataset, layer: str, record_key: str, settings: DissectionSettings
) -> tuple[PolytopeCodes, tuple[int, ...]]:
    """The layer's codes per (image, i, j), recorded once per record fingerprint (``record/codes_<layer>.npy``).

    Normally the record stage recorded them in its forward pass; a run recorded without them
    (e.g. first dissected with ``units="neurons"``) gets them here, in a second pass.
    """
    import torch

    from logiclens.polytope.hooked import record_codes

    key = codes_key(record_key, layer)
    path = run / layout.codes_file(layer)
    if run.is_done(f"codes:{layer}", key):  # recorded in the record stage's pass, or by an earlier run
        state = run.stage(f"codes:{layer}", key)
        return PolytopeCodes(np.load(path), (state["nonlinearity"],), (int(state["bits"]),)), tuple(state["grid"])
    module = model.module.to(settings.device)

    def batches() -> Any:
        for batch in probe.batches(settings.batch_size):
            yield model.preprocess(torch.from_numpy(batch.images)).to(settings.device)

    hooked = record_codes(module, layer, batches(), soft=False)
    np.save(path, hooked.codes.words)
    grid = hooked.grid or (1, 1)
    run.finish(
        f"codes:{layer}", key, [path.relative_to(run.path).as_posix()], nonlinearity=hooked.nonlinearity,
        bits=hooked.codes.n_bits, grid=list(grid), activation=hooked.activation.name,
    )  # fmt: skip
    return hooked.codes, grid


def family_maps(masks: np.ndarray, n_images: int, grid: tuple[int, int]) -> np.ndarray:
    """Unit masks over (image, i, j) rows as float32 maps (images, units, h, w), 1 inside the unit."""
    h, w = grid
    return np.ascontiguousarray(masks.reshape(len(masks), n_images, h, w).transpose(1, 0, 2, 3), dtype=np.float32)


def regions_stage(
    run: RunDirectory,
    model: Any,
    probe: ProbeDataset,
    layer: str,
    record_key: str,
    concepts: ConceptSet,
    split: Split,
    neurons: pd.DataFrame,
    settings: DissectionSettings,
    verbose: int,
) -> pd.DataFrame:
    """Explain the layer's code clusters and baselines; returns one row per unit (``regions_<layer>.csv``)."""
    regions = settings.regions
    key = fingerprint("regions", record_key, layer, regions.to_config(), split.key, result_params(settings.explainer))
    path = run / layout.regions_file(layer)
    if run.is_done(f"regions:{layer}", key) and (run / layout.region_masks_file(layer)).is_file():
        return pd.read_csv(path, dtype={"unit": str})
    timings: dict[str, float] = {}
    start = time.perf_counter()
    codes, grid = layer_codes(run, model, probe, layer, record_key, settings)
    timings["codes"] = time.perf_counter() - start
    recorded = np.load(run / layout.record_file(layer), mmap_mode="r")
    n_images, n_units, h, w = recorded.shape
    if (h, w) != tuple(grid) or len(codes) != n_images * h * w:
        raise ValueError(f"layer {layer!r}: codes on a {grid} grid, activations on ({h}, {w})")
    start = time.perf_counter()
    rows = np.asarray(recorded, dtype=np.float32).transpose(0, 2, 3, 1).reshape(-1, n_units)
    families, info = position_families(codes, rows, regions, layer)
    del rows
    timings["clustering"] = time.perf_counter() - start
    masks = np.concatenate([family.masks for family in families])
    names = [name for family in families for name in family.unit_names]
    family_of = [family.name for family in families for _ in family.unit_names]
    start = time.perf_counter()
    signatures = np.load(run / layout.SIGNATURES, mmap_mode="r")
    maps = family_maps(masks, n_images, (h, w))
    variants = count_unit_masks(
        maps, signatures, np.full(len(masks), 0.5), concepts.n_signatures, split.variants, verbose=verbose
    )
    del maps
    timings["masks"] = time.perf_counter() - start
    start = time.perf_counter()
    explainer = settings.run_explainer(verbose)
    explainer.fit_variants(variants_of(concepts, variants, split, signatures))
    timings["search"] = time.perf_counter() - start
    frame = explainer.explanations_.copy()
    frame["unit"] = names
    frame.insert(0, "family", family_of)
    frame.insert(0, "layer", layer)
    frame.insert(frame.columns.get_loc("unit") + 1, "size", masks.sum(axis=1))
    save_region_masks(run / layout.region_masks_file(layer), masks, names, (h, w))
    atomic_write_text(path, frame.to_csv(index=False))
    comparison = size_matched_comparison(
        pd.concat([frame, _neuron_scores(neurons, run, layer)], ignore_index=True), n_images * h * w
    )
    atomic_write_text(run / layout.comparison_file(layer), comparison.to_csv(index=False))
    run.finish(
        f"regions:{layer}", key,
        [layout.regions_file(layer), layout.region_masks_file(layer), layout.comparison_file(layer)], units=len(frame),
        seconds=timings, clustering=dict(info),
    )  # fmt: skip
    return frame


def _neuron_scores(neurons: pd.DataFrame, run: RunDirectory, layer: str) -> pd.DataFrame:
    """The layer's neurons with their size: positions of the layer's grid above the threshold."""
    recorded = np.load(run / layout.record_file(layer), mmap_mode="r")
    thresholds = pd.to_numeric(neurons["threshold"], errors="coerce").to_numpy(np.float64)
    sizes = np.zeros(len(thresholds), np.int64)
    for start in range(0, len(recorded), 256):
        block = np.asarray(recorded[start : start + 256], dtype=np.float32)
        sizes += (block > thresholds[None, :, None, None].astype(np.float32)).sum(axis=(0, 2, 3))
    frame = neurons.copy()
    frame["family"] = "neurons"
    frame["size"] = sizes
    return frame
