"""Certified search: the provably best formula of the beam's formula space, on signature counts.

Branch and bound over exactly the formulas the beam search (:mod:`logiclens.core.search.beam`)
can build: left-deep formulas ``P1 op2 P2 op3 P3 ...`` of at most ``max_length`` leaves, every
prefix of which has a positive IoU. The incumbent is seeded with the beam's answer; subtrees
are pruned with the bounds proved in ``docs/search.md`` (section "Certified search"). Every
comparison is made on exact integer counts (cross-multiplied), so a pruning decision is never
wrong by a rounding error.

Also here: :func:`ceiling` (the best IoU of any union of signatures, a bound for formulas of
any length and shape) and :func:`certify` (a cheap upper bound for a beam answer).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from logiclens.core.formula import Formula
from logiclens.core.search.beam import (
    BeamSettings,
    Candidate,
    PrimitiveTable,
    UnitResult,
    _compose,
    operator_counts,
    search_unit,
)

__all__ = ["OptimalResult", "as_unit_result", "ceiling", "certificates", "certify", "optimal_unit", "optimal_units"]

_OR_OPS = ("or", "or_not")
_AND_OPS = ("and", "and_not")


@dataclass
class OptimalResult:
    """Outcome of one unit's certified search.

    Attributes
    ----------
    n_active : int
        Active positions of the unit.
    status : str
        ``"optimal"`` (no formula of the space scores more than ``best``), ``"budget"`` (the
        budget ran out; ``upper_bound`` bounds what was not searched), ``"empty"`` (the unit is
        never active) or ``"no_match"`` (no primitive overlaps the unit).
    best : Candidate or None
        The best formula found; never worse than the beam's answer.
    iou : float
        IoU of ``best`` (0 when there is none).
    upper_bound : float
        No formula of the space has an IoU above this; equals ``iou`` when ``status`` is
        ``"optimal"``.
    beam : UnitResult
        The beam search that seeded the incumbent.
    beam_iou : float
        IoU of the beam's answer.
    ceiling : float
        Best IoU of any union of signatures (:func:`ceiling`).
    nodes : int
        Formulas expanded (visited internal nodes of the search tree).
    seconds : float
        Wall time of the branch and bound, beam excluded.
    """

    n_active: int
    status: str
    best: Candidate | None
    iou: float
    upper_bound: float
    beam: UnitResult
    beam_iou: float
    ceiling: float
    nodes: int = 0
    seconds: float = 0.0
    trace: list[tuple] | None = field(default=None, repr=False)

    @property
    def gap(self) -> float:
        """``upper_bound - iou``: how much better a formula of the space could possibly be."""
        return self.upper_bound - self.iou


class _BudgetError(Exception):
    pass


_BLOCK = 32  # extension primitives per block of pairs
_EXTRA_ROWS = 512  # up to this many primitives, the pairwise bounds also use the rows of the B of each pair
_TOP = 4  # primitives of largest h(C) whose OR step on an AND pair is bounded one by one
_DENSE_BELOW = 160  # below this many primitives the pair stage counts every pair (dense); from it, pair blocks
_WITHIN_BYTES = 256 * 2**20  # memory for cached |A AND C AND C'| tables (dense pair stage), per primitive table


@dataclass
class PairBlocks:
    """Bounds on blocks of pairs A op B and on the pairs of the blocks that pass (scaled gains).

    Attributes
    ----------
    block : int array, shape (len(first), n_blocks)
        Bound on the subtree of every pair of the block (first leaf ``first[r]``, extensions ``columns[j]``),
        for every operator but AND; AND pairs are bounded one by one from g(A AND B), which is zero
        except on the few pairs that share a positive signature.
    columns : list of int arrays
        Per block, positions into ``expand`` of its extension primitives.
    rows, cols : int arrays
        The pairs of the blocks whose bound exceeds ``target``: positions into ``first`` and ``expand``.
    entry : int array, shape (len(rows), n_ops)
        Bound on each such pair's subtree, per operator.
    target : int
        num |M|: a subtree whose bound is at most this holds nothing above the ratio.
    g2_of : callable
        g(A AND B) for arrays of primitives A, B (exact; zero unless they share a positive signature).
    and_in_blocks : bool
        AND pairs are in the blocks too (when the bound of an AND pair with g(A AND B) = 0 exceeds the
        target, e.g. at a ratio below some primitive's IoU, or with OR NOT); otherwise every AND pair not
        listed has a bound from g(A AND B) at most the target.
    """

    block: NDArray[np.int64]
    columns: list[NDArray[np.intp]]
    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    entry: NDArray[np.int64]
    target: int
    g2_of: Callable[[NDArray[np.intp], NDArray[np.intp]], NDArray[np.int64]]
    and_in_blocks: bool = False

    def passing(self) -> NDArray[np.bool_]:
        """Per listed pair and operator: its subtree may hold a formula above the ratio (bound > target)."""
        return _exceeds(self.entry, self.target)


def _column_sums(
    table: PrimitiveTable, rows: NDArray[np.intp], weights: list[NDArray[np.int64]]
) -> list[NDArray[np.int64]]:
    """Per primitive, the sums of each weight vector over the given signatures holding it (exact)."""
    k = len(table)
    indptr, indices = table.by_signature.indptr, table.by_signature.indices
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    total = int(lengths.sum())
    if total == 0:
        return [np.zeros(k, np.int64) for _ in weights]
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    columns = indices[shift + np.arange(total)]
    out = []
    for w in weights:
        sums = np.bincount(columns, weights=np.repeat(w.astype(np.float64), lengths), minlength=k)
        out.append(np.rint(sums).astype(np.int64))
    return out


def _gather(indptr: NDArray[np.integer], rows: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Positions of the entries of the given CSR rows, and each row's number of entries."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    total = int(lengths.sum())
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return shift + np.arange(total), lengths


_PAIRS: weakref.WeakKeyDictionary[PrimitiveTable, tuple[NDArray[np.int64], NDArray[np.int64]]] = (
    weakref.WeakKeyDictionary()
)
_COOC: weakref.WeakKeyDictionary[PrimitiveTable, NDArray[np.int64]] = weakref.WeakKeyDictionary()
_BLOCKS: weakref.WeakKeyDictionary[PrimitiveTable, tuple] = weakref.WeakKeyDictionary()
_WITHIN: weakref.WeakKeyDictionary[PrimitiveTable, dict[int, NDArray[np.int64]]] = weakref.WeakKeyDictionary()


def _pair_codes(table: PrimitiveTable) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per signature, every ordered pair (C, C') of primitives it holds, coded C K + C' (CSR by signature).

    Cached per table: the co-occurrence counts of any set of signatures are a bincount of these.
    """
    if table not in _PAIRS:
        k = len(table)
        indptr, indices = table.by_signature.indptr.astype(np.int64), table.by_signature.indices.astype(np.int64)
        degree = np.diff(indptr)
        entry_row = np.repeat(np.arange(len(degree)), degree)
        repeat = degree[entry_row]
        first = np.repeat(indices, repeat)
        local = np.arange(int(repeat.sum())) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        second = indices[np.repeat(indptr[entry_row], repeat) + local]
        pair_indptr = np.concatenate([[0], np.cumsum(degree * degree)])
        _PAIRS[table] = (pair_indptr, first * k + second)
    return _PAIRS[table]


def _exceeds(bound: NDArray[np.int64], target: int) -> NDArray[np.bool_]:
    """Where a scaled bound leaves room above the ratio: bound > num |M| (at equality nothing can beat it)."""
    return bound > target


def _lookup(codes: NDArray[np.int64], values: NDArray[np.int64], query: NDArray[np.int64]) -> NDArray[np.int64]:
    """``values`` at ``query`` in the sorted ``codes``, 0 where absent."""
    if len(codes) == 0:
        return np.zeros(len(query), np.int64)
    i = np.minimum(np.searchsorted(codes, query), len(codes) - 1)
    return np.where(codes[i] == query, values[i], 0)


def _sorted_unique(values: NDArray[np.integer]) -> NDArray[np.integer]:
    """The distinct values, sorted (a sort and a comparison; cheaper here than ``np.unique``)."""
    values = np.sort(values)
    return values[np.diff(values, prepend=values[:1] - 1) != 0] if len(values) else values


def _topsum(values: NDArray[np.int64], r: int) -> int:
    """Sum of the ``r`` largest entries (all of them when fewer)."""
    if r <= 0 or len(values) == 0:
        return 0
    if len(values) <= r:
        return int(values.sum())
    return int(np.partition(values, len(values) - r)[len(values) - r :].sum())


def _ratio_max(m: NDArray[np.int64], o: NDArray[np.int64], n_active: int) -> tuple[int, int]:
    """max over subsets T of sum_T m / (n_active + sum_T o), as (numerator, denominator), exactly.

    Dinkelbach's iteration: at the current ratio I/U, keep every item with m U > I o (the
    items of ratio m/o above I/U, a prefix in ratio order) and move to their ratio; it stops
    when the ratio no longer grows, which is the maximum.
    """
    num, den = 0, n_active
    while True:
        keep = m * den > num * o
        new_num, new_den = int(m[keep].sum()), n_active + int(o[keep].sum())
        if new_num * den <= num * new_den:
            return num, den
        num, den = new_num, new_den


def ceiling(
    unit_signatures: NDArray[np.integer], unit_counts: NDArray[np.integer], signature_weights: NDArray[np.integer]
) -> float:
    """The best IoU any union of signatures can reach for this unit.

    Every formula, of any length and shape, is a union of signatures, so no explanation with
    these concepts can score more. Exact: signatures sorted by active / inactive ratio, the best
    prefix (see ``docs/search.md``).

    Parameters
    ----------
    unit_signatures, unit_counts : int arrays
        The signatures where the unit is active and its number of active positions in each.
    signature_weights : int array, shape (S,)
        Positions per signature (``ConceptSet.signature_weights``).

    Returns
    -------
    float
        The ceiling; 0.0 for a unit that is never active.
    """
    m = np.asarray(unit_counts, np.int64)
    n_active = int(m.sum())
    if n_active == 0:
        return 0.0
    o = np.asarray(signature_weights, np.int64)[np.asarray(unit_signatures, np.intp)] - m
    num, den = _ratio_max(m, o, n_active)
    return num / den


class _Search:
    """State of one unit's branch and bound."""

    def __init__(
        self,
        table: PrimitiveTable,
        unit_signatures: NDArray[np.integer],
        unit_counts: NDArray[np.integer],
        settings: BeamSettings,
        ranked: list[int],
    ) -> None:
        self.table = table
        self.settings = settings
        self.n_sig = len(table.weights)
        self.weights = np.rint(table.weights).astype(np.int64)
        self.unit_index = np.asarray(unit_signatures, np.intp)
        self.m = np.asarray(unit_counts, np.int64)
        self.o = self.weights[self.unit_index] - self.m
        self.n_active = int(self.m.sum())
        self.all_rows = np.arange(self.n_sig)
        (self.prim_hits,) = _column_sums(table, self.unit_index, [self.m])
        self.sizes = table.sizes.astype(np.int64)
        self.first = np.flatnonzero(self.prim_hits > 0)
        if settings.max_expansion_concepts is None:
            self.expand = np.arange(len(table))
        else:
            self.expand = np.sort(np.asarray(ranked[: settings.max_expansion_concepts], np.intp))
        self.operators = settings.operators
        self.or_ops = [o for o in self.operators if o in _OR_OPS]
        self.has_or = bool(self.or_ops)
        self.trace: list[tuple] | None = None
        self._lam: tuple[int, int] | None = None
        self._local: NDArray[np.intp] | None = None  # signature -> position among the unit's, or -1

    # ---------------------------------------------------------------- co-occurrence counts
    def _cooccurrence(self, rows: NDArray[np.intp], weights: NDArray[np.int64]) -> NDArray[np.int64]:
        """K x K: entry (C, C') = sum of ``weights`` over the given signatures holding both C and C'."""
        k = len(self.table)
        pair_indptr, codes = _pair_codes(self.table)
        positions, lengths = _gather(pair_indptr, rows)
        if len(positions) == 0:
            return np.zeros((k, k), np.int64)
        sums = np.bincount(
            codes[positions], weights=np.repeat(weights.astype(np.float64), lengths), minlength=k * k
        ).reshape(k, k)
        return np.rint(sums).astype(np.int64)

    def _rows_cooccurrence(
        self, rows: NDArray[np.intp], weights: NDArray[np.int64], xs: NDArray[np.intp]
    ) -> NDArray[np.int64]:
        """(len(xs), K): entry (i, C) = sum of ``weights`` over the given signatures holding xs[i] and C.

        Exact for integer weights whose sums stay below 2**53 (counts and scaled gains do).
        """
        k = len(self.table)
        if len(xs) == 0 or len(rows) == 0:
            return np.zeros((len(xs), k), np.int64)
        pos_x = np.full(k, -1)
        pos_x[xs] = np.arange(len(xs))
        pair_indptr, codes = _pair_codes(self.table)
        at, lengths = _gather(pair_indptr, rows)
        first, second = np.divmod(codes[at], k)
        owner = pos_x[first]
        keep = owner >= 0
        weight = np.repeat(weights.astype(np.float64), lengths)[keep]
        sums = np.bincount(owner[keep] * k + second[keep], weights=weight, minlength=len(xs) * k)
        return np.rint(sums).astype(np.int64).reshape(len(xs), k)

    def cooccurrence_tables(self) -> None:
        """|C AND C'| (once per table, cached) and |M AND C AND C'| (once per unit) for every pair of primitives."""
        self.global_cooccurrence()
        self.cooc_m = self._cooccurrence(self.unit_index, self.m)
        self._cm_have = np.ones(len(self.table), bool)

    def global_cooccurrence(self) -> None:
        """|C AND C'| for every pair of primitives (the same for every unit: cached per primitive table)."""
        if self.table not in _COOC:
            _COOC[self.table] = self._cooccurrence(self.all_rows, self.weights)
        self.cooc_w = _COOC[self.table]
        if not hasattr(self, "cooc_m"):
            k = len(self.table)
            self.cooc_m = np.zeros((k, k), np.int64)  # rows filled on demand by unit_rows
            self._cm_have = np.zeros(k, bool)

    def unit_rows(self, xs: NDArray[np.intp]) -> NDArray[np.int64]:
        """Rows ``xs`` of |M AND C AND C'|, computed on first use only."""
        missing = _sorted_unique(xs[~self._cm_have[xs]])
        if len(missing):
            if self._local is None:
                self._local = np.full(self.n_sig, -1)
                self._local[self.unit_index] = np.arange(len(self.unit_index))
            # the unit's signatures holding each missing x, then their primitives, in one pass
            k = len(self.table)
            at, lengths = _gather(self.table.by_column.indptr, missing)
            sigs = self.table.by_column.indices[at]
            owner = np.repeat(np.arange(len(missing)), lengths)
            local = self._local[sigs]
            held = local >= 0
            sigs, owner, weights = sigs[held], owner[held], self.m[local[held]]
            at, lengths = _gather(self.table.by_signature.indptr, sigs)
            codes = np.repeat(owner, lengths) * k + self.table.by_signature.indices[at]
            weights = np.repeat(weights.astype(np.float64), lengths)
            sums = np.bincount(codes, weights=weights, minlength=len(missing) * k)
            self.cooc_m[missing] = np.rint(sums).astype(np.int64).reshape(len(missing), k)
            self._cm_have[missing] = True
        return self.cooc_m[xs]

    def _gains(self, num: int, den: int) -> tuple[NDArray[np.int64], NDArray[np.int64], int, int]:
        """Per primitive g(C) and h(C) at ratio num/den (scaled by den), and g, h of all the unit's signatures."""
        positive, tm, to = self.positive_sums(num, den)
        g1 = den * tm - num * to
        h1 = den * self.prim_hits - num * (self.sizes - self.prim_hits)
        g_tot = den * int(self.m[positive].sum()) - num * int(self.o[positive].sum())
        h_tot = den * self.n_active - num * (self.table.n_positions - self.n_active)
        return g1, h1, g_tot, h_tot

    def pair_block_bounds(self, num: int, den: int, first: NDArray[np.intp], remaining: int = 1) -> PairBlocks:
        """Bounds on blocks of pairs, then on each pair of the blocks that pass (``docs/search.md``, "Pair blocks").

        The extension primitives are sorted by h(C) and cut into blocks of ``_BLOCK``; block (A, J)
        holds every A op B with B in J and every operator. Its bound covers the subtree of each of
        these pairs (the formula and its continuations of up to ``remaining`` more leaves); the pairs
        of the blocks whose bound exceeds num |M| get a bound each. Valid at any ratio: nothing is
        assumed about the incumbent.
        """
        g1, h1, g_tot, h_tot = self._gains(num, den)
        target = num * self.n_active
        e, ops = self.expand, self.operators
        ge, he = g1[e], h1[e]
        g_max, h_max = int(ge.max()), int(he.max())
        gn_max, hn_max = g_tot - int(ge.min()), h_tot - int(he.min())  # g(not C), h(not C) at most
        has_and = any(op in _AND_OPS for op in ops)

        def subtree(g_hat, h_hat):
            """Bound on h over H (given g_hat >= g(H), h_hat >= h(H)) and its continuations."""
            if remaining == 0:
                return np.minimum(g_hat, h_hat)
            bound = g_hat if has_and else np.minimum(g_hat, h_hat)
            if "or" in ops:  # h(H u C) <= h(C) + g(H) and <= h(H) + g(C)
                bound = np.maximum(bound, np.minimum(h_max + g_hat, h_hat + g_max))
            if "or_not" in ops:  # h(H u not C) <= h(H) + g(not C) and <= h(not C) + g(H)
                bound = np.maximum(bound, np.minimum(h_hat + gn_max, hn_max + g_hat))
            return bound

        def pair_bound(ga, ha, gb, hb, gb_min, hb_min, g2, w2):
            """Bound on the subtree of A op B, max over the operators, from upper bounds of the terms.

            ga, ha: g(A), h(A); gb, hb: upper bounds of g(B), h(B); gb_min, hb_min: lower bounds;
            g2 >= g(A AND B) and w2 >= num |A AND B| (so h(A AND B) >= g(A AND B) - w2).
            """
            out = []
            for op in ops:
                if op == "and":
                    g_hat = h_hat = g2
                elif op == "and_not":  # h(A minus B) = h(A) - h(A AND B)
                    g_hat = ga
                    h_hat = np.minimum(ga, ha + w2)
                elif op == "or":  # h(A u B) <= h(A) + g(B minus A), symmetrically, and h(A) + h(B) - h(A AND B)
                    g_hat = np.minimum(ga + gb, g_tot)
                    h_hat = np.minimum(np.minimum(ha + gb, hb + ga), ha + hb + w2)
                else:  # A u not B: g <= g(not B) + g(A AND B), h = h(not B) + h(A AND B)
                    g_hat = np.minimum(g_tot - gb_min + g2, g_tot)
                    h_hat = np.minimum(ha + (g_tot - gb_min), h_tot - hb_min + g2)
                out.append(subtree(g_hat, h_hat))
            return out

        # g(A AND B) > 0 only for pairs that share a positive signature: all of them, sparse, exactly
        k = len(self.table)
        positive = self.m * den > num * self.o
        pos_rows = self.unit_index[positive]
        gains = den * self.m[positive] - num * self.o[positive]
        g2_codes, g2_values = self._pair_sums(pos_rows, gains)

        def g2_of(a: NDArray[np.intp], b: NDArray[np.intp]) -> NDArray[np.int64]:
            return _lookup(g2_codes, g2_values, a.astype(np.int64) * k + b)

        # AND pairs H = A AND B: an OR step with one of the few primitives C of largest h adds at most
        # h(C) + g(H minus C), with g(H minus C) = g(A AND B) - g(A AND B AND C), sparse as well
        top = np.argsort(-he, kind="stable")[:_TOP]
        h_rest = int(np.delete(he, top).max()) if len(e) > _TOP else np.iinfo(np.int64).min // 4
        triples = []
        for t in top:
            column = self.table.column(int(e[t]))
            i = np.minimum(np.searchsorted(column, pos_rows), max(len(column) - 1, 0))
            held = column[i] == pos_rows if len(column) else np.zeros(len(pos_rows), bool)
            triples.append((int(he[t]), *self._pair_sums(pos_rows[held], gains[held])))

        def and_subtree(g2: NDArray[np.int64], code: NDArray[np.int64]) -> NDArray[np.int64]:
            """Bound on h over A AND B (g2 = g(A AND B), code = A K + B) and its continuations."""
            if remaining == 0:
                return g2
            bound = g2
            if "or" in ops:
                best_top = np.full(len(g2), np.iinfo(np.int64).min // 4, np.int64)
                for h_c, codes3, values3 in triples:
                    best_top = np.maximum(best_top, h_c + g2 - _lookup(codes3, values3, code))
                or_term = np.minimum(np.minimum(h_max + g2, g2 + g_max), np.maximum(h_rest + g2, best_top))
                bound = np.maximum(bound, or_term)
            if "or_not" in ops:
                bound = np.maximum(bound, g2 + min(gn_max, hn_max))
            return bound

        # blocks: extension primitives by size, _BLOCK per block (every operator but AND)
        by_size, starts, w_block = self.blocks()
        gJ, hJ = np.maximum.reduceat(ge[by_size], starts), np.maximum.reduceat(he[by_size], starts)
        gJ_min, hJ_min = np.minimum.reduceat(ge[by_size], starts), np.minimum.reduceat(he[by_size], starts)
        ga, ha = g1[first][:, None], h1[first][:, None]
        block_ops = pair_bound(
            ga,
            ha,
            gJ[None, :],
            hJ[None, :],
            gJ_min[None, :],
            hJ_min[None, :],
            np.minimum(ga, gJ[None, :]),
            num * w_block[first],
        )
        # an AND pair without a shared positive signature (g(A AND B) = 0) is bounded by and_zero; when that
        # leaves room above the target, AND pairs are bounded by blocks like the others
        and_zero = int(and_subtree(np.zeros(1, np.int64), np.full(1, -1, np.int64))[0]) if "and" in ops else 0
        and_in_blocks = "and" in ops and bool(_exceeds(np.array([and_zero]), target)[0])
        not_and = [o for o, op in enumerate(ops) if op != "and" or and_in_blocks]
        if not_and:
            block = np.max([block_ops[o] for o in not_and], axis=0)  # (len(first), n_blocks)
        else:
            block = np.full((len(first), len(starts)), np.iinfo(np.int64).min // 4, np.int64)
        r_blk, j_blk = np.nonzero(_exceeds(block, target))
        # the pairs of the surviving blocks, and the AND pairs whose bound from g(A AND B) exceeds the target
        counts = np.diff(np.append(starts, len(e)))[j_blk]
        local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        r, c = np.repeat(r_blk, counts), by_size[np.repeat(starts[j_blk], counts) + local]
        if "and" in ops and len(g2_codes):
            pos_first = np.full(k, -1)
            pos_first[first] = np.arange(len(first))
            pos_e = np.full(k, -1)
            pos_e[e] = np.arange(len(e))
            a_and, b_and = np.divmod(g2_codes, k)
            keep = (pos_first[a_and] >= 0) & (pos_e[b_and] >= 0) & _exceeds(and_subtree(g2_values, g2_codes), target)
            entry_code = _sorted_unique(
                np.concatenate([r * len(e) + c, pos_first[a_and[keep]] * len(e) + pos_e[b_and[keep]]])
            )
            r, c = np.divmod(entry_code, len(e))
        a, b = first[r], e[c]
        g2 = g2_of(a, b)
        self.global_cooccurrence()
        w2 = num * self.cooc_w[a, b]
        entry = np.stack(pair_bound(g1[a], h1[a], g1[b], h1[b], g1[b], h1[b], g2, w2), axis=-1)
        ga_e = g1[a]
        for o, op in enumerate(ops):  # exact g(A op B) where the block used an upper bound
            if op == "and":
                entry[:, o] = and_subtree(g2, a.astype(np.int64) * k + b)
            elif op == "and_not":
                entry[:, o] = subtree(ga_e - g2, np.minimum(ga_e - g2, h1[a] - g2 + w2))
            elif op == "or":
                g_hat = np.minimum(ga_e + g1[b] - g2, g_tot)
                h_hat = np.minimum(np.minimum(h1[a] + g1[b], h1[b] + ga_e) - g2, h1[a] + h1[b] - g2 + w2)
                entry[:, o] = subtree(g_hat, h_hat)
            elif op == "or_not":
                g_hat = g_tot - g1[b] + g2
                h_hat = np.minimum(h1[a] + (g_tot - ga_e - g1[b] + g2), h_tot - h1[b] + g2)
                entry[:, o] = subtree(g_hat, h_hat)
        columns = [by_size[s : s + _BLOCK] for s in starts]
        return PairBlocks(block, columns, r, c, entry, target, g2_of, and_in_blocks)

    def _pair_sums(
        self, rows: NDArray[np.intp], weights: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Sparse co-occurrence sums: codes C K + C' (sorted) of the pairs the given signatures hold, and the
        sum of ``weights`` over the signatures holding each pair (exact integers)."""
        pair_indptr, codes = _pair_codes(self.table)
        at, lengths = _gather(pair_indptr, rows)
        pair_code, pair_weight = codes[at], np.repeat(weights, lengths)
        if len(pair_code) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        sort = np.argsort(pair_code)
        sorted_codes = pair_code[sort]
        starts = np.flatnonzero(np.diff(sorted_codes, prepend=-1))
        return sorted_codes[starts], np.add.reduceat(pair_weight[sort], starts)

    def blocks(self) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.int64]]:
        """The blocks of extension primitives: positions into ``expand`` by size, block starts, and per
        primitive A and block J the largest |A AND B| over B in J (cached per primitive table for the
        default extension set, since it does not depend on the unit).
        """
        full = len(self.expand) == len(self.table)
        if full and self.table in _BLOCKS:
            return _BLOCKS[self.table]
        self.global_cooccurrence()
        by_size = np.argsort(self.sizes[self.expand], kind="stable")
        starts = np.arange(0, len(self.expand), _BLOCK)
        w_block = np.maximum.reduceat(self.cooc_w[:, self.expand[by_size]], starts, axis=1)
        if full:
            _BLOCKS[self.table] = (by_size, starts, w_block)
        return by_size, starts, w_block

    def pair_bounds(
        self, num: int, den: int, first: NDArray[np.intp], extra: NDArray[np.intp] | None = None
    ) -> tuple[NDArray[np.int64], int]:
        """Pairwise bound on the extensions of every length-2 formula H = A op B (one more leaf), scaled.

        ``first`` are the first leaves A (rows); B runs over the extension primitives and op over
        the operators: the result has shape (len(first), len(expand), n_ops). Entry e means that no
        formula H op' C has a scaled gain h above e; the subtree is pruned when e <= num |M|, the
        returned threshold. Valid only once every primitive and every formula A op C (A a first
        leaf, C an extension) scores at most num/den, which the search guarantees by evaluating
        them first (``docs/search.md``, "Pairwise bounds"). Terms that need a row of B are used for
        the B in ``first`` and ``extra`` only (the others are dropped, which only loosens the bound).
        """
        k = len(self.table)
        xs = np.unique(np.concatenate([first, [] if extra is None else extra]).astype(np.intp))
        pos_x = np.full(k, -1)
        pos_x[xs] = np.arange(len(xs))
        positive = self.m * den > num * self.o
        rows = self.unit_index[positive]
        g2 = self._rows_cooccurrence(rows, den * self.m[positive] - num * self.o[positive], xs)  # g(X AND Y)
        self.global_cooccurrence()
        h2 = (den + num) * self.unit_rows(xs) - num * self.cooc_w[xs]  # h(X AND Y): signed sum
        n2 = g2 - h2  # negative part, as a positive number
        g1, h1, g_tot, h_tot = self._gains(num, den)
        n1 = g1 - h1
        target = num * self.n_active
        e = self.expand
        ops = self.operators
        ge, he = g1[e], h1[e]
        g2e, n2e = g2[:, e], n2[:, e]
        h_max = int(he.max())  # every primitive scores at most num/den: h_max <= target
        big = np.iinfo(np.int64).max // 4
        # per row X, max over extensions C of bounds on what an OR step adds (only those the operators need)
        zeros = np.zeros(len(xs), np.int64)
        delta_in = eps = gamma = gamma_not = rho = rho_not = zeros
        rho_0 = 0
        if "or" in ops and any(op in _AND_OPS for op in ops):
            delta_in = np.max(np.minimum(ge[None, :], he[None, :] + n2e), axis=1)  # H inside X: h(C minus H)
            eps = np.max((he[None, :] - g2e), axis=1) + g1[xs]  # H inside X: h(C) + g(X minus C)
        if "or" in ops and any(op in _OR_OPS for op in ops):
            gamma = np.max(ge[None, :] - g2e, axis=1)  # H contains X: g(C minus X)
        if "or" in ops and "or_not" in ops:
            gamma_not = np.max(g2e, axis=1)  # H contains NOT X: g(C AND X)
        if "or_not" in ops:
            rho = np.max(g2e - ge[None, :], axis=1) + (g_tot - g1[xs])  # H contains X: g(NOT C minus X)
            rho_not = g1[xs] - np.min(g2e, axis=1)  # H contains NOT X: g(NOT C AND X)
            rho_0 = int(np.max(g_tot - ge))

        def per_b(values: NDArray[np.int64]) -> NDArray[np.int64]:
            """A row quantity for every extension B: its value where B's row is known, else ``big`` (no bound)."""
            out = np.full(len(e), big, np.int64)
            known = pos_x[e] >= 0
            out[known] = values[pos_x[e][known]]
            return out[None, :]

        fr = pos_x[first]
        a = fr[:, None]
        ga, ha, na = g1[first][:, None], h1[first][:, None], n1[first][:, None]
        gb, hb, nb = ge[None, :], he[None, :], n1[e][None, :]
        gab, hab, nab = g2e[fr], h2[fr][:, e], n2e[fr]
        b_first = (self.prim_hits[e] > 0)[None, :]  # B is a first leaf: every B op C scores <= num/den
        has_and = any(op in _AND_OPS for op in ops)
        out = np.empty((len(first), len(e), len(ops)), np.int64)
        for o, op in enumerate(ops):
            if op == "and":
                g_h, h_h = gab, hab
                general = np.minimum(target + na - nab, np.where(b_first, target + nb - nab, big))
                or_add = np.minimum(np.minimum(h_h + delta_in[a], h_h + per_b(delta_in)), h_max + g_h)
                or_add = np.minimum(or_add, np.minimum(eps[a], per_b(eps)))
                or_not_add = h_h + rho_0
            elif op == "and_not":
                g_h, h_h = ga - gab, ha - hab
                general = target + nab
                or_add = np.minimum(np.minimum(h_h + delta_in[a], h_max + g_h), eps[a])
                or_not_add = h_h + rho_0
            elif op == "or":
                g_h, h_h = ga + gb - gab, ha + hb - hab
                general = np.minimum(target + gb - gab, np.where(b_first, target + ga - gab, big))
                or_add = h_h + np.minimum(gamma[a], per_b(gamma))
                or_not_add = h_h + np.minimum(rho[a], per_b(rho))
            else:
                g_h, h_h = g_tot - gb + gab, h_tot - hb + hab
                general = target + (g_tot - ga - gb + gab)
                or_add = h_h + np.minimum(gamma[a], per_b(gamma_not))
                or_not_add = h_h + np.minimum(rho[a], per_b(rho_not))
            bound = np.broadcast_to(g_h if has_and else np.iinfo(np.int64).min, general.shape)
            if "or" in ops:
                bound = np.maximum(bound, or_add)
            if "or_not" in ops:
                bound = np.maximum(bound, or_not_add)
            out[..., o] = np.minimum(bound, general)
        return out, target

    def cooccurrence_within(
        self,
        members: NDArray[np.bool_],
        inside_u: NDArray[np.bool_],
        xs: NDArray[np.intp],
        primitive: int | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Rows ``xs`` of |F AND C AND C'| and |M AND F AND C AND C'|, F given by its signatures.

        When F is the primitive ``primitive``, the whole first table (the same for every unit) is
        computed once and cached per primitive table, within a memory cap (the dense pair stage).
        """
        if primitive is not None:
            cache = _WITHIN.setdefault(self.table, {})
            if primitive not in cache:
                every = np.arange(len(self.table))
                within_w, _ = self.cooccurrence_within(members, inside_u[:0], every)
                if (len(cache) + 1) * within_w.nbytes <= _WITHIN_BYTES:
                    cache[primitive] = within_w
            else:
                within_w = cache[primitive]
            return within_w[xs], self._rows_cooccurrence(self.unit_index[inside_u], self.m[inside_u], xs)
        if 2 * np.count_nonzero(members) <= len(members):
            within_w = self._rows_cooccurrence(self.all_rows[members], self.weights[members], xs)
        else:
            outside = self._rows_cooccurrence(self.all_rows[~members], self.weights[~members], xs)
            within_w = self.cooc_w[xs] - outside
        within_m = self._rows_cooccurrence(self.unit_index[inside_u], self.m[inside_u], xs)
        return within_w, within_m

    # ---------------------------------------------------------------- incumbent-dependent sums
    def positive_sums(self, num: int, den: int) -> tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.int64]]:
        """Unit signatures with m den > num o, and per primitive the sums of m and o over them."""
        if self._lam != (num, den):
            positive = self.m * den > num * self.o
            rows = self.unit_index[positive]
            tm, to = _column_sums(self.table, rows, [self.m[positive], self.o[positive]])
            self._cache = (positive, tm, to)
            self._lam = (num, den)
        return self._cache

    def node_sums(
        self, inside_u: NDArray[np.bool_], num: int, den: int
    ) -> tuple[int, int, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], int, int]:
        """For F (its unit signatures ``inside_u``) at ratio num/den.

        Returns the m and o sums over F's positive signatures, per primitive C the m and o sums over
        positive signatures of C inside F (``bm``, ``bo``) and outside F (``am``, ``ao``), and the m
        and o sums over positive signatures outside F.
        """
        positive, tm, to = self.positive_sums(num, den)
        sel = positive & inside_u
        bm, bo = _column_sums(self.table, self.unit_index[sel], [self.m[sel], self.o[sel]])
        mf, of = int(self.m[sel].sum()), int(self.o[sel].sum())
        out = positive & ~inside_u
        return mf, of, bm, bo, tm - bm, to - bo, int(self.m[out].sum()), int(self.o[out].sum())

    def or_pool(
        self, am: NDArray[np.int64], ao: NDArray[np.int64], mout: int, oout: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """m and o sums of what each OR-type extension could add outside F (positive signatures only)."""
        ms, os_ = [], []
        for op in self.or_ops:
            if op == "or":
                ms.append(am[self.expand])
                os_.append(ao[self.expand])
            else:  # or_not adds the complement of C
                ms.append(mout - am[self.expand])
                os_.append(oout - ao[self.expand])
        if not ms:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(ms), np.concatenate(os_)

    def subtree_bound(
        self,
        inside_u: NDArray[np.bool_] | None,
        remaining: int,
        first: NDArray[np.intp],
        start: tuple[int, int] | None = None,
    ) -> float:
        """A number no formula of the subtree exceeds (Dinkelbach on the node bound).

        ``inside_u`` is F over the unit signatures, with ``remaining`` steps left; ``None`` stands
        for the root restricted to first leaves ``first`` (``remaining`` = max_length - 1). The
        iteration starts from the ratio ``start`` (default 0) and returns the larger of it and the
        bound: from below the bound it climbs to the bound; from above it stops at once.
        """
        if inside_u is None and len(first) == 0:
            return 0.0 if start is None else start[0] / start[1]
        num, den = (0, self.n_active) if start is None else start
        while True:
            positive, tm, to = self.positive_sums(num, den)
            if inside_u is None:
                pm, po = tm[first], to[first]
                g = den * pm - num * po
                best = int(np.argmax(g))
                mf, of = int(pm[best]), int(po[best])
                am, ao = tm, to
                mout, oout = int(self.m[positive].sum()), int(self.o[positive].sum())
            else:
                mf, of, _, _, am, ao, mout, oout = self.node_sums(inside_u, num, den)
            sm, so = mf, of
            if self.has_or and remaining > 0:
                pool_m, pool_o = self.or_pool(am, ao, mout, oout)
                g = den * pool_m - num * pool_o
                if len(g) > remaining:
                    top = np.argpartition(g, len(g) - remaining)[len(g) - remaining :]
                else:
                    top = np.arange(len(g))
                top = top[g[top] > 0]
                sm += int(pool_m[top].sum())
                so += int(pool_o[top].sum())
            new_den = self.n_active + so
            if sm * den <= num * new_den:
                return num / den
            num, den = sm, new_den


def _iou_exact(hits: int, size: int, n_active: int) -> tuple[int, int]:
    return hits, size + n_active - hits


def optimal_unit(
    table: PrimitiveTable,
    unit_signatures: NDArray[np.integer],
    unit_counts: NDArray[np.integer],
    settings: BeamSettings,
    budget_seconds: float | None = None,
    max_nodes: int | None = None,
    incumbent: UnitResult | None = None,
    *,
    trace: bool = False,
) -> OptimalResult:
    """Find the formula of highest IoU in the beam's formula space, with a certificate.

    Parameters
    ----------
    table : PrimitiveTable
    unit_signatures, unit_counts : int arrays
        The signatures where the unit is active and its number of active positions in each.
    settings : BeamSettings
        The formula space (``max_length``, ``operators``, ``max_expansion_concepts``; primitives
        come from ``table``) and the beam that seeds the incumbent. Only ``metric="iou"`` without
        complexity penalty is supported.
    budget_seconds : float, optional
        Wall-time budget for the branch and bound (the seeding beam is not counted).
    max_nodes : int, optional
        Budget in expanded formulas (deterministic, unlike a time budget).
    incumbent : UnitResult, optional
        The beam's result for this unit with ``settings``, if already computed.
    trace : bool
        Record every pruning decision in ``result.trace`` (for tests): tuples
        ``(kind, prefix, remaining, num, den)`` meaning that no formula of the subtree of
        ``prefix`` (a tuple of ``(primitive, operator index)``, ``-1`` for the first leaf) with at
        most ``remaining`` more leaves has an IoU above ``num / den``.

    Returns
    -------
    OptimalResult

    Raises
    ------
    ValueError
        For a metric other than ``"iou"`` or a non-zero complexity penalty.
    """
    if settings.metric != "iou":
        raise ValueError(f"optimal search supports metric='iou' only, got {settings.metric!r}")
    if settings.complexity_penalty != 0.0:
        raise ValueError("optimal search does not support a complexity penalty")
    beam = incumbent if incumbent is not None else search_unit(table, unit_signatures, unit_counts, settings)
    n_active = beam.n_active
    top = ceiling(unit_signatures, unit_counts, table.weights)
    if beam.status != "ok":
        return OptimalResult(n_active, beam.status, None, 0.0, 0.0, beam, 0.0, top)

    start = time.perf_counter()
    sizes = table.sizes
    search = _Search(table, unit_signatures, unit_counts, settings, [])
    ranked_scores = search.prim_hits / np.maximum(sizes + n_active - search.prim_hits, 1)
    ranked = [int(j) for j in np.lexsort((np.arange(len(table)), -ranked_scores)) if search.prim_hits[j] > 0]
    if settings.max_expansion_concepts is not None:
        search = _Search(table, unit_signatures, unit_counts, settings, ranked)
    search.trace = [] if trace else None
    best_c = beam.best
    assert best_c is not None
    state = {
        "num": best_c.intersection,
        "den": best_c.size + n_active - best_c.intersection,
        "formula": best_c.formula,
        "size": best_c.size,
        "hits": best_c.intersection,
        "nodes": 0,
    }
    beam_iou = best_c.intersection / state["den"]
    max_length = settings.max_length
    operators = settings.operators
    n_ops = len(operators)
    expand = search.expand
    memo: dict[bytes, int] = {}
    path: list[tuple[NDArray[np.bool_], int]] = []
    deadline = None if budget_seconds is None else start + budget_seconds

    def record(kind: str, prefix: tuple, remaining: int, num: int, den: int) -> None:
        if search.trace is not None:
            search.trace.append((kind, prefix, remaining, num, den))

    def formula_of(prefix: tuple) -> Formula:
        formula = table.formulas[prefix[0][0]]
        for primitive, op in prefix[1:]:
            formula = _compose(formula, table.formulas[primitive], operators[op])
        return formula

    def offer(hits: NDArray[np.int64], size: NDArray[np.int64], make_prefix) -> None:
        """Take the first of the best of these formulas if it beats the incumbent strictly."""
        den = size + n_active - hits
        better = np.flatnonzero(hits * state["den"] > state["num"] * den)
        if len(better) == 0:
            return
        values = hits[better] / den[better]
        near = better[values >= values.max() * (1 - 1e-9)]  # the exact maximum is among these
        i = int(near[0])
        for j in near[1:]:
            if hits[j] * den[i] > hits[i] * den[j]:
                i = int(j)
        state.update(num=int(hits[i]), den=int(den[i]), size=int(size[i]), hits=int(hits[i]))
        state["formula"] = formula_of(make_prefix(i))

    def visit(members: NDArray[np.bool_], remaining: int, prefix: tuple, hits_f: int, size_f: int) -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise _BudgetError
        if max_nodes is not None and state["nodes"] >= max_nodes:
            raise _BudgetError
        key = np.packbits(members).tobytes()
        if memo.get(key, -1) >= remaining:
            record("memo", prefix, remaining, state["num"], state["den"])
            return
        num, den = state["num"], state["den"]
        inside_u = members[search.unit_index]
        mf, of, bm, bo, am, ao, mout, oout = search.node_sums(inside_u, num, den)
        g_f = den * mf - num * of
        target = num * n_active
        pool_m, pool_o = search.or_pool(am, ao, mout, oout)
        pool_a = den * pool_m - num * pool_o
        if g_f + (_topsum(pool_a, remaining) if search.has_or else 0) <= target:
            record("node", prefix, remaining, num, den)
            memo[key] = max(memo.get(key, -1), remaining)
            return
        state["nodes"] += 1
        path.append((members, remaining))
        # children counts: |F AND C| and |M AND F AND C|
        count = int(np.count_nonzero(members))
        if 2 * count <= self_n:
            (both,) = _column_sums(table, search.all_rows[members], [search.weights[members]])
        else:
            (out_sizes,) = _column_sums(table, search.all_rows[~members], [search.weights[~members]])
            both = sizes - out_sizes
        sel = inside_u
        (unit_both,) = _column_sums(table, search.unit_index[sel], [search.m[sel]])
        both, unit_both = both[expand], unit_both[expand]
        e_sizes, e_hits = sizes[expand], search.prim_hits[expand]
        c_size, c_hits, no_op = operator_counts(
            size_f, hits_f, e_sizes, e_hits, both, unit_both, table.n_positions, n_active, operators
        )
        valid = (c_hits > 0) & ~no_op

        def child_prefix(i: int) -> tuple:
            c, o = divmod(i, n_ops)
            return (*prefix, (int(expand[c]), o))

        # no-op children repeat F's IoU, already offered, and cannot beat the incumbent
        offer(c_hits.ravel(), c_size.ravel(), child_prefix)
        r_child = remaining - 1
        if r_child >= 1:
            # child bounds (docs/search.md): at the node's ratio num/den
            ga = den * am[expand] - num * ao[expand]  # g(C \ F)
            gb = den * bm[expand] - num * bo[expand]  # g(C AND F)
            g_out = den * mout - num * oout
            top_a = _topsum(pool_a, r_child) if search.has_or else 0
            if search.has_or:
                pool_b_parts = []
                for op in search.or_ops:
                    pool_b_parts.append(gb if op == "or" else g_f - gb)
                top_b = _topsum(np.concatenate(pool_b_parts), r_child)
            bound = np.empty(c_size.shape, np.int64)
            for o, op in enumerate(operators):
                if op == "or":
                    bound[:, o] = g_f + ga + top_a
                elif op == "or_not":
                    bound[:, o] = g_f + (g_out - ga) + top_a
                else:
                    g_h = gb if op == "and" else g_f - gb
                    extra = 0
                    if search.has_or:
                        extra = top_a + np.minimum(r_child * (g_f - g_h), top_b)
                    bound[:, o] = g_h + extra
            survive = valid & _exceeds(bound, target)
            if search.trace is not None:
                for i in np.flatnonzero((valid & ~survive).ravel()):
                    c, o = divmod(int(i), n_ops)
                    record("child", (*prefix, (int(expand[c]), o)), r_child, num, den)
            if r_child == 1:
                last_two_levels(members, inside_u, prefix, survive, c_size, c_hits, both, unit_both)
                path.pop()
                memo[key] = max(memo.get(key, -1), remaining)
                return
            for i in np.flatnonzero(survive.ravel()):
                c, o = divmod(int(i), n_ops)
                primitive = int(expand[c])
                child = np.zeros(search.n_sig, bool)
                child[table.column(primitive)] = True
                op = operators[o]
                if op == "or":
                    child |= members
                elif op == "and":
                    child &= members
                elif op == "and_not":
                    child = members & ~child
                else:
                    child = members | ~child
                visit(child, r_child, (*prefix, (primitive, o)), int(c_hits[c, o]), int(c_size[c, o]))
        path.pop()
        memo[key] = max(memo.get(key, -1), remaining)

    def last_two_levels(
        members: NDArray[np.bool_],
        inside_u: NDArray[np.bool_],
        prefix: tuple,
        survive: NDArray[np.bool_],
        c_size: NDArray[np.int64],
        c_hits: NDArray[np.int64],
        both: NDArray[np.int64],
        unit_both: NDArray[np.int64],
        primitive: int | None = None,
    ) -> None:
        """Every extension of every surviving child H = F op C at once, from co-occurrence counts.

        |H AND C'| follows from |F AND C'|, |C AND C'| and |F AND C AND C'| (docs/search.md), so
        one sparse product per F replaces a visit per child. ``primitive``: F is this primitive and
        its |F AND C AND C'| table may be cached.
        """
        index = np.flatnonzero(survive.ravel())
        if len(index) == 0:
            return
        cs, os_ = np.divmod(index, n_ops)
        prims = expand[cs]
        xs, at = np.unique(prims, return_inverse=True)
        within_w, within_m = search.cooccurrence_within(members, inside_u, xs, primitive)
        cols = expand
        gf_w, gf_m = within_w[np.ix_(at, cols)], within_m[np.ix_(at, cols)]
        g_w, g_m = search.cooc_w[np.ix_(prims, cols)], search.unit_rows(prims)[:, cols]
        hb, hu = np.empty_like(gf_w), np.empty_like(gf_m)
        for o, op in enumerate(operators):
            rows = os_ == o
            if op == "and":
                hb[rows], hu[rows] = gf_w[rows], gf_m[rows]
            elif op == "and_not":
                hb[rows], hu[rows] = both[None, :] - gf_w[rows], unit_both[None, :] - gf_m[rows]
            elif op == "or":
                hb[rows] = both[None, :] + g_w[rows] - gf_w[rows]
                hu[rows] = unit_both[None, :] + g_m[rows] - gf_m[rows]
            else:
                hb[rows] = e_sizes_all[None, :] - g_w[rows] + gf_w[rows]
                hu[rows] = e_hits_all[None, :] - g_m[rows] + gf_m[rows]
        h_size = c_size.ravel()[index][:, None]
        h_hits = c_hits.ravel()[index][:, None]
        n_pos = table.n_positions
        parts = []
        any_better = False
        num, den = state["num"], state["den"]
        for op in operators:  # no-op extensions repeat H's IoU and need no exclusion here
            if op == "or":
                part = (h_hits + e_hits_all - hu, h_size + e_sizes_all - hb)
            elif op == "and":
                part = (hu, hb)
            elif op == "and_not":
                part = (h_hits - hu, h_size - hb)
            else:
                part = (n_active - e_hits_all + hu, n_pos - e_sizes_all + hb)
            parts.append(part)
            # IoU = hits / (size + |M| - hits) > num / den  <=>  hits (den + num) > num (size + |M|)
            any_better = any_better or bool((part[0] * (den + num) > num * (part[1] + n_active)).any())
        if not any_better:
            return
        g_hits = np.stack([p[0] for p in parts], axis=-1)
        g_size = np.stack([p[1] for p in parts], axis=-1)

        def grandchild_prefix(i: int) -> tuple:
            row, rest = divmod(i, len(cols) * n_ops)
            c2, o2 = divmod(rest, n_ops)
            return (*prefix, (int(prims[row]), int(os_[row])), (int(cols[c2]), o2))

        offer(g_hits.ravel(), g_size.ravel(), grandchild_prefix)

    e_sizes_all = sizes[expand].astype(np.int64)
    e_hits_all = search.prim_hits[expand]
    self_n = search.n_sig
    first = search.first
    status = "optimal"
    upper = None
    open_first: NDArray[np.intp] = first[:0]
    top_num, top_den = _ratio_max(search.m, search.o, n_active)
    if max_length > 3:
        search.cooccurrence_tables()

    def check_budget() -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise _BudgetError
        if max_nodes is not None and state["nodes"] >= max_nodes:
            raise _BudgetError

    def trace_blocks(blocks: PairBlocks, order: NDArray[np.intp], after: int, num0: int, den0: int) -> None:
        """Record the pairs pruned by the pair blocks (the sparse pair stage)."""
        target = blocks.target
        entries = set(zip(blocks.rows.tolist(), blocks.cols.tolist(), strict=True))
        for r, j in zip(*np.nonzero(blocks.block <= target), strict=True):
            for c in blocks.columns[j]:
                for o, op in enumerate(operators):
                    if (op != "and" or blocks.and_in_blocks) and (int(r), int(c)) not in entries:
                        record("block", ((int(order[r]), -1), (int(expand[c]), o)), after, num0, den0)
        if "and" in operators and not blocks.and_in_blocks:
            o = operators.index("and")
            for r in range(len(order)):
                for c in range(len(expand)):
                    if (r, c) not in entries:
                        record("and-pair", ((int(order[r]), -1), (int(expand[c]), o)), after, num0, den0)
        for i, o in zip(*np.nonzero(blocks.entry <= target), strict=True):
            prefix = ((int(order[blocks.rows[i]]), -1), (int(expand[blocks.cols[i]]), int(o)))
            record("pair-block", prefix, after, num0, den0)

    def pair_levels(order: NDArray[np.intp]) -> None:
        """Lengths 2 and 3 from the root: blocks of pairs bounded first (from ``_DENSE_BELOW`` primitives on;
        below, every pair is a candidate), then the candidate pairs counted exactly from co-occurrence counts,
        pairwise bounds on each one's extensions, and the extensions of the survivors exactly, grouped by A.
        """
        nonlocal open_first
        check_budget()
        state["nodes"] += 1
        num0, den0 = state["num"], state["den"]
        after = max_length - 2  # leaves after the pair
        dense = len(table) < _DENSE_BELOW
        pos_order = np.full(len(table), -1)
        pos_order[order] = np.arange(len(order))
        pos_expand = np.full(len(table), -1)
        pos_expand[expand] = np.arange(len(expand))
        if dense:
            # few primitives: every pair is a candidate; the per-call cost of the blocks would not be repaid
            search.cooccurrence_tables()
            rows = np.arange(len(order))
            passing = np.ones((len(order), len(expand), n_ops), bool)
            pair_rows, pair_cols = rows[:, None], np.arange(len(expand))[None, :]
        else:
            blocks = search.pair_block_bounds(num0, den0, order, after)
            if search.trace is not None:
                trace_blocks(blocks, order, after, num0, den0)
            pair_rows, pair_cols, pass_entry = blocks.rows, blocks.cols, blocks.passing()
        if max_length > 2 and any(op in ("or", "and") for op in operators):
            # A OR B = B OR A, A AND B = B AND A: when the swap is in the space under an earlier first leaf,
            # its row holds the same formula and subtree
            swap_row = pos_order[expand[pair_cols]]
            later = (swap_row >= 0) & (swap_row < pair_rows) & (pos_expand[order[pair_rows]] >= 0)
            for o, op in enumerate(operators):
                if op in ("or", "and"):
                    if dense:
                        passing[..., o] &= ~later
                    else:
                        pass_entry[:, o] &= ~later
        if not dense:
            alive_entry = pass_entry.any(axis=1)
            rows = np.unique(pair_rows[alive_entry])
            pos_row = np.full(len(order), -1)
            pos_row[rows] = np.arange(len(rows))
            passing = np.zeros((len(rows), len(expand), n_ops), bool)
            sel = np.flatnonzero(alive_entry)
            passing[pos_row[pair_rows[sel]], pair_cols[sel]] = pass_entry[sel]
        sub = order[rows]
        search.global_cooccurrence()
        both = search.cooc_w[np.ix_(sub, expand)]
        unit_both = search.unit_rows(sub)[:, expand]
        size_f, hits_f = sizes[sub].astype(np.int64)[:, None], search.prim_hits[sub][:, None]
        c_size, c_hits, no_op = operator_counts(
            size_f, hits_f, e_sizes_all, e_hits_all, both, unit_both, table.n_positions, n_active, operators
        )
        passing &= (c_hits > 0) & ~no_op  # in the space and not pruned by a bound
        per_row = len(expand) * n_ops

        def pair_prefix(i: int) -> tuple:
            row, rest = divmod(i, per_row)
            c, o = divmod(rest, n_ops)
            return ((int(sub[row]), -1), (int(expand[c]), o))

        # the pairs outside the blocks and no-op pairs cannot beat the incumbent
        offer(np.where(passing, c_hits, 0).ravel(), c_size.ravel(), pair_prefix)
        if max_length == 2:
            return
        lam = None
        survive = passing
        rows_sub = np.arange(len(sub))
        for row in rows_sub:
            if lam != (state["num"], state["den"]):
                # bounds at the current incumbent, for the rows not yet done
                lam = (state["num"], state["den"])
                rest = rows_sub[row:]
                # the terms of B's row tighten the bounds; with many primitives computing those rows costs more
                # than the pairs they would prune
                extra = expand[passing[rest].any(axis=(0, 2))] if len(table) <= _EXTRA_ROWS else None
                bounds, target = search.pair_bounds(lam[0], lam[1], sub[rest], extra)
                keep = passing[rest] & _exceeds(bounds, target)
                if search.trace is not None:
                    for r, c, o in zip(*np.nonzero(passing[rest] & ~keep), strict=True):
                        prefix = ((int(sub[rest[r]]), -1), (int(expand[c]), int(o)))
                        record("pair", prefix, 1, lam[0], lam[1])
                passing[rest] = keep
                survive = passing
                alive = rest[survive[rest].any(axis=(1, 2))]
                open_first = sub[alive]
            if not survive[row].any():
                continue
            check_budget()
            state["nodes"] += 1
            j = int(sub[row])
            members = np.zeros(search.n_sig, bool)
            members[table.column(j)] = True
            last_two_levels(
                members,
                members[search.unit_index],
                ((j, -1),),
                survive[row],
                c_size[row],
                c_hits[row],
                both[row],
                unit_both[row],
                j if dense else None,
            )
            open_first = open_first[open_first != j]

    if max_length > 1 and state["num"] * top_den < top_num * state["den"]:
        # (a beam answer that reaches the ceiling is optimal.) First leaves by their cheap bound at the
        # beam's ratio, best first, ties by primitive order
        num, den = state["num"], state["den"]
        _, tm, to = search.positive_sums(num, den)
        g_first = den * tm[first] - num * to[first]
        order = first[np.lexsort((first, -g_first))]
        try:
            if max_length <= 3:
                open_first = order
                pair_levels(order)
            else:
                for n_done, j in enumerate(order):
                    open_first = order[n_done:]  # this one too: its visit may stop before it is on the path
                    members = np.zeros(search.n_sig, bool)
                    members[table.column(int(j))] = True
                    visit(members, max_length - 1, ((int(j), -1),), int(search.prim_hits[j]), int(sizes[j]))
        except _BudgetError:
            status = "budget"
            bounds = [state["num"] / state["den"]]
            now = (state["num"], state["den"])
            bounds += [search.subtree_bound(mem[search.unit_index], r, first, now) for mem, r in path]
            bounds.append(search.subtree_bound(None, max_length - 1, open_first, now))
            upper = min(max(bounds), top)
    iou_value = state["num"] / state["den"]
    if upper is None:
        upper = iou_value
    best = Candidate(state["formula"], iou_value, iou_value, state["size"], state["hits"])
    return OptimalResult(
        n_active,
        status,
        best,
        iou_value,
        upper,
        beam,
        beam_iou,
        top,
        nodes=state["nodes"],
        seconds=time.perf_counter() - start,
        trace=search.trace,
    )


def certify(
    table: PrimitiveTable,
    unit_signatures: NDArray[np.integer],
    unit_counts: NDArray[np.integer],
    result: UnitResult,
    settings: BeamSettings,
) -> float:
    """A cheap upper bound on the IoU of every formula in the beam's space (``beam_gap = bound - iou``).

    The root bound of ``docs/search.md``: the best first leaf plus the ``max_length - 1`` largest
    gains of OR-type extensions, at their fixed point, capped by :func:`ceiling`.

    Parameters
    ----------
    table : PrimitiveTable
    unit_signatures, unit_counts : int arrays
        The unit, as given to :func:`~logiclens.core.search.beam.search_unit`.
    result : UnitResult
        The beam's result for this unit.
    settings : BeamSettings
        The settings the beam ran with (IoU, no complexity penalty).

    Returns
    -------
    float
        An upper bound, at least the beam's IoU; 0.0 for units without a formula.
    """
    if settings.metric != "iou" or settings.complexity_penalty != 0.0:
        raise ValueError("certify supports metric='iou' without complexity penalty only")
    if result.status != "ok" or result.best is None:
        return 0.0
    search = _Search(table, unit_signatures, unit_counts, settings, [])
    if settings.max_expansion_concepts is not None:
        scores = search.prim_hits / np.maximum(table.sizes + search.n_active - search.prim_hits, 1)
        ranked = [int(j) for j in np.lexsort((np.arange(len(table)), -scores)) if search.prim_hits[j] > 0]
        search = _Search(table, unit_signatures, unit_counts, settings, ranked)
    hits, size = result.best.intersection, result.best.size
    beam_ratio = (hits, size + search.n_active - hits)
    bound = search.subtree_bound(None, settings.max_length - 1, search.first, beam_ratio)
    beam_iou = beam_ratio[0] / beam_ratio[1]
    top = ceiling(unit_signatures, unit_counts, table.weights)
    return max(min(bound, top), beam_iou)


def optimal_units(
    table: PrimitiveTable,
    counts: sp.csr_array,
    units: Sequence[int],
    settings: BeamSettings,
    budget_seconds: float | None = None,
    max_nodes: int | None = None,
) -> list[OptimalResult]:
    """Certified search of several units (rows of a ``UnitMasks`` count matrix), like ``search_units``.

    The budgets apply to each unit separately.
    """
    results = []
    for u in units:
        start, stop = counts.indptr[u], counts.indptr[u + 1]
        results.append(
            optimal_unit(
                table, counts.indices[start:stop], counts.data[start:stop], settings, budget_seconds, max_nodes
            )
        )
    return results


def certificates(
    table: PrimitiveTable,
    counts: sp.csr_array,
    units: Sequence[int],
    results: Sequence[UnitResult],
    settings: BeamSettings,
) -> list[tuple[float, float]]:
    """Per unit, the beam answer's certificate :func:`certify` and the :func:`ceiling`.

    Parameters
    ----------
    table : PrimitiveTable
    counts : scipy.sparse.csr_array
        A ``UnitMasks`` count matrix.
    units : sequence of int
        Rows of ``counts``.
    results : sequence of UnitResult
        The beam's results for these units, in the same order.
    settings : BeamSettings
        The settings the beam ran with.

    Returns
    -------
    list of (float, float)
        ``(upper_bound, ceiling)``; the upper bound is NaN when the search did not maximise
        the IoU without penalty (no certificate exists then), and 0.0 for units without formula.
    """
    exact = settings.metric == "iou" and settings.complexity_penalty == 0.0
    out = []
    for u, result in zip(units, results, strict=True):
        start, stop = counts.indptr[u], counts.indptr[u + 1]
        sigs, cnt = counts.indices[start:stop], counts.data[start:stop]
        bound = certify(table, sigs, cnt, result, settings) if exact else float("nan")
        out.append((bound, ceiling(sigs, cnt, table.weights)))
    return out


def as_unit_result(result: OptimalResult) -> UnitResult:
    """The beam's :class:`UnitResult` with the certified answer first.

    ``top`` starts with the optimal formula (then the beam's other distinct formulas), the best
    value of its length in ``best_by_length`` is raised to its IoU, and ``per_length`` holds it
    at its length; the rest is the beam's, so every consumer of beam results reads it unchanged.
    """
    beam = result.beam
    best = result.best
    if best is None or beam.best is None or str(best.formula) == str(beam.best.formula):
        return beam
    others = [c for c in beam.top if str(c.formula) != str(best.formula)]
    top = [best, *others][: max(1, len(beam.top))]
    by_length = None if beam.best_by_length is None else beam.best_by_length.copy()
    per_length = list(beam.per_length)
    length = best.length
    if by_length is not None and length <= len(by_length):
        previous = by_length[length - 1]
        by_length[length - 1] = best.value if np.isnan(previous) else max(previous, best.value)
    if length <= len(per_length):
        current = per_length[length - 1]
        if current is None or best.value > current.value:
            per_length[length - 1] = best
    return UnitResult(beam.n_active, beam.status, top, beam.atomic, by_length, per_length)
