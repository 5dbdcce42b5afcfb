"""The HTML report of a run dissected with activation ranges: one card per range, masks of the range."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from logiclens import CompositionalExplainer, canonical, parse
from logiclens.report import ReportError, build_report
from logiclens.report.examples import example_masks
from logiclens.runs.reading import load_run
from logiclens.testing import PlantedProbe, planted_model
from logiclens.vision.activations.upsample import BilinearUpsampler
from logiclens.vision.dissect import DissectionSettings, dissect

torch = pytest.importorskip("torch")
pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ranged") / "run"
    model = planted_model()
    with torch.no_grad():  # unit 0 = a + 2 b: 1 on a only, 2 on b only, 3 on both
        model.module.conv.weight[0] = torch.tensor([1.0, 2.0, 0.0]).reshape(3, 1, 1)
    explainer = CompositionalExplainer(max_length=3, beam_size=10, n_null=3, holdout=0.25, verbose=0)
    settings = DissectionSettings(
        layers=["relu"], threshold_mode="fixed", batch_size=8, checkpoint_seconds=0.0, explainer=explainer, ranges=3
    )
    dissect(model, PlantedProbe(), folder, settings, verbose=0)
    return folder


@pytest.fixture(scope="module")
def report(run: Path) -> Path:
    return build_report(run, probe=PlantedProbe(), top_examples=4, verbose=0)


def test_each_range_is_a_unit_of_the_report(run: Path, report: Path) -> None:
    layer = load_run(run).layers[0]
    assert list(layer.row_channels) == [u for u in range(4) for _ in range(3)]
    units = json.loads((report / "report.json").read_text(encoding="utf-8"))["layers"][0]["units"]
    assert len(units) == 12
    first = units[:3]
    assert [u["range_index"] for u in first] == [0, 1, 2]
    assert [u["range_low"] for u in first] == [1.0, 2.0, 3.0] == [u["range_high"] for u in first]
    # each range's examples are masked with the range: its planted formula matches them exactly
    assert [canonical(parse(u["formula"])) for u in first] == [
        canonical(parse(f)) for f in ("a AND NOT b", "b AND NOT a", "a AND b")
    ]
    for unit in first:
        items = unit["examples"]["items"]
        assert items and all(item["iou"] == 1.0 for item in items)
        assert all(item["activation"] == unit["range_high"] for item in items)  # largest value in the range
    html = (report / "index.html").read_text(encoding="utf-8")
    assert ">unit 0 · range 1<" in html and "<dt>range</dt><dd>[2.0000, 2.0000]</dd>" in html
    assert 'data-key="range_low"' in html


def test_range_masks_are_the_pixels_in_the_range() -> None:
    rng = np.random.default_rng(0)
    activations = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)
    signatures = rng.integers(0, 3, size=(3, 9, 9))
    channels = np.array([0, 0, 1])
    low, high = np.array([-9.0, 0.0, -0.5]), np.array([-0.1, 9.0, 0.5])
    units, images = np.array([0, 1, 2, 1]), np.array([2, 0, 1, 1])
    masks = example_masks(
        activations, signatures, units, images, np.zeros(3), {0: None, 1: None, 2: None}, None, channels, (low, high)
    )
    upsampler = BilinearUpsampler((4, 4), (9, 9))
    for i, (unit, image) in enumerate(zip(units, images)):
        values = upsampler(activations[image : image + 1, channels[unit]])[0]
        expected = (values >= np.float32(low[unit])) & (values <= np.float32(high[unit]))
        np.testing.assert_array_equal(masks.unit[i], expected)


def test_ranged_run_without_its_ranges_is_a_one_line_error(run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    stored = next(copy.glob("thresholds_*.npz"))
    data = dict(np.load(stored))
    del data["range_low"]
    np.savez(stored, **data)
    with pytest.raises(ReportError, match=r"no activation ranges .* ranged layer 'relu'"):
        build_report(copy, probe=PlantedProbe(), verbose=0)
    assert not (copy / "report").exists()


@pytest.mark.slow
def test_ranged_report_renders_in_headless_chromium(report: Path, render_in_chromium) -> None:
    dom, console = render_in_chromium(report / "index.html")
    assert not console, console
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-ready="true"' in root and "data-error" not in root
    assert dom.count('<tr data-anchor="u-relu-') == 12  # one table row per range
    assert "unit 0 · range 2" in dom
    assert dom.count('class="overlay"') >= 3


def test_range_statistics_count_positions_in_each_range() -> None:
    from logiclens.report.examples import range_statistics

    rng = np.random.default_rng(1)
    activations = rng.normal(size=(5, 2, 3, 3)).astype(np.float32)
    channels, low, high = np.array([1, 0, 1]), np.array([-1.0, 0.0, 5.0]), np.array([0.5, 9.0, 6.0])
    inside, largest = range_statistics(activations, channels, low, high, batch_size=2)
    for row, (c, lo, hi) in enumerate(zip(channels, low, high)):
        values = activations[:, c].reshape(5, -1)
        holds = (values >= lo) & (values <= hi)
        np.testing.assert_array_equal(inside[:, row], holds.sum(axis=1))
        np.testing.assert_array_equal(largest[:, row], np.where(holds, values, -np.inf).max(axis=1))
    assert (inside[:, 2] == 0).all() and np.isneginf(largest[:, 2]).all()
