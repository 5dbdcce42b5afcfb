"""The search core: exact beam search on signature counts, and the metrics it optimises."""

from logiclens.search.beam import OPERATORS, BeamSettings, Candidate, PrimitiveTable, UnitResult, search_unit
from logiclens.search.metrics import METRICS

__all__ = ["METRICS", "OPERATORS", "BeamSettings", "Candidate", "PrimitiveTable", "UnitResult", "search_unit"]
