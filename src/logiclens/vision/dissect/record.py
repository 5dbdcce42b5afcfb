"""The record stage: one pass over the probe.

The model's layer outputs go to float16 ``.npy`` memmaps (``record/<layer>.npy``, shape
(images, units, h, w)), each image's annotation pixels are grouped into signatures
(``record/signatures.npy``, shape (images, H, W)), and the concept set's running state is
checkpointed with them, so that an interrupted pass resumes at the last checkpoint.
"""

from __future__ import annotations

import time
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
        signatures = open_memmap(run / layout.SIGNATURES, mode="r+")
        outputs = {layer: open_memmap(run / layout.record_file(layer), mode="r+") for layer in settings.layers}
    else:
        index = SignatureIndex(len(probe.concept_names))
        signatures = open_memmap(run / layout.SIGNATURES, mode="w+", dtype=np.int32, shape=(n_images, mask_h, mask_w))
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
                        run / layout.record_file(layer), mode="w+", dtype=np.float16,
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
    concepts.save(run / layout.CONCEPTS)
    run.update("record", key, done=True)
    return key
