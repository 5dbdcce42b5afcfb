"""Facet versus region: is a region's meaning the AND of its neurons' meanings?

A polytope is the intersection of half-spaces, one per code bit ("facet" literal: neuron k is
on, or off). For a region R (a cluster of codes) its **consensus bits** are the bits that
(almost) all members share and that are not constant over the whole probing set. Three masks
are compared with R:

* ``F_R``: the best formula explaining R directly (the region's explanation);
* ``AND_k F_k``: the conjunction over R's consensus bits of each bit's own best formula
  ``F_k`` (the explanation of "bit k on"), negated for bits that are off in R -- the region
  explained facet by facet (Mu & Andreas' "> 0" binarisation is one such bit);
* ``AND_k literal_k``: the consensus polytope itself (the relaxed region cut out by the
  consensus half-spaces), which says how much of R its consensus bits pin down.

With many consensus bits the conjunction of their (imperfect) explanations is nearly always
empty, so the same comparisons are also made with the ``top_facets`` consensus bits whose
literals match R best (the most selective half-spaces), and with the single best facet.

A region whose direct explanation beats the conjunction of its facets' explanations supports
the claim that meaning lives in regions rather than in single neurons (the bridge between the
polytope lens and compositional explanations; a design of this package).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.explain.base import BaseEstimator, clone
from logiclens.explain.compositional import CompositionalExplainer
from logiclens.polytope.units import UnitFamily

__all__ = ["RegionFacets", "consensus_bits", "iou"]


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """Intersection over union of two boolean masks (0 when both are empty)."""
    union = int(np.count_nonzero(a | b))
    return int(np.count_nonzero(a & b)) / union if union else 0.0


def consensus_bits(
    region: NDArray[np.bool_], bits: NDArray[np.bool_], consensus: float = 1.0
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Bits shared by at least a ``consensus`` fraction of the region, excluding bits constant overall.

    Returns
    -------
    index : int64 (k,)
        Bit indices.
    value : bool (k,)
        The shared value of each (True: the neuron is on in the region).
    """
    members = bits[region]
    if not len(members):
        return np.zeros(0, np.int64), np.zeros(0, bool)
    on = members.mean(axis=0)
    overall = bits.mean(axis=0)
    informative = (overall > 0) & (overall < 1)
    agreed = ((on >= consensus) | (on <= 1.0 - consensus)) & informative
    index = np.flatnonzero(agreed)
    return index.astype(np.int64), on[index] >= 0.5


def _conjunction(masks: list[NDArray[np.bool_]], n: int) -> NDArray[np.bool_]:
    out = np.ones(n, bool)
    for mask in masks:
        out &= mask
    return out


class RegionFacets(BaseEstimator):
    """Explain regions directly and through their consensus facets.

    Parameters
    ----------
    consensus : float, default 1.0
        A bit is a consensus bit of a region when at least this fraction of its members
        share its value (1.0: all of them).
    explainer : CompositionalExplainer, optional
        The search (default ``CompositionalExplainer(beam_size=5, verbose=0)``).
    top_facets : int, default 3
        Consensus bits used by the ``*_top`` columns.

    Attributes
    ----------
    results_ : pandas.DataFrame
        Per region: ``region, size, n_consensus, n_consensus_on, region_formula, region_iou,
        facet_and_iou, facet_and_size, polytope_iou, polytope_size, mean_facet_iou,
        facet_and_top_iou, polytope_top_iou, best_facet_iou, top_facets, region_beats_facets``
        (``top_facets`` spells the top facets' conjunction as ``[bit: formula]`` literals;
        ``region_beats_facets``: the region's own formula beats both the conjunction of its
        top facets' formulas and its best single facet).
    facets_ : pandas.DataFrame
        Per explained bit: ``bit, size, formula, iou``.
    """

    def __init__(
        self,
        consensus: float = 1.0,
        explainer: CompositionalExplainer | None = None,
        top_facets: int = 3,
    ) -> None:
        self.consensus = consensus
        self.explainer = explainer
        self.top_facets = top_facets

    def _explain(self, masks: NDArray[np.bool_], concepts: ConceptSet) -> CompositionalExplainer:
        explainer = self.explainer if self.explainer is not None else CompositionalExplainer(beam_size=5, verbose=0)
        return clone(explainer).fit(masks, concepts)

    def fit(
        self,
        regions: UnitFamily | ArrayLike,
        bits: ArrayLike,
        concepts: ConceptSet,
        bit_names: Sequence[str] | None = None,
    ) -> RegionFacets:
        """Compare each region's explanation with its facets'; returns self.

        Parameters
        ----------
        regions : UnitFamily or bool (R, N)
        bits : bool (N, B)
            The code bits of the probing inputs (``PolytopeCodes.unpack()``).
        concepts : ConceptSet
            Over the same N positions, built with per-position signatures (as ``from_dense`` does).
        bit_names : sequence of str, optional
        """
        family = regions if isinstance(regions, UnitFamily) else UnitFamily("region", "region", np.asarray(regions))
        bits = np.asarray(bits, dtype=bool)
        if bits.shape[0] != family.masks.shape[1]:
            raise ValueError(f"bits cover {bits.shape[0]} inputs, regions {family.masks.shape[1]}")
        names = list(bit_names) if bit_names is not None else [str(j) for j in range(bits.shape[1])]
        shared = [consensus_bits(mask, bits, self.consensus) for mask in family.masks]
        used = np.unique(np.concatenate([index for index, _ in shared])) if shared else np.zeros(0, np.int64)
        facet_text: dict[int, str] = {}
        facet_masks: dict[int, NDArray[np.bool_]] = {}
        facet_rows = []
        if len(used):
            explained = self._explain(bits[:, used].T, concepts)
            for j, formula, row in zip(used, explained.formulas_, explained.explanations_.itertuples()):
                facet_text[int(j)] = str(formula) if formula is not None else "(nothing)"
                facet_masks[int(j)] = concepts.mask(formula) if formula is not None else np.zeros(len(bits), bool)
                facet_rows.append(
                    {
                        "bit": names[j],
                        "size": int(bits[:, j].sum()),
                        "formula": row.formula,
                        "iou": float(row.iou) if row.iou == row.iou else 0.0,
                    }
                )
        direct = self._explain(family.masks, concepts)
        rows = []
        for r, (mask, (index, value)) in enumerate(zip(family.masks, shared)):
            literals = [bits[:, j] if on else ~bits[:, j] for j, on in zip(index, value)]
            explained = [facet_masks[int(j)] if on else ~facet_masks[int(j)] for j, on in zip(index, value)]
            top = np.argsort([-iou(literal, mask) for literal in literals], kind="stable")[: self.top_facets]
            facet_ious = [iou(facet_masks[int(j)], bits[:, j]) for j in index]
            region_iou = float(direct.explanations_["iou"].iloc[r]) if direct.formulas_[r] is not None else 0.0
            conj, literal = _conjunction(explained, len(bits)), _conjunction(literals, len(bits))
            some = bool(len(index))
            rows.append(
                {
                    "region": family.unit_names[r],
                    "size": int(mask.sum()),
                    "n_consensus": len(index),
                    "n_consensus_on": int(value.sum()),
                    "region_formula": direct.explanations_["formula"].iloc[r],
                    "region_iou": region_iou,
                    "facet_and_iou": iou(conj, mask) if some else float("nan"),
                    "facet_and_size": int(conj.sum()) if some else -1,
                    "polytope_iou": iou(literal, mask) if some else float("nan"),
                    "polytope_size": int(literal.sum()) if some else -1,
                    "mean_facet_iou": float(np.mean(facet_ious)) if facet_ious else float("nan"),
                    "facet_and_top_iou": iou(_conjunction([explained[i] for i in top], len(bits)), mask)
                    if some
                    else float("nan"),
                    "polytope_top_iou": iou(_conjunction([literals[i] for i in top], len(bits)), mask)
                    if some
                    else float("nan"),
                    "best_facet_iou": max(iou(e, mask) for e in explained) if some else float("nan"),
                    "top_facets": " AND ".join(
                        f"{'' if value[i] else 'NOT '}[{names[index[i]]}: {facet_text[int(index[i])]}]" for i in top
                    ),
                }
            )
        self.results_ = pd.DataFrame(rows)
        if len(self.results_):
            facets = self.results_[["facet_and_top_iou", "best_facet_iou"]].fillna(0.0).max(axis=1)
            self.results_["region_beats_facets"] = self.results_["region_iou"] > facets
        self.facets_ = pd.DataFrame(facet_rows, columns=["bit", "size", "formula", "iou"])
        return self
