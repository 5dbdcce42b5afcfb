"""The names of a run directory's files: the one place that knows where each stage writes.

=================================  ================================================
``config.json``                    the model, the probe and the settings, once each
``environment.json``               versions of Python and the libraries
``manifest.json``                  each stage's fingerprint and state
``record/<layer>.npy``             activations (images, units, h, w) or (positions, units)
``record/signatures.npy``          signature of every annotation pixel (images, H, W)
``record/predictions.npy``         the model's output per input (inputs, classes), float32, same pass
``record/top_classes.npy``         instead, for heads wider than 4096 classes: the top 20 class ids
``record/top_logits.npy``          and their logits (inputs, 20)
``record/targets.npy``             ground-truth class id per input in the model's label space, -1: none
``concepts.npz``                   the concept set
``split.npz``                      search and held-out examples (and the null's variants)
``thresholds_<layer>.npz``         per-unit thresholds and tie-breaking cuts
``units_<layer>.npz``              unit masks in count form, one block per variant
``results_<layer>.csv``            one row per unit of the layer
``top_formulas_<layer>.csv``       the top formulas per unit
``best_by_length_<layer>.csv``     the best score per unit and exact formula length
``regions_<layer>.csv``            code-cluster runs: region and direction units, one row each
``region_masks_<layer>.npz``       and the positions each of them covers (for the report's cards)
``comparison_<layer>.csv``         the size-matched comparison of the unit families
``record/codes_<layer>.npy``       the layer's bit-packed spline codes per position
``results.csv``                    every layer's rows: written last, when the run is complete
``results.jsonl``                  the same units, one JSON record each, keyed ``model/layer/index``
``texts.jsonl``                    text runs: the probing texts and their concepts per token
``analysis/accuracy.csv``          accuracy when active per unit, and r per maximum formula length
``analysis/contributions.csv``     per class, its top contributing units
``analysis/unit_classes.csv``      per unit, the classes it contributes to most (+ and -)
``analysis/heldout_by_length_<layer>.csv``  held-out IoU of each unit's answer per maximum length
``analysis/copy_paste.csv``        one row per copy-paste (or word-insertion) edit
``analysis/summary.json``          the analysis' settings, correlations and effects with CIs
=================================  ================================================

``<layer>`` is :func:`layer_file_name` of the layer's name.
"""

from __future__ import annotations

import re

__all__ = [
    "ACCURACY",
    "ANALYSIS",
    "ANALYSIS_SUMMARY",
    "CONCEPTS",
    "CONFIG",
    "CONTRIBUTIONS",
    "COPY_PASTE",
    "ENVIRONMENT",
    "PREDICTIONS",
    "RESULTS",
    "RESULTS_JSONL",
    "SIGNATURES",
    "SPLIT",
    "TARGETS",
    "TEXTS",
    "TOP_CLASSES",
    "TOP_LOGITS",
    "UNIT_CLASSES",
    "best_by_length_file",
    "heldout_by_length_file",
    "layer_file_name",
    "record_file",
    "results_file",
    "thresholds_file",
    "top_formulas_file",
    "units_file",
]

CONFIG = "config.json"
ENVIRONMENT = "environment.json"
RESULTS = "results.csv"
RESULTS_JSONL = "results.jsonl"
CONCEPTS = "concepts.npz"
SPLIT = "split.npz"
TEXTS = "texts.jsonl"
SIGNATURES = "record/signatures.npy"
PREDICTIONS = "record/predictions.npy"
TOP_CLASSES = "record/top_classes.npy"
TOP_LOGITS = "record/top_logits.npy"
TARGETS = "record/targets.npy"
ANALYSIS = "analysis"
ACCURACY = "analysis/accuracy.csv"
CONTRIBUTIONS = "analysis/contributions.csv"
UNIT_CLASSES = "analysis/unit_classes.csv"
COPY_PASTE = "analysis/copy_paste.csv"
ANALYSIS_SUMMARY = "analysis/summary.json"
#: heads wider than this keep only their top classes
MAX_STORED_CLASSES = 4096
#: how many top classes a wide head keeps
N_TOP_CLASSES = 20


def layer_file_name(layer: str) -> str:
    """A file-system-safe name for a layer (``layer4.1.relu#1`` -> ``layer4.1.relu_1``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", layer)


def record_file(layer: str) -> str:
    """The layer's recorded activations."""
    return f"record/{layer_file_name(layer)}.npy"


def thresholds_file(layer: str) -> str:
    return f"thresholds_{layer_file_name(layer)}.npz"


def units_file(layer: str) -> str:
    return f"units_{layer_file_name(layer)}.npz"


def results_file(layer: str) -> str:
    return f"results_{layer_file_name(layer)}.csv"


def top_formulas_file(layer: str) -> str:
    return f"top_formulas_{layer_file_name(layer)}.csv"


def best_by_length_file(layer: str) -> str:
    return f"best_by_length_{layer_file_name(layer)}.csv"


def heldout_by_length_file(layer: str) -> str:
    """Held-out IoU of each unit's answer at every maximum formula length (``logiclens analyze``)."""
    return f"analysis/heldout_by_length_{layer_file_name(layer)}.csv"


def regions_file(layer: str) -> str:
    """Code-cluster units and their baselines, one row per unit (``--units code-clusters``)."""
    return f"regions_{layer_file_name(layer)}.csv"


def comparison_file(layer: str) -> str:
    """The size-matched monosemanticity comparison of a layer's unit families."""
    return f"comparison_{layer_file_name(layer)}.csv"


def region_masks_file(layer: str) -> str:
    """Which positions belong to each row of :func:`regions_file` (:mod:`logiclens.runs.region_masks`)."""
    return f"region_masks_{layer_file_name(layer)}.npz"


def codes_file(layer: str) -> str:
    """A layer's bit-packed codes per position (uint64 words)."""
    return f"record/codes_{layer_file_name(layer)}.npy"
