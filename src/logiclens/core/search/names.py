"""The names of the search's options, importable without numpy (the command line's parser reads them)."""

from __future__ import annotations

__all__ = ["BEAM_MODES", "METRIC_NAMES", "OPERATORS"]

#: how a beam formula F is extended with a primitive C: F OR C, F AND C, F AND NOT C, F OR NOT C
OPERATORS = ("or", "and", "and_not", "or_not")
#: "reference": the old beam competes with its extensions (the authors' code); "paper": only new formulas
BEAM_MODES = ("reference", "paper")
#: what the search can maximise (:data:`logiclens.core.search.metrics.METRICS` holds the functions)
METRIC_NAMES = ("iou", "precision", "recall", "f1")
