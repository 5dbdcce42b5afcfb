"""EfficientNet-Lite0's head on the built-in shapes probe.

The head of EfficientNet-Lite0 -- ``conv_head`` (1x1) - ``bn2`` - ``act2`` (ReLU6) - global
average pooling - ``classifier`` -- is a piecewise-linear network of the output of
``blocks`` (320 x 7 x 7): :func:`~logiclens.polytope.torch_adapter.from_torch` converts it
exactly, so codes, exact traversal, local complexity and scaling all apply to it. The rest of
the network (residual blocks) is not sequential and is only run forward.

Units of analysis (the InceptionV1 protocol of the paper, several positions per image): the
code of ``act2`` at one spatial position, i.e. the 1280 channels' pre-activations (``bn2``'s
output, recorded with :class:`~logiclens.hooks.LayerRecorder`) against ReLU6's
breakpoints 0 and 6 (2560 bits). Each position gets the concepts of its 16 x 16 block of the
probe's 112 x 112 annotation: the image's scene, and every object, part and colour covering at
least ``min_cover`` of the block; and, since a position of the last layer sees the whole
image, image-level object concepts ``image:<shape>`` (the shape covers at least 1 % of the
image).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from logiclens.hooks import LayerRecorder
from logiclens.polytope.network import PiecewiseLinearNetwork
from logiclens.polytope.torch_adapter import from_torch
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["ShapesHeadData", "efficientnet_head", "load_shapes_head"]


@dataclass
class ShapesHeadData:
    """What the study needs from EfficientNet-Lite0 on the shapes probe.

    Attributes
    ----------
    head : PiecewiseLinearNetwork
        The head, from the output of ``blocks`` (15,680 inputs) to the 1000 logits.
    features : float64 (n_images, 15680)
        Output of ``blocks`` per image (the head's input).
    predicted : int64 (n_images,)
        ImageNet class predicted for each image.
    preactivations : float64 (n_positions, 1280)
        ``bn2`` output at the sampled positions.
    image_of : int64 (n_positions,)
        Image of each position.
    concept_masks : bool (K, n_positions)
    concept_names, concept_categories : list of str
    """

    head: PiecewiseLinearNetwork
    features: NDArray[np.float64]
    predicted: NDArray[np.int64]
    preactivations: NDArray[np.float64]
    image_of: NDArray[np.int64]
    concept_masks: NDArray[np.bool_]
    concept_names: list[str]
    concept_categories: list[str]


def efficientnet_head(module: nn.Module) -> nn.Sequential:
    """The head of a geffnet EfficientNet as an ``nn.Sequential`` with readable names."""
    return nn.Sequential(
        OrderedDict(
            conv_head=module.conv_head,
            bn2=module.bn2,
            act2=module.act2,
            global_pool=module.global_pool,
            flatten=nn.Flatten(),
            classifier=module.classifier,
        )
    )


def load_shapes_head(
    n_images: int = 300,
    positions_per_image: int = 4,
    seed: int = 0,
    batch_size: int = 25,
    min_cover: float = 0.3,
) -> ShapesHeadData:
    """Run EfficientNet-Lite0 on the shapes probe and collect the head's inputs, codes and concepts."""
    from logiclens.vision.models import load_model
    from logiclens.vision.probes import ShapesProbe

    model = load_model("efficientnet-lite0")
    module = model.module
    probe = ShapesProbe(n_images=n_images, seed=seed)
    head = from_torch(efficientnet_head(module), (320, 7, 7))
    rng = np.random.default_rng(seed)
    features, predicted, pre, image_of, label_rows = [], [], [], [], []
    n_cells = 7
    with LayerRecorder(module, ["blocks", "bn2", "classifier"]) as recorder:
        for batch in probe.batches(batch_size):
            out = recorder.run(model.preprocess(torch.from_numpy(batch.images)))
            features.append(out["blocks"].double().numpy().reshape(len(batch.indices), -1))
            predicted.append(out["classifier"].argmax(1).numpy())
            bn2 = out["bn2"].double().numpy()
            for b, index in enumerate(batch.indices):
                cells = rng.choice(n_cells * n_cells, size=positions_per_image, replace=False)
                for cell in cells:
                    i, j = divmod(int(cell), n_cells)
                    pre.append(bn2[b, :, i, j])
                    image_of.append(int(index))
                    cell = _cell_labels(batch.labels[b], i, j, n_cells, len(probe.concept_names), min_cover)
                    label_rows.append(np.concatenate([cell, _image_objects(batch.labels[b], probe)]))
    presence = np.stack(label_rows)  # (n_positions, K)
    objects = [name for name, cat in zip(probe.concept_names, probe.concept_categories) if cat == "object"]
    all_names = [*probe.concept_names, *(f"image:{name}" for name in objects)]
    all_categories = [*probe.concept_categories, *(["image"] * len(objects))]
    keep = presence.any(axis=0) & ~presence.all(axis=0)
    names = [name for name, k in zip(all_names, keep) if k]
    categories = [cat for cat, k in zip(all_categories, keep) if k]
    return ShapesHeadData(
        head=head,
        features=np.concatenate(features),
        predicted=np.concatenate(predicted).astype(np.int64),
        preactivations=np.stack(pre),
        image_of=np.asarray(image_of, np.int64),
        concept_masks=presence[:, keep].T.copy(),
        concept_names=names,
        concept_categories=categories,
    )


def _image_objects(labels: NDArray[np.int32], probe: ProbeDataset) -> NDArray[np.bool_]:
    """Which object concepts cover at least 1 % of the image (in object-concept order)."""
    objects = [i for i, cat in enumerate(probe.concept_categories) if cat == "object"]
    values = labels[..., 1].ravel()
    counts = np.bincount(values[values >= 0], minlength=len(probe.concept_names))
    return counts[objects] >= 0.01 * values.size


def _cell_labels(
    labels: NDArray[np.int32], i: int, j: int, n_cells: int, n_concepts: int, min_cover: float
) -> NDArray[np.bool_]:
    """Concepts of one cell: the scene, and objects, parts and colours covering at least ``min_cover`` of it."""
    h, w = labels.shape[:2]
    block = labels[i * h // n_cells : (i + 1) * h // n_cells, j * w // n_cells : (j + 1) * w // n_cells]
    present = np.zeros(n_concepts, bool)
    present[int(block[0, 0, 0])] = True  # the scene covers the whole image
    for channel in range(1, block.shape[-1]):
        values = block[..., channel].ravel()
        values = values[values >= 0]
        if len(values):
            ids, counts = np.unique(values, return_counts=True)
            present[ids[counts >= min_cover * block.shape[0] * block.shape[1]]] = True
    return present
