"""Ranged counting by regions (blocks, tiles, quads, pixels) against a plain pixel-by-pixel count."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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


@given(case=_ranged_case())
@settings(max_examples=150, deadline=None)
def test_ranged_counts_by_regions_equal_a_plain_count(case) -> None:
    maps, low, high, out, variants, n_signatures = case
    upsampler = BilinearUpsampler(maps.shape[2:], out)
    accumulator = UnitCountAccumulator(np.zeros(maps.shape[1]), n_signatures, upsampler, 2, ranges=(low, high))
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
    from logiclens.vision.activations import counting

    monkeypatch.setattr(counting, "_UNITS_PER_ASSIGN", 2)  # five units: three blocks
    rng = np.random.default_rng(5)
    maps = rng.normal(size=(2, 5, 3, 4)).astype(np.float32)
    low = np.tile(np.float32([-9, -0.3, 0.4]), (5, 1))
    high = np.tile(np.float32([-0.5, 0.3, 9]), (5, 1))
    ids = rng.integers(-1, 4, size=(2, 11, 13))
    upsampler = BilinearUpsampler((3, 4), (11, 13))
    accumulator = UnitCountAccumulator(np.zeros(5), 4, upsampler, ranges=(low, high))
    accumulator.add(maps, ids)
    np.testing.assert_array_equal(
        accumulator.counts().toarray(), _plain_counts(maps, [ids], low, high, upsampler, 4)[0]
    )
