"""Code clusters as units in the vision dissection (issue 15, item 2)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from logiclens import CompositionalExplainer
from logiclens.cli import main
from logiclens.polytope.codes import PolytopeCodes
from logiclens.polytope.position_units import RegionUnitSettings, cluster_position_codes, position_families
from logiclens.testing import PlantedProbe, planted_model
from logiclens.vision.dissect import DissectionSettings, dissect


def test_code_clusters_of_the_planted_model_are_explained_exactly(tmp_path) -> None:
    settings = DissectionSettings(
        layers=["conv"], threshold_mode="fixed", batch_size=8, units="code-clusters",
        regions=RegionUnitSettings(n_clusters=6, min_cluster_size=10, n_components=3),
        explainer=CompositionalExplainer(max_length=3, n_null=3, verbose=0),
    )  # fmt: skip
    dissect(planted_model(), PlantedProbe(), tmp_path / "run", settings, verbose=0)
    regions = pd.read_csv(tmp_path / "run" / "regions_conv.csv")
    assert {"code clusters", "activation clusters", "PCA directions", "NMF directions", "random directions",
            "random subsets"} == set(regions.family)  # fmt: skip
    clusters = regions[regions.family == "code clusters"]
    # the planted units' codes are unions of concept regions: small clusters are explained exactly
    assert (clusters[clusters["size"] < 1000].iou > 0.9).all()
    assert {"heldout_iou", "p_value", "significant"} <= set(regions.columns)
    comparison = pd.read_csv(tmp_path / "run" / "comparison_conv.csv")
    assert {"neurons", "code clusters", "random subsets"} <= set(comparison.family)
    chance = comparison[comparison.family == "code clusters"].chance_iou
    assert (comparison[comparison.family == "code clusters"].median_iou > chance).all()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["codes:conv"]["nonlinearity"] == "relu"


def _region_settings(units: str = "code-clusters") -> DissectionSettings:
    return DissectionSettings(
        layers=["conv"], threshold_mode="fixed", batch_size=4, units=units, checkpoint_seconds=0.0,
        regions=RegionUnitSettings(n_clusters=4, min_cluster_size=10, n_components=2),
        explainer=CompositionalExplainer(max_length=1, n_null=0, verbose=0),
    )  # fmt: skip


def test_codes_are_recorded_in_the_forward_pass_of_the_activations(tmp_path) -> None:
    import torch

    from logiclens.polytope.hooked import record_codes

    model = planted_model()
    batches: list[int] = []
    model.module.register_forward_pre_hook(lambda module, inputs: batches.append(len(inputs[0])))
    dissect(model, PlantedProbe(), tmp_path / "run", _region_settings(), verbose=0)
    # one pass over the 24 images in batches of 4 (single images: finding the nonlinearity), no second pass
    assert [n for n in batches if n > 1] == [4] * 6
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["codes:conv"]["done"] and manifest["codes:conv"]["grid"] == [16, 16]
    assert manifest["codes:conv"]["bits"] == 4 and manifest["codes:conv"]["nonlinearity"] == "relu"
    one_pass = np.load(tmp_path / "run" / "record" / "codes_conv.npy")
    probe = PlantedProbe()
    inputs = (model.preprocess(torch.from_numpy(batch.images)) for batch in probe.batches(5))
    reference = record_codes(model.module, "conv", inputs, soft=False)
    np.testing.assert_array_equal(one_pass, reference.codes.words)
    # a run recorded for neurons first gets the same codes from a second pass
    dissect(model, PlantedProbe(), tmp_path / "again", _region_settings("neurons"), verbose=0)
    batches.clear()
    dissect(model, PlantedProbe(), tmp_path / "again", _region_settings(), verbose=0)
    # the record stage was reused: the codes' own pass (6 batches) and one to find the nonlinearity
    assert [n for n in batches if n > 1] == [4] * 7
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "record" / "codes_conv.npy"), one_pass)
    first = pd.read_csv(tmp_path / "run" / "regions_conv.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "regions_conv.csv"), first)


def test_an_interrupted_recording_resumes_its_codes(tmp_path) -> None:
    dissect(planted_model(), PlantedProbe(), tmp_path / "whole", _region_settings(), verbose=0)
    with pytest.raises(KeyboardInterrupt):
        dissect(planted_model(), PlantedProbe(fail_at=13), tmp_path / "resumed", _region_settings(), verbose=0)
    manifest = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert manifest["record"]["completed"] == 12 and "codes:conv" not in manifest
    model, batches = planted_model(), []
    model.module.register_forward_pre_hook(lambda module, inputs: batches.append(len(inputs[0])))
    dissect(model, PlantedProbe(), tmp_path / "resumed", _region_settings(), verbose=0)
    assert [n for n in batches if n > 1] == [4] * 3  # the last 12 images, with their codes: no second pass
    for name in ("record/codes_conv.npy", "record/conv.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "resumed" / name), np.load(tmp_path / "whole" / name))
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "resumed" / "regions_conv.csv"), pd.read_csv(tmp_path / "whole" / "regions_conv.csv")
    )


def test_clusters_are_assigned_beyond_the_fitted_sample() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 3000)
    x = rng.normal(size=(4, 40))[labels] + 0.3 * rng.normal(size=(3000, 40))
    codes = PolytopeCodes.from_bits(x > 0)
    for method in ("kmedoids", "hdbscan"):
        found, info = cluster_position_codes(codes, RegionUnitSettings(method, 4, 10, max_fit=300))
        assert info["fit_positions"] == 300 and info["n_clusters"] >= 4
        clustered = found >= 0
        assert clustered.mean() > 0.5  # HDBSCAN leaves noise
        purity = pd.crosstab(found[clustered], labels[clustered]).to_numpy().max(axis=1).sum() / clustered.sum()
        assert purity > 0.95
    families, _ = position_families(codes, x, RegionUnitSettings("kmedoids", 4, 10, max_fit=300, n_components=2))
    assert [f.name for f in families][:2] == ["code clusters", "activation clusters"]
    assert all(f.masks.shape[1] == 3000 for f in families)


def test_bad_region_settings_are_one_line_errors() -> None:
    codes = PolytopeCodes.from_bits(np.random.default_rng(0).random((50, 8)) > 0.5)
    with pytest.raises(ValueError, match="no code cluster of layer 'x' has at least 40 positions") as error:
        cluster_position_codes(codes, RegionUnitSettings(n_clusters=8, min_cluster_size=40), "x")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="fewer than the minimum cluster size"):
        cluster_position_codes(codes, RegionUnitSettings(min_cluster_size=60), "x")
    with pytest.raises(ValueError, match="min_cluster_size must be >= 2"):
        RegionUnitSettings(min_cluster_size=1)
    with pytest.raises(ValueError, match="units must be one of"):
        DissectionSettings(layers=["a"], units="polytopes")


def _cli(tmp_path, *extra: str) -> list[str]:
    return [
        "dissect", "--model", "logiclens.testing:tiny_conv_model", "--probe", "shapes", "--images", "30",
        "--layer", "conv2", "--units", "code-clusters", "--clusters", "6", "--min-cluster-size", "8",
        "--length", "2", "--null", "3", "--quiet", "--out", str(tmp_path / "run"), *extra,
    ]  # fmt: skip


def test_cli_code_clusters_on_a_small_shapes_run(tmp_path, capsys) -> None:
    assert main(_cli(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "size-matched comparison of conv2" in out
    run = tmp_path / "run"
    assert (run / "results.csv").is_file() and (run / "regions_conv2.csv").is_file()
    html = (run / "report" / "index.html").read_text()
    assert "comparison-conv2" in html and "code clusters" in html and "random subsets" in html
    report = json.loads((run / "report" / "report.json").read_text())
    assert report["layers"][0]["comparison"]


def test_cli_bad_code_cluster_settings(tmp_path, capsys) -> None:
    argv = _cli(tmp_path)
    argv[argv.index("conv2")] = "pool"
    assert main(argv) != 0
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "not followed by a nonlinearity" in error
    argv = _cli(tmp_path)
    argv[argv.index("--min-cluster-size") + 1] = "100000"
    assert main(argv) != 0
    assert "fewer than the minimum cluster size" in capsys.readouterr().err.strip().splitlines()[-1]
