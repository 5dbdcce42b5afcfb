"""Vision dissection end to end: images -> activations -> thresholds -> unit masks -> formulas.

:func:`dissect` runs the stages of a job in a run directory (see :mod:`logiclens.run`):

``record``
    One pass over the probe: the model's layer outputs go to float16 ``.npy`` memmaps
    (``record/<layer>.npy``, shape (images, units, h, w)), each image's annotation pixels
    are grouped into signatures (``record/signatures.npy``, shape (images, H, W)), and the
    concept set's running state is checkpointed with them, so an interrupted pass resumes
    at the last checkpoint.
``thresholds``
    Per unit, the exact ``1 - q`` quantile, over the layer's own spatial positions
    (``threshold_mode="layer"``, the default, as NetDissect and the authors' code compute
    it) or over the bilinearly upsampled activations (``"upsampled"``, as the paper
    defines it); or a fixed value (``"fixed"``).
``masks``
    Each (image, unit) map is upsampled to the annotation size, thresholded with ``>`` and
    counted per signature; maps whose maximum cannot reach the threshold are skipped.
``search``
    The compositional search for every unit.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap
from tqdm.auto import tqdm

from logiclens._signatures import SignatureIndex
from logiclens.activations.counting import UnitCountAccumulator
from logiclens.activations.thresholds import StreamingTopQuantile
from logiclens.activations.upsample import BilinearUpsampler
from logiclens.concepts import ConceptSet
from logiclens.explainer import CompositionalExplainer
from logiclens.io import atomic_savez, read_npz
from logiclens.masks import UnitMasks
from logiclens.probes.base import ProbeDataset
from logiclens.run import RunDirectory, environment, fingerprint

__all__ = ["DissectionSettings", "dissect", "layer_file_name"]

THRESHOLD_MODES = ("layer", "upsampled", "fixed")
RESULT_COLUMNS = ["layer", "unit", "formula", "iou", "length", "threshold", "best_atomic", "best_atomic_iou"]


def layer_file_name(layer: str) -> str:
    """A file-system-safe name for a layer (``layer4.1.relu#1`` -> ``layer4.1.relu_1``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", layer)


@dataclass
class DissectionSettings:
    """What a dissection computes, apart from the model and the probe.

    Parameters
    ----------
    layers : list of str
        Dotted layer names (``LayerRecorder`` syntax).
    top_fraction : float
        q in P(activation > T) = q (NetDissect: 0.005).
    threshold_mode : {"layer", "upsampled", "fixed"}
    fixed_threshold : float
        Used when ``threshold_mode="fixed"`` (e.g. 0.0 for post-ReLU units).
    batch_size : int
    device : str
        ``"cpu"`` or ``"cuda"``.
    search : dict
        Parameters of :class:`~logiclens.CompositionalExplainer`.
    checkpoint_seconds : float
        How often the record stage saves its state.
    """

    layers: list[str]
    top_fraction: float = 0.005
    threshold_mode: str = "layer"
    fixed_threshold: float = 0.0
    batch_size: int = 32
    device: str = "cpu"
    search: dict[str, Any] = field(default_factory=lambda: {"max_length": 3, "beam_size": 10})
    checkpoint_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("no layers to dissect")
        if self.threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {self.threshold_mode!r}")
        if not 0.0 < self.top_fraction < 1.0:
            raise ValueError(f"the top fraction q must lie in (0, 1), got {self.top_fraction}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


# ------------------------------------------------------------------------------ record
def _record(run: RunDirectory, model: Any, probe: ProbeDataset, settings: DissectionSettings, verbose: int) -> str:
    """Record activations and signatures; returns the stage fingerprint."""
    import torch

    from logiclens.activations.hooks import LayerRecorder

    key = fingerprint("record", model.config(), probe.config(), probe.fingerprint(), settings.layers)
    state = run.stage("record", key)
    if state and state.get("done"):
        return key
    folder = run / "record"
    folder.mkdir(exist_ok=True)
    n_images = len(probe)
    mask_h, mask_w = probe.mask_size
    completed = int(state["completed"]) if state else 0
    if completed:
        index = SignatureIndex.from_state_dict(read_npz(folder / "index_state.npz"))
        signatures = open_memmap(folder / "signatures.npy", mode="r+")
        outputs = {layer: open_memmap(folder / f"{layer_file_name(layer)}.npy", mode="r+") for layer in settings.layers}
    else:
        index = SignatureIndex(len(probe.concept_names))
        signatures = open_memmap(folder / "signatures.npy", mode="w+", dtype=np.int32, shape=(n_images, mask_h, mask_w))
        outputs = {}
    module = model.module.to(settings.device)
    last_checkpoint = time.monotonic()

    def checkpoint(done_images: int) -> None:
        signatures.flush()
        for array in outputs.values():
            array.flush()
        atomic_savez(folder / "index_state.npz", index.state_dict())
        shapes = {layer: list(array.shape[1:]) for layer, array in outputs.items()}
        run.update("record", key, completed=done_images, n_images=n_images, shapes=shapes, done=False)

    progress = tqdm(total=n_images, initial=completed, desc="recording", unit="img", disable=None if verbose else True)
    with progress, LayerRecorder(module, settings.layers) as recorder:
        for batch in probe.batches(settings.batch_size, start=completed):
            images = model.preprocess(torch.from_numpy(batch.images)).to(settings.device)
            captured = recorder.run(images)
            first, stop = int(batch.indices[0]), int(batch.indices[-1]) + 1
            for layer, tensor in captured.items():
                array = tensor.float().numpy()
                if array.ndim == 2:
                    array = array[:, :, None, None]
                if array.ndim != 4:
                    raise ValueError(f"layer {layer!r} has output shape {tuple(tensor.shape)}; expected (n, C, h, w)")
                if not np.isfinite(array).all():
                    raise ValueError(
                        f"layer {layer!r} produced NaN or infinite activations on images {first}..{stop - 1}"
                    )
                if layer not in outputs:
                    outputs[layer] = open_memmap(
                        folder / f"{layer_file_name(layer)}.npy", mode="w+", dtype=np.float16,
                        shape=(n_images, *array.shape[1:]),
                    )  # fmt: skip
                outputs[layer][first:stop] = array.astype(np.float16)
            labels = batch.labels
            ids = index.add(labels.reshape(-1, labels.shape[-1]))
            signatures[first:stop] = ids.reshape(len(batch.indices), mask_h, mask_w)
            progress.update(len(batch.indices))
            if time.monotonic() - last_checkpoint > settings.checkpoint_seconds:
                checkpoint(stop)
                last_checkpoint = time.monotonic()
    checkpoint(n_images)
    concepts = ConceptSet._from_index(index, probe.concept_names, probe.concept_categories, None)
    concepts.save(run / "concepts.npz")
    run.update("record", key, done=True)
    return key


# ------------------------------------------------------------------------------ thresholds
def _image_batches(n_images: int, batch_size: int) -> list[slice]:
    return [slice(start, min(start + batch_size, n_images)) for start in range(0, n_images, batch_size)]


def compute_thresholds(
    activations: np.ndarray,
    top_fraction: float,
    mode: str,
    mask_size: tuple[int, int],
    batch_size: int = 64,
    verbose: int = 0,
) -> np.ndarray:
    """Exact per-unit thresholds from (images, units, h, w) activations (streamed by image)."""
    n_images, n_units, h, w = activations.shape
    upsampled = mode == "upsampled"
    per_image = mask_size[0] * mask_size[1] if upsampled else h * w
    quantiles = [StreamingTopQuantile(n_images * per_image, top_fraction) for _ in range(n_units)]
    upsampler = BilinearUpsampler((h, w), mask_size) if upsampled else None
    batches = _image_batches(n_images, batch_size)
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
    return np.array([quantile.threshold() for quantile in quantiles])


def _thresholds(
    run: RunDirectory,
    layer: str,
    record_key: str,
    mask_size: tuple[int, int],
    settings: DissectionSettings,
    verbose: int,
) -> tuple[str, np.ndarray]:
    key = fingerprint(
        "thresholds", record_key, layer, settings.threshold_mode, settings.top_fraction, settings.fixed_threshold
    )
    path = run / f"thresholds_{layer_file_name(layer)}.npz"
    if run.is_done(f"thresholds:{layer}", key):
        return key, read_npz(path)["thresholds"]
    activations = np.load(run / "record" / f"{layer_file_name(layer)}.npy", mmap_mode="r")
    if settings.threshold_mode == "fixed":
        thresholds = np.full(activations.shape[1], settings.fixed_threshold, dtype=np.float64)
    else:
        thresholds = compute_thresholds(
            activations, settings.top_fraction, settings.threshold_mode, mask_size, verbose=verbose
        )
    atomic_savez(path, {"thresholds": thresholds})
    run.update(f"thresholds:{layer}", key, done=True, mode=settings.threshold_mode)
    return key, thresholds


# ------------------------------------------------------------------------------ masks
def count_unit_masks(
    activations: np.ndarray,
    signatures: np.ndarray,
    thresholds: np.ndarray,
    n_signatures: int,
    batch_size: int = 64,
    verbose: int = 0,
) -> UnitMasks:
    """Upsample, threshold and count every unit's active pixels per signature."""
    n_images, n_units, h, w = activations.shape
    accumulator = UnitCountAccumulator(thresholds, n_signatures, BilinearUpsampler((h, w), signatures.shape[1:]))
    for part in tqdm(
        _image_batches(n_images, batch_size), desc="unit masks", unit="batch", disable=None if verbose else True
    ):
        accumulator.add(np.asarray(activations[part], dtype=np.float32), np.asarray(signatures[part]))
    return accumulator.unit_masks([str(u) for u in range(n_units)])


def _masks(
    run: RunDirectory, layer: str, thresholds_key: str, thresholds: np.ndarray, concepts: ConceptSet, verbose: int
) -> tuple[str, UnitMasks]:
    key = fingerprint("masks", thresholds_key)
    path = run / f"units_{layer_file_name(layer)}.npz"
    if run.is_done(f"masks:{layer}", key):
        return key, UnitMasks.load(path)
    activations = np.load(run / "record" / f"{layer_file_name(layer)}.npy", mmap_mode="r")
    signatures = np.load(run / "record" / "signatures.npy", mmap_mode="r")
    masks = count_unit_masks(activations, signatures, thresholds, concepts.n_signatures, verbose=verbose)
    masks.save(path)
    run.update(f"masks:{layer}", key, done=True)
    return key, masks


# ------------------------------------------------------------------------------ search
def _search(
    run: RunDirectory,
    layer: str,
    masks_key: str,
    masks: UnitMasks,
    concepts: ConceptSet,
    thresholds: np.ndarray,
    settings: DissectionSettings,
    n_jobs: int,
    verbose: int,
) -> pd.DataFrame:
    key = fingerprint("search", masks_key, settings.search)
    path = run / f"results_{layer_file_name(layer)}.csv"
    top_path = run / f"top_formulas_{layer_file_name(layer)}.csv"
    if run.is_done(f"search:{layer}", key):
        return pd.read_csv(path, dtype={"unit": str})
    explainer = CompositionalExplainer(**settings.search, n_jobs=n_jobs, verbose=verbose).fit(masks, concepts)
    frame = explainer.explanations_.copy()
    frame.insert(0, "layer", layer)
    frame.insert(frame.columns.get_loc("length") + 1, "threshold", thresholds)
    from logiclens.io import atomic_write_text

    atomic_write_text(path, frame.to_csv(index=False))
    atomic_write_text(top_path, explainer.top_formulas_.assign(layer=layer).to_csv(index=False))
    run.update(f"search:{layer}", key, done=True)
    return frame


# ------------------------------------------------------------------------------ driver
def dissect(
    model: Any,
    probe: ProbeDataset,
    out: str | Path,
    settings: DissectionSettings,
    n_jobs: int = 1,
    verbose: int = 1,
) -> pd.DataFrame:
    """Explain every unit of the requested layers; resumable.

    Parameters
    ----------
    model : logiclens.models.ModelAdapter
        A model with ``module``, ``preprocess`` and ``config()``.
    probe : ProbeDataset
    out : path
        Run directory. Rerunning with the same inputs reuses finished stages and resumes
        an interrupted recording.
    settings : DissectionSettings
    n_jobs, verbose : int

    Returns
    -------
    pandas.DataFrame
        One row per (layer, unit), also written to ``out/results.csv``.
    """
    run = RunDirectory(out)
    config = {
        "model": model.config(),
        "probe": probe.config(),
        "n_concepts": len(probe.concept_names),
        "settings": asdict(settings),
    }
    run.write_json("config.json", config)
    run.write_json("environment.json", environment())
    record_key = _record(run, model, probe, settings, verbose)
    concepts = ConceptSet.load(run / "concepts.npz")
    frames = []
    for layer in settings.layers:
        thresholds_key, thresholds = _thresholds(run, layer, record_key, probe.mask_size, settings, verbose)
        masks_key, masks = _masks(run, layer, thresholds_key, thresholds, concepts, verbose)
        frames.append(_search(run, layer, masks_key, masks, concepts, thresholds, settings, n_jobs, verbose))
    results = pd.concat(frames, ignore_index=True)
    from logiclens.io import atomic_write_text

    atomic_write_text(run / "results.csv", results.to_csv(index=False))
    return results


def summarize(results: pd.DataFrame, detector_iou: float = 0.04) -> pd.DataFrame:
    """Per layer: units, units above the detector IoU, mean IoU, mean NetDissect IoU."""
    grouped = results.groupby("layer", sort=False)
    return pd.DataFrame(
        {
            "units": grouped.size(),
            f"iou>{detector_iou}": grouped["iou"].apply(lambda s: int((s > detector_iou).sum())),
            "mean_iou": grouped["iou"].mean(),
            "mean_atomic_iou": grouped["best_atomic_iou"].mean(),
        }
    )
