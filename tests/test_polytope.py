"""The polytope lens against plain implementations and brute force on networks small enough to enumerate.

* codes, packing and distances against unpacked booleans and scipy's ``cdist``;
* exact traversal against a plain "walk" (next crossing among all neurons, step, repeat) and
  against dense sampling (sampled <= exact; equal on a fine grid for generic 2-D nets);
* exact 2-D region enumeration against the distinct codes of a fine grid;
* the bias-free network crosses no boundary when scaled;
* torch conversion and hook-recorded codes against the numpy network;
* local complexity, boundary distances, regions, clusters, monosemanticity and facets on
  small cases with known answers.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from logiclens import CompositionalExplainer, ConceptSet
from logiclens.polytope import (
    BoundaryDensity,
    CodeClusters,
    ExactPolytopes,
    KMedoids,
    LocalComplexity,
    MonosemanticityScorer,
    PiecewiseLinearNetwork,
    PolytopeCodes,
    RegionFacets,
    ScalingExperiment,
    UnitFamily,
    boundary_distances,
    consensus_bits,
    direction_units,
    hamming_distances,
    hard_code,
    jaccard_distances,
    label_purity,
    layer_hamming_distances,
    neuron_units,
    pack_bits,
    planar_regions,
    random_subsets,
    sampled_code_changes,
    slerp_path,
    soft_code,
    soft_l1_distances,
    traverse_path,
    traverse_segment,
    unpack_bits,
    window_ratio,
)
from logiclens.polytope.activations import relu6

HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_network(widths, seed=0, activation="relu", bias=True, scale=1.0) -> PiecewiseLinearNetwork:
    """Gaussian weights; the last layer is affine (no activation)."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        weight = rng.normal(size=(fan_out, fan_in)) * scale / np.sqrt(fan_in)
        b = rng.normal(size=fan_out) * scale if bias else None
        layers.append((weight, b, activation if i < len(widths) - 2 else None))
    return PiecewiseLinearNetwork.from_layers(layers)


# ---------------------------------------------------------------------------- codes and distances
@HYPOTHESIS
@given(st.integers(1, 30), st.integers(0, 200), st.integers(0, 2**32 - 1))
def test_pack_unpack_roundtrip(n, m, seed) -> None:
    bits = np.random.default_rng(seed).random((n, m)) < 0.3
    words = pack_bits(bits)
    assert words.dtype == np.uint64 and words.shape == (n, -(-m // 64))
    assert np.array_equal(unpack_bits(words, m), bits)


@HYPOTHESIS
@given(st.lists(st.integers(0, 130), min_size=1, max_size=3), st.integers(1, 25), st.integers(0, 2**32 - 1))
def test_distances_match_plain_implementations(layer_widths, n, seed) -> None:
    rng = np.random.default_rng(seed)
    bits = [rng.random((n, w)) < rng.choice([0.05, 0.5, 0.95]) for w in layer_widths]
    bits[0][0] = False  # an empty code (Jaccard 0/0)
    codes = PolytopeCodes.from_bits(bits)
    dense = np.concatenate(bits, axis=1)
    assert np.array_equal(codes.unpack(), dense)
    assert np.array_equal(codes.ones(), dense.sum(axis=1))
    if dense.shape[1]:
        assert np.allclose(hamming_distances(codes), cdist(dense, dense, "hamming"))
    plain_jaccard = np.array(
        [[1 - (a & b).sum() / (a | b).sum() if (a | b).any() else 0.0 for b in dense] for a in dense]
    )
    assert np.allclose(jaccard_distances(codes, block_bytes=64), plain_jaccard)
    plain_layers = np.mean([cdist(b, b, "hamming") for b in bits if b.shape[1]] or [np.zeros((n, n))], axis=0)
    assert np.allclose(layer_hamming_distances(codes, block_bytes=64), plain_layers)
    # a small block size only changes the chunking
    if dense.shape[1]:
        assert np.allclose(hamming_distances(codes, block_bytes=8), hamming_distances(codes))
        # soft L1 on hard codes is the normalised Hamming distance
        assert np.allclose(soft_l1_distances(dense.astype(float)), cdist(dense, dense, "hamming"))


def test_codes_layers_rows_and_keys() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 70)) < 0.5, rng.random((5, 3)) < 0.5
    codes = PolytopeCodes.from_bits([a, b], ["a", "b"])
    assert codes.n_bits == 73 and codes.words.shape == (5, 3)
    assert np.array_equal(codes.layer("b").unpack(), b)
    assert np.array_equal(codes.layers(["b", "a"]).unpack(), np.concatenate([b, a], axis=1))
    assert np.array_equal(codes[[0, 2]].unpack(), np.concatenate([a, b], axis=1)[[0, 2]])
    keys = PolytopeCodes.from_bits([np.array([[1, 0], [1, 0], [0, 1]], bool)]).keys()
    assert keys[0] == keys[1] and keys[0] != keys[2]
    with pytest.raises(ValueError, match="no layer"):
        codes.layer("c")


def test_hard_and_soft_codes() -> None:
    z = np.array([[-1.0, 0.0, 3.0, 7.0]])
    assert hard_code(z).tolist() == [[False, False, True, True]]
    # ReLU6: two bits per neuron, neuron-major
    assert hard_code(z, (0.0, 6.0)).tolist() == [[False, False, False, False, True, False, True, True]]
    assert np.array_equal(relu6().code(z), hard_code(z, (0.0, 6.0)))
    assert np.allclose(soft_code(np.array([0.0]), "gelu"), 0.5)
    assert np.allclose(soft_code(np.array([0.0, 1e3, -1e3]), "silu", beta=2.0), [0.5, 1.0, 0.0])
    big = np.array([-50.0, 50.0])
    assert np.array_equal(soft_code(big, "gelu"), hard_code(big[None], (0.0,))[0].astype(float))
    with pytest.raises(ValueError, match="soft codes"):
        soft_code(z, "tanh")


def test_network_codes_match_preactivation_signs() -> None:
    net = random_network([4, 7, 5, 3], seed=1)
    x = np.random.default_rng(0).normal(size=(20, 4))
    pre = net.preactivations(x)
    codes = net.codes(x)
    assert codes.layer_names == ("layer0", "layer1")
    assert np.array_equal(codes.unpack(), np.concatenate([pre[0] > 0, pre[1] > 0], axis=1))
    assert np.allclose(
        net.forward(x),
        np.maximum(
            np.maximum(x @ net.layers[0].affine.weight.T + net.layers[0].affine.bias, 0) @ net.layers[1].affine.weight.T
            + net.layers[1].affine.bias,
            0,
        )
        @ net.layers[2].affine.weight.T
        + net.layers[2].affine.bias,
    )


# ---------------------------------------------------------------------------- exact traversal
def plain_walk(net: PiecewiseLinearNetwork, x0: np.ndarray, x1: np.ndarray, tol: float = 1e-10):
    """Walk the segment: find the next crossing among all neurons of all layers, step onto it, repeat."""
    d = x1 - x0
    t, found = 0.0, []
    while t < 1.0:
        h, dh = x0 + t * d, d.copy()
        candidates = []
        for index, layer in enumerate(net.layers):
            w, b = layer.affine.weight, layer.affine.bias
            z, dz = w @ h + b, w @ dh
            points = np.asarray(layer.activation.breakpoints)
            for k in range(len(z)):
                for j, level in enumerate(points):
                    if abs(dz[k]) > 0:
                        root = t + (level - z[k]) / dz[k]
                        if root > t + tol:
                            candidates.append((root, index, k, j))
            # the right-hand slope of every neuron decides the next layer's direction
            ahead = z + 1e-7 * dz
            h = layer.activation(z)
            piece = np.searchsorted(points, ahead, side="left") if len(points) else np.zeros(len(z), int)
            slopes = _piece_slopes(layer.activation)[piece] if len(points) else np.ones(len(z))
            dh = slopes * dz
        if not candidates:
            break
        step = min(c[0] for c in candidates)
        if step > 1.0:
            break
        found.extend(c for c in candidates if c[0] <= step + tol)
        t = step
    return sorted(found)


def _piece_slopes(activation) -> np.ndarray:
    points = np.asarray(activation.breakpoints)
    probes = np.concatenate([[points[0] - 1], (points[:-1] + points[1:]) / 2, [points[-1] + 1]])
    return (activation(probes + 1e-3) - activation(probes - 1e-3)) / 2e-3


@HYPOTHESIS
@given(
    st.integers(0, 10_000),
    st.sampled_from(["relu", "relu6", "leaky_relu", "hardtanh", "abs"]),
    st.lists(st.integers(1, 6), min_size=1, max_size=3),
    st.integers(1, 4),
)
def test_traversal_matches_the_plain_walk(seed, activation, hidden, n_in) -> None:
    net = random_network([n_in, *hidden, 2], seed=seed, activation=activation, scale=3.0)
    rng = np.random.default_rng(seed + 1)
    x0, x1 = rng.normal(size=n_in) * 3, rng.normal(size=n_in) * 3
    fast = traverse_segment(net, x0, x1)
    plain = plain_walk(net, x0, x1)
    assert len(fast) == len(plain)
    assert np.allclose(fast.t, [p[0] for p in plain], atol=1e-8)
    fast_events = sorted(zip(np.round(fast.t, 7), fast.layer, fast.neuron, fast.breakpoint))
    plain_events = sorted((round(p[0], 7), p[1], p[2], p[3]) for p in plain)
    assert [e[1:] for e in fast_events] == [e[1:] for e in plain_events]
    assert fast.length == pytest.approx(np.linalg.norm(x1 - x0))
    assert sum(fast.counts().values()) == len(fast)


@pytest.mark.parametrize("seed", range(6))
def test_traversal_against_dense_sampling_in_2d(seed) -> None:
    net = random_network([2, 8, 8, 6, 3], seed=seed, scale=2.0)
    rng = np.random.default_rng(seed)
    x0, x1 = rng.uniform(-3, 3, 2), rng.uniform(-3, 3, 2)
    exact = traverse_segment(net, x0, x1)
    t = np.linspace(0.0, 1.0, 400_001)
    sampled = sampled_code_changes(net, x0 + t[:, None] * (x1 - x0))
    assert np.array_equal(sampled.sum(axis=0), np.bincount(exact.layer, minlength=len(net.layers)))
    coarse = sampled_code_changes(net, x0 + np.linspace(0, 1, 7)[:, None] * (x1 - x0))
    assert coarse.sum() <= len(exact)
    # every crossing is where the sampled code of its layer changes
    for time, layer in zip(exact.t, exact.layer):
        i = int(np.searchsorted(t, time))
        assert sampled[max(0, i - 2) : i + 2, layer].sum() >= 1
    # the first change of the predicted class, exactly
    predicted = net.predict(x0 + t[:, None] * (x1 - x0))
    changed = np.flatnonzero(predicted != predicted[0])
    if len(changed):
        assert exact.decision_t == pytest.approx(t[changed[0]], abs=3e-6)
        assert (exact.start_class, exact.end_class) == (predicted[0], predicted[-1])
    else:
        assert np.isnan(exact.decision_t)


@HYPOTHESIS
@given(st.integers(0, 10_000), st.sampled_from([4, 16, 64]))
def test_grid_bracketed_decision_matches_the_exact_one(seed, grid) -> None:
    net = random_network([3, 12, 12, 6], seed=seed, scale=2.5)
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=3) * 3, rng.normal(size=3) * 3
    exact = traverse_segment(net, x0, x1)
    bracketed = traverse_segment(net, x0, x1, decision=grid)
    assert len(bracketed) == len(exact)
    assert (bracketed.start_class, bracketed.end_class) == (exact.start_class, exact.end_class)
    if np.isfinite(bracketed.decision_t):
        # the grid can only miss a change that reverts within one step: it never finds one too early
        assert bracketed.decision_t >= exact.decision_t - 1e-12
        t = np.linspace(0, 1, grid + 1)
        predicted = net.predict(x0 + t[:, None] * (x1 - x0))
        first = np.flatnonzero(predicted != predicted[0])[0]
        assert t[first - 1] - 1e-12 <= bracketed.decision_t <= t[first] + 1e-12
    else:
        t = np.linspace(0, 1, grid + 1)
        predicted = net.predict(x0 + t[:, None] * (x1 - x0))
        assert np.all(predicted == predicted[0])


def test_traversal_counts_a_neuron_that_crosses_twice_between_samples() -> None:
    # z2 = relu(x) + relu(-x) - 0.5 = |x| - 0.5 crosses 0 at x = -0.5 and x = 0.5
    net = PiecewiseLinearNetwork.from_layers(
        [
            (np.array([[1.0], [-1.0]]), np.zeros(2), "relu"),
            (np.array([[1.0, 1.0]]), [-0.5], "relu"),
            (np.ones((1, 1)), None, None),
        ]
    )
    exact = traverse_segment(net, np.array([-1.0]), np.array([1.0]))
    assert exact.counts() == {"layer0": 2, "layer1": 2, "layer2": 0}
    assert np.allclose(exact.t[exact.layer == 1], [0.25, 0.75])
    assert sampled_code_changes(net, np.array([[-1.0], [1.0]])).sum() == 2  # misses layer 1 entirely


def test_ties_and_zero_runs() -> None:
    # two identical neurons cross at the same t; a neuron starting exactly on its boundary is not a crossing
    weight = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    net = PiecewiseLinearNetwork.from_layers([(weight, np.zeros(3), "relu"), (np.ones((1, 3)), None, None)])
    exact = traverse_segment(net, np.array([-1.0, 0.0]), np.array([1.0, 0.0]))
    assert exact.neuron.tolist() == [0, 1] and np.allclose(exact.t, 0.5)
    assert exact.direction.tolist() == [1, 1]
    # touching the boundary and leaving on the same side is not a crossing
    touch = traverse_segment(net, np.array([-1.0, 1.0]), np.array([1.0, -1.0]))
    assert set(touch.neuron.tolist()) == {0, 1, 2}
    flat = traverse_segment(net, np.array([-1.0, 0.0]), np.array([-1.0, 0.0]) + np.array([0.0, 0.0]))
    assert len(flat) == 0


def test_polyline_traversal_sums_its_chords() -> None:
    net = random_network([2, 10, 10, 3], seed=3, scale=2.0)
    points = slerp_path([-2.0, 0.5], [2.0, 1.0], center=[0.0, -1.0], n_chords=16)
    whole = traverse_path(net, points)
    parts = [traverse_segment(net, points[i], points[i + 1]) for i in range(len(points) - 1)]
    assert len(whole) == sum(len(p) for p in parts)
    assert np.all(np.diff(whole.t) >= 0) and whole.t.min() >= 0 and whole.t.max() <= 1
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    assert whole.length == pytest.approx(lengths.sum())
    assert whole.histogram(5).sum() * whole.length / 5 == pytest.approx(len(whole))


def test_slerp_path_keeps_the_ends_and_interpolates_norms() -> None:
    a, b, c = np.array([1.0, 0.0]), np.array([0.0, 3.0]), np.zeros(2)
    path = slerp_path(a, b, c, n_chords=8)
    assert np.allclose(path[0], a) and np.allclose(path[-1], b)
    assert np.allclose(np.linalg.norm(path, axis=1), np.linspace(1, 3, 9))
    assert np.allclose(slerp_path(a, 2 * a, c, 4), a[None] * np.linspace(1, 2, 5)[:, None])


def test_smooth_networks_have_codes_but_no_exact_traversal() -> None:
    net = random_network([3, 5, 2], seed=0, activation="gelu")
    x = np.random.default_rng(0).normal(size=(4, 3))
    assert net.codes(x).n_bits == 5
    assert not net.piecewise_linear
    with pytest.raises(ValueError, match="piecewise-linear"):
        traverse_segment(net, x[0], x[1])


# ---------------------------------------------------------------------------- regions in 2-D
@pytest.mark.parametrize(
    ("seed", "widths"), [(0, [2, 5, 3]), (1, [2, 4, 4, 2]), (2, [2, 6, 5, 2]), (3, [2, 3, 3, 3, 2])]
)
def test_planar_region_count_matches_a_fine_grid(seed, widths) -> None:
    net = random_network(widths, seed=seed, scale=1.5)
    box = (-2.0, 2.0, -2.0, 2.0)
    regions = planar_regions(net, box)
    assert sum(r.area for r in regions) == pytest.approx(16.0)
    exact_codes = {r.code.tobytes() for r in regions}
    assert len(exact_codes) == len(regions)  # every polygon has its own code
    g = np.linspace(-2.0, 2.0, 1201)
    grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    grid_codes = net.codes(grid)
    seen = {row.tobytes() for row in grid_codes.unpack()}
    assert seen <= exact_codes
    spacing = g[1] - g[0]
    # regions whose every part is thinner than the grid can hide between grid points; the others are seen
    large = [r for r in regions if _inradius(r.vertices) > 2 * spacing]
    assert {r.code.tobytes() for r in large} <= seen
    if all(_inradius(r.vertices) > 2 * spacing for r in regions):
        assert ExactPolytopes().fit(grid_codes).n_polytopes_ == len(regions)


def _inradius(vertices: np.ndarray) -> float:
    """Radius of the largest disc about the centroid inside a convex polygon."""
    c = vertices.mean(axis=0)
    nxt = np.roll(vertices, -1, axis=0)
    edges = nxt - vertices
    normal = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    norms = np.linalg.norm(normal, axis=1)
    ok = norms > 0
    return float(np.min(np.abs(np.einsum("ij,ij->i", (c - vertices)[ok], normal[ok])) / norms[ok]))


def test_planar_regions_of_one_relu_layer_are_an_arrangement() -> None:
    # three lines in general position cut a big box into 7 regions
    weight = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    net = PiecewiseLinearNetwork.from_layers([(weight, [0.0, 0.0, -1.0], "relu"), (np.ones((1, 3)), None, None)])
    assert len(planar_regions(net, (-5, 5, -5, 5))) == 7


# ---------------------------------------------------------------------------- scaling
def test_bias_free_network_crosses_no_boundary_when_scaled() -> None:
    net = random_network([6, 12, 12, 8, 4], seed=5, scale=2.0)
    x = np.random.default_rng(1).normal(size=(25, 6))
    free = net.without_biases()
    assert all(np.all(layer.affine.bias == 0) for layer in free.layers)
    experiment = ScalingExperiment(layer=0, alpha_range=(0.01, 100.0)).fit(free, x)
    assert experiment.ray_crossings_.sum() == 0
    assert experiment.class_change_anywhere_ == 0.0
    assert np.allclose(experiment.curves_["class_change"], 0) and np.allclose(experiment.curves_["code_flips"], 0)
    # with biases, the same rays cross boundaries and the counts agree with sampling
    biased = ScalingExperiment(layer=0, alpha_range=(0.01, 100.0)).fit(net, x)
    assert biased.ray_crossings_.sum() > 0
    h = net.hidden(x, 0)
    alphas = np.linspace(0.01, 100.0, 200_001)
    tail = net.tail(0)
    sampled = sum(sampled_code_changes(tail, alphas[:, None] * point[None]).sum() for point in h[:5])
    assert sampled <= biased.ray_crossings_[:5].sum()
    assert np.isclose(
        biased.crossings_["crossings_per_unit_alpha"] @ np.diff(np.geomspace(0.01, 100.0, 13)),
        biased.ray_crossings_.mean(),
    )
    # at alpha = 1 nothing changes
    row = biased.curves_[biased.curves_["alpha"] == 1.0].iloc[0]
    assert row["class_change"] == 0 and row["code_flips"] == 0


def test_bias_free_relu6_is_not_scale_invariant() -> None:
    # ReLU6's breakpoint at 6 is not at the origin: rays cross it even without biases
    rng = np.random.default_rng(0)
    net = PiecewiseLinearNetwork.from_layers(
        [(np.eye(3), None, "relu"), (rng.normal(size=(8, 3)) * 4, None, "relu6"), (rng.normal(size=(2, 8)), None, None)]
    )
    assert not net.layers[1].activation.positively_homogeneous and net.layers[0].activation.positively_homogeneous
    experiment = ScalingExperiment(layer=0, alpha_range=(0.1, 10.0)).fit(net, np.abs(rng.normal(size=(10, 3))))
    assert experiment.ray_crossings_.sum() > 0


# ---------------------------------------------------------------------------- torch adapter and hooks
def test_from_torch_matches_the_torch_model_and_hooks_record_the_same_codes() -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    from logiclens.polytope import from_torch
    from logiclens.polytope.recording import find_preactivation_layers, record_preactivations

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(6, 3),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
        model[3].weight.mul_(4.0)
    model.eval()
    net = from_torch(model, (1, 5, 5))
    assert [layer.name for layer in net.layers] == ["2", "4", "output"]
    assert [layer.preactivation_module for layer in net.layers] == ["1", "3", "8"]
    x = torch.randn(16, 1, 5, 5)
    with torch.no_grad():
        expected = model(x).double().numpy()
    assert np.allclose(net.forward(x.numpy()), expected, atol=1e-5)
    recorded = record_preactivations(model, ["1", "3"], x, batch_size=5)
    codes_hooks = PolytopeCodes.from_bits([hard_code(recorded["1"]), hard_code(recorded["3"], (0.0, 6.0))])
    assert np.array_equal(codes_hooks.unpack(), net.codes(x.numpy()).unpack())
    assert find_preactivation_layers(model, x[:2]) == {"2": "1", "4": "3"}
    per_position = record_preactivations(model, "3", x, position="each")["3"]
    assert per_position.shape == (16 * 25, 6)
    at = record_preactivations(model, "3", x, position=(2, 1))["3"]
    assert np.allclose(at, per_position.reshape(16, 5, 5, 6)[:, 2, 1])
    # a big step stays a torch function and agrees with its dense twin
    big = from_torch(model, (1, 5, 5), dense_limit=0)
    assert type(big.layers[0].affine).__name__ == "TorchAffine"
    assert np.allclose(big.forward(x.numpy()), expected, atol=1e-5)
    assert np.allclose(big.without_biases().forward(x.numpy()), net.without_biases().forward(x.numpy()))
    with pytest.raises(TypeError, match="not supported"):
        from_torch(nn.Sequential(nn.Linear(2, 2), nn.MaxPool1d(2)), (2,))


# ---------------------------------------------------------------------------- local complexity and distances
def test_local_complexity_matches_a_plain_count() -> None:
    net = random_network([5, 9, 7, 3], seed=4, scale=2.0)
    x = np.random.default_rng(2).normal(size=(12, 5))
    lc = LocalComplexity(n_directions=4, radius=0.7, random_state=3, include_output=True).fit(net, x)
    rng = np.random.default_rng(3)
    for i, point in enumerate(x):
        q, r = np.linalg.qr(rng.normal(size=(5, 4)))
        directions = (q * np.sign(np.diag(r))).T
        vertices = np.concatenate([point + 0.7 * directions, point - 0.7 * directions])
        pre = net.preactivations(vertices)
        plain = [int(np.sum((z > 0).any(axis=0) & ~(z > 0).all(axis=0))) for z in pre]
        assert lc.counts_[i].tolist() == plain
    assert lc.layer_names_ == ["layer0", "layer1", "layer2"]
    assert np.array_equal(lc.total_, lc.counts_.sum(axis=1))
    tiny = LocalComplexity(n_directions=3, radius=1e-9).fit(net, x)
    assert tiny.total_.sum() == 0
    assert list(lc.frame().columns) == ["total", "lc_layer0", "lc_layer1", "lc_layer2"]


def test_first_layer_boundary_distance_is_exact() -> None:
    net = random_network([3, 6, 4, 2], seed=1)
    x = np.random.default_rng(0).normal(size=(7, 3))
    distances = boundary_distances(net, x)
    w, b = net.layers[0].affine.weight, net.layers[0].affine.bias
    plain = np.min(np.abs(x @ w.T + b) / np.linalg.norm(w, axis=1), axis=1)
    assert np.allclose(distances[:, 0], plain)
    assert distances.shape == (7, 2) and np.all(distances > 0)


# ---------------------------------------------------------------------------- regions and clusters
@HYPOTHESIS
@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_exact_polytopes_match_plain_grouping(n, width, seed) -> None:
    bits = np.random.default_rng(seed).random((n, width)) < 0.5
    polytopes = ExactPolytopes(min_size=2).fit(PolytopeCodes.from_bits([bits]))
    groups: dict[bytes, list[int]] = {}
    for i, row in enumerate(bits):
        groups.setdefault(row.tobytes(), []).append(i)
    assert polytopes.n_polytopes_ == len(groups)
    for members in groups.values():
        assert len(set(polytopes.labels_[members].tolist())) == 1
    assert polytopes.sharing_rate_ == pytest.approx(np.mean([len(groups[r.tobytes()]) > 1 for r in bits]))
    family = polytopes.family()
    assert len(family) == sum(len(m) >= 2 for m in groups.values())
    assert family.coverage == pytest.approx(polytopes.sharing_rate_)


def test_kmedoids_finds_separated_groups_and_the_optimal_single_medoid() -> None:
    rng = np.random.default_rng(0)
    points = np.concatenate(
        [rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (15, 2)), rng.normal((0, 9), 0.1, (10, 2))]
    )
    d = cdist(points, points)
    model = KMedoids(3, random_state=1).fit(d)
    truth = np.repeat([0, 1, 2], [20, 15, 10])
    assert len({(a, b) for a, b in zip(model.labels_, truth)}) == 3
    single = KMedoids(1).fit(d)
    assert single.medoid_indices_[0] == np.argmin(d.sum(axis=1))
    assert single.inertia_ == pytest.approx(d.sum(axis=1).min())


def test_code_clusters_report_noise_and_coverage() -> None:
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    prototypes = rng.random((3, 80)) < 0.5
    rows = [p ^ (rng.random(80) < 0.03) for p in prototypes for _ in range(30)]
    noise = [rng.random(80) < 0.5 for _ in range(10)]
    codes = PolytopeCodes.from_bits([np.array(rows + noise)])
    for method in ("hdbscan", "kmedoids"):
        clusters = CodeClusters(method=method, metric="hamming", min_cluster_size=10, n_clusters=3).fit(codes)
        family = clusters.family()
        assert clusters.noise_fraction_ + clusters.coverage_ <= 1.0 + 1e-12
        assert family.coverage == pytest.approx(clusters.coverage_)
        assert len(family) == 3
    hdb = CodeClusters(metric="jaccard", min_cluster_size=10).fit(codes)
    assert 0 < hdb.noise_fraction_ < 0.3


def test_baseline_families() -> None:
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    acts = np.abs(rng.normal(size=(200, 12)))
    top = neuron_units(acts, "quantile", quantile=0.1)
    assert len(top) == 12 and np.all(top.sizes == 20)
    positive = neuron_units(acts - 1.0, "positive")
    assert np.array_equal(positive.masks, (acts - 1.0 > 0).T)
    for method, count in (("nmf", 4), ("pca", 8), ("random", 4)):
        family = direction_units(acts, method, n_components=4, quantile=0.25)
        assert len(family) == count and family.kind == "direction"
    subsets = random_subsets(50, [3, 10, 10])
    assert subsets.sizes.tolist() == [3, 10, 10]
    assert label_purity(np.array([[1, 1, 1, 0], [0, 0, 0, 0]], bool), [0, 0, 1, 1])[0] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------- monosemanticity and facets
def _concepts(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    masks = rng.random((6, n)) < np.array([[0.1], [0.2], [0.3], [0.4], [0.5], [0.15]])
    return masks, ConceptSet.from_dense(masks, [f"c{i}" for i in range(6)])


def test_monosemanticity_scores_planted_units_and_chance() -> None:
    masks, concepts = _concepts()
    planted = UnitFamily("planted", "region", np.stack([masks[0], masks[1] & ~masks[2], masks[3] | masks[5]]))
    subsets = random_subsets(masks.shape[1], planted.sizes, random_state=1)
    scorer = MonosemanticityScorer(
        CompositionalExplainer(max_length=2, beam_size=5, verbose=0), null_sizes=4, null_repeats=2
    ).fit([planted, subsets], concepts, labels=masks[4])
    scores = scorer.scores_
    exact = scores[scores["family"] == "planted"]
    assert np.allclose(exact["iou_2"], 1.0)
    assert exact["iou_1"].iloc[0] == pytest.approx(1.0) and exact["iou_1"].iloc[1] < 1.0
    assert np.all(exact["excess"] > 0.3)
    assert np.all(scores["iou_2"] >= scores["iou_1"])
    chance = scores[scores["family"] == "random subset"]
    assert chance["iou_2"].max() < 0.6
    assert set(scorer.summary_["family"]) == {"planted", "random subset"}
    assert {"size_bin", "null_iou", "purity"} <= set(scores.columns)
    assert scorer.by_size_["units"].sum() == len(scores)


def test_region_facets_compare_region_and_facet_explanations() -> None:
    masks, concepts = _concepts(400, seed=3)
    # two "neurons": bit 0 = c0 OR c1, bit 1 = c2; a constant bit is never a consensus bit
    bits = np.stack([masks[0] | masks[1], masks[2], np.ones(400, bool)], axis=1)
    region = (bits[:, 0] & ~bits[:, 1])[None]
    index, value = consensus_bits(region[0], bits)
    assert index.tolist() == [0, 1] and value.tolist() == [True, False]
    facets = RegionFacets(explainer=CompositionalExplainer(max_length=2, beam_size=5, verbose=0)).fit(
        region, bits, concepts
    )
    row = facets.results_.iloc[0]
    assert row["n_consensus"] == 2 and row["n_consensus_on"] == 1
    assert row["polytope_iou"] == pytest.approx(1.0)
    assert row["facet_and_iou"] == pytest.approx(1.0)  # c0 OR c1 AND NOT c2, facet by facet
    assert row["region_iou"] <= 1.0
    assert set(facets.facets_["iou"].round(6)) == {1.0}


# ---------------------------------------------------------------------------- density
def test_window_ratio_and_density_summary() -> None:
    net = random_network([2, 16, 16, 3], seed=8, scale=2.0)
    rng = np.random.default_rng(0)
    starts, ends = rng.uniform(-3, 3, (12, 2)), rng.uniform(-3, 3, (12, 2))
    density = BoundaryDensity(path="lerp", n_shuffles=20).fit(net, starts, ends)
    assert len(density.paths_) == 12 and density.profiles_.shape == (12, 50)
    for tr, row in zip(density.traversals_, density.paths_.itertuples()):
        assert row.crossings == len(tr)
        assert row.window_ratio == pytest.approx(window_ratio(tr, tr.decision_t, 0.025), nan_ok=True)
    summary = density.summary_
    assert summary["paths"] == 12 and summary["with_decision"] >= 5 and 0 <= summary["shuffled_p"] <= 1
    hidden = BoundaryDensity(path="slerp", space=0, n_chords=8, n_shuffles=5).fit(net, starts, ends)
    assert hidden.layer_names_ == ["layer1", "layer2"]
    assert set(hidden.paths_["crossings_layer1"]) and "crossings_layer0" not in hidden.paths_
    assert np.isfinite(density.aligned_["relative_density"]).any()


# ---------------------------------------------------------------------------- command line
def test_analyze_command_on_a_saved_sequential(tmp_path, monkeypatch, capsys) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from logiclens.cli.polytope import register as register_command

    (tmp_path / "tiny_polytope_model.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def build():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    x = np.random.default_rng(0).normal(size=(120, 4))
    np.save(tmp_path / "x.npy", x)
    parser = argparse.ArgumentParser(prog="logiclens")
    register_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "polytope",
            "analyze",
            "tiny_polytope_model:build",
            str(tmp_path / "x.npy"),
            "--pairs",
            "10",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert args.handler(args) == 0
    assert (tmp_path / "out" / "regions.csv").exists() and (tmp_path / "out" / "summary.json").exists()
    assert "sharing_rate" in capsys.readouterr().out
    del torch


def test_register_command_adds_the_polytope_subcommands(tmp_path) -> None:
    for module in ("torch", "sklearn", "matplotlib"):
        pytest.importorskip(module)
    from logiclens.cli.polytope import register as register_command

    parser = argparse.ArgumentParser(prog="logiclens")
    register_command(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):  # the study is an example script now, not a command
        parser.parse_args(["polytope", "study", "--out", str(tmp_path)])
    args = parser.parse_args(["polytope", "demo", "--out", str(tmp_path / "demo.png")])
    assert args.handler(args) == 0
    assert (tmp_path / "demo.png").exists()


@pytest.mark.slow
def test_the_study_runs_end_to_end_on_the_mlp(tmp_path, monkeypatch) -> None:
    for module in ("torch", "sklearn", "matplotlib"):
        pytest.importorskip(module)
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "examples"))
    from polytope_lens.run import StudySettings, run_study

    settings = StudySettings(quick=True, models=("mlp",), cache_dir=str(tmp_path / "cache"))
    settings.n_pairs, settings.n_same_pairs, settings.n_scaling, settings.n_complexity = 8, 4, 10, 10
    headline = run_study(tmp_path / "out", settings, log=lambda line: None)
    assert set(headline["models"]) == {"mlp"}
    assert headline["models"]["mlp"]["scaling"]["bias-free, scale relu1"]["mean_ray_crossings"] == 0.0
    for name in ("summary.md", "results.json", "monosemanticity.png", "density_aligned.png", "scores_mlp.csv.gz"):
        assert (tmp_path / "out" / name).exists()
