"""The record stage: one pass over the probe.

The model's layer outputs go to float16 ``.npy`` memmaps (``record/<layer>.npy``, shape
(images, units, h, w); token and channels-last layers are brought to that layout, see
:mod:`logiclens.vision.activations.shapes`, and an SAE's latents replace the layer's units
where one is given), each image's annotation pixels are grouped into signatures
(``record/signatures.npy``, shape (images, H, W)), and the concept set's running state is
checkpointed with them, so that an interrupted pass resumes at the last checkpoint.

With ``settings.units="code-clusters"`` the same forward pass also records each layer's spline
codes at its nonlinearity (the nonlinearity's input, hooked next to the layer's output):
``record/codes_<layer>.npy``, bit-packed uint64 words per (image, i, j) position, finished as
the ``codes:<layer>`` stage that :func:`~logiclens.vision.dissect.regions.layer_codes` reads.

With ``settings.record_predictions`` the same forward pass runs to the end and the model's
output is kept too (``record/predictions.npy``: logits (images, classes); for heads wider
than :data:`~logiclens.runs.layout.MAX_STORED_CLASSES`, ``record/top_classes.npy`` and
``record/top_logits.npy``), with the probe's class labels (``record/targets.npy``, -1 where
an image has none; see :meth:`~logiclens.vision.probes.base.ProbeDataset.class_label`).
A model whose output is not (n, classes), or an activation file, records no predictions.
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
from logiclens.core.io import atomic_savez, read_array, read_npz
from logiclens.core.signatures import SignatureIndex
from logiclens.runs import layout
from logiclens.runs.directory import RunDirectory
from logiclens.vision.activations.shapes import describe_layout, to_maps
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["ActivationFile", "check_layers", "code_nonlinearities", "codes_key", "record_stage"]


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
        self.array = read_array(self.path, mmap=True)
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


def codes_key(record_key: str, layer: str) -> str:
    """The fingerprint of a layer's codes (stage ``codes:<layer>``) recorded with the record stage ``record_key``."""
    return fingerprint("codes", record_key, layer)


def code_nonlinearities(model: Any, probe: ProbeDataset, settings: DissectionSettings) -> dict[str, tuple[str, Any]]:
    """Per layer, the nonlinearity whose input is its code, with ``units="code-clusters"`` ({} otherwise).

    Raises
    ------
    ValueError
        On one line: a layer followed by no nonlinearity, or an activation file (no model
        whose nonlinearities could be hooked).
    """
    if settings.units != "code-clusters":
        return {}
    if isinstance(model, ActivationFile):
        raise ValueError(
            "--units code-clusters needs the model: codes are the inputs of its nonlinearities, "
            "which an activation file does not have"
        )
    import torch

    from logiclens.polytope.hooked import find_nonlinearity

    batch = next(iter(probe.batches(1, start=0, stop=1)))
    example = model.preprocess(torch.from_numpy(batch.images)).to(settings.device)
    module = model.module.to(settings.device)
    return {layer: find_nonlinearity(module, layer, example) for layer in settings.layers}


def _layer_codes(z: np.ndarray, activation: Any) -> tuple[np.ndarray, int, tuple[int, ...]]:
    """A batch of one layer's pre-activations as packed codes per (image, i, j): (words, bits, grid)."""
    from logiclens.polytope.hooked import code_rows, hard_code

    rows, _, grid = code_rows(z)
    words, n_bits = hard_code(rows, activation)
    return words, n_bits, grid


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
        whose ``d_in`` differs from the layer's units, a file that does not match the probe,
        a code-cluster layer without a nonlinearity.
    """
    from contextlib import nullcontext

    from logiclens.sae import load_sae

    code_nonlinearities(model, probe, settings)

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
    predicting = settings.record_predictions and not isinstance(model, ActivationFile)
    parts: list[Any] = [
        model.config(),
        probe.config(),
        probe.fingerprint(),
        settings.layers,
        *([extra] if extra else []),
    ]
    if predicting:
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
    nonlinearities = code_nonlinearities(model, probe, settings)
    codes: dict[str, np.memmap] = {}
    code_bits: dict[str, int] = {}
    resumed = _resume(run, settings.layers, predicting, completed) if completed else None
    if resumed is not None:
        index, signatures, outputs, heads, targets = resumed
        codes = _resume_codes(run, nonlinearities, completed)
        if len(codes) < len(nonlinearities):  # recorded without codes so far: the regions stage records them
            nonlinearities, codes = {}, {}
    else:
        completed = 0
        for layer in nonlinearities:
            (run / layout.codes_file(layer)).unlink(missing_ok=True)
        index = SignatureIndex(len(probe.concept_names))
        signatures = allocate(run / layout.SIGNATURES, np.int32, (n_images, mask_h, mask_w))
        outputs = {}
        heads = {}
        for name in (layout.PREDICTIONS, layout.TOP_CLASSES, layout.TOP_LOGITS, layout.TARGETS):
            (run / name).unlink(missing_ok=True)
        targets = None
        if predicting:
            targets = allocate(run / layout.TARGETS, np.int64, (n_images,))
            targets[:] = -1
    class_names = getattr(model, "class_names", None)
    space = probe.class_label_space
    labelled = space is None or space == getattr(model, "label_space", None)
    if isinstance(model, ActivationFile):
        context: Any = nullcontext()
    else:
        import torch

        from logiclens.hooks import LayerRecorder

        # channels-last convolutions run about 1.5x faster on CPU (measured on EfficientNet-Lite0)
        module = model.module.to(settings.device, memory_format=torch.channels_last)
        inputs = [name for name, _ in nonlinearities.values()]
        context = LayerRecorder(module, settings.layers, stop_early=not predicting, inputs=inputs)
    last_checkpoint = time.monotonic()

    def checkpoint(done_images: int) -> None:
        signatures.flush()
        for array in [*outputs.values(), *codes.values(), *heads.values(), *([] if targets is None else [targets])]:
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
            for layer, (name, activation) in nonlinearities.items():
                words, code_bits[layer], grid = _layer_codes(recorder.inputs[name].float().numpy(), activation)
                cells = int(np.prod(grid)) if grid else 1
                if layer not in codes:
                    shape = (n_images * cells, words.shape[1])
                    codes[layer] = allocate(run / layout.codes_file(layer), np.uint64, shape)
                codes[layer][first * cells : stop * cells] = words
            labels = batch.labels
            if predicting and recorder.output is not None:
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
    info: dict[str, Any] = {}
    if sae is not None:  # latents never active on the probe
        info["dead_units"] = {layer: _dead_units(outputs[layer]) for layer in settings.layers}
    run.finish("record", key, files, **info)
    for layer, (name, activation) in nonlinearities.items():
        grid = tuple(outputs[layer].shape[2:])
        # a token layer (codes per token, not per grid cell), or no batch recorded here: the regions stage
        # records the codes itself (and says why it cannot)
        if layer not in code_bits or len(codes[layer]) != n_images * int(np.prod(grid)):
            continue
        codes[layer].flush()
        run.finish(
            f"codes:{layer}", codes_key(key, layer), [layout.codes_file(layer)], nonlinearity=name,
            bits=code_bits[layer], grid=list(grid), activation=activation.name,
        )  # fmt: skip
    return key


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
    run: RunDirectory, layers: list[str], predicting: bool, completed: int
) -> tuple[SignatureIndex, np.memmap, dict, dict, np.memmap | None] | None:
    """The state of an interrupted recording, or None (with a notice) when its files are damaged."""
    try:
        index = SignatureIndex.from_state_dict(read_npz(run / "record" / "index_state.npz"))
        signatures = open_memmap(run / layout.SIGNATURES, mode="r+")
        outputs = {layer: open_memmap(run / layout.record_file(layer), mode="r+") for layer in layers}
        heads = _open_heads(run, "r+")
        targets = open_memmap(run / layout.TARGETS, mode="r+") if predicting else None
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
