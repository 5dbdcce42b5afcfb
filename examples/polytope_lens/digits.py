"""scikit-learn's 8x8 digits with annotated concepts: the class and shape properties computed from the pixels.

Concepts (a design of this study, following the notes' pilot; thresholds are tertiles of the
probing set, so each "high"/"low" concept holds for about a third of the images):

* ``digit=0`` .. ``digit=9`` (category ``class``);
* ``ink_high``, ``ink_low``: total ink in the top / bottom tertile;
* ``has_hole``, ``two_holes``: background regions enclosed by ink (ink > 0.25, 4-connected
  background), at least one / at least two;
* ``top_heavy``, ``bottom_heavy``, ``left_heavy``, ``right_heavy``: share of ink in the upper
  (left) half in the top / bottom tertile;
* ``wide``, ``narrow``: width of the inked columns, top / bottom tertile;
* ``slant_pos``, ``slant_neg``: ink-weighted correlation of column with (upward) row, top /
  bottom tertile (``/`` versus ``\\``);
* ``symmetric``: left-right mirror agreement in the top tertile;
* ``center_ink``: share of ink in the central 4x4 block, top tertile;
* ``middle_bar``: ink in the two middle rows, top tertile.

All but the class concepts are category ``shape``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["DigitsData", "digit_concepts", "load_digits_data"]


@dataclass(frozen=True)
class DigitsData:
    """The digits, scaled to [0, 1], with a stratified train/test split.

    Attributes
    ----------
    images : float64 (N, 8, 8)
    labels : int64 (N,)
    train, test : int64 index arrays
    """

    images: NDArray[np.float64]
    labels: NDArray[np.int64]
    train: NDArray[np.int64]
    test: NDArray[np.int64]

    @property
    def flat(self) -> NDArray[np.float64]:
        """(N, 64) inputs."""
        return self.images.reshape(len(self.images), -1)


def load_digits_data(test_size: float = 0.3, seed: int = 0) -> DigitsData:
    """Load ``sklearn.datasets.load_digits`` (shipped in the wheel, no download) and split it."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0
    labels = digits.target.astype(np.int64)
    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    return DigitsData(images, labels, np.sort(train), np.sort(test))


def _holes(image: NDArray[np.float64]) -> int:
    background = np.pad(image <= 0.25, 1, constant_values=True)
    _labels, count = ndimage.label(background)
    return max(0, count - 1)  # the padded border joins every outer background pixel into one region


def _tertiles(values: NDArray[np.float64]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    low, high = np.quantile(values, [1 / 3, 2 / 3])
    return values > high, values < low


def digit_concepts(
    images: NDArray[np.float64], labels: NDArray[np.int64]
) -> tuple[NDArray[np.bool_], list[str], list[str]]:
    """Concept masks of the digits (module docstring).

    Returns
    -------
    masks : bool (K, N)
    names, categories : list of str
    """
    n = len(images)
    ink = images.sum(axis=(1, 2))
    safe = np.where(ink > 0, ink, 1.0)
    rows = np.arange(8, dtype=np.float64)
    holes = np.array([_holes(image) for image in images])
    top_share = images[:, :4].sum(axis=(1, 2)) / safe
    left_share = images[:, :, :4].sum(axis=(1, 2)) / safe
    inked_columns = images.max(axis=1) > 0.25
    first = np.argmax(inked_columns, axis=1)
    last = 7 - np.argmax(inked_columns[:, ::-1], axis=1)
    width = np.where(inked_columns.any(axis=1), last - first + 1, 0).astype(np.float64)
    y = (7 - rows)[None, :, None] * np.ones((1, 1, 8))
    x = rows[None, None, :] * np.ones((1, 8, 1))
    mean_x = (images * x).sum(axis=(1, 2)) / safe
    mean_y = (images * y).sum(axis=(1, 2)) / safe
    cov = (images * (x - mean_x[:, None, None]) * (y - mean_y[:, None, None])).sum(axis=(1, 2)) / safe
    var_x = (images * (x - mean_x[:, None, None]) ** 2).sum(axis=(1, 2)) / safe
    var_y = (images * (y - mean_y[:, None, None]) ** 2).sum(axis=(1, 2)) / safe
    slant = cov / np.sqrt(np.maximum(var_x * var_y, 1e-12))
    symmetry = 1.0 - np.abs(images - images[:, :, ::-1]).sum(axis=(1, 2)) / (2 * safe)
    center = images[:, 2:6, 2:6].sum(axis=(1, 2)) / safe
    middle = images[:, 3:5].sum(axis=(1, 2))

    concepts: dict[str, NDArray[np.bool_]] = {f"digit={d}": labels == d for d in range(10)}
    concepts["ink_high"], concepts["ink_low"] = _tertiles(ink)
    concepts["has_hole"] = holes >= 1
    concepts["two_holes"] = holes >= 2
    concepts["top_heavy"], concepts["bottom_heavy"] = _tertiles(top_share)
    concepts["left_heavy"], concepts["right_heavy"] = _tertiles(left_share)
    concepts["wide"], concepts["narrow"] = _tertiles(width + 1e-3 * ink)  # ink breaks ties between equal widths
    concepts["slant_pos"], concepts["slant_neg"] = _tertiles(slant)
    concepts["symmetric"], _ = _tertiles(symmetry)
    concepts["center_ink"], _ = _tertiles(center)
    concepts["middle_bar"], _ = _tertiles(middle)
    names = list(concepts)
    masks = np.stack([concepts[name] for name in names]).reshape(len(names), n)
    categories = ["class" if name.startswith("digit=") else "shape" for name in names]
    return masks, names, categories
