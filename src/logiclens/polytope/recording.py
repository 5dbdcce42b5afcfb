"""Record pre-activations of any torch model with the dissection's hooks, and turn them into codes.

The pre-activation of an activation module is the output of the module that feeds it (a
``Linear``, a ``Conv2d``, or the ``BatchNorm`` after it). :func:`find_preactivation_layers`
finds those modules by tracing one forward pass; :func:`record_preactivations` records them
with :class:`logiclens.hooks.LayerRecorder`, exactly as ``logiclens dissect``
records layer outputs.

Convolutional outputs ``(n, C, H, W)`` become rows in one of three ways (``position``):

* ``None``: one row per input, all ``C * H * W`` values (the full polytope of the layer);
* ``(i, j)``: one row per input, the ``C`` channels at one spatial position (the InceptionV1
  protocol of the polytope-lens paper: one example per image at a fixed position);
* ``"each"``: one row per input and position, ``n * H * W`` rows of ``C`` values, in
  ``(input, i, j)`` order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from logiclens.hooks import LayerRecorder
from logiclens.polytope.torch_adapter import activation_of

__all__ = ["find_preactivation_layers", "record_preactivations", "select_positions"]

Position = tuple[int, int] | str | None


def select_positions(output: torch.Tensor | NDArray, position: Position = None) -> NDArray[np.float64]:
    """Rows from one recorded layer output; see the module docstring for ``position``."""
    array = output.numpy() if isinstance(output, torch.Tensor) else np.asarray(output)
    array = array.astype(np.float64, copy=False)
    if array.ndim <= 2:
        if position not in (None, "each"):
            raise ValueError("a spatial position needs a (n, C, H, W) output")
        return array.reshape(len(array), -1)
    if position is None:
        return array.reshape(len(array), -1)
    if isinstance(position, str):
        if position != "each":
            raise ValueError(f"position must be None, (i, j) or 'each', got {position!r}")
        return np.moveaxis(array, 1, -1).reshape(-1, array.shape[1])
    i, j = position
    return array[:, :, int(i), int(j)].reshape(len(array), -1)


def record_preactivations(
    model: nn.Module,
    layers: str | Sequence[str],
    inputs: torch.Tensor | NDArray,
    batch_size: int = 128,
    position: Position = None,
    preprocess: Any = None,
) -> dict[str, NDArray[np.float64]]:
    """Record named layers' outputs (pre-activations) over a set of inputs.

    Parameters
    ----------
    model : nn.Module
    layers : str or sequence of str
        Dotted module names whose outputs are pre-activations (see
        :func:`find_preactivation_layers`); ``name#k`` addresses the k-th call.
    inputs : tensor or array (n, ...)
    batch_size : int, default 128
    position : None, (i, j) or "each"
        How convolutional outputs become rows (module docstring).
    preprocess : callable, optional
        Applied to each batch tensor before the model (e.g. ``ModelAdapter.preprocess``).

    Returns
    -------
    dict of layer name to float64 array (rows, features)
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    tensor = torch.as_tensor(np.asarray(inputs)) if not isinstance(inputs, torch.Tensor) else inputs
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    parts: dict[str, list[NDArray[np.float64]]] = {name: [] for name in names}
    with LayerRecorder(model, names) as recorder:
        for start in range(0, len(tensor), batch_size):
            batch = tensor[start : start + batch_size].to(dtype)
            if preprocess is not None:
                batch = preprocess(batch)
            for name, output in recorder.run(batch).items():
                parts[name].append(select_positions(output, position))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def find_preactivation_layers(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """For every activation module, the module whose output it receives (its pre-activation).

    Traces one forward pass on ``example``: forward hooks remember which module produced each
    tensor, and pre-hooks on activation modules look their input up.

    Returns
    -------
    dict
        ``{activation name: producer name}``, with call indices (``name#1``) for modules that
        run several times; activations fed by a functional op (no module) are left out.
    """
    produced: dict[int, str] = {}
    alive: list[torch.Tensor] = []  # keeps traced tensors alive so that their ids stay unique
    calls: dict[str, int] = {}
    found: dict[str, str] = {}
    handles = []
    modules = dict(model.named_modules())

    def label(name: str) -> str:
        count = calls.get(name, 0)
        calls[name] = count + 1
        return name if count == 0 else f"{name}#{count}"

    def forward_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and activation_of(module) is None:
                produced[id(output)] = label(name)
                alive.append(output)

        return hook

    def pre_hook(name: str) -> Callable[[nn.Module, Any], None]:
        def hook(module: nn.Module, inputs: Any) -> None:
            if inputs and isinstance(inputs[0], torch.Tensor) and id(inputs[0]) in produced:
                key = name if name not in found else f"{name}#{sum(k.split('#')[0] == name for k in found)}"
                found[key] = produced[id(inputs[0])]

        return hook

    for name, module in modules.items():
        if not name:
            continue
        if activation_of(module) is not None:
            handles.append(module.register_forward_pre_hook(pre_hook(name)))
        elif not list(module.children()):
            handles.append(module.register_forward_hook(forward_hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return found
