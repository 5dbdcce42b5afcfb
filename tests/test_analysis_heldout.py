"""Held-out IoU at every maximum formula length, against a plain implementation; unit_classes.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from logiclens.analysis import AnalysisSettings, analyze
from logiclens.analysis.contributions import unit_class_table
from logiclens.analysis.heldout import heldout_by_length
from logiclens.core.concepts import ConceptSet
from logiclens.core.formula import And, Concept, Not, parse
from logiclens.core.masks import UnitMasks
from logiclens.explain.compositional import CompositionalExplainer
from logiclens.runs import layout
from logiclens.runs.by_length import read_formulas_by_length
from logiclens.testing import LabelledPlantedProbe, planted_classifier
from logiclens.vision.dissect import DissectionSettings, dissect

NAMES = ["a", "b", "c", "d"]
FORMULAS = ["a", "NOT b", "a OR c", "b AND NOT d", "(a OR b) AND NOT c", "d OR (b AND c)"]


def _evaluate(formula, dense: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A formula on dense concept masks (concepts, positions), by its tree."""
    if isinstance(formula, Concept):
        return dense[NAMES.index(formula.name)]
    if isinstance(formula, Not):
        return ~_evaluate(formula.operand, dense)
    parts = [_evaluate(op, dense) for op in formula.operands]
    return np.logical_and.reduce(parts) if isinstance(formula, And) else np.logical_or.reduce(parts)


def _plain(values: np.ndarray, texts: list[list[str | None]], units: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """Per unit and maximum length: the held-out IoU of the first best formula by search value."""
    out = np.full(values.shape, np.nan)
    for u in range(values.shape[0]):
        for top in range(1, values.shape[1] + 1):
            best, pick = -np.inf, None
            for j in range(top):
                if np.isfinite(values[u, j]) and values[u, j] > best:
                    best, pick = values[u, j], j
            if pick is None:
                continue
            mask = _evaluate(parse(texts[u][pick]), dense)
            union = (units[u] | mask).sum()
            out[u, top - 1] = (units[u] & mask).sum() / union if union else 0.0
    return out


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_heldout_by_length_matches_a_plain_loop(data: st.DataObject) -> None:
    n_units, n_lengths, n_positions = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3)), 30
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    dense = rng.random((len(NAMES), n_positions)) < 0.4
    units = rng.random((n_units, n_positions)) < data.draw(st.sampled_from([0.0, 0.2, 0.5]))
    values = rng.random((n_units, n_lengths))
    values[rng.random(values.shape) < 0.25] = np.nan
    values[rng.random(values.shape) < 0.2] = 0.5  # ties: the shorter formula is the answer
    texts = [[None if np.isnan(v) else str(rng.choice(FORMULAS)) for v in row] for row in values]
    concepts = ConceptSet.from_dense(dense, NAMES)
    lengths = pd.RangeIndex(1, n_lengths + 1)
    table = heldout_by_length(
        pd.DataFrame(values, columns=lengths), pd.DataFrame(texts, columns=lengths, dtype=object),
        UnitMasks.from_dense(units, concepts), concepts,
    )  # fmt: skip
    got = table["heldout_iou"].to_numpy().reshape(n_units, n_lengths)
    np.testing.assert_allclose(got, _plain(values, texts, units, dense), equal_nan=True)


def test_a_planted_run_has_heldout_r_at_every_length_and_unit_classes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    probe, model = LabelledPlantedProbe(n_images=40, seed=5), planted_classifier()
    explainer = CompositionalExplainer(max_length=3, holdout=0.3, n_null=0, verbose=0)
    dissect(model, probe, tmp_path, DissectionSettings(["relu"], explainer), verbose=0)
    formulas = read_formulas_by_length(tmp_path / layout.best_by_length_file("relu"))
    assert formulas is not None and formulas.shape == (4, 3)
    result = analyze(tmp_path, AnalysisSettings(parts=("accuracy", "contributions")), model=model, probe=probe,
                     verbose=0)  # fmt: skip
    heldout = pd.read_csv(tmp_path / layout.heldout_by_length_file("relu"))
    assert sorted(heldout["max_length"].unique()) == [1, 2, 3] and len(heldout) == 12
    # at the run's length, each unit's answer is its reported formula, and so is its held-out IoU
    results = pd.read_csv(tmp_path / layout.RESULTS)
    last = heldout[heldout["max_length"] == 3].reset_index(drop=True)
    np.testing.assert_array_equal(last["formula"].fillna(""), results["formula"].fillna(""))
    np.testing.assert_allclose(last["heldout_iou"], results["heldout_iou"], equal_nan=True)
    assert set(result.summary["seconds_by_part"]) == {"accuracy", "contributions"}
    table = result.correlations
    assert table is not None
    assert sorted(table.loc[table["iou_kind"] == "heldout", "max_length"]) == [1, 2, 3]
    assert sorted(table.loc[table["iou_kind"] == "search", "max_length"]) == [1, 2, 3]
    # a run searched before the formulas were kept: held-out r at the run's length only, no stale table
    path = tmp_path / layout.best_by_length_file("relu")
    old = pd.read_csv(path)
    old[["unit", "1", "2", "3"]].to_csv(path, index=False)
    table = analyze(tmp_path, AnalysisSettings(parts=("accuracy",)), model=model, probe=probe, verbose=0).correlations
    assert table is not None and table.loc[table["iou_kind"] == "heldout", "max_length"].tolist() == [3]
    assert not (tmp_path / layout.heldout_by_length_file("relu")).exists()
    per_unit = pd.read_csv(tmp_path / layout.UNIT_CLASSES)
    assert set(per_unit["unit"]) <= {0, 1, 2, 3} and set(per_unit["sign"]) <= {"positive", "negative"}
    matrix = np.load(tmp_path / "analysis" / "contributions_relu.npy")
    for row in per_unit.itertuples():
        assert np.isclose(matrix[row._8, row.unit], row.weight)  # class, unit
        assert (row.weight > 0) == (row.sign == "positive")


def test_unit_class_table_ranks_each_units_classes() -> None:
    matrix = np.array([[1.0, -2.0], [3.0, 0.0], [-1.0, 0.5]])  # classes x units
    results = pd.DataFrame({"formula": ["x", "y"], "iou": [0.5, 0.2], "heldout_iou": [0.4, np.nan]})
    table = unit_class_table(matrix, "L", "effective_weight", results, np.array([7, 8, 9]), None, top=2)
    first = table[table["unit"] == 0]
    assert first.loc[first["sign"] == "positive", "class"].tolist() == [8, 7]
    assert first.loc[first["sign"] == "negative", "class"].tolist() == [9]
    second = table[table["unit"] == 1]  # a zero weight is neither
    assert second.loc[second["sign"] == "positive", "class"].tolist() == [9]
    assert second.loc[second["sign"] == "negative", "class"].tolist() == [7]
    assert (
        set(table["class_name"]) <= {"7", "8", "9"}
        and (table["formula"] == np.where(table["unit"] == 0, "x", "y")).all()
    )
