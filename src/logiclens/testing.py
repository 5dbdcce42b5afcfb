"""Synthetic probing problems with planted answers, for tests, demos and benchmarks.

A *planted* unit is the mask of a known formula over random concepts, optionally with
noise; a search should recover the formula (or one at least as good).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from logiclens.concepts import ConceptSet
from logiclens.formula import parse

__all__ = ["PlantedProblem", "planted_problem"]


@dataclass
class PlantedProblem:
    """Concepts, unit masks and the formulas the units were planted from."""

    concepts: ConceptSet
    concept_masks: NDArray[np.bool_]  # (K, N)
    unit_masks: NDArray[np.bool_]  # (U, N)
    planted: list[str]


def planted_problem(
    formulas: Sequence[str],
    n_positions: int = 20_000,
    n_concepts: int = 40,
    density: tuple[float, float] = (0.01, 0.2),
    noise: float = 0.0,
    seed: int = 0,
) -> PlantedProblem:
    """Random concepts ``c0 .. c{K-1}`` and one unit per planted formula.

    Parameters
    ----------
    formulas : sequence of str
        Formulas over the names ``c0``, ``c1``, ... e.g. ``"(c1 OR c2) AND NOT c3"``.
    n_positions, n_concepts : int
    density : (float, float)
        Each concept covers a fraction of positions drawn uniformly from this range.
    noise : float
        Fraction of each unit's positions whose value is flipped, as far as the count of
        flips goes: ``noise * |mask|`` positions in and as many out of the mask.
    seed : int
    """
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(n_concepts)]
    fractions = rng.uniform(*density, size=n_concepts)
    masks = rng.random((n_concepts, n_positions)) < fractions[:, None]
    concepts = ConceptSet.from_dense(masks, names, categories=["random"] * n_concepts)
    units = np.stack([concepts.mask(parse(f)) for f in formulas]) if formulas else np.zeros((0, n_positions), bool)
    for unit in units:
        flips = round(float(noise * unit.sum()))
        if flips:
            on, off = np.flatnonzero(unit), np.flatnonzero(~unit)
            unit[rng.choice(on, min(flips, len(on)), replace=False)] = False
            unit[rng.choice(off, min(flips, len(off)), replace=False)] = True
    return PlantedProblem(concepts, masks, units, list(formulas))
