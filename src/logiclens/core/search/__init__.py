"""The search core: exact beam search on signature counts, the certified search, the metrics, the parallel driver.

The names below load on first use, so that :mod:`.names` can be read without numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "OPERATORS": "logiclens.core.search.names",
    "BEAM_MODES": "logiclens.core.search.names",
    "METRIC_NAMES": "logiclens.core.search.names",
    "METRICS": "logiclens.core.search.metrics",
    "BeamSettings": "logiclens.core.search.beam",
    "Candidate": "logiclens.core.search.beam",
    "PrimitiveTable": "logiclens.core.search.beam",
    "UnitResult": "logiclens.core.search.beam",
    "search_unit": "logiclens.core.search.beam",
    "search_all": "logiclens.core.search.run",
    "certified_all": "logiclens.core.search.run",
    "certify_all": "logiclens.core.search.run",
    "as_unit_result": "logiclens.core.search.optimal",
    "certificates": "logiclens.core.search.optimal",
    "OptimalResult": "logiclens.core.search.optimal",
    "ceiling": "logiclens.core.search.optimal",
    "certify": "logiclens.core.search.optimal",
    "optimal_unit": "logiclens.core.search.optimal",
    "optimal_units": "logiclens.core.search.optimal",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'logiclens.core.search' has no attribute {name!r}")
