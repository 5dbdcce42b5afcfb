"""The model adapter: a network plus everything needed to feed it images and probe its layers.

A :class:`ModelAdapter` bundles an ``nn.Module`` (in eval mode) with its input resolution, its
input normalisation, the layers worth probing by default, its class names and a description of
its weights that is stable enough to key caches on.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ModelAdapter", "state_dict_sha256"]

#: per-channel RGB mean of ImageNet, for inputs in [0, 1] (the torchvision convention)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: per-channel RGB standard deviation of ImageNet, for inputs in [0, 1]
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Inputs whose maximum exceeds this are almost certainly 0-255 pixel values, not [0, 1].
_MAX_PLAUSIBLE_INPUT = 1.5


def state_dict_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's state: every tensor's name, dtype, shape and raw bytes, in order.

    Parameters
    ----------
    module : nn.Module
        The module whose ``state_dict()`` is hashed.

    Returns
    -------
    str
        Hexadecimal digest. Equal digests mean equal weights and buffers, whatever file (or
        random initialisation) they came from.
    """
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{flat.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _triple(values: Any, what: str) -> tuple[float, float, float]:
    """Validate a per-channel (R, G, B) triple of floats."""
    triple = tuple(float(v) for v in values)
    if len(triple) != 3:
        raise ValueError(f"{what} needs one value per RGB channel (3), got {len(triple)}")
    return triple  # type: ignore[return-value]


@dataclass(eq=False)
class ModelAdapter:
    """A network ready for probing.

    Parameters
    ----------
    module : nn.Module
        The network; put into eval mode on construction.
    name : str
        Short name (``"efficientnet-lite0"``, ``"resnet18-places365"``, a ``module:factory`` spec).
    input_size : tuple of int
        ``(H, W)`` the network expects (its training resolution).
    mean, std : tuple of float
        Per-channel RGB normalisation applied by :meth:`preprocess` to images in [0, 1]:
        ``(x - mean) / std``.
    default_layers : list of str
        Dotted module names (as ``module.named_modules()`` prints them) probed when the user
        names none. Each must exist in ``module``.
    class_names : list of str or None
        Names of the output classes, index-aligned with the logits; None when unknown.
    weights_path : str or None
        The file the weights were loaded from; None for weights that came from elsewhere
        (e.g. a factory's own initialisation).
    weights_sha256 : str or None
        SHA-256 of the bytes of ``weights_path`` that were actually loaded.
    details : dict
        Further JSON-able facts for :meth:`config` (architecture source, library versions, ...).
    label_space : str or None
        The name of the output's label space (``"imagenet-1k"``), so that probes labelled in
        a named space (the stamps probe's ImageNet matches) are used only with such a model.

    Attributes
    ----------
    module, name, input_size, mean, std, default_layers, class_names, weights_path, weights_sha256, details
        As given, validated.

    Notes
    -----
    :meth:`preprocess` does not resize: callers bring images to ``input_size`` (most
    convolutional networks accept other sizes too, with feature maps scaling accordingly).
    """

    module: nn.Module
    name: str
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    default_layers: list[str] = field(default_factory=list)
    class_names: list[str] | None = None
    weights_path: str | None = None
    weights_sha256: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    label_space: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(self.module).__name__}")
        size = tuple(int(v) for v in self.input_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"input_size must be (H, W) with positive entries, got {self.input_size!r}")
        self.input_size = size  # type: ignore[assignment]
        self.mean = _triple(self.mean, "mean")
        self.std = _triple(self.std, "std")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")
        self.default_layers = list(self.default_layers)
        names = [name for name, _ in self.module.named_modules()]
        known = set(names)
        for layer in self.default_layers:
            if layer not in known:
                close = difflib.get_close_matches(layer, names, n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ValueError(f"default layer {layer!r} is not a module of {self.name}{hint}")
        if self.class_names is not None:
            self.class_names = [str(c) for c in self.class_names]
        self.module.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise RGB images in [0, 1] the way the network was trained.

        Parameters
        ----------
        images : torch.Tensor
            Float tensor (n, 3, H, W), RGB, values in [0, 1], on any device.

        Returns
        -------
        torch.Tensor
            ``(images - mean) / std`` per channel, same shape, dtype and device.

        Raises
        ------
        TypeError
            If ``images`` is not a floating-point tensor.
        ValueError
            If the shape is not (n, 3, H, W) or the values look like 0-255 pixels.
        """
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            kind = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
            raise TypeError(f"images must be a floating-point tensor with values in [0, 1], got {kind}")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (n, 3, H, W), got {tuple(images.shape)}")
        if images.numel() and float(images.amax()) > _MAX_PLAUSIBLE_INPUT:
            raise ValueError("images must be in [0, 1]; these look like 0-255 pixel values (divide by 255)")
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std

    def config(self) -> dict[str, Any]:
        """Everything that determines the network's activations, JSON-able, for cache keys.

        Returns
        -------
        dict
            ``name``, ``module`` (class path), ``input_size``, ``mean``, ``std``,
            ``default_layers``, ``num_classes`` (None without class names), ``weights``
            (``{"path", "sha256"}`` or None), ``state_sha256`` (hash of the module's current
            weights and buffers, see :func:`state_dict_sha256`) and ``details``.

        Notes
        -----
        ``state_sha256`` is recomputed on every call (tens of milliseconds for a ResNet-18), so
        it stays right if the module's weights are changed in place.
        """
        weights = None
        if self.weights_path is not None or self.weights_sha256 is not None:
            weights = {"path": self.weights_path, "sha256": self.weights_sha256}
        module_type = type(self.module)
        return {
            "name": self.name,
            "module": f"{module_type.__module__}.{module_type.__qualname__}",
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "default_layers": list(self.default_layers),
            "num_classes": None if self.class_names is None else len(self.class_names),
            "weights": weights,
            "state_sha256": state_dict_sha256(self.module),
            "details": dict(self.details),
        }
