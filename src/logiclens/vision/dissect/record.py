"""The record stage: one pass over the probe.

The model's layer outputs go to float16 ``.npy`` memmaps (``record/<layer>.npy``, shape
(images, units, h, w)), each image's annotation pixels are grouped into signatures
(``record/signatures.npy``, shape (images, H, W)), and the concept set's running state is
checkpointed with them, so that an interrupted pass resumes at the last checkpoint.

With ``settings.record_predictions`` the same forward pass runs to the end and the model's
output is kept too (``record/predictions.npy``: logits (images, classes); for heads wider
than :data:`~logiclens.runs.layout.MAX_STORED_CLASSES`, ``record/top_classes.npy`` and
``record/top_logits.npy``), with the probe's class labels (``record/targets.npy``, -1 where
an image has none; see :meth:`~logiclens.vision.probes.base.ProbeDataset.class_label`).
A model whose output is not (n, classes) records no predictions.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap
from tqdm.auto import tqdm

from logiclens.core.concepts import ConceptSet
from logiclens.core.fingerprint import fingerprint
from logiclens.core.io import atomic_savez, read_npz
from logiclens.core.signatures import SignatureIndex
from logiclens.runs import layout
from logiclens.runs.directory import RunDirectory
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["record_stage"]


def record_stage(run: RunDirectory, model: Any, probe: ProbeDataset, settings: DissectionSettings, verbose: int) -> str:
    """Record activations and signatures (resuming an interrupted pass); returns the stage fingerprint."""
    import torch

    from logiclens.hooks import LayerRecorder

    parts: list[Any] = [model.config(), probe.config(), probe.fingerprint(), settings.layers]
    if settings.record_predictions:
        parts.append(
            {"predictions": 1, "n_top": layout.N_TOP_CLASSES, "label_space": getattr(model, "label_space", None)}
        )
    key = fingerprint("record", *parts)
    if run.is_done("record", key):
        return key
    state = run.stage("record", key)
    folder = run / "record"
    folder.mkdir(exist_ok=True)
    n_images = len(probe)
    mask_h, mask_w = probe.mask_size
    completed = int(state["completed"]) if state and not state.get("done") else 0
    resumed = _resume(run, settings, completed) if completed else None
    if resumed is not None:
        index, signatures, outputs, heads, targets = resumed
    else:
        completed = 0
        index = SignatureIndex(len(probe.concept_names))
        signatures = allocate(run / layout.SIGNATURES, np.int32, (n_images, mask_h, mask_w))
        outputs = {}
        heads = {}
        for name in (layout.PREDICTIONS, layout.TOP_CLASSES, layout.TOP_LOGITS, layout.TARGETS):
            (run / name).unlink(missing_ok=True)
        targets = None
        if settings.record_predictions:
            targets = allocate(run / layout.TARGETS, np.int64, (n_images,))
            targets[:] = -1
    class_names = getattr(model, "class_names", None)
    space = probe.class_label_space
    labelled = space is None or space == getattr(model, "label_space", None)
    # channels-last convolutions run about 1.5x faster on CPU (measured on EfficientNet-Lite0)
    module = model.module.to(settings.device, memory_format=torch.channels_last)
    last_checkpoint = time.monotonic()

    def checkpoint(done_images: int) -> None:
        signatures.flush()
        for array in [*outputs.values(), *heads.values(), *([] if targets is None else [targets])]:
            array.flush()
        atomic_savez(folder / "index_state.npz", index.state_dict())
        shapes = {layer: list(array.shape[1:]) for layer, array in outputs.items()}
        run.update("record", key, completed=done_images, n_images=n_images, shapes=shapes, done=False)

    progress = tqdm(total=n_images, initial=completed, desc="recording", unit="img", disable=None if verbose else True)
    recording = LayerRecorder(module, settings.layers, stop_early=not settings.record_predictions)
    with progress, recording as recorder:
        for batch in probe.batches(settings.batch_size, start=completed):
            images = model.preprocess(torch.from_numpy(batch.images))
            images = images.to(settings.device, memory_format=torch.channels_last)
            first, stop = int(batch.indices[0]), int(batch.indices[-1]) + 1
            try:
                captured = recorder.run(images)
            except Exception as error:  # the user's model: say where it failed, on one line
                raise ValueError(
                    f"the model's forward pass failed on images {first}..{stop - 1}: {type(error).__name__}: {error}"
                ) from error
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
                    outputs[layer] = allocate(run / layout.record_file(layer), np.float16, (n_images, *array.shape[1:]))
                outputs[layer][first:stop] = array.astype(np.float16)
            labels = batch.labels
            if settings.record_predictions and recorder.output is not None:
                _keep_head(run, heads, recorder.output, first, stop, n_images)
            if targets is not None and labelled:
                n_classes = _n_classes(heads)
                for offset, image in enumerate(batch.indices):
                    label = probe.class_label(int(image), labels[offset])
                    targets[int(image)] = _class_id(label, class_names, n_classes, int(image))
            ids = index.add(labels.reshape(-1, labels.shape[-1]))
            signatures[first:stop] = ids.reshape(len(batch.indices), mask_h, mask_w)
            progress.update(len(batch.indices))
            if time.monotonic() - last_checkpoint > settings.checkpoint_seconds:
                checkpoint(stop)
                last_checkpoint = time.monotonic()
    checkpoint(n_images)
    concepts = ConceptSet._from_index(index, probe.concept_names, probe.concept_categories, None)
    concepts.save(run / layout.CONCEPTS)
    files = [layout.record_file(layer) for layer in settings.layers] + [layout.SIGNATURES, layout.CONCEPTS]
    files += [name for name in (*heads, *([layout.TARGETS] if targets is not None else []))]
    run.finish("record", key, files)
    return key


def _resume(
    run: RunDirectory, settings: DissectionSettings, completed: int
) -> tuple[SignatureIndex, np.memmap, dict, dict, np.memmap | None] | None:
    """The state of an interrupted recording, or None (with a notice) when its files are damaged."""
    try:
        index = SignatureIndex.from_state_dict(read_npz(run / "record" / "index_state.npz"))
        signatures = open_memmap(run / layout.SIGNATURES, mode="r+")
        outputs = {layer: open_memmap(run / layout.record_file(layer), mode="r+") for layer in settings.layers}
        heads = _open_heads(run, "r+")
        targets = open_memmap(run / layout.TARGETS, mode="r+") if settings.record_predictions else None
    except (OSError, ValueError) as error:
        run.log(f"{run.path}: the interrupted recording cannot be resumed ({error}); recording from the start")
        return None
    arrays = (signatures, *outputs.values(), *heads.values(), *([] if targets is None else [targets]))
    if any(len(array) < completed for array in arrays):
        run.log(f"{run.path}: the interrupted recording's files are shorter than recorded; recording from the start")
        return None
    return index, signatures, outputs, heads, targets


def allocate(path: Path, dtype: type, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` memmap whose disk space is reserved up front.

    Memmaps are sparse files: without the reservation a full disk shows up as a crash
    (SIGBUS) in the middle of a stage. Here it is an ``OSError`` (ENOSPC) naming the file
    before anything is written.
    """
    array = open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
        except OSError as error:  # file systems without fallocate keep the sparse file
            if error.errno == errno.ENOSPC:
                del array
                path.unlink(missing_ok=True)
                raise OSError(errno.ENOSPC, f"no space left on device for {size / 1e6:.1f} MB", str(path)) from None
    return array


def _open_heads(run: RunDirectory, mode: str) -> dict[str, np.memmap]:
    """The prediction files an interrupted pass already started."""
    names = (layout.PREDICTIONS, layout.TOP_CLASSES, layout.TOP_LOGITS)
    return {name: open_memmap(run / name, mode=mode) for name in names if (run / name).exists()}


def _n_classes(heads: dict[str, np.memmap]) -> int | None:
    if layout.PREDICTIONS in heads:
        return int(heads[layout.PREDICTIONS].shape[1])
    return None


def _keep_head(run: RunDirectory, heads: dict[str, np.memmap], output: Any, first: int, stop: int, n: int) -> None:
    """Store a batch of the model's output: all logits, or the top classes of a very wide head."""
    logits = output.float().numpy()
    if logits.ndim != 2:
        return  # not a classifier's (n, classes) output: no predictions for this model
    n_classes = logits.shape[1]
    if not heads:
        if n_classes <= layout.MAX_STORED_CLASSES:
            heads[layout.PREDICTIONS] = allocate(run / layout.PREDICTIONS, np.float32, (n, n_classes))
        else:
            k = layout.N_TOP_CLASSES
            heads[layout.TOP_CLASSES] = allocate(run / layout.TOP_CLASSES, np.int32, (n, k))
            heads[layout.TOP_LOGITS] = allocate(run / layout.TOP_LOGITS, np.float32, (n, k))
    if layout.PREDICTIONS in heads:
        heads[layout.PREDICTIONS][first:stop] = logits
        return
    top = np.argsort(-logits, axis=1, kind="stable")[:, : layout.N_TOP_CLASSES]
    heads[layout.TOP_CLASSES][first:stop] = top
    heads[layout.TOP_LOGITS][first:stop] = np.take_along_axis(logits, top, axis=1)


def _class_id(label: int | str | None, class_names: list[str] | None, n_classes: int | None, image: int) -> int:
    """A probe's class label as a class index of the model (-1: none)."""
    if label is None:
        return -1
    if isinstance(label, str):
        if class_names is None:
            raise ValueError(
                f"image {image} is labelled {label!r} by name, but the model has no class names; "
                "give the model class names or label images by class index"
            )
        try:
            return class_names.index(label)
        except ValueError:
            raise ValueError(f"image {image} is labelled {label!r}, which is not one of the model's classes") from None
    value = int(label)
    if value < 0 or (n_classes is not None and value >= n_classes):
        raise ValueError(f"image {image} has class label {value}, outside the model's 0..{(n_classes or 1) - 1}")
    return value
