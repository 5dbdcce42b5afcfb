"""The thresholds stage: each unit's exact top quantile, or a fixed value.

Per unit, the exact ``1 - q`` quantile, over the layer's own spatial positions
(``threshold_mode="layer"``, the default, as NetDissect and the authors' code compute it)
or over the bilinearly upsampled activations (``"upsampled"``, as the paper defines it);
or a fixed value (``"fixed"``). Ties at the threshold are broken by a fixed hash key (see
:mod:`logiclens.vision.activations.ties`).
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from logiclens.core.batching import batch_slices
from logiclens.core.fingerprint import fingerprint
from logiclens.core.io import atomic_savez, read_npz
from logiclens.runs import layout
from logiclens.runs.directory import RunDirectory
from logiclens.vision.activations.ranges import activation_ranges
from logiclens.vision.activations.thresholds import StreamingTopQuantile
from logiclens.vision.activations.ties import NO_TIES, tie_cuts
from logiclens.vision.activations.upsample import BilinearUpsampler
from logiclens.vision.dissect.settings import DissectionSettings

__all__ = ["compute_thresholds", "thresholds_stage"]


def compute_thresholds(
    activations: np.ndarray,
    top_fraction: float,
    mode: str,
    mask_size: tuple[int, int],
    batch_size: int = 64,
    verbose: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-unit thresholds from (images, units, h, w) activations (streamed by image).

    Returns
    -------
    thresholds : float64 (units,)
        The ``1 - q`` quantile of each unit's values.
    above : int64 (units,)
        How many values exceed each threshold (as float32, the precision masks use).
    """
    n_images, n_units, h, w = activations.shape
    upsampled = mode == "upsampled"
    per_image = mask_size[0] * mask_size[1] if upsampled else h * w
    quantiles = [StreamingTopQuantile(n_images * per_image, top_fraction) for _ in range(n_units)]
    upsampler = BilinearUpsampler((h, w), mask_size) if upsampled else None
    batches = batch_slices(n_images, batch_size)
    for part in tqdm(batches, desc="thresholds", unit="batch", disable=None if verbose else True):
        maps = np.asarray(activations[part], dtype=np.float32)
        maxima = maps.reshape(len(maps), n_units, -1).max(axis=2)
        for unit, quantile in enumerate(quantiles):
            floor = quantile.floor()
            passing = maxima[:, unit] > floor
            unit_maps = maps[passing, unit]
            if upsampler is None:
                values = unit_maps
            else:  # only blocks of pixels that can exceed the floor are upsampled
                values = upsampler.blocks(unit_maps, np.full(len(unit_maps), floor))[3]
            quantile.skip(len(maps) * per_image - values.size)
            quantile.add(values)
    thresholds = np.array([quantile.threshold() for quantile in quantiles])
    above = np.array([q.count_above(float(np.float32(t))) for q, t in zip(quantiles, thresholds)], np.int64)
    return thresholds, above


def thresholds_stage(
    run: RunDirectory,
    layer: str,
    record_key: str,
    mask_size: tuple[int, int],
    settings: DissectionSettings,
    verbose: int,
) -> tuple[str, np.ndarray, np.ndarray]:
    """The layer's thresholds and tie cuts (and, with ``settings.ranges > 1``, its ranges in the file)."""
    key = fingerprint(
        "thresholds", record_key, run.output_digest("record", layout.record_file(layer)), layer,
        settings.threshold_mode, settings.top_fraction, settings.fixed_threshold,
        *([{"ranges": settings.ranges}] if settings.ranges > 1 else []),
    )  # fmt: skip
    path = run / layout.thresholds_file(layer)
    if run.is_done(f"thresholds:{layer}", key):
        data = read_npz(path)
        return key, data["thresholds"], data["tie_cuts"]
    activations = np.load(run / layout.record_file(layer), mmap_mode="r")
    if settings.ranges > 1:  # each range's lower bound stands for the unit's threshold
        low, high = activation_ranges(activations, settings.ranges)
        thresholds, cuts = low[:, 0], np.full(activations.shape[1], NO_TIES)
        atomic_savez(path, {"thresholds": thresholds, "tie_cuts": cuts, "range_low": low, "range_high": high})
        run.finish(f"thresholds:{layer}", key, [layout.thresholds_file(layer)], mode="ranges", ranges=settings.ranges)
        return key, thresholds, cuts
    if settings.threshold_mode == "fixed":
        thresholds = np.full(activations.shape[1], settings.fixed_threshold, dtype=np.float64)
        cuts = np.full(activations.shape[1], NO_TIES)
    else:
        thresholds, above = compute_thresholds(
            activations, settings.top_fraction, settings.threshold_mode, mask_size, verbose=verbose
        )
        upsampler = (
            BilinearUpsampler(activations.shape[2:], mask_size) if settings.threshold_mode == "upsampled" else None
        )
        cuts = tie_cuts(activations, thresholds, above, settings.top_fraction, upsampler)
    atomic_savez(path, {"thresholds": thresholds, "tie_cuts": cuts})
    run.finish(
        f"thresholds:{layer}", key, [layout.thresholds_file(layer)], mode=settings.threshold_mode,
        tied_units=int((cuts >= 0).sum()),
    )  # fmt: skip
    return key, thresholds, cuts
