"""What a unit's card shows, as plain data (the same dicts go to the page and to report.json).

A card holds the unit's row of ``results.csv`` and its top-activating *examples*. Examples
come in kinds: :class:`ImageExample` (a probing image with the unit's and the formula's
masks drawn over it) and :class:`TextExample` (a text with the words the formula matches
marked, and, when every token is a position, the tokens where the unit is active). The page picks the template for
``examples["kind"]``, so a probe of a new modality adds an example class and a template
macro, nothing else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["ImageExample", "ShownSegment", "TextExample", "UnitCard", "plain"]


def plain(value: Any) -> Any:
    """A JSON-able copy of ``value``: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return None if _is_missing(value) else str(value)


def _is_missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


@dataclass
class ImageExample:
    """One top-activating probing image of a unit.

    Attributes
    ----------
    index : int
        The image's position in the probe.
    activation : float
        The unit's largest activation on it.
    iou : float or None
        IoU of the unit's mask and the formula's mask on this image (None where both are empty).
    unit_pixels, formula_pixels : int
        Active pixels of the unit and of the formula on it (annotation resolution).
    image : str
        Path of the image, relative to the report folder.
    overlay : str
        Path of the unit's overlays, relative to the report folder: a PNG of ``overlay_frames``
        frames at the annotation size stacked top to bottom, transparent outside the masks.
    overlay_frame : int
        This image's frame in it.
    overlay_frames : int
    heldout : bool
        Whether the image was held out of the search.
    """

    index: int
    activation: float
    iou: float | None
    unit_pixels: int
    formula_pixels: int
    image: str
    overlay: str
    overlay_frame: int = 0
    overlay_frames: int = 1
    heldout: bool = False
    kind: str = field(default="image", init=False)


@dataclass
class ShownSegment:
    """A named run of tokens of a text example, with the tokens to highlight.

    Attributes
    ----------
    name : str
        ``premise``, ``hypothesis`` or ``text``.
    tokens : list of str
    matched : list of bool
        Per token: a word the formula matches.
    active : list of bool or None
        Per token: the unit is active on it (only when every token is a position).
    activation : list of float or None
        Per token: the unit's activation (only when every token is a position).
    before, after : int
        Tokens of the segment left out before and after the shown ones (long token-level
        texts are shown around their most active token).
    """

    name: str
    tokens: list[str]
    matched: list[bool]
    active: list[bool] | None = None
    activation: list[float] | None = None
    before: int = 0
    after: int = 0


@dataclass
class TextExample:
    """One top-activating text of a unit (for text probes).

    Attributes
    ----------
    index : int
        The example's position in the probe (a pair, a sentence, or a sentence of tokens).
    activation : float
        The unit's activation on it (its largest over the tokens, when tokens are positions).
    formula_holds : bool or None
        The formula holds on the example (on one of its tokens, when tokens are positions);
        None for units without a formula.
    iou : float or None
        Token-level IoU of the unit's and the formula's masks (only when tokens are positions;
        None where both are empty).
    segments : list of ShownSegment
    heldout : bool
    """

    index: int
    activation: float
    formula_holds: bool | None
    iou: float | None
    segments: list[ShownSegment]
    heldout: bool = False
    kind: str = field(default="text", init=False)


@dataclass
class UnitCard:
    """A unit's card.

    Attributes
    ----------
    layer : str
    position : int
        The unit's row within its layer.
    anchor : str
        The card's HTML id (``u-<layer file name>-<position>``).
    fields : dict
        The unit's row of ``results.csv`` (JSON-able values).
    examples : list of ImageExample or TextExample
        Best first; empty when the unit is never active or the probe could not be reopened.
    """

    layer: str
    position: int
    anchor: str
    fields: dict[str, Any]
    examples: list[ImageExample | TextExample] = field(default_factory=list)

    @property
    def example_kind(self) -> str | None:
        """``"image"``, ``"text"`` or None (no examples)."""
        return self.examples[0].kind if self.examples else None

    def to_dict(self) -> dict[str, Any]:
        """The card as report.json stores it: the result fields, ``anchor`` and ``examples``."""
        examples = {"kind": self.example_kind, "items": [plain(asdict(e)) for e in self.examples]}
        return {**plain(self.fields), "anchor": self.anchor, "examples": examples}
