"""One pass of the model over a range of the probe's images, into record files.

The model's layer outputs go to float16 ``.npy`` memmaps (``record/<layer>.npy``, shape
(images, units, h, w); token and channels-last layers are brought to that layout, see
:mod:`logiclens.vision.activations.shapes`, and an SAE's latents replace the layer's units
where one is given), and each image's annotation pixels are grouped into signatures
(``record/signatures.npy``, shape (images, H, W)) by a
:class:`~logiclens.core.signatures.SignatureIndex`.

With ``settings.record_predictions`` the same forward pass runs to the end and the model's
output is kept too (``record/predictions.npy``: logits (images, classes); for heads wider
than :data:`~logiclens.runs.layout.MAX_STORED_CLASSES`, ``record/top_classes.npy`` and
``record/top_logits.npy``), with the probe's class labels (``record/targets.npy``, -1 where
an image has none; see :meth:`~logiclens.vision.probes.base.ProbeDataset.class_label`).
A model whose output is not (n, classes), or an activation file, records no predictions.

With ``settings.units="code-clusters"`` the same forward pass can also record each layer's
spline codes at its nonlinearity (the nonlinearity's input, hooked next to the layer's
output): ``record/codes_<layer>.npy``, bit-packed uint64 words per (image, i, j) position.

The record stage (:mod:`logiclens.vision.dissect.record`) runs one pass over the whole probe,
or one per shard (:mod:`logiclens.vision.dissect.shards`).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from logiclens.core.io import read_array
from logiclens.core.signatures import SignatureIndex
from logiclens.runs import layout
from logiclens.vision.activations.shapes import describe_layout, to_maps
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["ActivationFile", "Store", "allocate", "check_layers", "code_nonlinearities", "predicting", "record_pass"]


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
    from contextlib import nullcontext

    import torch

    images = model.preprocess(torch.from_numpy(batch.images))
    images = images.to(settings.device, memory_format=torch.channels_last)
    first, stop = int(batch.indices[0]), int(batch.indices[-1]) + 1
    precision: Any = nullcontext()
    if settings.autocast is not None:
        precision = torch.autocast(images.device.type, dtype=getattr(torch, settings.autocast))
    try:
        with precision:
            captured = recorder.run(images)
    except Exception as error:  # the user's model: say where it failed, on one line
        raise ValueError(
            f"the model's forward pass failed on images {first}..{stop - 1}: {type(error).__name__}: {error}"
        ) from error
    return {layer: tensor.float().numpy() for layer, tensor in captured.items()}


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


class Store:
    """The arrays one recording pass fills, for ``n`` images from probe image ``start``, as files under ``root``.

    The run's own record files (``root`` the run, ``start`` 0), or a shard's (``root`` the
    shard's folder, see :mod:`logiclens.vision.dissect.shards`); the same names either way.
    """

    def __init__(self, root: Path, start: int, n: int, mask_size: tuple[int, int], predicting: bool) -> None:
        self.root, self.start, self.n = Path(root), int(start), int(n)
        (self.root / "record").mkdir(parents=True, exist_ok=True)
        self.signatures = allocate(self.root / layout.SIGNATURES, np.int32, (self.n, *mask_size))
        self.outputs: dict[str, np.memmap] = {}
        self.heads: dict[str, np.memmap] = {}
        self.codes: dict[str, np.memmap] = {}
        self.code_bits: dict[str, int] = {}
        for name in (layout.PREDICTIONS, layout.TOP_CLASSES, layout.TOP_LOGITS, layout.TARGETS):
            (self.root / name).unlink(missing_ok=True)
        self.targets = None
        if predicting:
            self.targets = allocate(self.root / layout.TARGETS, np.int64, (self.n,))
            self.targets[:] = -1

    @classmethod
    def reopen(cls, root: Path, layers: list[str], n: int, predicting: bool) -> Store:
        """The files of an interrupted pass, to go on filling (raises OSError/ValueError when damaged)."""
        store = cls.__new__(cls)
        store.root, store.start, store.n = Path(root), 0, int(n)
        store.signatures = open_memmap(root / layout.SIGNATURES, mode="r+")
        store.outputs = {layer: open_memmap(root / layout.record_file(layer), mode="r+") for layer in layers}
        names = (layout.PREDICTIONS, layout.TOP_CLASSES, layout.TOP_LOGITS)
        store.heads = {name: open_memmap(root / name, mode="r+") for name in names if (root / name).exists()}
        store.targets = open_memmap(root / layout.TARGETS, mode="r+") if predicting else None
        store.codes, store.code_bits = {}, {}
        return store

    def arrays(self) -> list[np.memmap]:
        return [self.signatures, *self.outputs.values(), *self.heads.values(), *self.optional_targets()]

    def optional_targets(self) -> list[np.memmap]:
        return [] if self.targets is None else [self.targets]

    def flush(self) -> None:
        for array in [*self.arrays(), *self.codes.values()]:
            array.flush()

    def files(self, layers: list[str]) -> list[str]:
        """The record files this pass wrote, relative to ``root``."""
        targets = [layout.TARGETS] if self.targets is not None else []
        return [layout.record_file(layer) for layer in layers] + [layout.SIGNATURES, *self.heads, *targets]

    def put_layer(self, layer: str, first: int, array: np.ndarray) -> None:
        if layer not in self.outputs:
            path = self.root / layout.record_file(layer)
            self.outputs[layer] = allocate(path, np.float16, (self.n, *array.shape[1:]))
        self.outputs[layer][first - self.start : first - self.start + len(array)] = array.astype(np.float16)

    def put_codes(self, layer: str, first: int, words: np.ndarray, cells: int, bits: int) -> None:
        """Store a batch of one layer's packed codes: ``cells`` rows per image, from image ``first``."""
        if layer not in self.codes:
            shape = (self.n * cells, words.shape[1])
            self.codes[layer] = allocate(self.root / layout.codes_file(layer), np.uint64, shape)
        self.code_bits[layer] = bits
        row = (first - self.start) * cells
        self.codes[layer][row : row + len(words)] = words

    def put_head(self, output: Any, first: int) -> None:
        """Store a batch of the model's output: all logits, or the top classes of a very wide head."""
        logits = output.float().numpy()
        if logits.ndim != 2:
            return  # not a classifier's (n, classes) output: no predictions for this model
        if not self.heads:
            if logits.shape[1] <= layout.MAX_STORED_CLASSES:
                self.heads[layout.PREDICTIONS] = allocate(
                    self.root / layout.PREDICTIONS, np.float32, (self.n, logits.shape[1])
                )
            else:
                k = layout.N_TOP_CLASSES
                self.heads[layout.TOP_CLASSES] = allocate(self.root / layout.TOP_CLASSES, np.int32, (self.n, k))
                self.heads[layout.TOP_LOGITS] = allocate(self.root / layout.TOP_LOGITS, np.float32, (self.n, k))
        rows = slice(first - self.start, first - self.start + len(logits))
        if layout.PREDICTIONS in self.heads:
            self.heads[layout.PREDICTIONS][rows] = logits
            return
        top = np.argsort(-logits, axis=1, kind="stable")[:, : layout.N_TOP_CLASSES]
        self.heads[layout.TOP_CLASSES][rows] = top
        self.heads[layout.TOP_LOGITS][rows] = np.take_along_axis(logits, top, axis=1)

    def put_rows(self, name: str, first: int, rows: np.ndarray) -> None:
        """Write rows of the signatures, the labels or a prediction file (allocated on first use)."""
        if name == layout.SIGNATURES:
            target = self.signatures
        elif name == layout.TARGETS and self.targets is not None:
            target = self.targets
        else:
            if name not in self.heads:
                self.heads[name] = allocate(self.root / name, rows.dtype.type, (self.n, *rows.shape[1:]))
            target = self.heads[name]
        target[first - self.start : first - self.start + len(rows)] = rows

    def n_classes(self) -> int | None:
        if layout.PREDICTIONS in self.heads:
            return int(self.heads[layout.PREDICTIONS].shape[1])
        return None


def predicting(model: Any, settings: DissectionSettings) -> bool:
    """Whether the pass keeps the model's output: asked for, and a model (not an activation file) runs."""
    return settings.record_predictions and not isinstance(model, ActivationFile)


def record_pass(
    model: Any,
    probe: ProbeDataset,
    settings: DissectionSettings,
    store: Store,
    index: SignatureIndex,
    start: int,
    stop: int,
    on_batch: Any = None,
    nonlinearities: dict[str, tuple[str, Any]] | None = None,
) -> None:
    """Run probe images ``start .. stop - 1`` through the model into ``store`` and ``index``.

    ``on_batch(stop)`` is called after each batch (the local stage checkpoints there). With
    ``nonlinearities`` (:func:`code_nonlinearities`), each layer's codes are recorded too.
    """
    nonlinearities = nonlinearities or {}
    from contextlib import nullcontext

    from logiclens.sae import load_sae

    sae = load_sae(settings.sae) if settings.sae is not None else None
    predict = predicting(model, settings)
    class_names = getattr(model, "class_names", None)
    space = probe.class_label_space
    labelled = space is None or space == getattr(model, "label_space", None)
    mask_h, mask_w = probe.mask_size
    if isinstance(model, ActivationFile):
        context: Any = nullcontext()
    else:
        import torch

        from logiclens.hooks import LayerRecorder

        # channels-last convolutions run about 1.5x faster on CPU (measured on EfficientNet-Lite0)
        module = model.module.to(settings.device, memory_format=torch.channels_last)
        inputs = [name for name, _ in nonlinearities.values()]
        context = LayerRecorder(module, settings.layers, stop_early=not predict, inputs=inputs)
    with context as recorder:
        for batch in probe.batches(settings.batch_size, start=start, stop=stop):
            first, last = int(batch.indices[0]), int(batch.indices[-1]) + 1
            for layer, raw in _capture(model, recorder, batch, settings).items():
                array = _layer_maps(raw, layer, settings, sae)
                if not np.isfinite(array).all():
                    raise ValueError(
                        f"layer {layer!r} produced NaN or infinite activations on images {first}..{last - 1}"
                    )
                store.put_layer(layer, first, array)
            for layer, (name, activation) in nonlinearities.items():
                words, bits, grid = _layer_codes(recorder.inputs[name].float().numpy(), activation)
                store.put_codes(layer, first, words, int(np.prod(grid)) if grid else 1, bits)
            labels = batch.labels
            if predict and recorder.output is not None:
                store.put_head(recorder.output, first)
            if store.targets is not None and labelled:
                n_classes = store.n_classes()
                for offset, image in enumerate(batch.indices):
                    label = probe.class_label(int(image), labels[offset])
                    store.targets[int(image) - store.start] = _class_id(label, class_names, n_classes, int(image))
            ids = index.add(labels.reshape(-1, labels.shape[-1]))
            store.signatures[first - store.start : last - store.start] = ids.reshape(len(batch.indices), mask_h, mask_w)
            if on_batch is not None:
                on_batch(last)


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
