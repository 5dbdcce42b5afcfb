"""The record stage: the probe's images through the model, once, resumably.

In this process (``backend="local"``), one pass (:func:`~logiclens.vision.dissect.recording.record_pass`)
over the probe writes the record files, and the concept set's running state is checkpointed
with them, so that an interrupted pass resumes at the last checkpoint. With ``backend="ray"``
the probe is recorded in shards on the cluster and merged into the same files
(:mod:`logiclens.vision.dissect.shards`).
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from logiclens.core.concepts import ConceptSet
from logiclens.core.fingerprint import fingerprint
from logiclens.core.io import atomic_savez, read_npz
from logiclens.core.signatures import SignatureIndex
from logiclens.runs import layout
from logiclens.runs.directory import RunDirectory
from logiclens.vision.dissect.recording import ActivationFile, Store, predicting, record_pass
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["record_key", "record_stage"]


def record_key(model: Any, probe: ProbeDataset, settings: DissectionSettings) -> str:
    """The record stage's fingerprint: what its files depend on (not where they were computed)."""
    extra = settings.layout_config()
    if settings.sae is not None:
        from logiclens.sae import load_sae

        extra["sae"] = load_sae(settings.sae).config()
    if settings.autocast is not None:
        extra["autocast"] = settings.autocast
    parts: list[Any] = [model.config(), probe.config(), probe.fingerprint(), settings.layers]
    parts += [extra] if extra else []
    if predicting(model, settings):
        parts.append(
            {"predictions": 1, "n_top": layout.N_TOP_CLASSES, "label_space": getattr(model, "label_space", None)}
        )
    return fingerprint("record", *parts)


def record_stage(run: RunDirectory, model: Any, probe: ProbeDataset, settings: DissectionSettings, verbose: int) -> str:
    """Record activations and signatures (resuming an interrupted pass); returns the stage fingerprint.

    ``model`` is a model adapter or an :class:`ActivationFile`. With ``settings.backend="ray"``
    a model's pass runs in shards on the cluster (:mod:`logiclens.vision.dissect.shards`);
    the files are the same.
    """
    key = record_key(model, probe, settings)
    if run.is_done("record", key):
        return key
    if settings.backend == "ray" and not isinstance(model, ActivationFile):
        from logiclens.vision.dissect.shards import record_sharded

        store, index = record_sharded(run, key, model, probe, settings, verbose)
    else:
        store, index = _record_local(run, key, model, probe, settings, verbose)
    concepts = ConceptSet._from_index(index, probe.concept_names, probe.concept_categories, None)
    concepts.save(run / layout.CONCEPTS)
    info: dict[str, Any] = {}
    if settings.sae is not None:  # latents never active on the probe
        info["dead_units"] = {layer: _dead_units(store.outputs[layer]) for layer in settings.layers}
    run.finish("record", key, [*store.files(settings.layers), layout.CONCEPTS], **info)
    shutil.rmtree(run / "record" / "shards", ignore_errors=True)  # merged: a sharded pass's own files
    return key


def _record_local(
    run: RunDirectory, key: str, model: Any, probe: ProbeDataset, settings: DissectionSettings, verbose: int
) -> tuple[Store, SignatureIndex]:
    """The pass in this process, checkpointed every ``settings.checkpoint_seconds``."""
    state = run.stage("record", key)
    folder = run / "record"
    folder.mkdir(exist_ok=True)
    n_images = len(probe)
    predict = predicting(model, settings)
    completed = int(state["completed"]) if state and not state.get("done") else 0
    resumed = _resume(run, settings.layers, predict, completed, n_images) if completed else None
    if resumed is not None:
        store, index = resumed
    else:
        completed = 0
        index = SignatureIndex(len(probe.concept_names))
        store = Store(run.path, 0, n_images, probe.mask_size, predict)
    last_checkpoint = time.monotonic()

    def checkpoint(done_images: int) -> None:
        store.flush()
        atomic_savez(folder / "index_state.npz", index.state_dict())
        shapes = {layer: list(array.shape[1:]) for layer, array in store.outputs.items()}
        run.update("record", key, completed=done_images, n_images=n_images, shapes=shapes, done=False)

    progress = tqdm(total=n_images, initial=completed, desc="recording", unit="img", disable=None if verbose else True)

    def on_batch(stop: int) -> None:
        nonlocal last_checkpoint
        progress.update(stop - progress.n)
        if time.monotonic() - last_checkpoint > settings.checkpoint_seconds:
            checkpoint(stop)
            last_checkpoint = time.monotonic()

    with progress:
        record_pass(model, probe, settings, store, index, completed, n_images, on_batch)
    checkpoint(n_images)
    return store, index


def _dead_units(array: np.ndarray) -> list[int]:
    """Units whose activation is never above zero (read batch by batch)."""
    alive = np.zeros(array.shape[1], bool)
    for start in range(0, len(array), 256):
        alive |= (
            np.asarray(array[start : start + 256]).reshape(min(256, len(array) - start), array.shape[1], -1) > 0
        ).any(axis=(0, 2))
    return [int(u) for u in np.flatnonzero(~alive)]


def _resume(
    run: RunDirectory, layers: list[str], predicting: bool, completed: int, n_images: int
) -> tuple[Store, SignatureIndex] | None:
    """The state of an interrupted recording, or None (with a notice) when its files are damaged."""
    try:
        index = SignatureIndex.from_state_dict(read_npz(run / "record" / "index_state.npz"))
        store = Store.reopen(run.path, layers, n_images, predicting)
    except (OSError, ValueError) as error:
        run.log(f"{run.path}: the interrupted recording cannot be resumed ({error}); recording from the start")
        return None
    if any(len(array) < completed for array in store.arrays()):
        run.log(f"{run.path}: the interrupted recording's files are shorter than recorded; recording from the start")
        return None
    return store, index
