"""What a dissection computes, apart from the model and the probe."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from logiclens.explain.compositional import CompositionalExplainer

__all__ = ["THRESHOLD_MODES", "DissectionSettings"]

THRESHOLD_MODES = ("layer", "upsampled", "fixed")


def _default_explainer() -> CompositionalExplainer:
    return CompositionalExplainer(n_null=20)


@dataclass
class DissectionSettings:
    """What a dissection computes, apart from the model and the probe.

    Parameters
    ----------
    layers : list of str
        Dotted layer names (``LayerRecorder`` syntax).
    explainer : CompositionalExplainer
        The search and its validation: ``holdout`` (the fraction of images held out, by the
        probe's group key, e.g. the pasted object), ``n_null`` (permutations of the null: each
        unit's maps counted against other search images' annotations), ``alpha`` (the
        false-discovery rate of ``significant``), ``random_state`` (the split and the
        permutations), and ``n_jobs`` (processes of the search). Default:
        ``CompositionalExplainer(n_null=20)``.
    top_fraction : float
        q in P(activation > T) = q (NetDissect: 0.005).
    threshold_mode : {"layer", "upsampled", "fixed"}
        The quantile over the layer's own positions (NetDissect), over the bilinearly
        upsampled pixels (the paper's definition), or ``fixed_threshold``.
    fixed_threshold : float
        Used when ``threshold_mode="fixed"`` (e.g. 0.0 for post-ReLU units).
    batch_size : int
    device : str
        ``"cpu"`` or ``"cuda"``.
    checkpoint_seconds : float
        How often the record stage saves its state.
    record_predictions : bool
        Also keep the model's output (logits; the top classes of heads wider than 4096) and
        the probe's class labels, from the same forward pass (which then runs to the end).
        They feed :mod:`logiclens.analysis`. False keeps the record stage's fingerprint of
        runs made before predictions were recorded.
    """

    layers: list[str]
    explainer: CompositionalExplainer = field(default_factory=_default_explainer)
    top_fraction: float = 0.005
    threshold_mode: str = "layer"
    fixed_threshold: float = 0.0
    batch_size: int = 32
    device: str = "cpu"
    checkpoint_seconds: float = 30.0
    record_predictions: bool = True

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("no layers to dissect")
        if not isinstance(self.explainer, CompositionalExplainer):
            raise TypeError(f"explainer must be a CompositionalExplainer, got {type(self.explainer).__name__}")
        if self.threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {self.threshold_mode!r}")
        if not 0.0 < self.top_fraction < 1.0:
            raise ValueError(f"the top fraction q must lie in (0, 1), got {self.top_fraction}")
        if not math.isfinite(self.fixed_threshold):
            raise ValueError(f"the fixed threshold must be a finite number, got {self.fixed_threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.explainer.holdout < 1.0:
            raise ValueError(f"holdout must lie in [0, 1), got {self.explainer.holdout}")
        if self.explainer.n_null < 0:
            raise ValueError(f"n_null must be >= 0, got {self.explainer.n_null}")

    def to_config(self) -> dict[str, Any]:
        """The settings as ``config.json`` records them: each once, the explainer's by name."""
        return {
            "layers": list(self.layers),
            "top_fraction": self.top_fraction,
            "threshold_mode": self.threshold_mode,
            "fixed_threshold": self.fixed_threshold,
            "batch_size": self.batch_size,
            "device": self.device,
            "checkpoint_seconds": self.checkpoint_seconds,
            "record_predictions": self.record_predictions,
            "explainer": {"class": type(self.explainer).__name__, **self.explainer.get_params(deep=False)},
        }
