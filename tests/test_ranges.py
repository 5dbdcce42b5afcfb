"""Activation ranges (Clustered Compositional Explanations): clustering, counting, dissection."""

import itertools

import numpy as np
import pytest

from logiclens import CompositionalExplainer, canonical, parse
from logiclens.testing import PlantedProbe, planted_model
from logiclens.vision.activations.counting import UnitCountAccumulator
from logiclens.vision.activations.ranges import _exact, activation_ranges, kmeans_1d
from logiclens.vision.activations.upsample import BilinearUpsampler
from logiclens.vision.dissect import DissectionSettings, dissect

torch = pytest.importorskip("torch")


def _brute_starts(values, weights, k):
    best = None
    for cuts in itertools.combinations(range(1, len(values)), k - 1):
        starts = [0, *cuts, len(values)]
        cost = 0.0
        for a, b in itertools.pairwise(starts):
            mean = np.average(values[a:b], weights=weights[a:b])
            cost += float(np.sum(weights[a:b] * (values[a:b] - mean) ** 2))
        if best is None or cost < best[0] - 1e-12:
            best = (cost, starts[:-1])
    return best[1]


def test_exact_clustering_is_the_optimal_partition() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        values = np.unique(rng.normal(size=9).round(2))
        weights = rng.integers(1, 5, len(values)).astype(float)
        k = int(rng.integers(1, 4))
        assert list(_exact(values, weights, k)) == _brute_starts(values, weights, k)


def test_ranges_are_inclusive_and_zeros_are_left_out_of_non_negative_units() -> None:
    low, high = kmeans_1d(np.r_[np.ones(10), np.full(10, 5.0), 5.5, 9.0], 3)
    np.testing.assert_array_equal(low, [1.0, 5.0, 9.0])
    np.testing.assert_array_equal(high, [1.0, 5.5, 9.0])
    acts = np.zeros((4, 2, 2, 2), np.float32)
    acts[:, 0] = [[0, 1], [2, 3]]
    acts[:, 1] = [[-1, 1], [2, 3]]
    low, high = activation_ranges(acts, 4)
    np.testing.assert_array_equal(low[0], [1, 2, 3, np.inf])  # zeros dropped, fewer values than ranges
    np.testing.assert_array_equal(low[1], [-1, 1, 2, 3])  # a unit that can be negative keeps every value
    big = np.random.default_rng(1).normal(size=5000)  # many distinct values: Lloyd's algorithm
    low, high = kmeans_1d(big, 5)
    assert low[0] == big.min() and high[-1] == big.max() and (high[:-1] < low[1:]).all()


def test_range_counts_match_a_plain_upsampled_count() -> None:
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(6, 3, 4, 4)).astype(np.float32)
    signatures = rng.integers(0, 5, size=(6, 9, 9))
    low = np.array([[-3, -0.5, 0.5], [-1, 0, 1], [0.2, 0.4, np.inf]], np.float32)
    high = np.array([[-1, 0.4, 3], [-0.1, 0.9, 2], [0.3, 0.6, -np.inf]], np.float32)
    upsampler = BilinearUpsampler((4, 4), (9, 9))
    accumulator = UnitCountAccumulator(np.zeros(3), 5, upsampler, ranges=(low, high))
    accumulator.add(maps, signatures)
    counts = accumulator.counts().toarray()
    expected = np.zeros((9, 5), np.int64)
    for unit in range(3):
        values = upsampler(maps[:, unit])
        for k in range(3):
            inside = (values >= low[unit, k]) & (values <= high[unit, k])
            expected[unit * 3 + k] = np.bincount(signatures[inside], minlength=5)
    np.testing.assert_array_equal(counts, expected)


def _settings(**overrides) -> DissectionSettings:
    explainer = CompositionalExplainer(max_length=3, beam_size=10, n_null=5, holdout=0.25, verbose=0)
    values = {"layers": ["relu"], "threshold_mode": "fixed", "batch_size": 8, "checkpoint_seconds": 0.0}
    return DissectionSettings(**{**values, **overrides}, explainer=explainer)


def test_each_range_of_a_planted_unit_is_its_own_formula(tmp_path) -> None:
    model = planted_model()
    with torch.no_grad():  # unit 0 = a + 2 b: 1 on a only, 2 on b only, 3 on both
        model.module.conv.weight[0] = torch.tensor([1.0, 2.0, 0.0]).reshape(3, 1, 1)
    results = dissect(model, PlantedProbe(), tmp_path / "run", _settings(ranges=3), verbose=0)
    assert len(results) == 12 and list(results.range_index[:3]) == [0, 1, 2]
    first = results[results.unit == "0"]
    assert list(first.range_low) == [1.0, 2.0, 3.0] and list(first.range_high) == [1.0, 2.0, 3.0]
    assert [canonical(parse(f)) for f in first.formula] == [
        canonical(parse(f)) for f in ("a AND NOT b", "b AND NOT a", "a AND b")
    ]
    assert (first.iou == 1.0).all()
    assert first.heldout_iou.notna().all() and first.p_value.notna().all()


def test_one_range_is_the_default_byte_for_byte(tmp_path) -> None:
    dissect(planted_model(), PlantedProbe(), tmp_path / "a", _settings(), verbose=0)
    dissect(planted_model(), PlantedProbe(), tmp_path / "b", _settings(ranges=1), verbose=0)
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()


def test_results_jsonl_keys_units_and_ranges(tmp_path) -> None:
    import json

    dissect(planted_model(), PlantedProbe(), tmp_path / "one", _settings(), verbose=0)
    records = [json.loads(line) for line in (tmp_path / "one" / "results.jsonl").read_text().splitlines()]
    assert [r["key"] for r in records] == [f"planted/relu/{u}" for u in range(4)]
    assert records[0]["range"] is None and records[0]["iou"] == 1.0 and isinstance(records[0]["significant"], bool)
    assert set(records[0]) >= {"model", "layer", "index", "formula", "heldout_iou", "p_value", "q_value"}
    dissect(planted_model(), PlantedProbe(), tmp_path / "ranged", _settings(ranges=2), verbose=0)
    ranged = [json.loads(line) for line in (tmp_path / "ranged" / "results.jsonl").read_text().splitlines()]
    assert ranged[1]["key"] == "planted/relu/0/range1" and ranged[1]["range"]["index"] == 1
    assert ranged[1]["range"]["low"] is None  # unit 0 takes one value: its second range is empty
    assert ranged[5]["key"] == "planted/relu/2/range1" and ranged[5]["range"]["low"] <= ranged[5]["range"]["high"]


def test_tiles_in_one_range_count_like_their_pixels() -> None:
    from logiclens.vision.activations.active import range_pixels

    rng = np.random.default_rng(3)
    maps = rng.normal(size=(3, 5, 4, 4)).astype(np.float32)
    signatures = np.repeat(np.repeat(rng.integers(-1, 6, size=(3, 5, 5)), 8, axis=1), 8, axis=2)[:, :37, :37]
    low = np.tile(np.array([-9, -0.5, 0.7], np.float32), (5, 1))
    high = np.tile(np.array([-0.6, 0.6, 9], np.float32), (5, 1))
    upsampler = BilinearUpsampler((4, 4), (37, 37))
    permuted = signatures[[2, 0, 1]]
    left_out = signatures.copy()
    left_out[1] = -1  # an image outside a variant (held out of the search, say)
    variants = [signatures, permuted, left_out]
    accumulator = UnitCountAccumulator(np.zeros(5), 6, upsampler, n_variants=3, ranges=(low, high))
    accumulator.add(maps, variants)
    for variant, ids in enumerate(variants):
        expected = np.zeros((15, 6), np.int64)
        for image in range(3):
            index, pixel, k = range_pixels(upsampler, maps[image], low, high)
            sig = ids[image].ravel()[pixel]
            keep = sig >= 0
            np.add.at(expected, (index[keep] * 3 + k[keep], sig[keep]), 1)
        np.testing.assert_array_equal(accumulator.counts(variant).toarray(), expected)
