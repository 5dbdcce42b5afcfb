"""Held-out scoring, permutation nulls, p-values and Benjamini-Hochberg."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from logiclens import CompositionalExplainer, ConceptSet
from logiclens.explain.statistics import (
    benjamini_hochberg,
    choose_length,
    empirical_p_value,
    gumbel_p_value,
    kfold_examples,
    split_examples,
)
from logiclens.testing import planted_problem


# ---------------------------------------------------------------------------- splits
@given(
    n=st.integers(2, 300),
    test_size=st.floats(0.05, 0.95),
    seed=st.integers(0, 1000),
    n_groups=st.one_of(st.none(), st.integers(2, 40)),
)
@settings(max_examples=150, deadline=None)
def test_split_partitions_examples_and_keeps_groups_together(n, test_size, seed, n_groups) -> None:
    groups = None if n_groups is None else [f"g{i % n_groups}" for i in range(n)]
    if groups is not None and len(set(groups)) < 2:
        return
    search, held = split_examples(n, test_size, seed, groups)
    assert len(search) and len(held)
    assert np.array_equal(np.sort(np.concatenate([search, held])), np.arange(n))
    if groups is not None:
        assert not {groups[i] for i in search} & {groups[i] for i in held}
    else:
        assert abs(len(held) - test_size * n) <= 1 or len(held) in (1, n - 1)
    again = split_examples(n, test_size, seed, groups)
    assert np.array_equal(again[1], held)


def test_kfold_partitions_examples_by_group() -> None:
    groups = [i // 3 for i in range(30)]
    folds = kfold_examples(30, 4, random_state=1, groups=groups)
    held = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(held), np.arange(30))
    for search, test in folds:
        assert not {groups[i] for i in search} & {groups[i] for i in test}
    with pytest.raises(ValueError):
        kfold_examples(30, 11, groups=groups)


def test_split_errors() -> None:
    with pytest.raises(ValueError, match="test_size"):
        split_examples(10, 1.0)
    with pytest.raises(ValueError, match="one group"):
        split_examples(10, 0.2, groups=["a"] * 10)


# ---------------------------------------------------------------------------- p-values and BH
def _plain_bh(p: np.ndarray, alpha: float) -> np.ndarray:
    m = len(p)
    order = np.argsort(p)
    k = 0
    for rank in range(1, m + 1):
        if p[order[rank - 1]] <= alpha * rank / m:
            k = rank
    rejected = np.zeros(m, bool)
    rejected[order[:k]] = True
    return rejected


@given(st.lists(st.floats(0, 1), min_size=1, max_size=60), st.sampled_from([0.01, 0.05, 0.2]))
@settings(max_examples=200, deadline=None)
@example([0.0, 0.0, 0.0, 0.0, 0.0, 0.05], 0.05)  # p * m / rank rounds just above alpha here
def test_benjamini_hochberg_matches_a_plain_implementation(p_values, alpha) -> None:
    p = np.array(p_values)
    rejected, adjusted = benjamini_hochberg(p, alpha)
    assert np.array_equal(rejected, _plain_bh(p, alpha))
    # the adjusted p-values agree with the rejections (up to float rounding at the boundary)
    assert (adjusted[rejected] <= alpha * (1 + 1e-12)).all()
    assert (adjusted[~rejected] > alpha * (1 - 1e-12)).all()
    assert (adjusted >= p - 1e-12).all() and (adjusted <= 1).all()


def test_benjamini_hochberg_ignores_untested_units() -> None:
    rejected, adjusted = benjamini_hochberg([0.001, np.nan, 0.9], 0.05)
    assert rejected.tolist() == [True, False, False]
    assert np.isnan(adjusted[1])


def test_p_values() -> None:
    null = np.linspace(0.01, 0.05, 20)
    assert empirical_p_value(1.0, null) == 1 / 21
    assert empirical_p_value(0.0, null) == 1.0
    assert gumbel_p_value(0.5, null) < 1e-10
    assert 0.3 < gumbel_p_value(float(np.median(null)), null) < 0.7
    assert gumbel_p_value(0.2, [0.2, 0.2]) == 1.0
    assert gumbel_p_value(0.3, [0.2, 0.2]) == 0.0


def test_choose_length_prefers_the_shortest_best() -> None:
    assert choose_length([0.1, 0.3, 0.3]) == 2
    assert choose_length([np.nan, 0.2, 0.1]) == 2
    assert choose_length([np.nan, np.nan]) == 0


# ---------------------------------------------------------------------------- explainer
N_EXAMPLES, PER_EXAMPLE = 300, 20
EXAMPLES = np.repeat(np.arange(N_EXAMPLES), PER_EXAMPLE)


def test_planted_unit_is_significant_and_holds_up_on_heldout_examples() -> None:
    problem = planted_problem(["c0 OR c1", "c2 AND NOT c3"], N_EXAMPLES * PER_EXAMPLE, 10, noise=0.1, seed=3)
    explainer = CompositionalExplainer(max_length=3, n_null=20, verbose=0)
    frame = explainer.fit(problem.unit_masks, problem.concepts, examples=EXAMPLES).explanations_
    assert frame.significant.all()
    assert (frame.p_value < 1e-6).all()
    assert (abs(frame.heldout_iou - frame.iou) < 0.08).all()
    search, held = explainer.split_
    assert not set(search) & set(held)
    assert abs(len(held) - 0.2 * N_EXAMPLES) <= 1
    assert explainer.null_values_.shape == (2, 20)
    assert explainer.null_by_length_.shape == (2, 20, 3)
    assert frame.auto_length.between(1, 3).all()


def test_random_units_are_not_significant_in_95_percent_of_seeds() -> None:
    p_values, significant = [], 0
    for seed in range(100):
        problem = planted_problem([], N_EXAMPLES * PER_EXAMPLE, 10, seed=seed)
        unit = np.random.default_rng(seed).random((1, N_EXAMPLES * PER_EXAMPLE)) < 0.05
        explainer = CompositionalExplainer(max_length=2, beam_size=5, n_null=20, random_state=seed, verbose=0)
        frame = explainer.fit(unit, problem.concepts, examples=EXAMPLES).explanations_
        significant += int(frame.significant[0])
        p_values.append(frame.p_value[0])
    assert significant <= 5
    # calibrated rather than merely conservative: p-values spread over (0, 1)
    assert 0.3 < float(np.median(p_values)) < 0.7


def test_heldout_iou_of_formulas_fitted_to_noise_is_lower() -> None:
    # the best of many formulas on random units is optimistic; held out, it falls back
    search, held = [], []
    for seed in range(10):
        problem = planted_problem([], N_EXAMPLES * PER_EXAMPLE, 30, density=(0.02, 0.1), seed=seed)
        units = np.random.default_rng(seed).random((3, N_EXAMPLES * PER_EXAMPLE)) < 0.05
        explainer = CompositionalExplainer(max_length=3, random_state=seed, verbose=0)
        frame = explainer.fit(units, problem.concepts, examples=EXAMPLES).explanations_
        search += list(frame.iou)
        held += list(frame.heldout_iou)
    assert np.mean(held) < 0.8 * np.mean(search)


def test_groups_keep_examples_together_and_bad_examples_are_reported() -> None:
    problem = planted_problem(["c0"], N_EXAMPLES * PER_EXAMPLE, 5, seed=1)
    groups = [e // 10 for e in range(N_EXAMPLES)]
    explainer = CompositionalExplainer(max_length=1, verbose=0)
    explainer.fit(problem.unit_masks, problem.concepts, examples=EXAMPLES, groups=groups)
    search, held = explainer.split_
    assert not {groups[e] for e in search} & {groups[e] for e in held}
    with pytest.raises(ValueError, match="examples must be an integer array"):
        explainer.fit(problem.unit_masks, problem.concepts, examples=EXAMPLES[:-1])
    uneven = EXAMPLES.copy()
    uneven[:5] = 1
    with pytest.raises(ValueError, match="equal size"):
        CompositionalExplainer(max_length=1, n_null=2, holdout=0, verbose=0).fit(
            problem.unit_masks, problem.concepts, examples=uneven
        )


def test_without_examples_the_validation_columns_are_absent() -> None:
    concepts = ConceptSet.from_dense(np.eye(2, 10, dtype=bool), ["a", "b"])
    frame = CompositionalExplainer(verbose=0, n_null=5).fit(np.eye(1, 10, dtype=bool), concepts).explanations_
    assert "heldout_iou" not in frame.columns
