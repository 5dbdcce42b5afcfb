"""The fast count-based search must return exactly what the plain reference search returns.

``reference_search.plain_search`` builds every candidate's mask over positions and follows
``docs/search.md`` literally; here hypothesis draws small random problems (empty and full
concepts, duplicated concepts, subsets, units equal to a concept or to a planted formula)
and every option of :class:`CompositionalExplainer`, and checks formulas, scores, top-k
lists, length curves and statuses against it.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from logiclens import And, CompositionalExplainer, Concept, ConceptSet, Neighbors, Not, Or, parse
from reference_search import PlainCandidate, PlainResult, metric_value, plain_search

TOL = 1e-12
OPERATOR_SETS = [
    ("or", "and", "and_not"),
    ("or",),
    ("and",),
    ("and_not",),
    ("or_not",),
    ("or", "and"),
    ("and", "or"),
    ("and_not", "or", "and"),
    ("or", "and", "and_not", "or_not"),
    ("or_not", "and_not", "and", "or"),
]
NAME_POOLS = [
    [f"c{i}" for i in range(12)],
    ["a", "b", "tennis court", 'say "hi"', "NOT", "x(y)", "b2", "OR", "z", "back\\slash", "w", "v"],
]
HYPOTHESIS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------ problems
def _random_concepts(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    masks = np.zeros((k, n), bool)
    for i in range(k):
        kind = rng.integers(0, 8)
        if kind == 0:
            continue  # empty
        if kind == 1:
            masks[i] = True  # full
        elif kind == 2 and i > 0:
            masks[i] = masks[rng.integers(0, i)]  # duplicate of an earlier concept
        elif kind == 3 and i > 0:
            masks[i] = masks[rng.integers(0, i)] & (rng.random(n) < 0.6)  # subset
        elif kind == 4 and i > 0:
            masks[i] = ~masks[rng.integers(0, i)]  # complement
        else:
            masks[i] = rng.random(n) < rng.choice([0.02, 0.1, 0.3, 0.5, 0.8, 0.97])
    return masks


def _random_unit(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    k, n = masks.shape
    kind = rng.integers(0, 7)
    if kind == 0:
        return np.zeros(n, bool)
    if kind == 1:
        return masks[rng.integers(0, k)].copy()
    if kind in (2, 3):  # a planted formula of 2 or 3 concepts
        picks = rng.integers(0, k, size=3)
        unit = masks[picks[0]].copy()
        for j in picks[1 : 1 + kind - 1]:
            op = rng.integers(0, 4)
            unit = [unit | masks[j], unit & masks[j], unit & ~masks[j], unit | ~masks[j]][op]
        return unit
    if kind == 4:  # a concept with noise
        flip = rng.random(n) < 0.05
        return masks[rng.integers(0, k)] ^ flip
    if kind == 5:
        return np.ones(n, bool)
    return rng.random(n) < rng.choice([0.01, 0.1, 0.3, 0.6])


@st.composite
def problems(draw, max_k: int = 12, max_n: int = 300, max_units: int = 4):
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, max_k))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    masks = _random_concepts(rng, k, n)
    n_units = draw(st.integers(1, max_units))
    units = np.stack([_random_unit(rng, masks) for _ in range(n_units)])
    names = draw(st.sampled_from(NAME_POOLS))[:k]
    return masks, names, units


@st.composite
def neighbor_maps(draw, names: list[str]):
    """A neighbour relation: some concepts with 0-3 neighbours (self and unknown names included)."""
    relation: dict[str, list[str]] = {}
    for name in names:
        if draw(st.booleans()):
            relation[name] = draw(st.lists(st.sampled_from([*names, "not-a-concept"]), max_size=3))
    return relation


@st.composite
def options(draw, k: int):
    return dict(
        max_length=draw(st.integers(1, 4)),
        beam_size=draw(st.integers(1, 10)),
        operators=draw(st.sampled_from(OPERATOR_SETS)),
        beam_mode=draw(st.sampled_from(["reference", "paper"])),
        metric=draw(st.sampled_from(["iou", "precision", "recall", "f1"])),
        complexity_penalty=draw(st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.5, 0.9])),
        min_support=draw(st.sampled_from([1, 1, 2, 5, 30])),
        max_expansion_concepts=draw(st.one_of(st.none(), st.integers(1, k + 2))),
        top_k=draw(st.integers(1, 5)),
    )


# ------------------------------------------------------------------------ comparison
def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL


def _fit(masks, names, units, neighbors=None, use_neighbors=True, **opts) -> CompositionalExplainer:
    concepts = ConceptSet.from_dense(masks, names)
    if neighbors is not None:
        concepts = concepts.with_neighbors(neighbors)
    explainer = CompositionalExplainer(use_neighbors=use_neighbors, verbose=0, **opts)
    return explainer.fit(units, concepts)


def _iou(candidate: PlainCandidate, n_active: int) -> float:
    return metric_value("iou", candidate.intersection, candidate.size, n_active)


def _check_unit(fast: CompositionalExplainer, u: int, plain: PlainResult, n_active: int, context: str) -> None:
    row = fast.explanations_.iloc[u]
    name = fast.explanations_.unit.iloc[u]
    assert row.status == plain.status, context
    assert row.n_active == n_active, context
    curve = fast.best_by_length_.iloc[u].to_numpy(dtype=float)
    assert len(curve) == len(plain.best_by_length), context
    for got, want in zip(curve, plain.best_by_length):
        assert _close(got, want), f"best_by_length {list(curve)} != {plain.best_by_length}; {context}"
    top = fast.top_formulas_[fast.top_formulas_.unit == name]
    if plain.status != "ok":
        assert pd.isna(row.formula), context
        assert pd.isna(row.best_atomic), context
        assert len(top) == 0, context
        assert fast.formulas_[u] is None, context
        return
    best = plain.top[0]
    assert row.formula == best.formula, f"{row.formula!r} != {best.formula!r}; {context}"
    assert str(fast.formulas_[u]) == best.formula, context
    assert _close(row.score, best.score), context
    assert _close(row.iou, _iou(best, n_active)), context
    assert row.formula_size == best.size, context
    assert row.intersection == best.intersection, context
    assert row.length == parse(best.formula).length, context
    for metric in ("precision", "recall", "f1"):
        assert _close(row[metric], metric_value(metric, best.intersection, best.size, n_active)), context
    assert row.best_atomic == plain.atomic.formula, f"{row.best_atomic!r} != {plain.atomic.formula!r}; {context}"
    assert _close(row.best_atomic_iou, _iou(plain.atomic, n_active)), context
    # top-k
    assert list(top.formula) == [c.formula for c in plain.top], f"{list(top.formula)} != {plain.top}; {context}"
    assert list(top["rank"]) == list(range(1, len(plain.top) + 1)), context
    for got_score, got_iou, got_length, want in zip(top.score, top.iou, top.length, plain.top):
        assert _close(got_score, want.score), context
        assert _close(got_iou, _iou(want, n_active)), context
        assert got_length == parse(want.formula).length, context
    # the raw candidates agree too, values included
    result = fast.results_[u]
    for got, want in zip(result.top, plain.top):
        assert (got.size, got.intersection) == (want.size, want.intersection), context
        assert _close(got.value, want.value), context
    assert _close(result.atomic.score, plain.atomic.score), context


def _compare(masks, names, units, neighbors=None, use_neighbors=True, **opts) -> list[PlainResult]:
    fast = _fit(masks, names, units, neighbors, use_neighbors, **opts)
    assert len(fast.explanations_) == len(units)
    plains = []
    for u, unit in enumerate(units):
        plain = plain_search(masks, names, unit, neighbors=neighbors, use_neighbors=use_neighbors, **opts)
        context = f"unit {u}, options {opts}, neighbors={neighbors}, use_neighbors={use_neighbors}"
        _check_unit(fast, u, plain, int(unit.sum()), context)
        plains.append(plain)
    return plains


# ------------------------------------------------------------------------ property tests
@HYPOTHESIS
@given(data=st.data())
def test_defaults_match_plain_search(data):
    masks, names, units = data.draw(problems())
    _compare(masks, names, units)


@HYPOTHESIS
@given(data=st.data())
def test_every_option_matches_plain_search(data):
    masks, names, units = data.draw(problems())
    _compare(masks, names, units, **data.draw(options(len(names))))


@HYPOTHESIS
@given(data=st.data())
def test_neighbors_match_plain_search(data):
    masks, names, units = data.draw(problems(max_k=8, max_n=120, max_units=3))
    relation = data.draw(neighbor_maps(names))
    use_neighbors = data.draw(st.booleans())
    _compare(masks, names, units, relation, use_neighbors, **data.draw(options(len(names))))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_small_problems_with_many_ties(data):
    """Few positions make equal scores and coinciding masks common: tie-breaking matters."""
    masks, names, units = data.draw(problems(max_k=10, max_n=8, max_units=4))
    relation = data.draw(st.one_of(st.none(), neighbor_maps(names)))
    _compare(masks, names, units, relation, **data.draw(options(len(names))))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_answer_is_consistent_with_its_mask(data):
    """The printed formula, evaluated on the concept set, has the reported counts."""
    masks, names, units = data.draw(problems(max_k=8, max_n=150))
    relation = data.draw(st.one_of(st.none(), neighbor_maps(names)))
    opts = data.draw(options(len(names)))
    fast = _fit(masks, names, units, relation, **opts)
    concepts = ConceptSet.from_dense(masks, names)
    if relation is not None:
        concepts = concepts.with_neighbors(relation)
    for u, unit in enumerate(units):
        top = fast.top_formulas_[fast.top_formulas_.unit == fast.explanations_.unit.iloc[u]]
        sizes = []
        for text in top.formula:
            mask = concepts.mask(parse(text))
            sizes.append((int(mask.sum()), int((mask & unit).sum())))
            assert parse(text).length <= opts["max_length"]
        assert [(c.size, c.intersection) for c in fast.results_[u].top] == sizes
        # top-k formulas have distinct masks and are sorted by score
        masks_seen = {concepts.mask(parse(text)).tobytes() for text in top.formula}
        assert len(masks_seen) == len(top)
        assert list(top.score) == sorted(top.score, reverse=True)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_empty_and_unmatched_units(data):
    masks, names, _ = data.draw(problems(max_k=6, max_n=60, max_units=1))
    n = masks.shape[1]
    outside = ~masks.any(axis=0)
    units = [np.zeros(n, bool)]
    if outside.any():
        units.append(outside)  # touches no concept: no_match
    plains = _compare(masks, names, np.stack(units))
    assert plains[0].status == "empty"
    if outside.any():
        assert plains[1].status == "no_match"


@pytest.mark.parametrize("beam_mode", ["reference", "paper"])
def test_hand_example(beam_mode):
    masks = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]], bool)
    names = ["a", "b", "c", "empty"]
    units = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]], bool)
    plains = _compare(masks, names, units, max_length=2, beam_mode=beam_mode)
    assert [p.status for p in plains] == ["ok", "empty", "no_match", "ok"]
    assert plains[0].top[0].formula == "a OR b"
    assert plains[0].top[0].score == 1.0


@pytest.mark.parametrize(
    ("operators", "third"),
    [(("or", "and", "and_not"), "b AND a"), (("and_not", "and", "or"), "b AND NOT a")],
)
def test_operator_order_breaks_ties(operators, third):
    """``b AND a`` and ``b AND NOT a`` tie; the one whose operator comes first enters first."""
    masks = np.array([[0, 0, 1, 1, 0], [1, 0, 1, 0, 0]], bool)
    unit = np.array([[1, 0, 1, 0, 1]], bool)
    plains = _compare(masks, ["a", "b"], unit, max_length=2, operators=operators, top_k=3)
    assert [c.formula for c in plains[0].top] == ["b", "b OR a", third]


# ------------------------------------------------------------------------ planted formulas
def _planted(seed: int, n: int, densities=(0.5, 0.5, 0.5)):
    rng = np.random.default_rng(seed)
    masks = np.stack([rng.random(n) < d for d in densities])
    unit = (masks[0] | masks[1]) & masks[2]
    return masks, ["A", "B", "C"], unit


@pytest.mark.parametrize("seed", range(5))
def test_planted_formula_is_recovered(seed):
    masks, names, unit = _planted(seed, 400)
    fast = _fit(masks, names, unit[None], max_length=3, beam_mode="reference")
    row = fast.explanations_.iloc[0]
    assert row.iou == 1.0
    assert row.formula in ("(A OR B) AND C", "(B OR A) AND C")
    plain = plain_search(masks, names, unit, max_length=3, beam_mode="reference")
    assert plain.top[0].formula == row.formula


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    densities=st.tuples(*[st.sampled_from([0.05, 0.2, 0.5, 0.8, 0.95])] * 3),
)
def test_planted_formula_is_recovered_with_a_wide_beam(seed, n, densities):
    """With a beam wider than the 27 length-2 candidates, (A OR B) AND C is always reachable."""
    masks, names, unit = _planted(seed, n, densities)
    assume(unit.any())
    fast = _fit(masks, names, unit[None], max_length=3, beam_size=30, beam_mode="reference")
    row = fast.explanations_.iloc[0]
    assert row.iou == 1.0
    assert np.array_equal(ConceptSet.from_dense(masks, names).mask(parse(row.formula)), unit)
    plain = plain_search(masks, names, unit, max_length=3, beam_size=30)
    assert plain.top[0].formula == row.formula


# ------------------------------------------------------------------------ parallel runs
def test_parallel_run_gives_identical_frames():
    rng = np.random.default_rng(7)
    masks = _random_concepts(rng, 12, 300)
    units = np.stack([_random_unit(rng, masks) for _ in range(40)])
    names = [f"c{i}" for i in range(12)]
    opts = dict(max_length=3, top_k=3, verbose=0)
    concepts = ConceptSet.from_dense(masks, names).with_neighbors({"c0": ["c1", "c2"], "c3": ["c4"]})
    serial = CompositionalExplainer(n_jobs=1, **opts).fit(units, concepts)
    parallel = CompositionalExplainer(n_jobs=2, **opts).fit(units, concepts)
    pd.testing.assert_frame_equal(serial.explanations_, parallel.explanations_)
    pd.testing.assert_frame_equal(serial.top_formulas_, parallel.top_formulas_)
    pd.testing.assert_frame_equal(serial.best_by_length_, parallel.best_by_length_)
    assert serial.formulas_ == parallel.formulas_


def test_formulas_survive_pickling():
    """Worker processes send formulas back pickled (``n_jobs != 1``)."""
    a, b = Concept("a"), Neighbors("b")
    for formula in [a, Not(a), b, Or(a, b), And(a, Not(b)), And(Or(a, b), Not(a))]:
        assert pickle.loads(pickle.dumps(formula)) == formula
