"""Work cut into pieces gives the whole's answer: merged signature indexes, blocks of units, torch counting."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from logiclens import CompositionalExplainer
from logiclens.core.parallel import check_backend, connect_ray, map_batches
from logiclens.core.signatures import SignatureIndex
from logiclens.testing import PlantedProbe, planted_model
from logiclens.vision.activations.active import active_pixels
from logiclens.vision.activations.torch_counting import TorchActivePixels
from logiclens.vision.activations.upsample import BilinearUpsampler
from logiclens.vision.dissect import DissectionSettings, count_unit_masks, dissect
from logiclens.vision.dissect.shards import plan_shards


# ---------------------------------------------------------------------------- signature indexes
@given(
    labels=st.lists(st.lists(st.integers(-1, 5), min_size=1, max_size=3), min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
@settings(max_examples=80, deadline=None)
def test_absorbing_the_indexes_of_consecutive_chunks_equals_one_index(labels, cuts) -> None:
    rows = np.full((len(labels), 3), -1, np.int32)
    for i, row in enumerate(labels):
        rows[i, : len(row)] = row
    whole = SignatureIndex(6)
    expected = whole.add(rows)
    merged = SignatureIndex(6)
    ids = []
    bounds = [0, *sorted(c for c in cuts if c < len(rows)), len(rows)]
    for start, stop in itertools.pairwise(bounds):
        part = SignatureIndex(6)
        local = part.add(rows[start:stop])
        ids.append(merged.absorb(part)[local])
    np.testing.assert_array_equal(np.concatenate(ids), expected)
    for name, value in whole.state_dict().items():
        np.testing.assert_array_equal(merged.state_dict()[name], value, err_msg=name)


def test_absorbing_an_index_over_other_concepts_is_refused() -> None:
    with pytest.raises(ValueError, match="over 3 concepts"):
        SignatureIndex(4).absorb(SignatureIndex(3))


def test_shards_are_whole_batches_in_image_order() -> None:
    assert plan_shards(10, 3, 2) == [(0, 0, 4), (1, 4, 8), (2, 8, 10)]
    assert plan_shards(4, 100, 8) == [(0, 0, 4)]


# ---------------------------------------------------------------------------- batches
def test_local_batches_come_back_in_order_serial_or_in_processes() -> None:
    batches = [range(0, 3), range(3, 4), range(4, 10)]
    assert list(map_batches(sum, batches)) == [3, 3, 39]
    assert list(map_batches(sum, batches, n_jobs=2)) == [3, 3, 39]


def test_backends_and_addresses_are_checked_on_one_line(monkeypatch) -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        check_backend("spark")
    with pytest.raises(ValueError, match="needs backend 'ray'"):
        check_backend("local", "10.0.0.1:6379")
    with pytest.raises(ValueError, match="backend must be one of"):
        CompositionalExplainer(backend="dask").check_params()
    monkeypatch.setitem(sys.modules, "ray", None)  # as where Ray is not installed
    with pytest.raises(ValueError, match=r"pip install 'logiclens\[ray\]'"):
        connect_ray()


# ---------------------------------------------------------------------------- counting in pieces
def _tied_maps(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Maps with many exact ties (values on a coarse grid, as ReLU6 saturation gives)."""
    return np.round(np.maximum(rng.normal(1.0, 1.0, size=(n, h, w)), 0) * 2).astype(np.float32) / 2


@given(
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    big=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    offset=st.integers(0, 50),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_torch_active_pixels_equal_numpy_pixel_for_pixel(h, w, big, offset, seed) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    maps = _tied_maps(rng, n, h, w)
    maps[::3] = rng.normal(size=(len(maps[::3]), h, w)).astype(np.float32)  # and some values off the grid
    upsampler = BilinearUpsampler((h, w), big)
    thresholds = np.quantile(maps, rng.uniform(0.3, 0.95), axis=(1, 2)).astype(np.float32)
    units = rng.integers(0, 4, n)
    images = rng.integers(0, 100, n)
    tie_cuts = np.where(rng.uniform(size=4) < 0.7, rng.uniform(size=4), -1.0)
    expected = active_pixels(upsampler, maps, thresholds, units, images, tie_cuts, offset)
    found = TorchActivePixels("cpu")(upsampler, maps, thresholds, units, images, tie_cuts, offset)

    def as_set(pairs):
        return set(zip(*(p.tolist() for p in pairs), strict=True))

    assert as_set(found) == as_set(expected)
    assert len(found[0]) == len(expected[0])
    np.testing.assert_array_equal(TorchActivePixels("cpu").upsample(upsampler, torch.from_numpy(maps)),
                                  upsampler(maps))  # fmt: skip


@given(
    n_units=st.integers(1, 7),
    cuts=st.lists(st.integers(1, 6), max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_counting_units_in_blocks_equals_counting_them_together(n_units, cuts, seed) -> None:
    from logiclens.core.masks import UnitMasks
    from logiclens.vision.activations.ties import tie_cuts

    rng = np.random.default_rng(seed)
    activations = _tied_maps(rng, 10 * n_units, 3, 3).reshape(10, n_units, 3, 3)
    signatures = rng.integers(0, 5, size=(10, 7, 7)).astype(np.int32)
    thresholds = np.quantile(activations, 0.8, axis=(0, 2, 3)).astype(np.float32)
    above = (activations > thresholds[None, :, None, None]).sum(axis=(0, 2, 3))
    cut = tie_cuts(activations, thresholds, above, 0.2, BilinearUpsampler((3, 3), (7, 7)))
    variants = [np.arange(10), rng.permutation(10), np.where(rng.uniform(size=10) < 0.5, -1, np.arange(10))]
    whole = count_unit_masks(activations, signatures, thresholds, 5, variants, cut, batch_size=4)
    bounds = [0, *sorted({c for c in cuts if c < n_units}), n_units]
    blocks = [range(a, b) for a, b in itertools.pairwise(bounds)]
    parts = [count_unit_masks(activations, signatures, thresholds, 5, variants, cut, 3, units=b) for b in blocks]
    torch_counts = count_unit_masks(activations, signatures, thresholds, 5, variants, cut, 4,
                                    active=TorchActivePixels("cpu"))  # fmt: skip
    for v, expected in enumerate(whole):
        stacked = UnitMasks.stack([part[v] for part in parts])
        assert stacked.names == expected.names
        assert (stacked.counts != expected.counts).nnz == 0
        assert (torch_counts[v].counts != expected.counts).nnz == 0


# ---------------------------------------------------------------------------- in a run
def _settings(**overrides) -> DissectionSettings:
    explainer = CompositionalExplainer(max_length=2, beam_size=5, holdout=0.25, n_null=5, verbose=0,
                                       n_jobs=overrides.pop("n_jobs", 1))  # fmt: skip
    values = {"layers": ["relu"], "threshold_mode": "layer", "top_fraction": 0.2, "batch_size": 4}
    return DissectionSettings(**{**values, **overrides}, explainer=explainer)


def test_masks_in_local_processes_and_counted_in_torch_write_the_same_files(tmp_path) -> None:
    probe = PlantedProbe(n_images=16)
    serial = dissect(planted_model(), probe, tmp_path / "serial", _settings(), verbose=0)
    runs = {"blocks": _settings(n_jobs=2), "torch": _settings(count_device="cpu")}
    for name, settings_ in runs.items():
        assert serial.equals(dissect(planted_model(), probe, tmp_path / name, settings_, verbose=0)), name
        for file in ("units_relu.npz", "results.csv"):
            assert (tmp_path / name / file).read_bytes() == (tmp_path / "serial" / file).read_bytes(), (name, file)


def test_autocast_records_under_the_precision_and_keys_the_record(tmp_path) -> None:
    plain = dissect(planted_model(), PlantedProbe(), tmp_path / "run", _settings(), verbose=0)
    stamp = (tmp_path / "run" / "record" / "relu.npy").stat().st_mtime_ns
    cast = dissect(planted_model(), PlantedProbe(), tmp_path / "run", _settings(autocast="bfloat16"), verbose=0)
    assert (tmp_path / "run" / "record" / "relu.npy").stat().st_mtime_ns != stamp  # recorded again
    assert (cast.formula == plain.formula).all()  # 0/1 inputs and weights: exact in bfloat16


def test_bad_execution_settings_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="autocast must be one of"):
        _settings(autocast="float8")
    with pytest.raises(ValueError, match="activation ranges are counted in NumPy"):
        _settings(count_device="cpu", ranges=3)
    with pytest.raises(ValueError, match="shard_images"):
        _settings(shard_images=0)
    with pytest.raises(ValueError, match="needs backend 'ray'"):
        _settings(ray_address="10.0.0.1:6379")
    with pytest.raises(ValueError, match="--count-device cuda: no CUDA"):
        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
        dissect(planted_model(), PlantedProbe(), tmp_path / "run", _settings(count_device="cuda"), verbose=0)
    assert not (tmp_path / "run").exists()
