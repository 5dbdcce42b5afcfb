"""Spline codes of any ``nn.Module``: the inputs of chosen nonlinearities, recorded through hooks.

A layer is addressed by its dotted ``named_modules()`` name. Its **nonlinearity** is the
layer itself when it is an activation module, and otherwise the first activation module
that runs after it, provided that only modules that keep positions apart and act
elementwise or affinely per position (batch norm, dropout, identity) run in between
(``conv_head -> bn2 -> act2`` in EfficientNet). The code is recorded from the
nonlinearity's *input* with :class:`logiclens.hooks.LayerRecorder` (``capture="input"``), so
residual connections, attention and branches anywhere else in the model do not matter.

Sign convention
---------------
* ReLU family (ReLU, ReLU6, LeakyReLU, Hardtanh): the exact hard code, one bit per
  breakpoint (``z > 0``; ReLU6 also ``z > 6``), the same bits as
  :meth:`logiclens.polytope.network.PiecewiseLinearNetwork.codes`.
* GELU and SiLU/Swish (including transformers' ``GELUActivation`` and friends, recognised by
  class name): the **sign** of the pre-activation, ``z > 0`` -- a convention, since smooth
  activations have no partition -- and, alongside, the soft code ``Phi(z)`` (GELU) or
  ``sigmoid(z)`` (SiLU) of :func:`logiclens.polytope.codes.soft_code`.

Positions
---------
* convolutional pre-activations ``(n, C, H, W)``: one code per input and spatial position,
  rows in ``(input, i, j)`` order (the InceptionV1 protocol, every position);
* sequence pre-activations ``(n, T, C)``: one code per chosen token, by default every token
  inside each sequence's length; with ``n_tokens`` evenly spaced tokens after skipping the
  first ``skip_tokens`` (the GPT-2 protocol of the paper: 6 tokens, skipping 100);
* flat pre-activations ``(n, C)``: one code per input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from logiclens.hooks import LayerRecorder, parse_layer_name
from logiclens.polytope import activations as act
from logiclens.polytope.codes import PolytopeCodes, pack_bits, soft_code
from logiclens.polytope.torch_adapter import activation_of

__all__ = [
    "HookedCodes",
    "code_activation",
    "code_rows",
    "find_nonlinearity",
    "hard_code",
    "record_codes",
    "token_positions",
]

#: modules that may sit between a layer and its nonlinearity (per-position affine maps)
PASS_THROUGH: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.Dropout,
    nn.Identity,
)


def code_activation(module: nn.Module) -> act.Activation | None:
    """The activation whose code a module defines, or None (not a nonlinearity).

    Torch's activation modules, plus smooth activations recognised by class name
    (``*GELU*``, ``*SiLU*``, ``*Swish*``), as transformers defines them.
    """
    found = activation_of(module)
    if found is not None:
        return found
    name = type(module).__name__.lower()
    if "gelu" in name:
        return act.gelu()
    if "silu" in name or "swish" in name:
        return act.silu()
    return None


def _leaf_order(model: nn.Module, example: Any) -> list[str]:
    """Names (with call indices) of leaf modules and nonlinearities in the order they run."""
    order: list[str] = []
    calls: dict[str, int] = {}
    handles = []

    def hook(name: str) -> Any:
        def run(module: nn.Module, inputs: Any, output: Any) -> None:
            count = calls.get(name, 0)
            calls[name] = count + 1
            order.append(name if count == 0 else f"{name}#{count}")

        return run

    for name, module in model.named_modules():
        if name and (not list(module.children()) or code_activation(module) is not None):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(*example) if isinstance(example, tuple) else model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return order


def find_nonlinearity(model: nn.Module, layer: str, example: Any = None) -> tuple[str, act.Activation]:
    """The nonlinearity whose input is ``layer``'s code: ``(name, activation)``.

    Parameters
    ----------
    model : nn.Module
    layer : str
        A dotted module name (``name#k`` for the k-th call).
    example : tensor or tuple, optional
        One forward pass's inputs; needed unless ``layer`` is itself a nonlinearity.

    Raises
    ------
    ValueError
        One line, when the layer is followed by no nonlinearity (or by other modules first).
    """
    name, call = parse_layer_name(layer)
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"model has no layer {name!r}; `logiclens layers MODEL` lists the layer names") from None
    found = code_activation(module)
    if found is not None:
        return layer, found
    if example is None:
        raise ValueError(f"layer {layer!r} is not a nonlinearity; an example input is needed to find the next one")
    order = _leaf_order(model, example)
    label = name if call == 0 else f"{name}#{call}"
    starts = [i for i, entry in enumerate(order) if entry == label or entry.startswith(label + ".")]
    if not starts:
        raise ValueError(f"layer {layer!r} never runs in a forward pass")
    modules = dict(model.named_modules())
    for entry in order[max(starts) + 1 :]:
        following = modules[parse_layer_name(entry)[0]]
        kind = code_activation(following)
        if kind is not None:
            return entry, kind
        if not isinstance(following, PASS_THROUGH):
            break
    raise ValueError(
        f"layer {layer!r} is not followed by a nonlinearity (ReLU, ReLU6, LeakyReLU, Hardtanh, GELU, SiLU); "
        "code-cluster units need the input of one"
    )


def token_positions(lengths: ArrayLike, n_tokens: int | None = None, skip_tokens: int = 0) -> NDArray[np.int64]:
    """Chosen ``(sequence, token)`` pairs: (rows, 2) int64.

    Parameters
    ----------
    lengths : int array (n,)
        Tokens per sequence (padding excluded).
    n_tokens : int, optional
        Evenly spaced tokens per sequence among ``skip_tokens .. length - 1`` (all of them when
        None or when fewer remain).
    skip_tokens : int, default 0
        Tokens skipped at the start of every sequence (the paper skips 100 in GPT-2).
    """
    rows = []
    for s, length in enumerate(np.asarray(lengths, np.int64)):
        available = np.arange(int(skip_tokens), int(length))
        if n_tokens is not None and len(available) > n_tokens:
            available = available[np.round(np.linspace(0, len(available) - 1, int(n_tokens))).astype(np.int64)]
        rows.extend((s, int(t)) for t in available)
    return np.asarray(rows, np.int64).reshape(-1, 2)


@dataclass
class HookedCodes:
    """Codes of one layer at every recorded position.

    Attributes
    ----------
    codes : PolytopeCodes
        Bit-packed hard (sign) codes, one row per position.
    soft : float16 array (rows, bits) or None
        The soft code of smooth activations (None for the ReLU family or when not asked).
    positions : int64 array (rows, k)
        ``(input,)``, ``(input, i, j)`` or ``(input, token)`` of every row.
    grid : tuple of int
        ``(H, W)`` of a convolutional layer, ``(T,)`` of a sequence layer, ``()`` otherwise.
    layer, nonlinearity : str
    activation : Activation
    """

    codes: PolytopeCodes
    soft: NDArray[np.float16] | None
    positions: NDArray[np.int64]
    grid: tuple[int, ...]
    layer: str
    nonlinearity: str
    activation: act.Activation


def hard_code(rows: NDArray[np.float32], activation: act.Activation) -> tuple[NDArray[np.uint64], int]:
    """The packed hard code of pre-activation rows (rows, units): one bit per unit and breakpoint.

    Returns
    -------
    words : uint64 array (rows, words)
    n_bits : int
    """
    bits = (rows[..., None] > np.asarray(activation.breakpoints, np.float32)).reshape(len(rows), -1)
    return pack_bits(bits), int(bits.shape[1])


def code_rows(
    z: NDArray[np.float32],
    first: int = 0,
    lengths: NDArray[np.int64] | None = None,
    n_tokens: int | None = None,
    skip_tokens: int = 0,
) -> tuple[NDArray[np.float32], NDArray[np.int64], tuple[int, ...]]:
    """A batch of pre-activations as one row per position: ``(rows, positions, grid)``.

    ``z`` is (n, C), (n, C, H, W) (rows in ``(input, i, j)`` order) or (n, T, C) (the chosen
    tokens, :func:`token_positions`); ``first`` is the batch's first input.
    """
    n = len(z)
    if z.ndim == 2:
        return z, (first + np.arange(n))[:, None], ()
    if z.ndim == 4:
        _, c, h, w = z.shape
        index = np.stack(np.meshgrid(np.arange(n) + first, np.arange(h), np.arange(w), indexing="ij"), -1)
        return np.moveaxis(z, 1, -1).reshape(-1, c), index.reshape(-1, 3), (h, w)
    if z.ndim == 3:
        t = z.shape[1]
        batch_lengths = np.full(n, t) if lengths is None else lengths[first : first + n]
        chosen = token_positions(batch_lengths, n_tokens, skip_tokens)
        rows = z[chosen[:, 0], chosen[:, 1]]
        chosen[:, 0] += first
        return rows, chosen, (t,)
    raise ValueError(f"pre-activations of shape {z.shape} are neither (n, C), (n, T, C) nor (n, C, H, W)")


def record_codes(
    model: nn.Module,
    layer: str,
    batches: Iterable[Any],
    *,
    example: Any = None,
    lengths: ArrayLike | None = None,
    n_tokens: int | None = None,
    skip_tokens: int = 0,
    soft: bool = True,
    keep_preactivations: bool = False,
    activation: str | None = None,
) -> HookedCodes | tuple[HookedCodes, NDArray[np.float32]]:
    """Record the codes of one layer over batches of inputs.

    Parameters
    ----------
    model : nn.Module
    layer : str
        Dotted module name; its nonlinearity is found by :func:`find_nonlinearity`.
    batches : iterable
        Model inputs batch by batch: tensors, or tuples of positional arguments, or dicts of
        keyword arguments (a transformer's ``input_ids`` and ``attention_mask``).
    example : optional
        One batch for :func:`find_nonlinearity` (default: the first batch).
    lengths : int array (n,), optional
        Tokens per sequence, for sequence layers (default: the full length).
    n_tokens, skip_tokens
        Token sampling (:func:`token_positions`).
    soft : bool, default True
        Also keep the soft code of GELU/SiLU layers.
    keep_preactivations : bool, default False
        Also return the float32 pre-activation rows (for activation-space baselines).
    activation : {"relu", "gelu", "silu"}, optional
        For nonlinearities applied functionally (``F.relu``, no module to hook): the layer's
        own *output* is the pre-activation of this activation.

    Returns
    -------
    HookedCodes, or (HookedCodes, float32 array (rows, bits)) with ``keep_preactivations``
    """
    iterator = iter(batches)
    first_batch = next(iterator, None)
    if first_batch is None:
        raise ValueError("no inputs")
    probe = first_batch if example is None else example
    capture = "input"
    if activation is not None:
        kinds = {"relu": act.relu, "gelu": act.gelu, "silu": act.silu}
        if activation not in kinds:
            raise ValueError(f"activation must be one of {sorted(kinds)}, got {activation!r}")
        name, kind, capture = layer, kinds[activation](), "output"
    elif isinstance(probe, dict):
        name, kind = _find_with_kwargs(model, layer, probe)
    else:
        name, kind = find_nonlinearity(model, layer, probe)
    if kind.n_breakpoints == 0:
        raise ValueError(f"layer {layer!r} has no breakpoints to code")
    smooth = not kind.piecewise_linear
    lengths = None if lengths is None else np.asarray(lengths, np.int64)
    words, softs, positions, kept = [], [], [], []
    grid: tuple[int, ...] = ()
    start = 0
    with LayerRecorder(model, [name], capture=capture) as recorder:
        for batch in _chain(first_batch, iterator):
            if isinstance(batch, dict):
                captured = recorder.run(**batch)
            elif isinstance(batch, tuple):
                captured = recorder.run(*batch)
            else:
                captured = recorder.run(batch)
            z = captured[name].float().numpy()
            rows, index, grid = code_rows(z, start, lengths, n_tokens, skip_tokens)
            start += len(z)
            packed, n_bits = hard_code(rows, kind)
            words.append(packed)
            positions.append(index)
            if smooth and soft:
                softs.append(soft_code(rows, kind.name).astype(np.float16))
            if keep_preactivations:
                kept.append(rows.astype(np.float32, copy=False))
    codes = PolytopeCodes(np.concatenate(words), (name,), (n_bits,))
    result = HookedCodes(
        codes, np.concatenate(softs) if softs else None, np.concatenate(positions), grid, layer, name, kind
    )
    if keep_preactivations:
        return result, np.concatenate(kept)
    return result


def _chain(first: Any, rest: Iterable[Any]) -> Iterable[Any]:
    yield first
    yield from rest


def _find_with_kwargs(model: nn.Module, layer: str, kwargs: dict[str, Any]) -> tuple[str, act.Activation]:
    """:func:`find_nonlinearity` for models called with keyword arguments."""

    class _Call(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, _: Any) -> Any:
            return self.inner(**kwargs)

    wrapper = _Call(model)
    name, activation = find_nonlinearity(wrapper, f"inner.{layer}" if layer else "inner", torch.zeros(1))
    return name.removeprefix("inner."), activation
