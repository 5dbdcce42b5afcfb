"""logiclens: explain what the units of a neural network detect, with logical formulas over concepts.

The package is a pipeline, one sub-package per stage (see the README's "Layout"):
:mod:`.core` (formulas, concept sets, unit masks, the search) -> :mod:`.explain` (the
estimators and their validation) -> :mod:`.runs` (run directories) -> :mod:`.vision`,
:mod:`.text`, :mod:`.polytope` (the pipelines) -> :mod:`.analysis` -> :mod:`.report` -> :mod:`.cli`. The names
below load on first use, so that ``import logiclens`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from logiclens._version import __version__

_LAZY = {
    "Formula": "logiclens.core.formula",
    "Concept": "logiclens.core.formula",
    "Neighbors": "logiclens.core.formula",
    "And": "logiclens.core.formula",
    "Or": "logiclens.core.formula",
    "Not": "logiclens.core.formula",
    "FormulaSyntaxError": "logiclens.core.formula",
    "parse": "logiclens.core.formula",
    "canonical": "logiclens.core.formula",
    "ConceptSet": "logiclens.core.concepts",
    "UnitMasks": "logiclens.core.masks",
    "CompositionalExplainer": "logiclens.explain.compositional",
    "AtomicExplainer": "logiclens.explain.compositional",
    "ActiveUnitsExplainer": "logiclens.explain.active",
    "clone": "logiclens.explain.base",
    "check_is_fitted": "logiclens.explain.base",
    "NotFittedError": "logiclens.explain.base",
    "dissect": "logiclens.vision.dissect",
    "DissectionSettings": "logiclens.vision.dissect",
    "explain_text": "logiclens.text.pipeline",
    "TextSettings": "logiclens.text.pipeline",
    "analyze_network": "logiclens.polytope.analysis",
    "analyze": "logiclens.analysis.pipeline",
    "AnalysisSettings": "logiclens.analysis.pipeline",
    "CopyPasteSettings": "logiclens.analysis.copy_paste",
    "build_report": "logiclens.report.build",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'logiclens' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
