"""What a dissection computes, apart from the model and the probe."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from logiclens.core.parallel import check_backend
from logiclens.explain.base import clone
from logiclens.explain.compositional import CompositionalExplainer
from logiclens.polytope.position_units import RegionUnitSettings

__all__ = ["HOLDOUT_BY", "THRESHOLD_MODES", "DissectionSettings"]

THRESHOLD_MODES = ("layer", "upsampled", "fixed")
HOLDOUT_BY = ("image", "group")
UNIT_KINDS = ("neurons", "code-clusters")
AUTOCAST_DTYPES = (None, "float16", "bfloat16")


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
    holdout_by : {"image", "group"}
        How images are held out: ``"image"`` (the default) draws them at random, each image
        in exactly one part, which measures how a formula holds on new images of the same
        kinds; ``"group"`` keeps the probe's groups together (all images of one pasted
        stamp object, say), which tests transfer to unseen groups: a formula that lists
        objects cannot transfer by construction.
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
    units : {"neurons", "code-clusters"}
        ``"code-clusters"`` also explains, per layer, clusters of the codes at the layer's
        nonlinearity and the baselines of ``regions`` (activation clusters, PCA/NMF/random
        directions, random subsets), and writes the size-matched comparison with the neurons.
    regions : RegionUnitSettings
        How code clusters and baselines are made (``units="code-clusters"``).
    extra_tokens : int, optional
        Token layers (n, tokens, dim): leading tokens that are not patches (CLS,
        registers). Default: one when the rest is a perfect square (see
        :mod:`logiclens.vision.activations.shapes`).
    channels_last : bool
        4-D layer outputs (and ``activations`` files) are (n, h, w, C).
    sae : str, optional
        Folder of a sparse autoencoder in SAELens' format (:mod:`logiclens.sae`): its
        latents, encoded from the layer's activations, are the units.
    ranges : int
        K activation ranges per unit (Clustered Compositional Explanations; see
        :mod:`logiclens.vision.activations.ranges`); 1 (default) is the top quantile.
    backend : {"local", "ray"}
        Where the stages run (:mod:`logiclens.core.parallel`): ``"local"`` (the explainer's
        ``n_jobs`` processes) or a Ray cluster, where the record stage runs in shards of
        ``shard_images`` images and the masks stage and the search in blocks of units. The
        explainer's own ``backend`` is replaced by this one. Results are the same.
    ray_address : str, optional
        The Ray cluster (default ``RAY_ADDRESS``, else a Ray instance on this machine).
    shard_images : int
        Images per record shard with ``backend="ray"`` (rounded up to whole batches); a
        killed job keeps its finished shards.
    autocast : {"float16", "bfloat16"}, optional
        Run the forward pass under ``torch.autocast`` in that precision (on ``device``):
        faster on GPUs, and activations change slightly, so thresholds and IoUs may too.
    count_device : str, optional
        Run the masks stage's upsample-threshold-count in torch on this device (``"cuda"``,
        ``"cpu"``) instead of NumPy (:mod:`logiclens.vision.activations.torch_counting`);
        the counts are the same.
    """

    layers: list[str]
    explainer: CompositionalExplainer = field(default_factory=_default_explainer)
    holdout_by: str = "image"
    top_fraction: float = 0.005
    threshold_mode: str = "layer"
    fixed_threshold: float = 0.0
    batch_size: int = 32
    device: str = "cpu"
    checkpoint_seconds: float = 30.0
    record_predictions: bool = True
    units: str = "neurons"
    regions: RegionUnitSettings = field(default_factory=RegionUnitSettings)
    extra_tokens: int | None = None
    channels_last: bool = False
    sae: str | None = None
    ranges: int = 1
    backend: str = "local"
    ray_address: str | None = None
    shard_images: int = 512
    autocast: str | None = None
    count_device: str | None = None

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("no layers to dissect")
        if not isinstance(self.explainer, CompositionalExplainer):
            raise TypeError(f"explainer must be a CompositionalExplainer, got {type(self.explainer).__name__}")
        if self.holdout_by not in HOLDOUT_BY:
            raise ValueError(f"holdout_by must be one of {HOLDOUT_BY}, got {self.holdout_by!r}")
        if self.threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {self.threshold_mode!r}")
        if not 0.0 < self.top_fraction < 1.0:
            raise ValueError(f"the top fraction q must lie in (0, 1), got {self.top_fraction}")
        if not math.isfinite(self.fixed_threshold):
            raise ValueError(f"the fixed threshold must be a finite number, got {self.fixed_threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.extra_tokens is not None and self.extra_tokens < 0:
            raise ValueError(f"extra_tokens must be >= 0, got {self.extra_tokens}")
        if self.ranges < 1:
            raise ValueError(f"ranges must be >= 1, got {self.ranges}")
        check_backend(self.backend, self.ray_address)
        if self.shard_images < 1:
            raise ValueError(f"shard_images must be >= 1, got {self.shard_images}")
        if self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast must be one of {AUTOCAST_DTYPES}, got {self.autocast!r}")
        if self.count_device is not None and self.ranges != 1:
            raise ValueError("count_device counts the top quantile; activation ranges are counted in NumPy")
        self.explainer.check_params()  # search and validation parameters, checked before anything is written
        if self.units not in UNIT_KINDS:
            raise ValueError(f"units must be one of {UNIT_KINDS}, got {self.units!r}")
        if not isinstance(self.regions, RegionUnitSettings):
            raise TypeError(f"regions must be a RegionUnitSettings, got {type(self.regions).__name__}")

    def to_config(self) -> dict[str, Any]:
        """The settings as ``config.json`` records them: each once, the explainer's by name."""
        return {
            "layers": list(self.layers),
            "holdout_by": self.holdout_by,
            "top_fraction": self.top_fraction,
            "threshold_mode": self.threshold_mode,
            "fixed_threshold": self.fixed_threshold,
            "batch_size": self.batch_size,
            "device": self.device,
            "checkpoint_seconds": self.checkpoint_seconds,
            "record_predictions": self.record_predictions,
            **({"units": self.units, "regions": self.regions.to_config()} if self.units != "neurons" else {}),
            **self.layout_config(),
            **({"ranges": self.ranges} if self.ranges != 1 else {}),
            **({"backend": self.backend, "shard_images": self.shard_images} if self.backend != "local" else {}),
            **({"autocast": self.autocast} if self.autocast is not None else {}),
            **({"count_device": self.count_device} if self.count_device is not None else {}),
            "explainer": {"class": type(self.explainer).__name__, **self.explainer.get_params(deep=False)},
        }

    def run_explainer(self, verbose: int) -> CompositionalExplainer:
        """A fresh copy of the explainer that runs where this run does (``backend``), as verbose as asked."""
        return clone(self.explainer).set_params(verbose=verbose, backend=self.backend, ray_address=self.ray_address)

    def layout_config(self) -> dict[str, Any]:
        """The options that change what the record stage stores (empty at their defaults, so old keys hold)."""
        options: dict[str, Any] = {}
        if self.extra_tokens is not None:
            options["extra_tokens"] = self.extra_tokens
        if self.channels_last:
            options["channels_last"] = True
        if self.sae is not None:
            options["sae"] = str(self.sae)
        return options
