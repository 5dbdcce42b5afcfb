"""Loading weights into modules with clear errors (files are read by :mod:`logiclens.checkpoints`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from logiclens.checkpoints import CheckpointError, read_checkpoint

__all__ = ["CheckpointError", "extract_state_dict", "load_state_dict_strict", "read_checkpoint"]

# Keys under which training scripts commonly nest the model's state dict.
_NESTED_KEYS = ("state_dict", "model_state_dict")
_DATA_PARALLEL_PREFIX = "module."


def _preview(items: Iterable[Any], limit: int = 8) -> str:
    """Comma-separated first ``limit`` items, with a count of the rest."""
    items = list(items)
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint.

    Accepts a plain state dict, or a dict holding one under ``state_dict`` or
    ``model_state_dict`` (training checkpoints such as ``resnet18_places365.pth.tar``). When every
    key starts with ``module.`` (saved from ``nn.DataParallel``), that prefix is removed.

    Parameters
    ----------
    obj : object
        What :func:`read_checkpoint` returned.
    source : str
        Where it came from, for error messages.

    Returns
    -------
    dict of str to torch.Tensor
        The state dict, in the checkpoint's order.

    Raises
    ------
    CheckpointError
        If no mapping of names to tensors can be found.
    """
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        kind = type(obj).__name__
        raise CheckpointError(f"{source} holds a {kind}, not a state dict (a mapping of names to tensors)")
    not_tensors = [key for key, value in obj.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{source} is not a state dict: entries {_preview(not_tensors)} are not tensors "
            f"(a training checkpoint should keep the weights under one of {list(_NESTED_KEYS)})"
        )
    state = {str(key): value for key, value in obj.items()}
    if state and all(key.startswith(_DATA_PARALLEL_PREFIX) for key in state):
        state = {key[len(_DATA_PARALLEL_PREFIX) :]: value for key, value in state.items()}
    if not state:
        raise CheckpointError(f"{source} holds an empty state dict")
    return state


def load_state_dict_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, target: str) -> None:
    """Load ``state`` into ``module``, requiring every key and every shape to match.

    BatchNorm ``num_batches_tracked`` counters may be absent (checkpoints from PyTorch < 0.4
    lack them; BatchNorm then fills them in itself).

    Parameters
    ----------
    module : nn.Module
        The module to load into (left partially loaded on error; callers discard it).
    state : mapping of str to torch.Tensor
        The weights.
    source : str
        Where they came from, for error messages.
    target : str
        What the module is, for error messages.

    Raises
    ------
    CheckpointError
        On shape mismatches, missing keys or unexpected keys, listing them.
    """
    expected = module.state_dict()
    mismatched = [
        f"{key} {tuple(value.shape)} vs {tuple(expected[key].shape)}"
        for key, value in state.items()
        if key in expected and tuple(value.shape) != tuple(expected[key].shape)
    ]
    if mismatched:
        raise CheckpointError(
            f"{source} does not fit {target}: {len(mismatched)} tensor(s) have the wrong shape "
            f"(checkpoint vs model): {_preview(mismatched)}"
        )
    result = module.load_state_dict(dict(state), strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} missing key(s): {_preview(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} unexpected key(s): {_preview(result.unexpected_keys)}")
    if problems:
        raise CheckpointError(f"{source} does not fit {target}: " + "; ".join(problems))
