"""Vision dissection: images -> activations -> thresholds -> unit masks -> formulas.

:func:`dissect` runs the stages in a run directory (see :mod:`logiclens.runs.layout`),
each keyed by a fingerprint of its inputs so that a rerun reuses finished stages:

``record`` (:mod:`.record`)
    One pass over the probe: activations and per-pixel signatures.
``split`` (:mod:`.split`)
    Search and held-out images, and the permutations of the null.
``thresholds`` (:mod:`.thresholds`)
    Each unit's exact top quantile, or a fixed value.
``masks`` (:mod:`.masks`)
    Active pixels counted per signature, for every variant in one pass.
``search`` (:mod:`.search`)
    The explainer's validated search, through
    :meth:`~logiclens.CompositionalExplainer.fit_variants`.
"""

from logiclens.vision.dissect.control import random_init_copy
from logiclens.vision.dissect.driver import dissect
from logiclens.vision.dissect.masks import count_unit_masks
from logiclens.vision.dissect.recording import ActivationFile
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.dissect.thresholds import compute_thresholds

__all__ = [
    "ActivationFile",
    "DissectionSettings",
    "compute_thresholds",
    "count_unit_masks",
    "dissect",
    "random_init_copy",
]
