"""The search core: exact beam search on signature counts, the certified search, the metrics, the parallel driver."""

from logiclens.core.search.beam import OPERATORS, BeamSettings, Candidate, PrimitiveTable, UnitResult, search_unit
from logiclens.core.search.metrics import METRICS
from logiclens.core.search.optimal import OptimalResult, ceiling, certify, optimal_unit, optimal_units
from logiclens.core.search.run import search_all

__all__ = [
    "METRICS", "OPERATORS", "BeamSettings", "Candidate", "OptimalResult", "PrimitiveTable", "UnitResult", "ceiling",
    "certify", "optimal_unit", "optimal_units", "search_all", "search_unit",
]  # fmt: skip
