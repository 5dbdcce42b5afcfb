"""The certified search against a plain exhaustive enumeration of the beam's formula space.

Every formula is evaluated here on dense boolean masks over positions; nothing but the
primitive list (``PrimitiveTable.formulas``, evaluated with ``ConceptSet.mask``) is shared
with the code under test.
"""

from __future__ import annotations

from contextlib import contextmanager
from fractions import Fraction
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logiclens import ConceptSet
from logiclens.core.masks import UnitMasks
from logiclens.core.search import optimal as optimal_module
from logiclens.core.search.beam import BeamSettings, PrimitiveTable, search_unit
from logiclens.core.search.optimal import _exceeds, _Search, ceiling, certify, optimal_unit, optimal_units

HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPERATOR_SETS = [
    ("or", "and", "and_not"),
    ("or", "and"),
    ("and", "and_not"),
    ("or",),
    ("or", "and", "and_not", "or_not"),
    ("and_not", "or_not"),
]


# ------------------------------------------------------------------------ problems
def _overlapping_concepts(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """Objects, their parts and 'colours': concepts that share positions, as in segmentation."""
    masks = np.zeros((k, n), bool)
    for i in range(k):
        kind = rng.integers(0, 5)
        if kind == 0 and i > 0:
            masks[i] = masks[rng.integers(0, i)] & (rng.random(n) < 0.5)  # a part of an earlier concept
        elif kind == 1 and i > 0:
            masks[i] = masks[rng.integers(0, i)] | (rng.random(n) < 0.1)  # a superset
        else:
            start, length = rng.integers(0, n), rng.integers(1, max(2, n // 2))
            masks[i, start : start + length] = True  # a contiguous region
            masks[i] ^= rng.random(n) < 0.05
    return masks


def _unit(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    k, n = masks.shape
    a, b, c = (masks[j] for j in rng.integers(0, k, 3))
    kind = rng.integers(0, 4)
    unit = [(a & b) | c, a | b, a & ~b, rng.random(n) < 0.3][kind]
    return unit ^ (rng.random(n) < rng.choice([0.0, 0.03, 0.1]))


@st.composite
def problems(draw, max_k: int = 6, lengths: tuple[int, int] = (1, 3)):
    n = draw(st.integers(5, 90))
    k = draw(st.integers(1, max_k))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    masks = _overlapping_concepts(rng, k, n)
    unit = _unit(rng, masks)
    names = [f"c{i}" for i in range(k)]
    neighbors = None
    if draw(st.booleans()) and k > 1:
        neighbors = {names[i]: [names[(i + 1) % k]] for i in range(k) if rng.random() < 0.5}
    opts = BeamSettings(
        max_length=draw(st.integers(*lengths)),
        beam_size=draw(st.integers(1, 3)),
        operators=draw(st.sampled_from(OPERATOR_SETS)),
        beam_mode=draw(st.sampled_from(["reference", "paper"])),
        min_support=draw(st.sampled_from([1, 1, 3])),
        max_expansion_concepts=draw(st.sampled_from([None, None, 1, 3])),
        use_neighbors=draw(st.booleans()),
    )
    return masks, names, neighbors, unit, opts


class Plain:
    """The formula space of ``docs/search.md`` enumerated on dense masks."""

    def __init__(self, masks, names, neighbors, unit, opts: BeamSettings) -> None:
        concepts = ConceptSet.from_dense(masks, names)
        if neighbors is not None:
            concepts = concepts.with_neighbors(neighbors)
        self.concepts = concepts
        self.table = PrimitiveTable(concepts, opts.min_support, opts.use_neighbors)
        counts = UnitMasks.from_dense(unit[None], concepts).counts
        self.sigs, self.counts = counts.indices, counts.data
        self.opts = opts
        self.unit = unit
        self.m = int(unit.sum())
        self.prims = [concepts.mask(f) for f in self.table.formulas]
        iou = [self.iou(p) for p in self.prims]
        hits = [int((p & unit).sum()) for p in self.prims]
        self.first = [j for j in range(len(self.prims)) if hits[j] > 0]
        ranked = sorted(self.first, key=lambda j: (-iou[j], j))
        limit = opts.max_expansion_concepts
        self.expand = list(range(len(self.prims))) if limit is None else sorted(ranked[:limit])

    def iou(self, mask: np.ndarray) -> Fraction:
        hits = int((mask & self.unit).sum())
        union = int((mask | self.unit).sum())
        return Fraction(hits, union) if union else Fraction(0)

    @staticmethod
    def apply(mask: np.ndarray, prim: np.ndarray, op: str) -> np.ndarray:
        return {"or": mask | prim, "and": mask & prim, "and_not": mask & ~prim, "or_not": mask | ~prim}[op]

    def subtree_best(self, mask: np.ndarray, remaining: int) -> Fraction:
        """Best IoU of F and every continuation of at most ``remaining`` leaves (positive prefixes only)."""
        return self._best(mask.tobytes(), remaining)

    @cache  # noqa: B019 (one Plain per example)
    def _best(self, key: bytes, remaining: int) -> Fraction:
        mask = np.frombuffer(key, bool)
        value = self.iou(mask)
        if value == 0:
            return Fraction(0)
        if remaining == 0:
            return value
        for j in self.expand:
            for op in self.opts.operators:
                value = max(value, self._best(self.apply(mask, self.prims[j], op).tobytes(), remaining - 1))
        return value

    def best(self) -> Fraction:
        if self.m == 0:
            return Fraction(0)
        return max(
            (self.subtree_best(self.prims[j], self.opts.max_length - 1) for j in self.first), default=Fraction(0)
        )

    def prefix_mask(self, prefix) -> np.ndarray:
        mask = self.prims[prefix[0][0]]
        for j, o in prefix[1:]:
            mask = self.apply(mask, self.prims[j], self.opts.operators[o])
        return mask

    def ceiling_brute(self) -> Fraction:
        """Best IoU of any union of signatures, by trying every subset of the unit's signatures."""
        weights = self.concepts.signature_weights
        best = Fraction(0)
        for bits in range(1, 2 ** len(self.sigs)):
            chosen = [i for i in range(len(self.sigs)) if bits >> i & 1]
            hits = int(self.counts[chosen].sum())
            size = int(weights[self.sigs[chosen]].sum())
            best = max(best, Fraction(hits, size + self.m - hits))
        return best


def _at_least(bound: float, value: Fraction) -> bool:
    """A float bound covers a rational score: IoUs are reported as one float division, ``float(value)``."""
    return bound >= float(value)


# ------------------------------------------------------------------------ property tests
@HYPOTHESIS
@given(problem=problems())
def test_optimum_equals_exhaustive_and_every_pruning_is_sound(problem):
    plain = Plain(*problem)
    result = optimal_unit(plain.table, plain.sigs, plain.counts, plain.opts, trace=True)
    want = plain.best()
    if plain.m == 0:
        assert result.status == "empty"
        return
    if want == 0:
        assert result.status == "no_match" and result.best is None
        return
    assert result.status == "optimal"
    assert result.iou == float(want)
    assert result.upper_bound == result.iou
    # the formula is what it says, and lies in the space
    mask = plain.concepts.mask(result.best.formula)
    assert plain.iou(mask) == want
    assert result.best.formula.length <= plain.opts.max_length
    assert (result.best.size, result.best.intersection) == (int(mask.sum()), int((mask & plain.unit).sum()))
    # never below the beam
    assert result.iou >= result.beam_iou
    # every pruned or skipped subtree holds nothing above the ratio it was pruned at
    for kind, prefix, remaining, num, den in result.trace:
        best_below = plain.subtree_best(plain.prefix_mask(prefix), remaining)
        assert best_below <= Fraction(num, den), (kind, prefix, remaining)
    # the ceiling bounds everything, and the certificate of the beam bounds the optimum
    assert result.ceiling >= result.iou
    bound = certify(plain.table, plain.sigs, plain.counts, result.beam, plain.opts)
    assert _at_least(bound, want)
    assert bound >= result.beam_iou


@contextmanager
def _pair_stage(stage: str):
    """Force the dense pair stage (every pair counted) or the pair blocks, whatever the problem's size."""
    saved = optimal_module._DENSE_BELOW
    optimal_module._DENSE_BELOW = 2**62 if stage == "dense" else 0
    try:
        yield
    finally:
        optimal_module._DENSE_BELOW = saved


@HYPOTHESIS
@given(problem=problems(max_k=8, lengths=(2, 3)))
def test_dense_pair_stage_and_pair_blocks_give_the_same_certified_optimum(problem):
    """Both pair stages against the exhaustive enumeration: same optimum, status, bound; every pruning sound."""
    plain = Plain(*problem)
    want = plain.best()
    results = {}
    for stage in ("dense", "dense again", "blocks"):  # again: with the |A AND C AND C'| tables cached
        with _pair_stage(stage.split()[0]):
            result = optimal_unit(plain.table, plain.sigs, plain.counts, plain.opts, trace=True)
        results[stage] = result
        if plain.m == 0 or want == 0:
            assert result.status in ("empty", "no_match")
            continue
        assert result.status == "optimal"
        assert result.iou == float(want) == result.upper_bound
        assert plain.iou(plain.concepts.mask(result.best.formula)) == want
        for kind, prefix, remaining, num, den in result.trace:
            assert plain.subtree_best(plain.prefix_mask(prefix), remaining) <= Fraction(num, den), (stage, kind)
    dense = results["dense"]
    for other in (results["dense again"], results["blocks"]):
        assert (dense.status, dense.iou, dense.upper_bound) == (other.status, other.iou, other.upper_bound)
        if dense.best is not None:
            assert (dense.best.size, dense.best.intersection) == (other.best.size, other.best.intersection)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(max_k=4, lengths=(4, 4)))
def test_length_four_equals_exhaustive(problem):
    """Length 4 also runs the plain depth-first visits above the last two levels."""
    plain = Plain(*problem)
    result = optimal_unit(plain.table, plain.sigs, plain.counts, plain.opts, trace=True)
    if result.status in ("empty", "no_match"):
        return
    assert result.status == "optimal"
    assert result.iou == float(plain.best())
    assert plain.iou(plain.concepts.mask(result.best.formula)) == plain.best()
    for kind, prefix, remaining, num, den in result.trace:
        assert plain.subtree_best(plain.prefix_mask(prefix), remaining) <= Fraction(num, den), (kind, prefix)


@HYPOTHESIS
@given(problem=problems())
def test_numeric_bound_of_every_node_is_at_least_its_subtree_best(problem):
    plain = Plain(*problem)
    if plain.m == 0 or not plain.first:
        return
    search = _Search(plain.table, plain.sigs, plain.counts, plain.opts, [])
    search.expand = np.asarray(plain.expand, np.intp)
    length = plain.opts.max_length
    root = search.subtree_bound(None, length - 1, search.first)
    assert _at_least(root, plain.best())
    stack = [((j, -1),) for j in plain.first]
    while stack:
        prefix = stack.pop()
        mask = plain.prefix_mask(prefix)
        if plain.iou(mask) == 0:
            continue
        remaining = length - len(prefix)
        signature_mask = np.zeros(plain.concepts.n_signatures, bool)
        signature_mask[plain.concepts.position_signatures[mask]] = True
        bound = search.subtree_bound(signature_mask[search.unit_index], remaining, search.first)
        assert _at_least(bound, plain.subtree_best(mask, remaining)), prefix
        if remaining > 0:
            stack += [(*prefix, (j, o)) for j in plain.expand for o in range(len(plain.opts.operators))]


@HYPOTHESIS
@given(problem=problems())
def test_ceiling_is_the_best_union_of_signatures(problem):
    plain = Plain(*problem)
    if len(plain.sigs) > 12:
        return
    got = ceiling(plain.sigs, plain.counts, plain.concepts.signature_weights)
    assert got == float(plain.ceiling_brute() if plain.m else 0)
    assert _at_least(got, plain.best())


@HYPOTHESIS
@given(problem=problems(), nodes=st.integers(0, 2))
def test_a_tiny_budget_keeps_the_beam_answer_with_a_valid_bound(problem, nodes):
    plain = Plain(*problem)
    result = optimal_unit(plain.table, plain.sigs, plain.counts, plain.opts, max_nodes=nodes)
    if result.status in ("empty", "no_match"):
        return
    want = plain.best()
    assert result.iou >= result.beam_iou
    assert _at_least(result.upper_bound, want)
    assert result.upper_bound >= result.iou
    if result.status == "optimal":
        assert result.iou == float(want)
    if nodes == 0:
        assert str(result.best.formula) == str(result.beam.best.formula)
        if plain.opts.max_length > 1 and result.iou < result.ceiling:
            assert result.status == "budget"


# ------------------------------------------------------------------------ examples
def _planted_problem():
    """``(A AND B) OR C`` on overlapping concepts, where a narrow beam starts from C and never holds A AND B."""
    rng = np.random.default_rng(3)
    n = 4000
    a = rng.random(n) < 0.5
    b = rng.random(n) < 0.3
    c = np.zeros(n, bool)
    c[:900] = True
    decoys = [c | (rng.random(n) < 0.02 * (i + 1)) for i in range(4)]
    masks = np.stack([a, b, c, *decoys])
    unit = (a & b) | c
    return masks, [f"c{i}" for i in range(len(masks))], unit


def test_planted_formula_the_beam_misses_is_found():
    masks, names, unit = _planted_problem()
    opts = BeamSettings(max_length=3, beam_size=2)
    plain = Plain(masks, names, None, unit, opts)
    beam = search_unit(plain.table, plain.sigs, plain.counts, opts)
    result = optimal_unit(plain.table, plain.sigs, plain.counts, opts, incumbent=beam)
    assert beam.best is not None and result.beam_iou < 1.0
    assert result.status == "optimal"
    assert result.iou == 1.0
    assert plain.iou(plain.concepts.mask(result.best.formula)) == 1
    assert result.ceiling == 1.0
    assert certify(plain.table, plain.sigs, plain.counts, beam, opts) >= 1.0


def test_budget_in_seconds_and_unsupported_settings():
    masks, names, unit = _planted_problem()
    opts = BeamSettings(max_length=3, beam_size=2)
    plain = Plain(masks, names, None, unit, opts)
    result = optimal_unit(plain.table, plain.sigs, plain.counts, opts, budget_seconds=0.0)
    assert result.status == "budget"
    assert result.iou == result.beam_iou and result.upper_bound >= 1.0
    for bad in (BeamSettings(metric="f1"), BeamSettings(complexity_penalty=0.1)):
        with pytest.raises(ValueError, match="optimal search"):
            optimal_unit(plain.table, plain.sigs, plain.counts, bad)
        with pytest.raises(ValueError, match="certify"):
            certify(plain.table, plain.sigs, plain.counts, search_unit(plain.table, plain.sigs, plain.counts, bad), bad)


def test_several_units_from_a_count_matrix():
    masks, names, unit = _planted_problem()
    concepts = ConceptSet.from_dense(masks, names)
    units = UnitMasks.from_dense(np.stack([unit, masks[0], np.zeros_like(unit)]), concepts)
    opts = BeamSettings(max_length=3, beam_size=2)
    table = PrimitiveTable(concepts)
    results = optimal_units(table, units.counts, range(3), opts)
    assert [r.status for r in results] == ["optimal", "optimal", "empty"]
    assert results[0].iou == 1.0 and str(results[1].best.formula) == "c0"
    assert results[2].best is None and results[2].upper_bound == 0.0


@HYPOTHESIS
@given(problem=problems(lengths=(3, 3)))
def test_pairwise_bound_of_every_length_two_formula_covers_its_extensions(problem):
    """At the optimum's ratio (so every A op C scores at most it), no extension of H = A op B beats its bound."""
    plain = Plain(*problem)
    best = plain.best()
    if plain.m == 0 or best == 0:
        return
    search = _Search(plain.table, plain.sigs, plain.counts, plain.opts, [])
    search.expand = np.asarray(plain.expand, np.intp)
    search.cooccurrence_tables()
    num, den = best.numerator, best.denominator
    first = np.asarray(plain.first, np.intp)
    bounds, target = search.pair_bounds(num, den, first)
    assert target == num * plain.m
    ops = plain.opts.operators
    for r, a in enumerate(plain.first):
        for c, b in enumerate(plain.expand):
            for o, op in enumerate(ops):
                h = plain.apply(plain.prims[a], plain.prims[b], op)
                if not (h & plain.unit).any():
                    continue
                for j in plain.expand:
                    for op2 in ops:
                        g = plain.apply(h, plain.prims[j], op2)
                        hits = int((g & plain.unit).sum())
                        if hits == 0:
                            continue
                        scaled = den * hits - num * (int(g.sum()) - hits)
                        assert scaled <= bounds[r, c, o], (a, op, b, op2, j)


# ------------------------------------------------------------------------ pair blocks (sparse pair stage)
def _scaled(plain: Plain, mask: np.ndarray, num: int, den: int) -> int:
    hits = int((mask & plain.unit).sum())
    return den * hits - num * (int(mask.sum()) - hits)


def _pair_subtree_best(plain: Plain, a: int, b: int, op: str, after: int, num: int, den: int) -> int:
    """Largest scaled gain of A op B and of every one-leaf continuation (when ``after`` is 1), prefixes unrestricted."""
    h = plain.apply(plain.prims[a], plain.prims[b], op)
    best = _scaled(plain, h, num, den)
    if after:
        for j in plain.expand:
            for op2 in plain.opts.operators:
                best = max(best, _scaled(plain, plain.apply(h, plain.prims[j], op2), num, den))
    return best


@HYPOTHESIS
@given(problem=problems(lengths=(2, 3)), ratio=st.tuples(st.integers(1, 30), st.integers(1, 30)))
def test_pair_block_and_pair_bounds_cover_every_pair_subtree(problem, ratio):
    """Every block bound and every pair bound is at least the best gain of every subtree it covers, at any ratio."""
    plain = Plain(*problem)
    if plain.m == 0 or not plain.first:
        return
    _check_pair_blocks(plain, min(ratio), max(ratio))


def test_and_pairs_without_shared_positive_signatures_are_bounded_with_or_not():
    """(A AND B) OR NOT C can beat the ratio although A AND B holds no positive signature: AND pairs go to blocks."""
    n = 20
    a, b, c = (np.zeros(n, bool) for _ in range(3))
    a[[0, 1, 2, 3, 4, 10]] = True
    b[3:7] = True
    c[:10] = True
    unit = ~c
    plain = Plain(
        np.stack([a, b, c]), ["A", "B", "C"], None, unit, BeamSettings(max_length=3, operators=("and", "or_not"))
    )
    truth = _pair_subtree_best(plain, 0, 1, "and", 1, 1, 2)
    assert truth > 1 * plain.m  # beats the ratio 1/2
    _check_pair_blocks(plain, 1, 2)


def _check_pair_blocks(plain: Plain, num: int, den: int) -> None:
    search = _Search(plain.table, plain.sigs, plain.counts, plain.opts, [])
    search.expand = np.asarray(plain.expand, np.intp)
    first = np.asarray(plain.first, np.intp)
    after = plain.opts.max_length - 2
    blocks = search.pair_block_bounds(num, den, first, after)
    assert blocks.target == num * plain.m
    ops = plain.opts.operators
    listed = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(blocks.rows, blocks.cols, strict=True))}
    block_of = {int(c): j for j, cols in enumerate(blocks.columns) for c in cols}
    for r, a in enumerate(plain.first):
        for c, b in enumerate(plain.expand):
            for o, op in enumerate(ops):
                truth = _pair_subtree_best(plain, a, b, op, after, num, den)
                if (r, c) in listed:
                    assert truth <= blocks.entry[listed[(r, c)], o], (a, op, b)
                elif op == "and" and not blocks.and_in_blocks:  # not listed: bound from g(A AND B) <= target
                    assert truth <= blocks.target, (a, op, b)
                else:
                    assert blocks.block[r, block_of[c]] <= blocks.target
                    assert truth <= blocks.target, (a, op, b)
                if op != "and" or blocks.and_in_blocks:
                    assert truth <= blocks.block[r, block_of[c]], (a, op, b)
                g_and = plain.prims[a] & plain.prims[b]
                positive = g_and  # g(A AND B) by brute force over the unit's signatures
                sig = plain.concepts.position_signatures[positive]
                want = 0
                for s in np.unique(sig):
                    held = plain.concepts.position_signatures == s
                    gain = den * int((held & plain.unit).sum()) - num * int((held & ~plain.unit).sum())
                    want += max(gain, 0)
                got = blocks.g2_of(np.array([a]), np.array([b]))[0]
                assert got == want


@HYPOTHESIS
@given(problem=problems(lengths=(3, 3)))
def test_unit_rows_are_the_plain_counts(problem):
    plain = Plain(*problem)
    if plain.m == 0:
        return
    search = _Search(plain.table, plain.sigs, plain.counts, plain.opts, [])
    search.global_cooccurrence()
    xs = np.arange(len(plain.prims))[::-1]
    rows = search.unit_rows(xs)
    for i, x in enumerate(xs):
        for c, p in enumerate(plain.prims):
            assert rows[i, c] == int((plain.prims[x] & p & plain.unit).sum())
            assert search.cooc_w[x, c] == int((plain.prims[x] & p).sum())


def _tight_problem(n_unit: int):
    """Concepts A, B and a unit equal to A AND B (``n_unit`` positions): the AND pair's bound is exact."""
    n = 12
    a = np.zeros(n, bool)
    b = np.zeros(n, bool)
    a[:6] = True
    b[6 - n_unit : 9] = True
    unit = a & b
    return Plain(np.stack([a, b]), ["A", "B"], None, unit, BeamSettings(max_length=2, beam_size=1, operators=("and",)))


@pytest.mark.parametrize(("n_unit", "num", "den", "passes"), [(3, 1, 1, False), (1, 1, 2, True), (1, 1, 1, False)])
def test_pair_bound_is_tight_and_the_threshold_is_strict(n_unit, num, den, passes):
    """A AND B with the unit equal to it: the bound equals the formula's own gain, and a pair passes iff its
    bound exceeds num |M| (equal: pruned; one above: kept). Moving either by one fails this test."""
    plain = _tight_problem(n_unit)
    search = _Search(plain.table, plain.sigs, plain.counts, plain.opts, [])
    blocks = search.pair_block_bounds(num, den, np.array([0]), 0)
    i = [k for k, (r, c) in enumerate(zip(blocks.rows, blocks.cols, strict=True)) if c == 1]
    truth = _scaled(plain, plain.prims[0] & plain.prims[1], num, den)
    bound = int(blocks.entry[i[0], 0]) if i else None
    if passes:
        assert bound == truth == blocks.target + 1
        assert bool(blocks.passing()[i[0], 0])
    else:
        assert truth == blocks.target
        assert not i  # a bound equal to the target prunes


def test_the_pruning_threshold_is_strict():
    """Bound equal to num |M|: pruned (nothing can score above the incumbent); one above: kept."""
    target = 7
    assert not _exceeds(np.array([target]), target)[0]
    assert _exceeds(np.array([target + 1]), target)[0]
