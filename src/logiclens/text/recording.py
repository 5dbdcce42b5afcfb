"""Record a layer of a text model over many examples, batch by batch.

Uses :class:`logiclens.hooks.LayerRecorder`, as the vision pipeline does: any
module named by ``model.named_modules()`` (``head.mlp.relu2``, ``encoder.layer.3.intermediate``)
can be recorded. Outputs of shape (B, ..., U) keep one row per example and one column per
unit when they are 2-D; per-token outputs are handled by
:func:`logiclens.text.transformer.record_word_activations`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from logiclens.hooks import LayerRecorder

__all__ = ["record_layer"]


def record_layer(
    model: nn.Module, inputs: Sequence[torch.Tensor], layer: str, batch_size: int = 512
) -> NDArray[np.float32]:
    """Activations of one layer for every example.

    Parameters
    ----------
    model : nn.Module
        Called as ``model(*batch)``.
    inputs : sequence of tensors
        Model inputs, each with the examples along the first dimension.
    layer : str
        A ``named_modules()`` name (``"name#k"`` for the k-th call of a shared module).
    batch_size : int, default 512

    Returns
    -------
    ndarray of float32, shape (N, U)
        One row per example (the layer's output must be (B, U)).
    """
    n = len(inputs[0])
    parts = []
    with LayerRecorder(model, layer) as recorder:
        for start in range(0, n, batch_size):
            output = recorder.run(*(x[start : start + batch_size] for x in inputs))[layer]
            if output.ndim != 2:
                raise ValueError(
                    f"layer {layer!r} gives outputs of shape {tuple(output.shape)}; expected (batch, units)"
                )
            parts.append(output.float().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
