"""Hooks, exact streaming thresholds, upsampling and mask counting against plain implementations."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from logiclens import ConceptSet, UnitMasks
from logiclens.hooks import LayerRecorder
from logiclens.vision.activations.counting import UnitCountAccumulator
from logiclens.vision.activations.thresholds import StreamingTopQuantile
from logiclens.vision.activations.upsample import BilinearUpsampler
from logiclens.vision.dissect import compute_thresholds, count_unit_masks


# ---------------------------------------------------------------------------- hooks
class SharedRelu(nn.Module):
    """conv1 -> relu -> conv2 -> relu (the same ReLU module, in place, called twice) -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 1)
        self.conv2 = nn.Conv2d(2, 2, 1)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(8, 1)
        self.dropout = nn.Dropout(0.5)
        self.head_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        self.head_calls += 1
        return self.head(self.dropout(x.flatten(1)))


def _model() -> SharedRelu:
    torch.manual_seed(0)
    return SharedRelu()


def test_records_outputs_by_name_and_call_index() -> None:
    model = _model()
    x = torch.randn(3, 1, 2, 2)
    with LayerRecorder(model, ["conv1", "relu", "relu#1", "conv2"], stop_early=False) as recorder:
        out = recorder.run(x)
    expected_first = torch.relu(model.conv1(x))
    expected_second = torch.relu(model.conv2(expected_first))
    assert torch.allclose(out["relu"], expected_first)
    assert torch.allclose(out["relu#1"], expected_second)
    # conv2's output was overwritten in place by the ReLU after the hook ran: the clone keeps it
    assert torch.allclose(out["conv2"], model.conv2(expected_first))
    assert (out["conv2"] < 0).any()


def test_hooks_are_removed_on_exit_and_on_error() -> None:
    model = _model()
    with LayerRecorder(model, "conv1") as recorder:
        recorder.run(torch.randn(1, 1, 2, 2))
    assert not model.conv1._forward_hooks
    with pytest.raises(RuntimeError), LayerRecorder(model, "conv1"):
        raise RuntimeError("boom")
    assert not model.conv1._forward_hooks
    with pytest.raises(RuntimeError, match="inside its `with` block"):
        LayerRecorder(model, "conv1").run(torch.randn(1, 1, 2, 2))


def test_stops_early_and_restores_training_mode() -> None:
    model = _model()
    model.train()
    with LayerRecorder(model, "relu") as recorder:
        recorder.run(torch.randn(1, 1, 2, 2))
    assert model.head_calls == 0
    assert model.training
    with LayerRecorder(model, "head", stop_early=False) as recorder:
        a = recorder.run(torch.ones(1, 1, 2, 2))["head"]
        b = recorder.run(torch.ones(1, 1, 2, 2))["head"]
    assert torch.equal(a, b)  # dropout off: eval mode during recording


def test_unknown_layers_and_calls_that_never_fire() -> None:
    model = _model()
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        LayerRecorder(model, "conv9")
    with pytest.raises(RuntimeError, match="never fired"), LayerRecorder(model, "relu#2") as recorder:
        recorder.run(torch.randn(1, 1, 2, 2))


# ---------------------------------------------------------------------------- thresholds
@given(
    n=st.integers(1, 3000),
    q=st.sampled_from([0.005, 0.01, 0.1, 0.5, 0.9]),
    chunks=st.integers(1, 9),
    ties=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=150, deadline=None)
def test_streaming_quantile_equals_numpy(n, q, chunks, ties, seed) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n).astype(np.float32)
    if ties:
        values = np.maximum(np.round(values, 1), 0)
    quantile = StreamingTopQuantile(n, q)
    for part in np.array_split(values, chunks):
        quantile.add(part)
    assert quantile.threshold() == np.quantile(values.astype(np.float64), 1 - q)
    assert len(quantile.state_dict()["buffer"]) <= quantile.m


def test_streaming_quantile_checks_its_inputs() -> None:
    quantile = StreamingTopQuantile(4, 0.25)
    with pytest.raises(ValueError, match="NaN"):
        quantile.add([1.0, np.nan])
    quantile.add([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="3 values were added, 4 announced"):
        quantile.threshold()
    with pytest.raises(ValueError, match="more than the announced"):
        quantile.add([1.0, 2.0])
    restored = StreamingTopQuantile.from_state_dict(quantile.state_dict())
    restored.add([4.0])
    assert restored.threshold() == np.quantile([1.0, 2.0, 3.0, 4.0], 0.75)


def _plain_upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    tensor = torch.from_numpy(np.asarray(maps, np.float32))[:, None]
    return torch.nn.functional.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


@pytest.mark.parametrize(("in_size", "out_size"), [((7, 7), (112, 112)), ((3, 5), (10, 9)), ((4, 4), (4, 4))])
def test_upsampling_matches_torch_interpolate(in_size, out_size) -> None:
    maps = np.random.default_rng(0).normal(size=(5, *in_size)).astype(np.float32)
    ours = BilinearUpsampler(in_size, out_size)(maps)
    assert np.abs(ours - _plain_upsample(maps, out_size)).max() < 1e-5
    assert (ours.max(axis=(1, 2)) <= maps.max(axis=(1, 2))).all()


@pytest.mark.parametrize("mode", ["layer", "upsampled"])
def test_thresholds_equal_numpy_quantile_over_the_chosen_positions(mode) -> None:
    rng = np.random.default_rng(1)
    activations = np.maximum(rng.normal(size=(37, 4, 3, 3)), 0).astype(np.float16)
    thresholds, _ = compute_thresholds(activations, 0.02, mode, (12, 12), batch_size=8)
    values = activations.astype(np.float32)
    if mode == "upsampled":
        values = np.stack([_plain_upsample(values[:, u], (12, 12)) for u in range(4)], axis=1)
    expected = np.quantile(values.transpose(1, 0, 2, 3).reshape(4, -1).astype(np.float64), 0.98, axis=1)
    np.testing.assert_allclose(thresholds, expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- masks
def test_counting_equals_a_plain_per_image_implementation() -> None:
    rng = np.random.default_rng(2)
    n_images, n_units, size = 9, 5, (8, 8)
    activations = rng.normal(size=(n_images, n_units, 3, 3)).astype(np.float32)
    labels = rng.integers(-1, 4, size=(n_images * 64, 2))
    concepts = ConceptSet.from_labels(labels, ["a", "b", "c", "d"])
    signatures = concepts.position_signatures.reshape(n_images, *size)
    thresholds = np.quantile(activations, 0.8, axis=(0, 2, 3))
    counted = count_unit_masks(activations, signatures, thresholds, concepts.n_signatures, batch_size=4)[0]
    plain = np.stack([(_plain_upsample(activations[:, u], size) > thresholds[u]).reshape(-1) for u in range(n_units)])
    expected = UnitMasks.from_dense(plain, concepts)
    assert (counted.counts != expected.counts).nnz == 0


def test_counting_rejects_nan_and_mismatched_shapes() -> None:
    accumulator = UnitCountAccumulator([0.5, 0.5], 3, BilinearUpsampler((2, 2), (4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        accumulator.add(np.full((1, 2, 2, 2), np.nan, np.float32), np.zeros((1, 4, 4), np.int32))
    with pytest.raises(ValueError, match="signature ids"):
        accumulator.add(np.zeros((1, 2, 2, 2), np.float32), np.zeros((1, 3, 3), np.int32))
    with pytest.raises(ValueError, match="units"):
        accumulator.add(np.zeros((1, 3, 2, 2), np.float32), np.zeros((1, 4, 4), np.int32))


@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    big_h=st.integers(1, 40),
    big_w=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=120, deadline=None)
def test_block_evaluation_agrees_with_full_upsampling(h, w, big_h, big_w, seed) -> None:
    rng = np.random.default_rng(seed)
    maps = np.maximum(rng.normal(size=(4, h, w)), 0).astype(np.float32)
    upsampler = BilinearUpsampler((h, w), (big_h, big_w))
    full = upsampler(maps)
    assert np.abs(full - _plain_upsample(maps, (big_h, big_w))).max() < 1e-5
    thresholds = np.quantile(maps, rng.uniform(0, 1), axis=(1, 2)).astype(np.float32)
    index, pixel = upsampler.above(maps, thresholds)
    dense = np.zeros((4, big_h * big_w), bool)
    dense[index, pixel] = True
    np.testing.assert_array_equal(dense, (full > thresholds[:, None, None]).reshape(4, -1))
    index, row, col, values = upsampler.blocks(maps, thresholds)
    np.testing.assert_array_equal(values, full[index, row, col])
    assert (values > thresholds[index]).sum() == (full > thresholds[:, None, None]).sum()


# ---------------------------------------------------------------------------- ties
def _saturated(n_images: int, size: int, seed: int) -> np.ndarray:
    """ReLU6-like activations: about 70 % of values clamped at exactly 6.0."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(7.0, 2.0, size=(n_images, 3, size, size)), 0, 6).astype(np.float16)


@pytest.mark.parametrize("mode", ["layer", "upsampled"])
def test_saturated_units_keep_the_requested_fraction(mode) -> None:
    from logiclens.vision.activations.ties import tie_cuts

    activations = _saturated(30, 4, seed=5)
    size = (4, 4) if mode == "layer" else (10, 10)
    q = 0.05
    thresholds, above = compute_thresholds(activations, q, mode, size, batch_size=7)
    assert (thresholds == 6.0).all() and (above == 0).all()  # the plain rule would give empty masks
    upsampler = BilinearUpsampler((4, 4), size) if mode == "upsampled" else None
    cuts = tie_cuts(activations, thresholds, above, q, upsampler, batch_size=7)
    assert (cuts >= 0).all()
    labels = np.zeros((30 * size[0] * size[1], 1), np.int32)
    concepts = ConceptSet.from_labels(labels, ["everything"])
    signatures = concepts.position_signatures.reshape(30, *size)
    if mode == "layer":  # masks at the layer's own resolution: the fraction is exact there
        masks = count_unit_masks(activations, signatures, thresholds, 1, tie_cuts=cuts, batch_size=7)[0]
    else:
        masks = count_unit_masks(activations, signatures, thresholds, 1, tie_cuts=cuts, batch_size=11)[0]
    assert (masks.n_active == round(q * 30 * size[0] * size[1])).all()


def test_tie_keys_are_deterministic_and_uniform() -> None:
    from logiclens.vision.activations.ties import tie_keys

    keys = tie_keys(3, np.arange(10_000), np.arange(10_000) % 49)
    assert np.array_equal(keys, tie_keys(3, np.arange(10_000), np.arange(10_000) % 49))
    assert (keys >= 0).all() and (keys < 1).all()
    assert abs(keys.mean() - 0.5) < 0.02
    assert not np.array_equal(keys, tie_keys(4, np.arange(10_000), np.arange(10_000) % 49))


def test_units_without_enough_positive_values_are_not_padded_with_zeros() -> None:
    from logiclens.vision.activations.ties import tie_cuts

    activations = np.zeros((20, 2, 3, 3), np.float16)
    activations[0, :, 0, 0] = 1.0  # one positive value per unit, far below q * N
    thresholds, above = compute_thresholds(activations, 0.05, "layer", (3, 3))
    assert (thresholds == 0).all()
    cuts = tie_cuts(activations, thresholds, above, 0.05, None)
    assert (cuts < 0).all()
