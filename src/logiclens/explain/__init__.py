"""The estimators: explain units with formulas, validated by held-out scores and a permutation null."""

from logiclens.explain.active import ActiveUnitsExplainer, threshold_units, unit_thresholds
from logiclens.explain.base import BaseEstimator, NotFittedError, check_is_fitted, clone
from logiclens.explain.compositional import AtomicExplainer, CompositionalExplainer
from logiclens.explain.validation import Variants, variants_from_positions

__all__ = [
    "ActiveUnitsExplainer",
    "AtomicExplainer",
    "BaseEstimator",
    "CompositionalExplainer",
    "NotFittedError",
    "Variants",
    "check_is_fitted",
    "clone",
    "threshold_units",
    "unit_thresholds",
    "variants_from_positions",
]
