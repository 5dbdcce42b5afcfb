"""The record stage: the probe's images through the model, once, resumably.

In this process (``backend="local"``), one pass (:func:`~logiclens.vision.dissect.recording.record_pass`)
over the probe writes the record files, and the concept set's running state is checkpointed
with them, so that an interrupted pass resumes at the last checkpoint. With ``backend="ray"``
the probe is recorded in shards on the cluster and merged into the same files
(:mod:`logiclens.vision.dissect.shards`).

With ``settings.units="code-clusters"`` the local pass also records each layer's codes
(:func:`~logiclens.vision.dissect.recording.record_pass`) and finishes them as the
``codes:<layer>`` stage that :func:`~logiclens.vision.dissect.regions.layer_codes` reads; a
sharded pass, or a recording resumed from one made without codes, leaves them to that stage's
own pass.
"""

from __future__ import annotations

import shutil
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
from logiclens.vision.dissect.recording import ActivationFile, Store, code_nonlinearities, predicting, record_pass
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["codes_key", "record_key", "record_stage"]


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
        nonlinearities: dict[str, tuple[str, Any]] = {}  # the regions stage records the codes
    else:
        nonlinearities = code_nonlinearities(model, probe, settings)
        store, index, nonlinearities = _record_local(run, key, model, probe, settings, verbose, nonlinearities)
    concepts = ConceptSet._from_index(index, probe.concept_names, probe.concept_categories, None)
    concepts.save(run / layout.CONCEPTS)
    info: dict[str, Any] = {}
    if settings.sae is not None:  # latents never active on the probe
        info["dead_units"] = {layer: _dead_units(store.outputs[layer]) for layer in settings.layers}
    run.finish("record", key, [*store.files(settings.layers), layout.CONCEPTS], **info)
    shutil.rmtree(run / "record" / "shards", ignore_errors=True)  # merged: a sharded pass's own files
    _finish_codes(run, key, store, nonlinearities)
    return key


def codes_key(record_key: str, layer: str) -> str:
    """The fingerprint of a layer's codes (stage ``codes:<layer>``) recorded with the record stage ``record_key``."""
    return fingerprint("codes", record_key, layer)


def _finish_codes(run: RunDirectory, key: str, store: Store, nonlinearities: dict[str, tuple[str, Any]]) -> None:
    """Finish the ``codes:<layer>`` stage of every layer whose codes the pass recorded for all images."""
    for layer, (name, activation) in nonlinearities.items():
        grid = tuple(store.outputs[layer].shape[2:])
        # a token layer (codes per token, not per grid cell), or no batch recorded here: the regions stage
        # records the codes itself (and says why it cannot)
        if layer not in store.code_bits or len(store.codes[layer]) != store.n * int(np.prod(grid)):
            continue
        store.codes[layer].flush()
        run.finish(
            f"codes:{layer}", codes_key(key, layer), [layout.codes_file(layer)], nonlinearity=name,
            bits=store.code_bits[layer], grid=list(grid), activation=activation.name,
        )  # fmt: skip


def _record_local(
    run: RunDirectory, key: str, model: Any, probe: ProbeDataset, settings: DissectionSettings, verbose: int,
    nonlinearities: dict[str, tuple[str, Any]],
) -> tuple[Store, SignatureIndex, dict[str, tuple[str, Any]]]:  # fmt: skip
    """The pass in this process, checkpointed every ``settings.checkpoint_seconds``.

    Returns the store, the index and the layers whose codes the pass recorded for every image
    (none when it resumed a recording made without them).
    """
    state = run.stage("record", key)
    folder = run / "record"
    folder.mkdir(exist_ok=True)
    n_images = len(probe)
    predict = predicting(model, settings)
    completed = int(state["completed"]) if state and not state.get("done") else 0
    resumed = _resume(run, settings.layers, predict, completed, n_images) if completed else None
    if resumed is not None:
        store, index = resumed
        store.codes = _resume_codes(run, nonlinearities, completed)
        if len(store.codes) < len(nonlinearities):  # recorded without codes so far: the regions stage records them
            nonlinearities, store.codes = {}, {}
    else:
        completed = 0
        for layer in nonlinearities:
            (run / layout.codes_file(layer)).unlink(missing_ok=True)
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
        record_pass(model, probe, settings, store, index, completed, n_images, on_batch, nonlinearities)
    checkpoint(n_images)
    return store, index, nonlinearities


def _resume_codes(run: RunDirectory, nonlinearities: dict[str, Any], completed: int) -> dict[str, np.memmap]:
    """The codes of an interrupted recording, for the layers whose file is there and long enough."""
    codes = {}
    for layer in nonlinearities:
        try:
            array = open_memmap(run / layout.codes_file(layer), mode="r+")
        except (OSError, ValueError):
            continue
        if len(array) >= completed:
            codes[layer] = array
    return codes


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
