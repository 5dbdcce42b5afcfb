"""The record stage: one pass over the probe.

The model's layer outputs go to float16 ``.npy`` memmaps (``record/<layer>.npy``, shape
(images, units, h, w); token and channels-last layers are brought to that layout, see
:mod:`logiclens.vision.activations.shapes`, and an SAE's latents replace the layer's units
where one is given), each image's annotation pixels are grouped into signatures
(``record/signatures.npy``, shape (images, H, W)), and the concept set's running state is
checkpointed with them, so that an interrupted pass resumes at the last checkpoint.
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
from logiclens.vision.activations.shapes import describe_layout, to_maps
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["ActivationFile", "check_layers", "record_stage"]


class ActivationFile:
    """Activations recorded elsewhere (JAX, TensorFlow, TransformerLens, nnsight ...), in place of a model.

    Parameters
    ----------
    path : path
        An ``.npy`` array aligned with the probe's image order: (n, C, h, w), (n, tokens,
        dim), (n, C) or, with ``channels_last``, (n, h, w, C). Read as a memmap, batch by batch.
    layer : str
        The name the run gives the layer (default ``activations``).
    """

    def __init__(self, path: str | os.PathLike[str], layer: str = "activations") -> None:
        from logiclens.core.fingerprint import file_digest

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"--activations {self.path}: no such file")
        try:
            self.array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ValueError(f"{self.path}: not a .npy array file ({str(error).splitlines()[0]})") from None
        if not isinstance(self.array, np.ndarray) or self.array.dtype.kind not in "fiu":
            raise ValueError(f"{self.path}: activations must be a numeric .npy array")
        self.name = self.path.name
        self.layer = layer
        self.default_layers = [layer]
        self.sha256 = file_digest(self.path)

    def config(self) -> dict[str, Any]:
        """The file, its digest and shape (for ``config.json`` and cache keys)."""
        return {
            "name": self.name,
            "activations": str(self.path),
            "sha256": self.sha256,
            "shape": list(self.array.shape),
        }

    def check(self, n_images: int) -> None:
        """Raise ValueError, on one line, unless the file holds one row per probe image."""
        if self.array.ndim not in (2, 3, 4):
            raise ValueError(
                f"{self.path}: activations have shape {self.array.shape}; expected (n, C, h, w), (n, tokens, dim), "
                "(n, C) or (n, h, w, C) with --channels-last"
            )
        if len(self.array) != n_images:
            raise ValueError(
                f"{self.path}: activations hold {len(self.array):,} images but the probe has {n_images:,}; "
                "record them on the probe's images, in its order"
            )


def _layer_maps(array: np.ndarray, layer: str, settings: DissectionSettings, sae: Any) -> np.ndarray:
    """A batch of one layer's output as float32 (n, units, h, w) maps: reshaped, then encoded by the SAE."""
    maps = to_maps(np.asarray(array, dtype=np.float32), layer, settings.extra_tokens, settings.channels_last)
    if sae is not None:
        maps = sae.encode(maps.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(maps)


def _capture(model: Any, recorder: Any, batch: Any, settings: DissectionSettings) -> dict[str, np.ndarray]:
    """The layers' raw outputs on a probe batch (from the model, or the activation file)."""
    if isinstance(model, ActivationFile):
        return {model.layer: np.asarray(model.array[int(batch.indices[0]) : int(batch.indices[-1]) + 1])}
    import torch

    images = model.preprocess(torch.from_numpy(batch.images))
    images = images.to(settings.device, memory_format=torch.channels_last)
    first, stop = int(batch.indices[0]), int(batch.indices[-1]) + 1
    try:
        captured = recorder.run(images)
    except Exception as error:  # the user's model: say where it failed, on one line
        raise ValueError(
            f"the model's forward pass failed on images {first}..{stop - 1}: {type(error).__name__}: {error}"
        ) from error
    return {layer: tensor.float().numpy() for layer, tensor in captured.items()}


def check_layers(model: Any, probe: ProbeDataset, settings: DissectionSettings) -> dict[str, dict[str, Any]]:
    """Check the layers' shapes (and the SAE) on the first image, before anything is written.

    Returns
    -------
    dict
        Per layer, what was done to its output (:func:`describe_layout`), and the SAE.

    Raises
    ------
    ValueError
        On one line: a token count that is no grid, a shape that fits no layout, an SAE
        whose ``d_in`` differs from the layer's units, a file that does not match the probe.
    """
    from contextlib import nullcontext

    from logiclens.sae import load_sae

    sae = load_sae(settings.sae) if settings.sae is not None else None
    if isinstance(model, ActivationFile):
        model.check(len(probe))
        if settings.layers != [model.layer]:
            model.layer = settings.layers[0]
            if len(settings.layers) != 1:
                raise ValueError("an activation file holds one layer; give one --layer name (or none)")
        context: Any = nullcontext()
    else:
        from logiclens.hooks import LayerRecorder

        context = LayerRecorder(model.module, settings.layers)
    with context as recorder:
        batch = next(iter(probe.batches(1, start=0, stop=1)))
        captured = _capture(model, recorder, batch, settings)
    layouts = {}
    for layer, array in captured.items():
        to_maps(array[:1], layer, settings.extra_tokens, settings.channels_last)  # raises on a bad shape
        info = describe_layout(tuple(array.shape[1:]), settings.extra_tokens, settings.channels_last)
        if sae is not None:
            if info["units"] != sae.d_in:
                raise ValueError(
                    f"the SAE in {sae.path} reads {sae.d_in} values per position (d_in), but layer {layer!r} "
                    f"has {info['units']} units; choose the layer the SAE was trained on"
                )
            info["sae"] = sae.config()
        layouts[layer] = info
    return layouts


def record_stage(run: RunDirectory, model: Any, probe: ProbeDataset, settings: DissectionSettings, verbose: int) -> str:
    """Record activations and signatures (resuming an interrupted pass); returns the stage fingerprint.

    ``model`` is a model adapter or an :class:`ActivationFile`.
    """
    from contextlib import nullcontext

    from logiclens.sae import load_sae

    extra = settings.layout_config()
    if settings.sae is not None:
        sae = load_sae(settings.sae)
        extra["sae"] = sae.config()
    else:
        sae = None
    key = fingerprint(
        "record", model.config(), probe.config(), probe.fingerprint(), settings.layers, *([extra] if extra else [])
    )
    if run.is_done("record", key):
        return key
    state = run.stage("record", key)
    folder = run / "record"
    folder.mkdir(exist_ok=True)
    n_images = len(probe)
    mask_h, mask_w = probe.mask_size
    completed = int(state["completed"]) if state and not state.get("done") else 0
    resumed = _resume(run, settings.layers, completed) if completed else None
    if resumed is not None:
        index, signatures, outputs = resumed
    else:
        completed = 0
        index = SignatureIndex(len(probe.concept_names))
        signatures = allocate(run / layout.SIGNATURES, np.int32, (n_images, mask_h, mask_w))
        outputs = {}
    if isinstance(model, ActivationFile):
        context: Any = nullcontext()
    else:
        import torch

        from logiclens.hooks import LayerRecorder

        # channels-last convolutions run about 1.5x faster on CPU (measured on EfficientNet-Lite0)
        module = model.module.to(settings.device, memory_format=torch.channels_last)
        context = LayerRecorder(module, settings.layers)
    last_checkpoint = time.monotonic()

    def checkpoint(done_images: int) -> None:
        signatures.flush()
        for array in outputs.values():
            array.flush()
        atomic_savez(folder / "index_state.npz", index.state_dict())
        shapes = {layer: list(array.shape[1:]) for layer, array in outputs.items()}
        run.update("record", key, completed=done_images, n_images=n_images, shapes=shapes, done=False)

    progress = tqdm(total=n_images, initial=completed, desc="recording", unit="img", disable=None if verbose else True)
    with progress, context as recorder:
        for batch in probe.batches(settings.batch_size, start=completed):
            first, stop = int(batch.indices[0]), int(batch.indices[-1]) + 1
            for layer, raw in _capture(model, recorder, batch, settings).items():
                array = _layer_maps(raw, layer, settings, sae)
                if not np.isfinite(array).all():
                    raise ValueError(
                        f"layer {layer!r} produced NaN or infinite activations on images {first}..{stop - 1}"
                    )
                if layer not in outputs:
                    outputs[layer] = allocate(run / layout.record_file(layer), np.float16, (n_images, *array.shape[1:]))
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
    files = [layout.record_file(layer) for layer in settings.layers] + [layout.SIGNATURES, layout.CONCEPTS]
    info: dict[str, Any] = {}
    if sae is not None:  # latents never active on the probe
        info["dead_units"] = {layer: _dead_units(outputs[layer]) for layer in settings.layers}
    run.finish("record", key, files, **info)
    return key


def _dead_units(array: np.ndarray) -> list[int]:
    """Units whose activation is never above zero (read batch by batch)."""
    alive = np.zeros(array.shape[1], bool)
    for start in range(0, len(array), 256):
        alive |= (
            np.asarray(array[start : start + 256]).reshape(min(256, len(array) - start), array.shape[1], -1) > 0
        ).any(axis=(0, 2))
    return [int(u) for u in np.flatnonzero(~alive)]


def _resume(run: RunDirectory, layers: list[str], completed: int) -> tuple[SignatureIndex, np.memmap, dict] | None:
    """The state of an interrupted recording, or None (with a notice) when its files are damaged."""
    try:
        index = SignatureIndex.from_state_dict(read_npz(run / "record" / "index_state.npz"))
        signatures = open_memmap(run / layout.SIGNATURES, mode="r+")
        outputs = {layer: open_memmap(run / layout.record_file(layer), mode="r+") for layer in layers}
    except (OSError, ValueError) as error:
        run.log(f"{run.path}: the interrupted recording cannot be resumed ({error}); recording from the start")
        return None
    if any(len(array) < completed for array in (signatures, *outputs.values())):
        run.log(f"{run.path}: the interrupted recording's files are shorter than recorded; recording from the start")
        return None
    return index, signatures, outputs


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
