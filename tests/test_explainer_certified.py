"""CompositionalExplainer(search="optimal"), the certificate columns of every run, and the parallel drivers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from logiclens import CompositionalExplainer, ConceptSet
from logiclens.core.masks import UnitMasks
from logiclens.core.search.beam import BeamSettings, PrimitiveTable, search_unit
from logiclens.core.search.optimal import as_unit_result, optimal_unit
from logiclens.core.search.run import certified_all, certify_all, search_all
from logiclens.explain.base import clone


def _planted():
    """``(A AND B) OR C`` that a beam of 2 misses, a unit that is exactly one concept, and an empty unit."""
    rng = np.random.default_rng(3)
    n = 4000
    a, b = rng.random(n) < 0.5, rng.random(n) < 0.3
    c = np.zeros(n, bool)
    c[:900] = True
    decoys = [c | (rng.random(n) < 0.02 * (i + 1)) for i in range(4)]
    masks = np.stack([a, b, c, *decoys])
    concepts = ConceptSet.from_dense(masks, [f"c{i}" for i in range(len(masks))])
    units = np.stack([(a & b) | c, a, np.zeros(n, bool)])
    return concepts, units


def test_optimal_search_finds_what_the_beam_misses_and_certifies_it():
    concepts, units = _planted()
    beam = CompositionalExplainer(max_length=3, beam_size=2, verbose=0).fit(units, concepts).explanations_
    best = CompositionalExplainer(max_length=3, beam_size=2, search="optimal", verbose=0).fit(units, concepts)
    frame = best.explanations_
    assert list(frame.status) == ["ok", "ok", "empty"]  # status keeps its meaning
    assert frame.iou[0] == 1.0 and beam.iou[0] < 1.0
    assert list(frame.certificate[:2]) == ["optimal", "optimal"] and pd.isna(frame.certificate[2])
    assert frame.upper_bound[0] == 1.0 and frame.beam_gap[0] == 0.0 and frame.ceiling[0] == 1.0
    assert frame.beam_formula[0] == beam.formula[0] and frame.beam_iou[0] == beam.iou[0]
    assert best.formulas_[0] is not None and str(best.formulas_[0]) == frame.formula[0]
    assert best.top_formulas_.formula[0] == frame.formula[0]
    # the beam run's certificate: a valid bound, never below the optimum
    assert beam.upper_bound[0] >= 1.0 and beam.beam_gap[0] == pytest.approx(beam.upper_bound[0] - beam.iou[0])
    assert beam.certificate[1] == "optimal" and beam.beam_formula[0] == beam.formula[0]
    assert beam.ceiling[0] == 1.0 and beam.upper_bound[2] == 0.0 == frame.upper_bound[2]
    assert frame.attrs["search"] == "optimal"


def test_a_budget_keeps_the_beam_answer_with_a_bound():
    concepts, units = _planted()
    frame = (
        CompositionalExplainer(max_length=3, beam_size=2, search="optimal", max_nodes=0, verbose=0)
        .fit(units[:1], concepts)
        .explanations_
    )
    assert frame.certificate[0] == "budget" and frame.formula[0] == frame.beam_formula[0]
    assert frame.upper_bound[0] >= 1.0 > frame.iou[0] and frame.beam_gap[0] > 0


def test_parameters_are_stored_verbatim_and_validated_in_fit():
    concepts, units = _planted()
    est = CompositionalExplainer(search="exhaustive", budget_seconds=-1, max_nodes="x")
    params = est.get_params()
    assert (params["search"], params["budget_seconds"], params["max_nodes"]) == ("exhaustive", -1, "x")
    assert clone(est).search == "exhaustive"
    with pytest.raises(ValueError, match="search must be"):
        est.fit(units, concepts)
    for bad in (
        {"budget_seconds": -1.0},
        {"budget_seconds": float("nan")},
        {"max_nodes": 1.5},
        {"max_nodes": -2},
        {"metric": "f1"},
        {"complexity_penalty": 0.1},
    ):
        with pytest.raises(ValueError):
            CompositionalExplainer(search="optimal", verbose=0, **bad).fit(units, concepts)
    frame = CompositionalExplainer(metric="f1", verbose=0).fit(units, concepts).explanations_
    assert np.isnan(frame.upper_bound[0]) and pd.isna(frame.certificate[0]) and frame.ceiling[0] == 1.0


def test_parallel_drivers_match_one_process():
    concepts, units = _planted()
    masks = UnitMasks.from_dense(units, concepts)
    table = PrimitiveTable(concepts)
    settings = BeamSettings(max_length=3, beam_size=2)
    beams = search_all(table, masks, settings)
    one = certified_all(table, masks, settings)
    two = certified_all(table, masks, settings, n_jobs=2)
    assert [r.iou for r in one] == [r.iou for r in two] and [r.status for r in one] == ["optimal", "optimal", "empty"]
    assert certify_all(table, masks, beams, settings) == certify_all(table, masks, beams, settings, n_jobs=2)
    counts = masks.counts
    sigs, cnt = counts.indices[: counts.indptr[1]], counts.data[: counts.indptr[1]]
    result = optimal_unit(table, sigs, cnt, settings, incumbent=search_unit(table, sigs, cnt, settings))
    merged = as_unit_result(result)
    assert merged.best is result.best and merged.best_by_length[merged.best.length - 1] == 1.0


def test_a_validated_optimal_fit_runs_its_null_with_the_certified_search():
    concepts, units = _planted()
    examples = np.repeat(np.arange(40), 100)  # 40 examples of 100 positions
    est = CompositionalExplainer(max_length=2, beam_size=2, search="optimal", n_null=2, holdout=0.25, verbose=0)
    frame = est.fit(units[:2], concepts, examples=examples).explanations_
    assert list(frame.certificate) == ["optimal", "optimal"]
    assert est.null_values_.shape == (2, 2) and frame.p_value.notna().all() and frame.heldout_iou.notna().all()
