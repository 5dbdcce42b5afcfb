"""The masks stage: every unit's active pixels counted per signature, for every variant at once.

Each (image, unit) map is upsampled to the annotation size, thresholded with ``>`` and
counted per signature; maps whose maximum cannot reach the threshold are skipped. The
search part, the held-out part and each permutation of the null are variants of one pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from logiclens.core.batching import batch_slices, even_batches
from logiclens.core.concepts import ConceptSet
from logiclens.core.fingerprint import fingerprint
from logiclens.core.io import atomic_savez, read_npz
from logiclens.core.masks import UnitMasks
from logiclens.core.parallel import map_batches, n_workers
from logiclens.runs import layout
from logiclens.runs.directory import RunDirectory
from logiclens.vision.activations.active import active_pixels
from logiclens.vision.activations.counting import ActivePixels, UnitCountAccumulator, ranged_units_per_pass
from logiclens.vision.activations.upsample import BilinearUpsampler
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.dissect.split import Split

__all__ = ["count_unit_masks", "load_variants", "masks_stage", "save_variants"]


def count_unit_masks(
    activations: np.ndarray,
    signatures: np.ndarray,
    thresholds: np.ndarray,
    n_signatures: int,
    variants: list[np.ndarray] | None = None,
    tie_cuts: np.ndarray | None = None,
    batch_size: int = 64,
    verbose: int = 0,
    ranges: tuple[np.ndarray, np.ndarray] | None = None,
    units: range | None = None,
    active: ActivePixels = active_pixels,
    compiled: bool | None = None,
) -> list[UnitMasks]:
    """Upsample, threshold and count every unit's active pixels per signature.

    Parameters
    ----------
    activations : (images, units, h, w) array
    signatures : (images, H, W) int array
    thresholds : (units,) array
    n_signatures : int
    variants : list of int arrays (images,), optional
        For each variant, the image whose annotations each image's activations are counted
        against (-1: left out). Default: one variant, every image against itself.
    tie_cuts : (units,) array, optional
        Tie-breaking cuts (see :mod:`logiclens.vision.activations.ties`).
    ranges : (low, high) arrays (units, K), optional
        Count K activation ranges per unit instead of ``> threshold``, all from the same
        upsampling; unit u's range k is row ``u * K + k``, named ``"u:k"``.
    units : range, optional
        Count only these consecutive units of the layer (default: all); the rows are theirs.
    active : callable
        Computes the active pixels (see :class:`~logiclens.vision.activations.counting.UnitCountAccumulator`).
    compiled : bool, optional
        Count ranges with the compiled kernel or with NumPy (default: compiled where numba is
        installed; the counts are the same). The compiled counts are dense, so the units are
        counted in passes that fit
        :data:`~logiclens.vision.activations.counting.DENSE_COUNTS_BYTES`.

    Returns
    -------
    list of UnitMasks, one per variant
    """
    n_images, n_layer_units, h, w = activations.shape
    units = range(n_layer_units) if units is None else units
    variants = variants or [np.arange(n_images)]
    upsampler = BilinearUpsampler((h, w), signatures.shape[1:])
    if ranges is None:
        passes = [units]
    else:  # the compiled ranged counts are dense: as many units at once as fit in their memory
        per_pass = ranged_units_per_pass(ranges[0].shape[1], len(variants), n_signatures, compiled)
        passes = [units[start : start + per_pass] for start in range(0, len(units), per_pass)]
    batches = batch_slices(n_images, batch_size)
    progress = tqdm(
        total=len(passes) * len(batches), desc="unit masks", unit="batch", disable=None if verbose else True
    )
    parts = []
    for chosen in passes:
        block = slice(chosen.start, chosen.stop)
        accumulator = UnitCountAccumulator(
            np.asarray(thresholds)[block], n_signatures, upsampler, len(variants),
            None if tie_cuts is None else np.asarray(tie_cuts)[block],
            None if ranges is None else (ranges[0][block], ranges[1][block]), chosen.start, active, compiled,
        )  # fmt: skip
        for part in batches:
            maps_per_variant = _signature_maps(signatures, variants, part)
            accumulator.add(np.asarray(activations[part, block], dtype=np.float32), maps_per_variant, part.start)
            progress.update()
        names = [str(u) for u in chosen] if ranges is None else range_names(chosen, ranges[0].shape[1])
        parts.append([accumulator.unit_masks(names, variant) for variant in range(len(variants))])
    progress.close()
    if len(parts) == 1:
        return parts[0]
    return [UnitMasks.stack([part[v] for part in parts]) for v in range(len(variants))]


def _signature_maps(signatures: np.ndarray, variants: list[np.ndarray], part: slice) -> list[np.ndarray]:
    """Each variant's signature maps for a batch of images (-1 where an image is left out)."""
    own = np.asarray(signatures[part])
    maps_per_variant = []
    for sources in variants:
        batch_sources = sources[part]
        if np.array_equal(batch_sources, np.arange(part.start, part.stop)):
            maps_per_variant.append(own)
            continue
        ids = np.full_like(own, -1)
        used = batch_sources >= 0
        if used.any():
            order = np.argsort(batch_sources[used])
            read = np.asarray(signatures[batch_sources[used][order]])  # memmaps read fastest in order
            ids[np.flatnonzero(used)[order]] = read
        maps_per_variant.append(ids)
    return maps_per_variant


class _CountBlock:
    """Picklable job: a block of a layer's units counted from the run's record files (each worker reads them)."""

    def __init__(
        self,
        activations: Path,
        signatures: Path,
        thresholds: np.ndarray,
        tie_cuts: np.ndarray,
        ranges: tuple[np.ndarray, np.ndarray] | None,
        n_signatures: int,
        variants: list[np.ndarray],
        count_device: str | None,
    ) -> None:
        self.activations, self.signatures = activations, signatures
        self.thresholds, self.tie_cuts, self.ranges = thresholds, tie_cuts, ranges
        self.n_signatures, self.variants, self.count_device = n_signatures, variants, count_device

    def __call__(self, units: range, verbose: int = 0) -> list[UnitMasks]:
        active: ActivePixels = active_pixels
        if self.count_device is not None:
            from logiclens.vision.activations.torch_counting import TorchActivePixels

            active = TorchActivePixels(self.count_device)
        return count_unit_masks(
            np.load(self.activations, mmap_mode="r"), np.load(self.signatures, mmap_mode="r"), self.thresholds,
            self.n_signatures, self.variants, self.tie_cuts, verbose=verbose, ranges=self.ranges, units=units,
            active=active,
        )  # fmt: skip


def range_names(units: range, k: int) -> list[str]:
    """``"u:k"``: the names of the rows of ranged unit masks."""
    return [f"{u}:{r}" for u in units for r in range(k)]


def save_variants(path: Path, masks: list[UnitMasks], n_ranges: int = 1) -> None:
    stacked = sp.vstack([m.counts for m in masks], format="csr")
    extra = {"n_ranges": np.array(n_ranges)} if n_ranges > 1 else {}
    atomic_savez(
        path,
        {"indptr": stacked.indptr, "indices": stacked.indices, "data": stacked.data,
         "n_variants": np.array(len(masks)), "n_signatures": np.array(stacked.shape[1]), **extra},
    )  # fmt: skip


def load_variants(path: Path) -> list[UnitMasks]:
    data = read_npz(path)
    n_variants, n_signatures = int(data["n_variants"]), int(data["n_signatures"])
    n_rows = len(data["indptr"]) - 1
    stacked = sp.csr_array((data["data"], data["indices"], data["indptr"]), shape=(n_rows, n_signatures))
    per = n_rows // n_variants
    n_ranges = int(data["n_ranges"]) if "n_ranges" in data else 1
    names = range_names(range(per // n_ranges), n_ranges) if n_ranges > 1 else [str(u) for u in range(per)]
    return [UnitMasks(stacked[v * per : (v + 1) * per], names) for v in range(n_variants)]


def masks_stage(
    run: RunDirectory,
    layer: str,
    thresholds_key: str,
    thresholds: np.ndarray,
    cuts: np.ndarray,
    concepts: ConceptSet,
    split: Split,
    settings: DissectionSettings,
    verbose: int,
) -> tuple[str, list[UnitMasks]]:
    """Every unit's masks of ``layer`` in count form, for every variant; writes ``units_<layer>.npz``.

    With several workers (the explainer's ``n_jobs``, or a Ray cluster) the units are counted
    in blocks, one job per block, each reading the record files itself; the counts are
    exact, so the file is the same however the units were cut.
    """
    key = fingerprint(
        "masks", thresholds_key, run.output_digest(f"thresholds:{layer}", layout.thresholds_file(layer)),
        run.output_digest("record", layout.SIGNATURES), split.key, run.output_digest("split", layout.SPLIT),
    )  # fmt: skip
    path = run / layout.units_file(layer)
    if run.is_done(f"masks:{layer}", key):
        return key, load_variants(path)
    stored = read_npz(run / layout.thresholds_file(layer))
    ranges = (stored["range_low"], stored["range_high"]) if "range_low" in stored else None
    job = _CountBlock(
        run / layout.record_file(layer), run / layout.SIGNATURES, thresholds, cuts, ranges, concepts.n_signatures,
        split.variants, settings.count_device,
    )  # fmt: skip
    n_units = len(thresholds)
    workers = n_workers(settings.backend, settings.explainer.n_jobs, settings.ray_address)
    if workers == 1:
        masks = job(range(n_units), verbose)
    else:
        blocks = [range(b.start, b.stop) for b in even_batches(n_units, 2 * workers)]
        gpus = 1.0 if (settings.count_device or "").startswith("cuda") else 0.0
        quiet = None if verbose else True
        parts = list(tqdm(map_batches(job, blocks, settings.backend, workers, settings.ray_address, gpus),
                          total=len(blocks), desc=f"unit masks of {layer}", unit="block", disable=quiet))  # fmt: skip
        masks = [UnitMasks.stack([part[v] for part in parts]) for v in range(len(parts[0]))]
    save_variants(path, masks, 1 if ranges is None else ranges[0].shape[1])
    run.finish(f"masks:{layer}", key, [layout.units_file(layer)], variants=len(masks))
    return key, masks
