"""Ranged counting by regions, NumPy and compiled, against a plain pixel-by-pixel count."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from logiclens.vision.activations import compiled_ranges, counting
from logiclens.vision.activations.counting import UnitCountAccumulator
from logiclens.vision.activations.regions import RegionGrid, classify_intervals
from logiclens.vision.activations.upsample import BilinearUpsampler


def _plain_ranges(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Range of each upsampled value (n, H, W), one range at a time (-1: in none)."""
    r = np.full(values.shape, -1)
    for k in range(low.shape[1]):
        inside = (values >= low[:, k, None, None]) & (values <= high[:, k, None, None])
        assert not (inside & (r >= 0)).any()  # the ranges are disjoint
        r[inside] = k
    return r


def _plain_counts(maps, variants, low, high, upsampler, n_signatures) -> list[np.ndarray]:
    n_images, n_units = maps.shape[:2]
    k_ranges = low.shape[1]
    counts = [np.zeros((n_units * k_ranges, n_signatures), np.int64) for _ in variants]
    for unit in range(n_units):
        values = upsampler(maps[:, unit])
        r = _plain_ranges(
            values, np.repeat(low[unit : unit + 1], n_images, 0), np.repeat(high[unit : unit + 1], n_images, 0)
        )
        for v, ids in enumerate(variants):
            keep = (r >= 0) & (ids >= 0)
            np.add.at(counts[v], (unit * k_ranges + r[keep], ids[keep]), 1)
    return counts


@st.composite
def _ranged_case(draw):
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    out = (draw(st.integers(1, 23)), draw(st.integers(1, 23)))
    n_images, n_units, k = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    palette = np.float32([-2.0, -1.0, -0.5, 0.0, 0.1, 0.5, 1.0, 3.0, 1e-39, -1e-39])  # ties, subnormals
    if draw(st.booleans()):
        maps = rng.choice(palette, size=(n_images, n_units, h, w)).astype(np.float32)
    else:
        maps = (rng.normal(size=(n_images, n_units, h, w)) * draw(st.sampled_from([1e-3, 1.0, 1e4]))).astype(np.float32)
    low = np.full((n_units, k), np.inf, np.float32)
    high = np.full((n_units, k), -np.inf, np.float32)
    upsampled_pool = BilinearUpsampler((h, w), out)(maps.reshape(-1, h, w)).ravel()
    for unit in range(n_units):
        pool = np.concatenate([maps[:, unit].ravel(), upsampled_pool, palette, rng.normal(size=4).astype(np.float32)])
        bounds = np.unique(rng.choice(pool, size=2 * k))  # bounds at map values and upsampled values
        n_ranges = int(rng.integers(0, len(bounds) // 2 + 1))
        for j in range(n_ranges):
            low[unit, j], high[unit, j] = bounds[2 * j], bounds[2 * j + 1]
    n_signatures = int(rng.integers(1, 6))
    ids = rng.integers(-1, n_signatures, size=(n_images, *out))
    variants = [ids, ids[rng.permutation(n_images)]]
    return maps, low, high, out, variants, n_signatures


needs_numba = pytest.mark.skipif(not compiled_ranges.available(), reason="numba is not installed")
ENGINES = [pytest.param(False, id="numpy"), pytest.param(True, id="compiled", marks=needs_numba)]


@pytest.mark.parametrize("compiled", ENGINES)
@given(case=_ranged_case())
@settings(max_examples=150, deadline=None)
def test_ranged_counts_by_regions_equal_a_plain_count(compiled, case) -> None:
    maps, low, high, out, variants, n_signatures = case
    upsampler = BilinearUpsampler(maps.shape[2:], out)
    accumulator = UnitCountAccumulator(
        np.zeros(maps.shape[1]), n_signatures, upsampler, 2, ranges=(low, high), compiled=compiled
    )
    accumulator.add(maps, variants)
    expected = _plain_counts(maps, variants, low, high, upsampler, n_signatures)
    for v in range(2):
        np.testing.assert_array_equal(accumulator.counts(v).toarray(), expected[v])


@given(case=_ranged_case())
@settings(max_examples=100, deadline=None)
def test_assigned_regions_cover_exactly_the_pixels_of_each_range(case) -> None:
    """The bound behind the regions: no region holds a pixel outside its range, none is missed."""
    maps, low, high, out, _, _ = case
    upsampler = BilinearUpsampler(maps.shape[2:], out)
    grid = RegionGrid(upsampler)
    flat_maps = maps.reshape(-1, *maps.shape[2:])
    units = np.tile(np.arange(maps.shape[1]), maps.shape[0])
    index, region, k = grid.assign(flat_maps, low[units], high[units])
    covered = np.zeros((len(flat_maps), out[0] * out[1]), np.int64)
    assigned = np.full((len(flat_maps), out[0] * out[1]), -1)
    for level in grid.region_of_pixel:
        for i, reg, kk in zip(index, region, k):
            pixels = np.flatnonzero(level == reg)
            covered[i, pixels] += 1
            assigned[i, pixels] = kk
    truth = _plain_ranges(upsampler(flat_maps), low[units], high[units]).reshape(len(flat_maps), -1)
    np.testing.assert_array_equal(covered, (truth >= 0).astype(np.int64))
    np.testing.assert_array_equal(assigned, truth)


@given(lo=st.floats(-3, 3), width=st.floats(0, 3), seed=st.integers(0, 2**32 - 1), k=st.integers(1, 4))
@settings(max_examples=200, deadline=None)
def test_classified_intervals_lie_where_they_are_said_to(lo, width, seed, k) -> None:
    rng = np.random.default_rng(seed)
    bounds = np.sort(rng.choice(np.linspace(-3, 3, 13), size=2 * k, replace=False))
    low, high = bounds[0::2][None, :], bounds[1::2][None, :]
    hi = lo + width
    got, decided = classify_intervals(np.array([lo]), np.array([hi]), low, high)
    probe = np.linspace(lo, hi, 101)
    ranges_of = [np.flatnonzero((low[0] <= p) & (p <= high[0])) for p in probe]
    ranges_of = [int(r[0]) if len(r) else -1 for r in ranges_of]
    if decided[0]:
        assert set(ranges_of) == {int(got[0])}
    truly_one = (low[0] <= lo) & (hi <= high[0])
    assert decided[0] == (truly_one.any() or not ((low[0] <= hi) & (high[0] >= lo)).any())


def test_units_assigned_block_by_block_count_the_same(monkeypatch) -> None:
    monkeypatch.setattr(counting, "_UNITS_PER_ASSIGN", 2)  # five units: three blocks
    rng = np.random.default_rng(5)
    maps = rng.normal(size=(2, 5, 3, 4)).astype(np.float32)
    low = np.tile(np.float32([-9, -0.3, 0.4]), (5, 1))
    high = np.tile(np.float32([-0.5, 0.3, 9]), (5, 1))
    ids = rng.integers(-1, 4, size=(2, 11, 13))
    upsampler = BilinearUpsampler((3, 4), (11, 13))
    accumulator = UnitCountAccumulator(np.zeros(5), 4, upsampler, ranges=(low, high), compiled=False)
    accumulator.add(maps, ids)
    np.testing.assert_array_equal(
        accumulator.counts().toarray(), _plain_counts(maps, [ids], low, high, upsampler, 4)[0]
    )


def _wide_case(n_units: int = 70, seed: int = 3):
    """Many units (several compiled groups), post-ReLU maps (zeros in the gap) and signed ones, 4 variants."""
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(3, n_units, 5, 6)).astype(np.float32)
    maps[:, ::2] = np.maximum(maps[:, ::2], 0)  # half the units: most pixels in no range
    low = np.tile(np.float32([1e-6, 0.4, 1.1]), (n_units, 1))
    high = np.tile(np.float32([0.35, 1.0, 9.0]), (n_units, 1))
    low[1::2, 0] = -9  # the signed units: every value in some range but the gaps
    low[3::4], high[3::4] = np.float32([-9, 0.2, np.inf]), np.float32([0.1, 9, -np.inf])  # an empty range
    ids = rng.integers(-1, 7, size=(3, 37, 41))
    variants = [ids, ids[::-1], np.full_like(ids, -1), np.where(ids > 2, ids, 0)]
    return maps, low, high, variants, BilinearUpsampler((5, 6), (37, 41))


@needs_numba
def test_compiled_counts_of_many_units_equal_a_plain_count() -> None:
    maps, low, high, variants, upsampler = _wide_case()
    accumulator = UnitCountAccumulator(np.zeros(len(low)), 7, upsampler, 4, ranges=(low, high), compiled=True)
    accumulator.add(maps[:2], [v[:2] for v in variants])
    accumulator.add(maps[2:], [v[2:] for v in variants])  # counts add up across batches
    expected = _plain_counts(maps, variants, low, high, upsampler, 7)
    for v in range(4):
        np.testing.assert_array_equal(accumulator.counts(v).toarray(), expected[v])


@needs_numba
def test_compiled_counts_widen_to_int64_before_they_could_overflow() -> None:
    maps, low, high, variants, upsampler = _wide_case(n_units=4)
    accumulator = UnitCountAccumulator(np.zeros(4), 7, upsampler, 4, ranges=(low, high), compiled=True)
    accumulator._pixels_counted = 2**31 - 10  # as if billions of pixels had been counted
    accumulator.add(maps, variants)
    assert accumulator._dense.dtype == np.int64
    np.testing.assert_array_equal(
        accumulator.counts(0).toarray(), _plain_counts(maps, variants, low, high, upsampler, 7)[0]
    )


@needs_numba
def test_count_unit_masks_in_passes_counts_the_same(monkeypatch) -> None:
    from logiclens.vision.dissect.masks import count_unit_masks

    maps, low, high, variants, _ = _wide_case(n_units=9)
    signatures = variants[0]
    sources = [np.arange(3), np.array([2, -1, 0])]
    whole = count_unit_masks(maps, signatures, low[:, 0], 7, sources, ranges=(low, high), compiled=False)
    row_bytes = 3 * len(sources) * 7 * 4
    monkeypatch.setattr(counting, "DENSE_COUNTS_BYTES", 4 * row_bytes)  # four units a pass: three passes
    assert counting.ranged_units_per_pass(3, len(sources), 7) == 4
    passes = count_unit_masks(maps, signatures, low[:, 0], 7, sources, ranges=(low, high), compiled=True)
    for a, b in zip(whole, passes, strict=True):
        assert a.names == b.names
        np.testing.assert_array_equal(a.counts.toarray(), b.counts.toarray())


def test_compiled_counting_without_numba_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(compiled_ranges, "available", lambda: False)
    upsampler = BilinearUpsampler((2, 2), (4, 4))
    ranges = (np.zeros((1, 2), np.float32), np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="numba"):
        UnitCountAccumulator(np.zeros(1), 3, upsampler, ranges=ranges, compiled=True)
    assert UnitCountAccumulator(np.zeros(1), 3, upsampler, ranges=ranges)._kernel is None  # NumPy by default


@needs_numba
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 150), columns=st.integers(1, 9), density=st.floats(0, 1))
@settings(max_examples=60, deadline=None)
def test_transposed_csr_equals_scipy(seed, rows, columns, density) -> None:
    from logiclens.vision.activations.range_kernels import transposed_csr

    rng = np.random.default_rng(seed)
    counts = (rng.integers(1, 50, size=(3 * columns, rows)) * (rng.random((3 * columns, rows)) < density)).astype(
        np.int32
    )
    indptr, indices, data = transposed_csr(counts, columns, columns)
    got = sp.csr_array((data, indices, indptr), shape=(rows, columns))
    assert got.has_sorted_indices and (got.data != 0).all()
    np.testing.assert_array_equal(got.toarray(), counts[columns : 2 * columns].T)
