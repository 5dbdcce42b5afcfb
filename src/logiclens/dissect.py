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
import scipy.sparse as sp
from numpy.lib.format import open_memmap
from tqdm.auto import tqdm

from logiclens._signatures import SignatureIndex
from logiclens.activations.counting import UnitCountAccumulator
from logiclens.activations.thresholds import StreamingTopQuantile
from logiclens.activations.ties import NO_TIES, tie_cuts
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
    holdout : float
        Fraction of images held out (by the probe's group key, e.g. the pasted object, so
        that held-out images show new objects); 0 searches on every image.
    n_null : int
        Permutations of the null (each unit's maps counted against other search images'
        annotations); 0 skips it.
    alpha : float
        False-discovery rate of the ``significant`` flag (Benjamini-Hochberg over units).
    split_seed : int
        Seed of the split and the permutations.
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
    holdout: float = 0.2
    n_null: int = 20
    alpha: float = 0.05
    split_seed: int = 0
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
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must lie in [0, 1), got {self.holdout}")
        if self.n_null < 0:
            raise ValueError(f"n_null must be >= 0, got {self.n_null}")


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
    # channels-last convolutions run about 1.5x faster on CPU (measured on EfficientNet-Lite0)
    module = model.module.to(settings.device, memory_format=torch.channels_last)
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
            images = model.preprocess(torch.from_numpy(batch.images))
            images = images.to(settings.device, memory_format=torch.channels_last)
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
    thresholds = np.array([quantile.threshold() for quantile in quantiles])
    above = np.array([q.count_above(float(np.float32(t))) for q, t in zip(quantiles, thresholds)], np.int64)
    return thresholds, above


def _thresholds(
    run: RunDirectory,
    layer: str,
    record_key: str,
    mask_size: tuple[int, int],
    settings: DissectionSettings,
    verbose: int,
) -> tuple[str, np.ndarray, np.ndarray]:
    key = fingerprint(
        "thresholds", record_key, layer, settings.threshold_mode, settings.top_fraction, settings.fixed_threshold
    )
    path = run / f"thresholds_{layer_file_name(layer)}.npz"
    if run.is_done(f"thresholds:{layer}", key):
        data = read_npz(path)
        return key, data["thresholds"], data["tie_cuts"]
    activations = np.load(run / "record" / f"{layer_file_name(layer)}.npy", mmap_mode="r")
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
    run.update(f"thresholds:{layer}", key, done=True, mode=settings.threshold_mode, tied_units=int((cuts >= 0).sum()))
    return key, thresholds, cuts


# ------------------------------------------------------------------------------ split
@dataclass
class _Split:
    """Which images are searched and which held out, and the permutations of the null.

    ``variants[v][i]`` is the image whose annotations image i's activations are counted
    against in variant v, or -1 to leave image i out: variant 0 is the search part,
    variant 1 the held-out part (when there is one), then one variant per permutation.
    """

    search: np.ndarray
    heldout: np.ndarray
    variants: list[np.ndarray]
    key: str

    @property
    def n_null(self) -> int:
        return len(self.variants) - (2 if len(self.heldout) else 1)


def _split(run: RunDirectory, record_key: str, probe: ProbeDataset, settings: DissectionSettings) -> _Split:
    from logiclens.validation import split_examples

    n_images = len(probe)
    key = fingerprint("split", record_key, settings.holdout, settings.n_null, settings.split_seed)
    path = run / "split.npz"
    if run.is_done("split", key):
        data = read_npz(path)
        return _Split(data["search"], data["heldout"], list(data["variants"]), key)
    if settings.holdout:
        groups = [probe.group(i) for i in range(n_images)]
        search, heldout = split_examples(n_images, settings.holdout, settings.split_seed, groups)
    else:
        search, heldout = np.arange(n_images), np.empty(0, np.intp)

    def variant(images: np.ndarray, sources: np.ndarray) -> np.ndarray:
        out = np.full(n_images, -1, np.int64)
        out[images] = sources
        return out

    variants = [variant(search, search)]
    if len(heldout):
        variants.append(variant(heldout, heldout))
    rng = np.random.default_rng([settings.split_seed, 1])
    variants += [variant(search, rng.permutation(search)) for _ in range(settings.n_null)]
    atomic_savez(path, {"search": search, "heldout": heldout, "variants": np.array(variants)})
    run.update("split", key, done=True, n_search=len(search), n_heldout=len(heldout))
    return _Split(search, heldout, variants, key)


def _split_weights(signatures: np.ndarray, images: np.ndarray, n_signatures: int) -> np.ndarray:
    """Positions per signature over some images."""
    weights = np.zeros(n_signatures, np.int64)
    for part in _image_batches(len(images), 256):
        weights += np.bincount(np.asarray(signatures[images[part]]).ravel(), minlength=n_signatures)
    return weights


# ------------------------------------------------------------------------------ masks
def count_unit_masks(
    activations: np.ndarray,
    signatures: np.ndarray,
    thresholds: np.ndarray,
    n_signatures: int,
    variants: list[np.ndarray] | None = None,
    tie_cuts: np.ndarray | None = None,
    batch_size: int = 64,
    verbose: int = 0,
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
        Tie-breaking cuts (see :mod:`logiclens.activations.ties`).

    Returns
    -------
    list of UnitMasks, one per variant
    """
    n_images, n_units, h, w = activations.shape
    variants = variants or [np.arange(n_images)]
    upsampler = BilinearUpsampler((h, w), signatures.shape[1:])
    accumulator = UnitCountAccumulator(thresholds, n_signatures, upsampler, len(variants), tie_cuts)
    batches = _image_batches(n_images, batch_size)
    for part in tqdm(batches, desc="unit masks", unit="batch", disable=None if verbose else True):
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
        accumulator.add(np.asarray(activations[part], dtype=np.float32), maps_per_variant, part.start)
    names = [str(u) for u in range(n_units)]
    return [accumulator.unit_masks(names, variant) for variant in range(len(variants))]


def _save_variants(path: Path, masks: list[UnitMasks]) -> None:
    stacked = sp.vstack([m.counts for m in masks], format="csr")
    atomic_savez(
        path,
        {"indptr": stacked.indptr, "indices": stacked.indices, "data": stacked.data,
         "n_variants": np.array(len(masks)), "n_signatures": np.array(stacked.shape[1])},
    )  # fmt: skip


def _load_variants(path: Path) -> list[UnitMasks]:
    data = read_npz(path)
    n_variants, n_signatures = int(data["n_variants"]), int(data["n_signatures"])
    n_rows = len(data["indptr"]) - 1
    stacked = sp.csr_array((data["data"], data["indices"], data["indptr"]), shape=(n_rows, n_signatures))
    per = n_rows // n_variants
    names = [str(u) for u in range(per)]
    return [UnitMasks(stacked[v * per : (v + 1) * per], names) for v in range(n_variants)]


def _masks(
    run: RunDirectory,
    layer: str,
    thresholds_key: str,
    thresholds: np.ndarray,
    cuts: np.ndarray,
    concepts: ConceptSet,
    split: _Split,
    verbose: int,
) -> tuple[str, list[UnitMasks]]:
    key = fingerprint("masks", thresholds_key, split.key)
    path = run / f"units_{layer_file_name(layer)}.npz"
    if run.is_done(f"masks:{layer}", key):
        return key, _load_variants(path)
    activations = np.load(run / "record" / f"{layer_file_name(layer)}.npy", mmap_mode="r")
    signatures = np.load(run / "record" / "signatures.npy", mmap_mode="r")
    masks = count_unit_masks(
        activations, signatures, thresholds, concepts.n_signatures, split.variants, cuts, verbose=verbose
    )
    _save_variants(path, masks)
    run.update(f"masks:{layer}", key, done=True, variants=len(masks))
    return key, masks


# ------------------------------------------------------------------------------ search
def _weighted(concepts: ConceptSet, weights: np.ndarray, masks: list[UnitMasks]) -> tuple[ConceptSet, list[UnitMasks]]:
    """The concept set over the positions counted by ``weights``, empty signatures dropped."""
    keep = np.flatnonzero(weights > 0)
    view = ConceptSet(
        concepts.names, concepts.signature_concepts[keep], weights[keep], concepts.categories, None,
        concepts.neighbors,
    )  # fmt: skip
    return view, [UnitMasks(m.counts[:, keep], m.names) for m in masks]


def _search(
    run: RunDirectory,
    layer: str,
    masks_key: str,
    masks: list[UnitMasks],
    concepts: ConceptSet,
    thresholds: np.ndarray,
    split: _Split,
    settings: DissectionSettings,
    n_jobs: int,
    verbose: int,
) -> pd.DataFrame:
    from logiclens._validated import add_heldout_columns, add_null_columns
    from logiclens.explainer import _run_units
    from logiclens.io import atomic_write_text
    from logiclens.search.beam import PrimitiveTable

    key = fingerprint("search", masks_key, settings.search, settings.alpha)
    path = run / f"results_{layer_file_name(layer)}.csv"
    top_path = run / f"top_formulas_{layer_file_name(layer)}.csv"
    if run.is_done(f"search:{layer}", key):
        return pd.read_csv(path, dtype={"unit": str})
    signatures = np.load(run / "record" / "signatures.npy", mmap_mode="r")
    weights = _split_weights(signatures, split.search, concepts.n_signatures)
    search_concepts, (search_masks, *others) = _weighted(concepts, weights, masks)
    explainer = CompositionalExplainer(**settings.search, n_jobs=n_jobs, verbose=verbose)
    explainer._fit_masks(search_masks, search_concepts, explainer._settings())
    if len(split.heldout):
        held_weights = _split_weights(signatures, split.heldout, concepts.n_signatures)
        held_concepts, (held_masks,) = _weighted(concepts, held_weights, [masks[1]])
        add_heldout_columns(explainer, explainer.evaluate(held_masks, held_concepts))
        others = others[1:]
    if others:
        beam = explainer._settings()
        table = PrimitiveTable(search_concepts, beam.min_support, beam.use_neighbors)
        stacked = UnitMasks(sp.vstack([m.counts for m in others], format="csr"))  # one parallel run
        results = _run_units(table, stacked, beam, n_jobs, verbose)
        values = [r.best.value if r.best is not None else np.nan for r in results]
        null = np.array(values).reshape(len(others), len(search_masks)).T
        add_null_columns(explainer, null, settings.alpha)
    frame = explainer.explanations_.copy()
    frame.insert(0, "layer", layer)
    frame.insert(frame.columns.get_loc("length") + 1, "threshold", thresholds)
    atomic_write_text(path, frame.to_csv(index=False))
    atomic_write_text(top_path, explainer.top_formulas_.assign(layer=layer).to_csv(index=False))
    atomic_write_text(run / f"best_by_length_{layer_file_name(layer)}.csv", explainer.best_by_length_.to_csv())
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
    split = _split(run, record_key, probe, settings)
    frames = []
    for layer in settings.layers:
        thresholds_key, thresholds, cuts = _thresholds(run, layer, record_key, probe.mask_size, settings, verbose)
        masks_key, masks = _masks(run, layer, thresholds_key, thresholds, cuts, concepts, split, verbose)
        frames.append(_search(run, layer, masks_key, masks, concepts, thresholds, split, settings, n_jobs, verbose))
    results = pd.concat(frames, ignore_index=True)
    from logiclens.io import atomic_write_text

    atomic_write_text(run / "results.csv", results.to_csv(index=False))
    return results


def random_init_copy(model: Any, seed: int = 0) -> Any:
    """A copy of a model adapter whose network is randomly re-initialised (a control).

    Every submodule with ``reset_parameters`` is reset (torch's default initialisation)
    and batch-norm running statistics are cleared, with a fixed seed.
    """
    import copy

    import torch

    clone = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in clone.module.modules():
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    clone.name = f"{model.name} (random init, seed {seed})"
    clone.weights_path = clone.weights_sha256 = None
    return clone


def summarize(results: pd.DataFrame, detector_iou: float = 0.04) -> pd.DataFrame:
    """Per layer: how many units are explained, how well, and how much survives validation.

    Columns: ``units``; ``iou>0.04`` (NetDissect's detector line, on the search images);
    ``mean_iou`` and ``mean_atomic_iou`` (single concepts); and, where the run has them,
    ``mean_heldout_iou``, ``significant`` (units whose best formula beats the permutation
    null at the run's false-discovery rate), ``significant_heldout_iou`` (their mean held-out
    IoU) and ``null>0.04`` (units whose mean best IoU under the null is above the line).
    """
    grouped = results.groupby("layer", sort=False)
    summary = pd.DataFrame(
        {
            "units": grouped.size(),
            f"iou>{detector_iou}": grouped["iou"].apply(lambda s: int((s > detector_iou).sum())),
            "mean_iou": grouped["iou"].mean(),
            "mean_atomic_iou": grouped["best_atomic_iou"].mean(),
        }
    )
    if "heldout_iou" in results and results["heldout_iou"].notna().any():
        summary["mean_heldout_iou"] = grouped["heldout_iou"].mean()
    if "significant" in results and results["null_mean"].notna().any():
        flags = results["significant"].fillna(False).astype(bool)
        summary["significant"] = flags.groupby(results["layer"], sort=False).sum().astype(int)
        summary["significant_heldout_iou"] = (
            results["heldout_iou"].where(flags).groupby(results["layer"], sort=False).mean()
        )
        summary[f"null>{detector_iou}"] = grouped["null_mean"].apply(lambda s: int((s > detector_iou).sum()))
    return summary
