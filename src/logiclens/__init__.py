"""logiclens: explain what the units of a neural network detect, with logical formulas over concepts."""

from logiclens.concepts import ConceptSet
from logiclens.explainer import AtomicExplainer, CompositionalExplainer
from logiclens.formula import And, Concept, Formula, FormulaSyntaxError, Neighbors, Not, Or, canonical, parse
from logiclens.masks import UnitMasks

__version__ = "0.1.0"

__all__ = [
    "And",
    "AtomicExplainer",
    "CompositionalExplainer",
    "Concept",
    "ConceptSet",
    "Formula",
    "FormulaSyntaxError",
    "Neighbors",
    "Not",
    "Or",
    "UnitMasks",
    "canonical",
    "parse",
]
