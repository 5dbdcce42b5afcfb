"""The scikit-learn-style explainers: parameters, results, edge cases and bad input."""

import numpy as np
import pytest
import scipy.sparse as sp

from logiclens import AtomicExplainer, CompositionalExplainer, ConceptSet, UnitMasks, canonical, parse
from logiclens.testing import planted_problem


def test_constructor_stores_parameters_verbatim_and_fit_returns_self() -> None:
    explainer = CompositionalExplainer(max_length=7, beam_size=3, operators=["or"], verbose=0)
    assert explainer.get_params()["operators"] == ["or"]
    assert explainer.set_params(beam_size=4) is explainer
    assert "beam_size=4" in repr(explainer)
    with pytest.raises(ValueError, match="invalid parameter"):
        explainer.set_params(beam=4)
    problem = planted_problem(["c0"], n_positions=500, n_concepts=3)
    assert explainer.fit(problem.unit_masks, problem.concepts) is explainer
    assert not hasattr(CompositionalExplainer(), "explanations_")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_length": 0}, "max_length"),
        ({"beam_size": 0}, "beam_size"),
        ({"operators": ("or", "xor")}, "operators"),
        ({"operators": ()}, "operators"),
        ({"beam_mode": "greedy"}, "beam_mode"),
        ({"metric": "auc"}, "metric"),
        ({"complexity_penalty": 1.0}, "complexity_penalty"),
        ({"min_support": 0}, "min_support"),
        ({"max_expansion_concepts": 0}, "max_expansion_concepts"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_invalid_parameters_are_rejected_at_fit(params, message) -> None:
    problem = planted_problem(["c0"], n_positions=100, n_concepts=3)
    explainer = CompositionalExplainer(verbose=0, **params)
    with pytest.raises(ValueError, match=message):
        explainer.fit(problem.unit_masks, problem.concepts)


PLANTED = ["c0", "c1 OR c2", "c3 AND c4", "c5 AND NOT c6", "(c7 OR c8) AND NOT c9", "c10 OR c11 OR c12"]


@pytest.mark.parametrize("beam_mode", ["reference", "paper"])
def test_planted_formulas_are_recovered_exactly(beam_mode) -> None:
    problem = planted_problem(PLANTED, n_positions=20_000, n_concepts=16, seed=1)
    explainer = CompositionalExplainer(max_length=3, beam_size=10, beam_mode=beam_mode, verbose=0)
    frame = explainer.fit(problem.unit_masks, problem.concepts).explanations_
    assert (frame.iou == 1.0).all()
    assert [canonical(parse(f)) for f in frame.formula] == [canonical(parse(f)) for f in PLANTED]
    assert list(frame.length) == [1, 2, 2, 2, 3, 3]
    assert all(f is not None and str(f) == text for f, text in zip(explainer.formulas_, frame.formula))


def test_noisy_planted_units_are_recovered_with_noise_level_iou() -> None:
    problem = planted_problem(PLANTED[:4], n_positions=50_000, n_concepts=16, noise=0.05, seed=2)
    frame = CompositionalExplainer(max_length=3, verbose=0).fit(problem.unit_masks, problem.concepts).explanations_
    assert [canonical(parse(f)) for f in frame.formula] == [canonical(parse(f)) for f in PLANTED[:4]]
    assert frame.iou.between(0.85, 0.95).all()


def test_compositional_answer_beats_or_matches_netdissect() -> None:
    problem = planted_problem(PLANTED, n_positions=5_000, n_concepts=16, noise=0.2, seed=4)
    frame = CompositionalExplainer(max_length=3, verbose=0).fit(problem.unit_masks, problem.concepts).explanations_
    assert (frame.iou >= frame.best_atomic_iou).all()
    atomic = AtomicExplainer(verbose=0).fit(problem.unit_masks, problem.concepts).explanations_
    assert list(atomic.formula) == list(frame.best_atomic)
    assert (atomic.length == 1).all()
    assert np.allclose(atomic.iou, frame.best_atomic_iou)


def test_dead_units_and_units_without_overlap_are_flagged_not_explained() -> None:
    masks = np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 0]], bool)
    concepts = ConceptSet.from_dense(masks, ["a", "b"])
    units = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0]], bool)
    frame = CompositionalExplainer(verbose=0).fit(units, concepts, unit_names=["dead", "alone", "ok"]).explanations_
    assert list(frame.status) == ["empty", "no_match", "ok"]
    assert frame.formula.isna().tolist() == [True, True, False]
    assert list(frame.n_active) == [0, 1, 1]
    assert frame.loc[2, "formula"] == "a"


def test_empty_concepts_take_no_part() -> None:
    masks = np.array([[0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]], bool)
    concepts = ConceptSet.from_dense(masks, ["never", "some"])
    explainer = CompositionalExplainer(max_length=3, operators=("or", "and", "and_not", "or_not"), verbose=0)
    units = np.array([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 1, 1]], bool)
    frame = explainer.fit(units, concepts).explanations_
    assert frame.formula[0] == "some"
    # negations enter only as extensions, never as seeds (as in the paper and its code)
    assert frame.status[1] == "no_match"


def test_min_support_excludes_rare_concepts() -> None:
    problem = planted_problem(["c0 OR c1"], n_positions=2_000, n_concepts=4, density=(0.01, 0.3), seed=5)
    sizes = problem.concepts.sizes
    threshold = int(sorted(sizes)[1]) + 1  # drop the two rarest concepts
    frame = (
        CompositionalExplainer(min_support=threshold, verbose=0).fit(problem.unit_masks, problem.concepts).explanations_
    )
    rare = {problem.concepts.names[i] for i in np.flatnonzero(sizes < threshold)}
    assert not rare & set(parse(frame.formula[0]).concept_names())


def test_unit_input_forms_agree() -> None:
    problem = planted_problem(["c0 OR c1", "c2 AND NOT c3"], n_positions=3_000, n_concepts=6, noise=0.1)
    explainer = CompositionalExplainer(max_length=2, verbose=0, top_k=3)
    dense = explainer.fit(problem.unit_masks, problem.concepts).explanations_
    sparse = explainer.fit(sp.csr_array(problem.unit_masks), problem.concepts).explanations_
    masks = UnitMasks.from_dense(problem.unit_masks, problem.concepts, names=["0", "1"])
    counted = explainer.fit(masks, problem.concepts).explanations_
    assert dense.equals(sparse) and dense.equals(counted)


def test_bad_unit_input_gets_clear_errors() -> None:
    problem = planted_problem(["c0"], n_positions=100, n_concepts=3)
    explainer = CompositionalExplainer(verbose=0)
    with pytest.raises(ValueError, match=r"shape \(U, 100\)"):
        explainer.fit(np.zeros((2, 99), bool), problem.concepts)
    with pytest.raises(ValueError, match="NaN"):
        explainer.fit(np.full((1, 100), np.nan), problem.concepts)
    with pytest.raises(ValueError, match="boolean"):
        explainer.fit(np.full((1, 100), 0.7), problem.concepts)
    with pytest.raises(TypeError, match="ConceptSet"):
        explainer.fit(problem.unit_masks, problem.concept_masks)
    other = ConceptSet.from_dense(np.eye(3, 100, dtype=bool), ["x", "y", "z"])
    wrong = UnitMasks.from_dense(problem.unit_masks, problem.concepts)
    with pytest.raises(ValueError, match="signatures"):
        explainer.fit(wrong, other)


def test_neighbors_change_the_mask_and_appear_in_formulas() -> None:
    # hyp:couch is rare; its neighbours sofa and bed complete the unit
    names = ["hyp:couch", "hyp:sofa", "hyp:bed", "hyp:dog"]
    masks = np.zeros((4, 12), bool)
    masks[0, 0:2] = masks[1, 2:4] = masks[2, 4:6] = masks[3, 6:12] = True
    concepts = ConceptSet.from_dense(masks, names).with_neighbors({"hyp:couch": ["hyp:sofa", "hyp:bed", "hyp:cat"]})
    unit = np.zeros((1, 12), bool)
    unit[0, 0:6] = True
    frame = CompositionalExplainer(max_length=1, verbose=0).fit(unit, concepts).explanations_
    assert frame.formula[0] == "NEIGHBORS(hyp:couch)"
    assert frame.iou[0] == 1.0 and frame.length[0] == 1
    assert concepts.count("NEIGHBORS(hyp:couch)") == 6
    plain = CompositionalExplainer(max_length=1, use_neighbors=False, verbose=0).fit(unit, concepts)
    assert "NEIGHBORS" not in plain.explanations_.formula[0]


def test_best_by_length_and_top_formulas() -> None:
    problem = planted_problem(["(c0 OR c1) AND NOT c2"], n_positions=5_000, n_concepts=6, noise=0.05, seed=9)
    explainer = CompositionalExplainer(max_length=4, top_k=5, verbose=0).fit(problem.unit_masks, problem.concepts)
    curve = explainer.best_by_length_.loc["0"]
    assert list(curve.index) == [1, 2, 3, 4]
    assert curve[1] == pytest.approx(explainer.explanations_.best_atomic_iou[0])
    assert curve.max() == pytest.approx(explainer.explanations_.iou[0])
    top = explainer.top_formulas_
    assert list(top["rank"]) == [1, 2, 3, 4, 5]
    assert top.score.is_monotonic_decreasing
    assert top.formula.nunique() == 5


def test_estimators_follow_scikit_learn_conventions() -> None:
    from logiclens import ActiveUnitsExplainer, NotFittedError, check_is_fitted, clone

    inner = CompositionalExplainer(max_length=2, beam_size=4, verbose=0)
    outer = ActiveUnitsExplainer(inner, min_active=3)
    deep = outer.get_params(deep=True)
    assert deep["explainer"] is inner and deep["explainer__beam_size"] == 4 and deep["min_active"] == 3
    assert "explainer__beam_size" not in outer.get_params(deep=False)
    outer.set_params(explainer__beam_size=6, min_active=2)
    assert inner.beam_size == 6 and outer.min_active == 2
    with pytest.raises(ValueError, match="invalid parameter"):
        outer.set_params(explainer__nonsense=1)
    copy = clone(outer)
    assert copy.explainer is not inner and copy.explainer.get_params() == inner.get_params()
    sklearn_base = pytest.importorskip("sklearn.base")
    copied = sklearn_base.clone(outer)
    assert isinstance(copied, ActiveUnitsExplainer) and copied.explainer.beam_size == 6
    with pytest.raises(NotFittedError, match="not fitted yet"):
        check_is_fitted(outer)
    with pytest.raises(NotFittedError, match="call fit"):
        CompositionalExplainer().evaluate(
            np.zeros((1, 4), bool), ConceptSet.from_dense(np.eye(2, 4, dtype=bool), ["a", "b"])
        )
    problem = planted_problem(["c0", "c1 OR c2"], n_positions=400, n_concepts=4)
    outer.fit(problem.unit_masks, problem.concepts)
    check_is_fitted(outer)
    assert not hasattr(copy, "explanations_")  # clones are unfitted


@pytest.mark.parametrize("estimator", [CompositionalExplainer(verbose=0), AtomicExplainer(top_k=2, verbose=0)])
def test_fit_never_changes_parameters(estimator) -> None:
    before = {k: (list(v) if isinstance(v, tuple) else v) for k, v in estimator.get_params().items()}
    problem = planted_problem(["c0", "c1 AND c2"], n_positions=600, n_concepts=5)
    estimator.fit(problem.unit_masks, problem.concepts)
    after = {k: (list(v) if isinstance(v, tuple) else v) for k, v in estimator.get_params().items()}
    assert after == before
    assert (estimator.explanations_.length.dropna() <= estimator.beam_settings().max_length).all()
    if isinstance(estimator, AtomicExplainer):
        assert estimator.beam_settings().max_length == 1 and "max_length" not in estimator.get_params()
