"""Turn a torch ``nn.Sequential`` into a :class:`~logiclens.polytope.network.PiecewiseLinearNetwork`.

The sequence is cut at every activation module; the modules between two activations must be
affine (linear, convolutions of any padding, batch norm in eval mode, average pooling,
flatten, dropout and identity) and become one :class:`TorchAffine` step, evaluated in float64
on a private copy. Small steps are turned into :class:`~logiclens.polytope.network.DenseAffine`
matrices (so that everything downstream is numpy); large ones (EfficientNet's head) stay as
torch functions.

Supported activations: ReLU, ReLU6, LeakyReLU, Hardtanh (piecewise linear) and GELU, SiLU
(smooth, codes by convention only). Max pooling, residual connections and attention are not
supported: they are piecewise linear but not elementwise, or not sequential. For such
models, build the layers yourself (:meth:`PiecewiseLinearNetwork.from_layers`) or analyse a
sequential part of them (e.g. ``GenEfficientNet.as_sequential()[-7:]``, the head).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from logiclens.polytope import activations as act
from logiclens.polytope.network import AffineStep, DenseAffine, Layer, PiecewiseLinearNetwork

__all__ = ["SUPPORTED_AFFINE", "TorchAffine", "activation_of", "from_torch"]

Array = NDArray[np.float64]

#: module types accepted inside an affine step
SUPPORTED_AFFINE: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Identity,
)


def activation_of(module: nn.Module) -> act.Activation | None:
    """The :class:`~logiclens.polytope.activations.Activation` of a torch activation module, or None."""
    if isinstance(module, nn.ReLU6):
        return act.relu6()
    if isinstance(module, nn.ReLU):
        return act.relu()
    if isinstance(module, nn.LeakyReLU):
        return act.leaky_relu(module.negative_slope)
    if isinstance(module, nn.Hardtanh):
        return act.hardtanh(module.min_val, module.max_val)
    if isinstance(module, nn.GELU):
        return act.gelu()
    if isinstance(module, nn.SiLU):
        return act.silu()
    return None


class TorchAffine(AffineStep):
    """An affine chain of torch modules, evaluated in float64 on flat rows.

    Parameters
    ----------
    module : nn.Module
        Affine modules only (see :data:`SUPPORTED_AFFINE`); a float64 copy in eval mode is kept.
    in_shape : tuple of int
        Shape of one input before flattening (``(C, H, W)`` for convolutions).
    batch_size : int, default 256
        Rows per torch call.

    Attributes
    ----------
    out_shape : tuple of int
        Shape of one output before flattening.
    """

    def __init__(self, module: nn.Module, in_shape: Sequence[int], batch_size: int = 256) -> None:
        self.module = copy.deepcopy(module).double().eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.in_shape = tuple(int(s) for s in in_shape)
        self.in_features = int(np.prod(self.in_shape))
        self.batch_size = int(batch_size)
        with torch.no_grad():
            zero = self.module(torch.zeros((1, *self.in_shape), dtype=torch.float64))
        self.out_shape = tuple(zero.shape[1:])
        self.out_features = int(np.prod(self.out_shape))
        self.bias = zero.reshape(-1).numpy().copy()
        self._offset = np.zeros(self.out_features)

    def __call__(self, x: Array) -> Array:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.in_features)
        out = np.empty((len(x), self.out_features))
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                block = torch.from_numpy(np.ascontiguousarray(x[start : start + self.batch_size]))
                result = self.module(block.reshape(-1, *self.in_shape)).reshape(len(block), -1).numpy()
                out[start : start + len(block)] = result
        return out - self._offset

    def without_bias(self) -> TorchAffine:
        clone = copy.copy(self)
        clone._offset = self._offset + self.bias
        clone.bias = np.zeros(self.out_features)
        return clone

    def to_dense(self) -> DenseAffine:
        """The same map as a :class:`DenseAffine` (``in_features * out_features`` float64 values)."""
        weight = self.linear(np.eye(self.in_features)).T
        return DenseAffine(weight, self.bias)

    def __repr__(self) -> str:
        return f"TorchAffine({self.in_shape} -> {self.out_shape})"


def _flatten_modules(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            out.extend(_flatten_modules(child, f"{full}."))
        else:
            out.append((full, child))
    return out


def from_torch(
    model: nn.Module,
    input_shape: Sequence[int],
    dense_limit: int = 2**23,
    supported: tuple[type[nn.Module], ...] = SUPPORTED_AFFINE,
) -> PiecewiseLinearNetwork:
    """Convert an ``nn.Sequential`` (possibly nested) into a piecewise-linear network.

    Parameters
    ----------
    model : nn.Sequential
        Affine modules and activations, in order. Layer names are the activation modules'
        dotted names (``"1"``, ``"features.3"``); the last affine chain, if it is not followed
        by an activation, is the layer ``"output"`` with the identity activation.
    input_shape : sequence of int
        Shape of one input without the batch axis (``(64,)`` or ``(1, 8, 8)``).
    dense_limit : int, default 2**23
        Affine steps with at most this many matrix entries become dense numpy matrices.
    supported : tuple of module types
        Affine modules accepted (subclasses included); extend it for your own affine modules.

    Returns
    -------
    PiecewiseLinearNetwork
        Each layer records ``preactivation_module``: the module whose output is the
        pre-activation, to record with :class:`~logiclens.hooks.LayerRecorder`.

    Raises
    ------
    TypeError
        For modules that are neither supported affine modules nor supported activations.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"from_torch needs an nn.Sequential, got {type(model).__name__}")
    shape = tuple(int(s) for s in input_shape)
    layers: list[Layer] = []
    chain: list[tuple[str, nn.Module]] = []

    def close(activation: act.Activation, name: str) -> None:
        nonlocal shape
        if not chain:
            raise TypeError(f"activation {name!r} is not preceded by an affine module")
        affine: AffineStep = TorchAffine(nn.Sequential(*[m for _, m in chain]), shape)
        out_shape = affine.out_shape
        if affine.in_features * affine.out_features <= dense_limit:
            affine = affine.to_dense()
        layers.append(Layer(affine, activation, name, chain[-1][0], out_shape))
        shape = out_shape
        chain.clear()

    for name, module in _flatten_modules(model):
        activation = activation_of(module)
        if activation is not None:
            close(activation, name)
        elif isinstance(module, supported):
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.track_running_stats:
                raise TypeError(f"batch norm {name!r} without running statistics is not affine")
            chain.append((name, module))
        else:
            raise TypeError(
                f"module {name!r} ({type(module).__name__}) is not supported: the polytope adapter takes "
                "affine modules (Linear, Conv, BatchNorm, AvgPool, Flatten, Dropout, Identity) and ReLU, ReLU6, "
                "LeakyReLU, Hardtanh, GELU, SiLU; see logiclens.polytope.torch_adapter"
            )
    if chain:
        close(act.identity(), "output")
    if not layers:
        raise TypeError("the model holds no modules")
    return PiecewiseLinearNetwork(layers, tuple(int(s) for s in input_shape))
