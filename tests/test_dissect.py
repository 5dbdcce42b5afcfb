"""End-to-end dissection on a hand-set model whose units compute known formulas."""

import json

import numpy as np
import pandas as pd
import pytest

from logiclens import CompositionalExplainer, canonical, parse
from logiclens.testing import PLANTED_UNIT_FORMULAS, PlantedProbe, planted_model
from logiclens.vision.dissect import DissectionSettings, dissect


def _settings(**overrides) -> DissectionSettings:
    values = {
        "layers": ["relu"],
        "threshold_mode": "fixed",
        "fixed_threshold": 0.0,
        "batch_size": 5,
        "checkpoint_seconds": 0.0,
    }
    search = {"max_length": 3, "beam_size": 10, "n_null": 20, "verbose": 0}
    search.update({key: overrides.pop(key) for key in ("holdout", "n_null", "alpha") if key in overrides})
    search.update(overrides.pop("search", {}))
    values.update(overrides)
    return DissectionSettings(**values, explainer=CompositionalExplainer(**search))


def test_planted_units_are_recovered_with_iou_one(tmp_path) -> None:
    results = dissect(planted_model(), PlantedProbe(), tmp_path / "run", _settings(), verbose=0)
    assert list(results.layer.unique()) == ["relu"]
    assert (results.iou == 1.0).all()
    found = [canonical(parse(f)) for f in results.formula]
    assert found == [canonical(parse(f)) for f in PLANTED_UNIT_FORMULAS]
    assert list(results.threshold) == [0.0] * 4
    written = pd.read_csv(tmp_path / "run" / "results.csv")
    assert {"layer", "unit", "formula", "iou", "length", "threshold", "best_atomic", "best_atomic_iou"} <= set(
        written.columns
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["probe"]["kind"] == "planted"
    assert config["settings"]["threshold_mode"] == "fixed"


def test_quantile_thresholds_run_end_to_end(tmp_path) -> None:
    settings = _settings(threshold_mode="layer", top_fraction=0.05)
    results = dissect(planted_model(), PlantedProbe(), tmp_path / "run", settings, verbose=0)
    activations = np.load(tmp_path / "run" / "record" / "relu.npy").astype(np.float64)
    expected = np.quantile(activations.transpose(1, 0, 2, 3).reshape(4, -1), 0.95, axis=1)
    np.testing.assert_array_equal(results.threshold.to_numpy(), expected)
    assert results.status.isin(["ok", "empty", "no_match"]).all()


def test_interrupted_recording_resumes_to_the_same_result(tmp_path) -> None:
    reference = dissect(planted_model(), PlantedProbe(), tmp_path / "whole", _settings(), verbose=0)
    with pytest.raises(KeyboardInterrupt):
        dissect(planted_model(), PlantedProbe(fail_at=13), tmp_path / "resumed", _settings(), verbose=0)
    manifest = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert manifest["record"]["completed"] == 10  # two batches of 5 were checkpointed
    assert not manifest["record"]["done"]
    resumed = dissect(planted_model(), PlantedProbe(), tmp_path / "resumed", _settings(), verbose=0)
    pd.testing.assert_frame_equal(resumed, reference)
    for name in ("relu.npy", "signatures.npy"):
        whole = np.load(tmp_path / "whole" / "record" / name)
        again = np.load(tmp_path / "resumed" / "record" / name)
        np.testing.assert_array_equal(whole, again)


def test_finished_stages_are_reused_and_changed_settings_recompute(tmp_path) -> None:
    run = tmp_path / "run"
    dissect(planted_model(), PlantedProbe(), run, _settings(), verbose=0)
    stamp = (run / "record" / "relu.npy").stat().st_mtime_ns
    again = dissect(planted_model(), PlantedProbe(), run, _settings(search={"max_length": 1}), verbose=0)
    assert (run / "record" / "relu.npy").stat().st_mtime_ns == stamp
    assert (again.length == 1).all()
    other_probe = dissect(planted_model(), PlantedProbe(seed=5), run, _settings(), verbose=0)
    assert (run / "record" / "relu.npy").stat().st_mtime_ns != stamp
    assert (other_probe.iou == 1.0).all()


def test_bad_settings_and_layers(tmp_path) -> None:
    with pytest.raises(ValueError, match="threshold_mode"):
        _settings(threshold_mode="median")
    with pytest.raises(ValueError, match="no layer"):
        dissect(planted_model(), PlantedProbe(), tmp_path / "run", _settings(layers=["conv9"]), verbose=0)


def test_split_null_and_heldout_columns(tmp_path) -> None:
    settings = _settings(holdout=0.25, n_null=8)
    results = dissect(planted_model(), PlantedProbe(n_images=40), tmp_path / "run", settings, verbose=0)
    assert (results.iou == 1.0).all() and (results.heldout_iou == 1.0).all()
    assert results.significant.all()
    split = np.load(tmp_path / "run" / "split.npz")
    assert not set(split["search"]) & set(split["heldout"])
    assert len(split["heldout"]) == 10 and split["variants"].shape == (10, 40)
    from logiclens.runs import summarize

    summary = summarize(results)
    assert int(summary.loc["relu", "significant"]) == 4
    assert summary.loc["relu", "significant_heldout_iou"] == 1.0


def test_count_variants_equal_separate_counts() -> None:
    from logiclens import ConceptSet
    from logiclens.vision.dissect import count_unit_masks

    rng = np.random.default_rng(4)
    n_images = 12
    activations = rng.normal(size=(n_images, 3, 3, 3)).astype(np.float32)
    labels = rng.integers(-1, 5, size=(n_images * 36, 2))
    concepts = ConceptSet.from_labels(labels, list("abcde"))
    signatures = concepts.position_signatures.reshape(n_images, 6, 6)
    thresholds = np.quantile(activations, 0.7, axis=(0, 2, 3))
    held = np.full(n_images, -1)
    held[[2, 5, 7]] = [2, 5, 7]
    permuted = np.full(n_images, -1)
    permuted[[0, 1, 3]] = [3, 0, 1]
    variants = count_unit_masks(
        activations, signatures, thresholds, concepts.n_signatures, [held, permuted], batch_size=5
    )
    alone = count_unit_masks(activations[[2, 5, 7]], signatures[[2, 5, 7]], thresholds, concepts.n_signatures)[0]
    assert (variants[0].counts != alone.counts).nnz == 0
    shuffled = count_unit_masks(activations[[0, 1, 3]], signatures[[3, 0, 1]], thresholds, concepts.n_signatures)[0]
    assert (variants[1].counts != shuffled.counts).nnz == 0
