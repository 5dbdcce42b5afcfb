"""ResNet-18 in plain PyTorch, with torchvision's module names, and the Places365 adapter.

torchvision cannot be installed next to the CPU build of torch used here, so the architecture
is written out (He et al., 2016: a 7x7 stem, four stages of two basic blocks, global average
pooling, one linear layer). Module and parameter names follow torchvision's ``resnet18``
exactly (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``, ...), so its
state dicts load unchanged, including the public Places365 checkpoint
``resnet18_places365.pth.tar`` (http://places2.csail.mit.edu/models_places365/), which must be
downloaded by the user: nothing here downloads weights.

Unlike torchvision, no operation is in place (``ReLU(inplace=False)``, ``out = out + identity``),
so a forward hook on any layer sees that layer's own output rather than a tensor a later
operation overwrote. Outputs are identical.
"""

from __future__ import annotations

import os
from typing import Literal

import torch
from torch import nn

from logiclens.vision.models._checkpoint import extract_state_dict, load_state_dict_strict, read_checkpoint
from logiclens.vision.models.base import IMAGENET_MEAN, IMAGENET_STD, ModelAdapter
from logiclens.vision.models.labels import read_class_names

__all__ = ["NETDISSECT_MEAN", "NETDISSECT_STD", "BasicBlock", "ResNet18", "resnet18_places365"]

PLACES365_CLASSES = 365

#: RGB mean, for inputs in [0, 1], equivalent to NetDissect-Lite's Caffe-style preprocessing:
#: BGR pixels in 0-255 minus the BGR means (109.5388, 118.6897, 124.6901), flipped back to RGB,
#: divided by 255 * 0.224.
NETDISSECT_MEAN: tuple[float, float, float] = (124.6901 / 255, 118.6897 / 255, 109.5388 / 255)
#: RGB standard deviation matching :data:`NETDISSECT_MEAN` (0.224 for every channel).
NETDISSECT_STD: tuple[float, float, float] = (0.224, 0.224, 0.224)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (the ResNet-18/34 block).

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    channels : int
        Channels of both convolutions and of the output.
    stride : int
        Stride of the first convolution; when not 1, or when the channel count changes, the
        shortcut is a strided 1x1 convolution plus BatchNorm (``downsample``).
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block; ``relu`` is called twice (after ``bn1`` and after the addition)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 with torchvision's module names.

    Parameters
    ----------
    num_classes : int
        Outputs of the final linear layer ``fc`` (365 for Places365, 1000 for ImageNet).

    Notes
    -----
    At 224 x 224 the stage outputs are ``layer1`` 64x56x56, ``layer2`` 128x28x28,
    ``layer3`` 256x14x14 and ``layer4`` 512x7x7.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, stride=2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, stride=2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, stride=2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n, num_classes) for normalised images (n, 3, H, W)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18_places365(
    weights: str | os.PathLike[str],
    categories: str | os.PathLike[str] | None = None,
    normalization: Literal["imagenet", "netdissect"] = "imagenet",
) -> ModelAdapter:
    """ResNet-18 trained on Places365, from a checkpoint file.

    Parameters
    ----------
    weights : str or PathLike
        ``resnet18_places365.pth.tar`` (a dict with ``state_dict`` whose keys carry the
        ``module.`` prefix of ``nn.DataParallel``), or a plain state dict with or without that
        prefix. Read with ``torch.load(..., weights_only=True)``.
    categories : str or PathLike, optional
        ``categories_places365.txt`` (``/a/airfield 0`` per line) for ``class_names``; without it
        ``class_names`` is None (the names are not available offline).
    normalization : {"imagenet", "netdissect"}
        ``"imagenet"`` (default): ImageNet mean/std on RGB, the normalisation the Places365
        PyTorch models were trained with (``train_placesCNN.py`` uses torchvision's ImageNet
        statistics). ``"netdissect"``: the statistics NetDissect-Lite, the code base of
        "Compositional Explanations of Neurons", feeds this model: Caffe-style BGR means
        subtracted from 0-255 pixels, flipped back to RGB and divided by 255 * 0.224, i.e. RGB
        mean (0.489, 0.465, 0.430) and std 0.224 on [0, 1]. Use it to reproduce the paper's
        activations; the two differ by at most 0.024 in mean and 0.005 in std on the [0, 1] scale
        (the blue mean most, about 0.1 standard deviations).

    Returns
    -------
    ModelAdapter
        Input 224 x 224, default layer ``layer4`` (512 x 7 x 7 at 224), 365 classes.

    Raises
    ------
    FileNotFoundError
        If ``weights`` (or ``categories``) does not exist.
    CheckpointError
        If the file cannot be read safely or its keys or shapes do not fit ResNet-18 with 365
        classes (missing and unexpected keys are listed).
    """
    if normalization == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif normalization == "netdissect":
        mean, std = NETDISSECT_MEAN, NETDISSECT_STD
    else:
        raise ValueError(f"normalization must be 'imagenet' or 'netdissect', got {normalization!r}")
    obj, sha256, path = read_checkpoint(weights)
    state = extract_state_dict(obj, source=str(path))
    module = ResNet18(num_classes=PLACES365_CLASSES)
    load_state_dict_strict(module, state, source=str(path), target=f"ResNet-18 with {PLACES365_CLASSES} classes")
    class_names = None if categories is None else read_class_names(categories, num_classes=PLACES365_CLASSES)
    return ModelAdapter(
        module=module,
        name="resnet18-places365",
        input_size=(224, 224),
        mean=mean,
        std=std,
        default_layers=["layer4"],
        class_names=class_names,
        weights_path=str(path),
        weights_sha256=sha256,
        details={"architecture": "logiclens.vision.models.resnet.ResNet18", "normalization": normalization},
    )
