"""Synthetic probing problems with planted answers, for tests, demos and benchmarks.

A *planted* unit is the mask of a known formula over random concepts, optionally with
noise; a search should recover the formula (or one at least as good).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.core.formula import parse
from logiclens.vision.probes.base import ProbeDataset

__all__ = [
    "PLANTED_UNIT_FORMULAS",
    "LabelledPlantedProbe",
    "PlantedProbe",
    "PlantedProblem",
    "planted_classifier",
    "planted_model",
    "planted_problem",
    "tiny_conv_model",
]


@dataclass
class PlantedProblem:
    """Concepts, unit masks and the formulas the units were planted from."""

    concepts: ConceptSet
    concept_masks: NDArray[np.bool_]  # (K, N)
    unit_masks: NDArray[np.bool_]  # (U, N)
    planted: list[str]


def planted_problem(
    formulas: Sequence[str],
    n_positions: int = 20_000,
    n_concepts: int = 40,
    density: tuple[float, float] = (0.01, 0.2),
    noise: float = 0.0,
    seed: int = 0,
) -> PlantedProblem:
    """Random concepts ``c0 .. c{K-1}`` and one unit per planted formula.

    Parameters
    ----------
    formulas : sequence of str
        Formulas over the names ``c0``, ``c1``, ... e.g. ``"(c1 OR c2) AND NOT c3"``.
    n_positions, n_concepts : int
    density : (float, float)
        Each concept covers a fraction of positions drawn uniformly from this range.
    noise : float
        Fraction of each unit's positions whose value is flipped, as far as the count of
        flips goes: ``noise * |mask|`` positions in and as many out of the mask.
    seed : int
    """
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(n_concepts)]
    fractions = rng.uniform(*density, size=n_concepts)
    masks = rng.random((n_concepts, n_positions)) < fractions[:, None]
    concepts = ConceptSet.from_dense(masks, names, categories=["random"] * n_concepts)
    units = np.stack([concepts.mask(parse(f)) for f in formulas]) if formulas else np.zeros((0, n_positions), bool)
    for unit in units:
        flips = round(float(noise * unit.sum()))
        if flips:
            on, off = np.flatnonzero(unit), np.flatnonzero(~unit)
            unit[rng.choice(on, min(flips, len(on)), replace=False)] = False
            unit[rng.choice(off, min(flips, len(off)), replace=False)] = True
    return PlantedProblem(concepts, masks, units, list(formulas))


class PlantedProbe(ProbeDataset):
    """Tiny segmentation probe whose RGB channels *are* the masks of concepts a, b, c.

    Every image (``size`` x ``size``, annotations at the same size) holds one random
    rectangle per concept, and an image-level scene, ``indoor`` or ``outdoor``. Paired with
    :func:`planted_model`, whose units compute known formulas of the channels, a dissection
    must recover those formulas with IoU 1.0.
    """

    def __init__(
        self,
        n_images: int = 24,
        size: int = 16,
        seed: int = 0,
        fail_at: int | None = None,
        failure: type[BaseException] = KeyboardInterrupt,
    ) -> None:
        self.concept_names = ["indoor", "outdoor", "a", "b", "c"]
        self.concept_categories = ["scene", "scene", "object", "object", "object"]
        self.n_images, self.size, self.seed = n_images, size, seed
        self.image_size = self.mask_size = (size, size)
        self.fail_at = fail_at  # raise `failure` when this image is loaded (resume tests)
        self.failure = failure

    def __len__(self) -> int:
        return self.n_images

    def config(self) -> dict[str, object]:
        return {"kind": "planted", "n_images": self.n_images, "size": self.size, "seed": self.seed}

    def load(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        if index == self.fail_at:
            raise self.failure(f"simulated failure at image {index}")
        rng = np.random.default_rng([self.seed, index])
        image = np.zeros((3, self.size, self.size), np.float32)
        for channel in range(3):
            top, left = rng.integers(0, self.size - 2, size=2)
            height, width = rng.integers(2, self.size // 2 + 1, size=2)
            image[channel, top : top + height, left : left + width] = 1.0
        labels = np.full((self.size, self.size, 4), -1, np.int32)
        labels[..., 0] = int(rng.integers(0, 2))
        for channel in range(3):
            labels[..., channel + 1][image[channel] > 0] = channel + 2
        return image, labels


#: formulas computed by the units of :func:`planted_model` (thresholded at > 0)
PLANTED_UNIT_FORMULAS = ["a", "a AND NOT b", "b OR c", "a AND c"]


def planted_model():  # type: ignore[no-untyped-def]
    """A 1x1-convolution + ReLU network whose units compute :data:`PLANTED_UNIT_FORMULAS`.

    On :class:`PlantedProbe` images (channels = masks of a, b, c), unit k of layer ``relu``
    is positive exactly where formula k holds. Returns a ``ModelAdapter``.
    """
    import torch
    from torch import nn

    from logiclens.vision.models.base import ModelAdapter

    conv = nn.Conv2d(3, 4, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0, 0], [1, -1, 0], [0, 1, 1], [1, 0, 1]]).reshape(4, 3, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 0.0, -0.5, -1.5]))
    module = nn.Sequential()
    module.add_module("conv", conv)
    module.add_module("relu", nn.ReLU())
    return ModelAdapter(
        module, "planted", input_size=(16, 16), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), default_layers=["relu"]
    )


class LabelledPlantedProbe(PlantedProbe):
    """:class:`PlantedProbe` whose images carry class labels: 0 where concept a covers more pixels than b."""

    def class_label(self, index: int, labels: NDArray[np.int32]) -> int | None:
        a, b = int((labels[..., 1] == 2).sum()), int((labels[..., 2] == 3).sum())
        return None if a == b else (0 if a > b else 1)


def planted_classifier():  # type: ignore[no-untyped-def]
    """:func:`planted_model` with a head: global average pooling and a linear layer over its 4 units.

    Class 0 is driven by unit 0 (``a``), class 1 by unit 2 (``b OR c``), class 2 is a constant
    (its bias). So pasting concept a raises class 0, pasting b or c raises class 1 instead.
    """
    import torch
    from torch import nn

    from logiclens.vision.models.base import ModelAdapter

    base = planted_model().module
    linear = nn.Linear(4, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[40.0, 0, 0, 0], [0, 0, 40, 0], [0, 0, 0, 0]]))
        linear.bias.copy_(torch.tensor([0.0, 0.0, 4.0]))
    module = nn.Sequential()
    module.add_module("conv", base.conv)
    module.add_module("relu", base.relu)
    module.add_module("pool", nn.AdaptiveAvgPool2d(1))
    module.add_module("flatten", nn.Flatten())
    module.add_module("fc", linear)
    return ModelAdapter(
        module, "planted-classifier", input_size=(16, 16), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
        default_layers=["relu"], class_names=["class-a", "class-bc", "other"],
    )  # fmt: skip


def tiny_conv_model(seed: int = 0):  # type: ignore[no-untyped-def]
    """A small randomly initialised CNN (32 x 32 inputs) for fast end-to-end runs on the shapes probe.

    Layers: ``conv1`` (3 -> 8, stride 2) -> ``bn1`` -> ``relu1`` -> ``conv2`` (8 -> 16, stride 2)
    -> ``relu2`` -> ``pool`` -> ``fc``; ``pool`` is followed by no nonlinearity. Returns a
    ``ModelAdapter``.
    """
    import torch
    from torch import nn

    from logiclens.vision.models.base import ModelAdapter

    torch.manual_seed(seed)
    module = nn.Sequential()
    module.add_module("conv1", nn.Conv2d(3, 8, 3, stride=2, padding=1))
    module.add_module("bn1", nn.BatchNorm2d(8))
    module.add_module("relu1", nn.ReLU())
    module.add_module("conv2", nn.Conv2d(8, 16, 3, stride=2, padding=1))
    module.add_module("relu2", nn.ReLU())
    module.add_module("pool", nn.AdaptiveAvgPool2d(1))
    module.add_module("flat", nn.Flatten())
    module.add_module("fc", nn.Linear(16, 4))
    module.eval()
    return ModelAdapter(
        module, "tiny-conv", input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), default_layers=["conv2"]
    )
