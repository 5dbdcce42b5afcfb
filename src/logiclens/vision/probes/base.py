"""The probing-dataset interface: images with pixel-level concept annotations.

A probe yields, for each image, the RGB input at the model's resolution and a label array
at the annotation resolution: for every annotation pixel, the ids of the concepts present
there (one channel per label kind, e.g. object, part, colour, and the image-level scene
repeated over every pixel), padded with -1. Those label arrays feed
:meth:`logiclens.ConceptSet.from_label_chunks` directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from logiclens.core.fingerprint import fingerprint

__all__ = ["ProbeBatch", "ProbeDataset", "ProbeUnavailableError", "stack_labels"]


class ProbeUnavailableError(ValueError):
    """A run's probe cannot be reopened (unknown kind, files gone or changed since the run)."""


@dataclass
class ProbeBatch:
    """A batch of probe images.

    Attributes
    ----------
    indices : int64 (n,)
        Positions of the images in the probe.
    images : float32 (n, 3, H, W)
        RGB in [0, 1] at ``image_size``; models apply their own normalisation.
    labels : int32 (n, h, w, L)
        Concept ids per annotation pixel at ``mask_size``, padded with -1.
    """

    indices: NDArray[np.int64]
    images: NDArray[np.float32]
    labels: NDArray[np.int32]


def stack_labels(labels: list[NDArray[np.integer]]) -> NDArray[np.int32]:
    """Stack (h, w, L_i) label arrays into (n, h, w, max L_i), padding with -1."""
    width = max(1, max(item.shape[-1] for item in labels))
    out = np.full((len(labels), *labels[0].shape[:2], width), -1, np.int32)
    for i, item in enumerate(labels):
        out[i, ..., : item.shape[-1]] = item
    return out


class ProbeDataset(ABC):
    """A probing set of annotated images.

    Subclasses set ``concept_names``, ``concept_categories``, ``image_size`` and
    ``mask_size`` and implement ``__len__``, :meth:`load` and :meth:`config`.
    """

    #: unique concept names; label ids index this list
    concept_names: list[str]
    #: one category per concept (``scene``, ``object``, ``part``, ``color``, ...)
    concept_categories: list[str]
    #: (H, W) of the model input
    image_size: tuple[int, int]
    #: (h, w) of the annotation masks
    mask_size: tuple[int, int]
    #: the label space of :meth:`class_label` (e.g. ``"imagenet-1k"``); None: the model's own
    class_label_space: str | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        """One image: RGB float32 (3, H, W) in [0, 1], and labels int32 (h, w, L) padded with -1."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that determines the probe's content (kind, path, seed, size, ...), JSON-able."""

    def class_label(self, index: int, labels: NDArray[np.int32]) -> int | str | None:
        """The ground-truth class of image ``index`` in the model's label space, if the probe knows it.

        Parameters
        ----------
        index : int
            The image.
        labels : int32 (h, w, L)
            Its concept labels, as :meth:`load` returned them (so that no image is loaded twice).

        Returns
        -------
        int, str or None
            A class index of the model's output, a class name (resolved against the model's
            class names), or None for an image without a label (the default: probes carry no
            class labels unless they say so). Images without a label are left out of accuracy.
        """
        return None

    def fingerprint(self) -> str:
        """Content key for caches: a hash of :meth:`config` and the concept names."""
        return fingerprint(self.config(), self.concept_names)

    def group(self, index: int) -> str:
        """Group key of an image for held-out splits (images of one group stay together)."""
        return str(index)

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[ProbeBatch]:
        """Images ``start .. stop - 1`` in batches."""
        stop = len(self) if stop is None else min(stop, len(self))
        for first in range(start, stop, batch_size):
            indices = np.arange(first, min(first + batch_size, stop), dtype=np.int64)
            loaded = [self.load(int(i)) for i in indices]
            images = np.stack([image for image, _ in loaded]).astype(np.float32, copy=False)
            yield ProbeBatch(indices, images, stack_labels([labels for _, labels in loaded]))
