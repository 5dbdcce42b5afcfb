"""The HTML report: files, report.json, escaping, masks as the pipeline computes them, and a headless browser."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logiclens import CompositionalExplainer
from logiclens.cli.report import register as register_command
from logiclens.core.formula import parse
from logiclens.report import ProbeUnavailableError, ReportError, build_report, probe_from_config
from logiclens.report.examples import example_masks, top_examples
from logiclens.report.render import environment, formula_tokens
from logiclens.testing import PlantedProbe, planted_model
from logiclens.vision.dissect import DissectionSettings, count_unit_masks, dissect

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")

SCRIPT = "<script>alert(1)</script>"
CLOSER = "b</script><!--"
#: concept names as a downloaded dataset might spell them; units 0/1/3 use SCRIPT, 2 uses CLOSER
NAMES = ["indoor", "outdoor", SCRIPT, CLOSER, 'c & "q"']
CATEGORIES = ["scene", "scene", "<b>obj</b>", "object", "object"]
TOP = 4


class HostileProbe(PlantedProbe):
    """The planted probe with concept names and categories full of HTML."""

    def __init__(self, n_images: int = 24) -> None:
        super().__init__(n_images=n_images)
        self.concept_names = list(NAMES)
        self.concept_categories = list(CATEGORIES)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report") / "run"
    settings = DissectionSettings(
        layers=["relu"], threshold_mode="fixed", fixed_threshold=0.0, batch_size=8,
        explainer=CompositionalExplainer(max_length=3, beam_size=10, n_null=2),
    )  # fmt: skip
    dissect(planted_model(), HostileProbe(), folder, settings, verbose=0)
    return folder


@pytest.fixture(scope="module")
def report(run: Path) -> Path:
    return build_report(run, probe=HostileProbe(), top_examples=TOP, verbose=0)


def _json(report: Path) -> dict:
    return json.loads((report / "report.json").read_text(encoding="utf-8"))


def _local_references(html: str) -> set[str]:
    return set(re.findall(r'(?:src|href)="([^"#][^"]*)"', html))


def test_report_writes_a_self_contained_site(run: Path, report: Path) -> None:
    assert report == run / "report"
    html = (report / "index.html").read_text(encoding="utf-8")
    references = _local_references(html)
    assert references, "the page references its assets"
    for reference in references:
        assert "://" not in reference and not reference.startswith("//"), f"non-local reference {reference}"
        assert (report / reference).is_file(), f"missing {reference}"
    for name in ("static/report.css", "static/report.js", "report.json"):
        assert name in references
    plots = sorted(p.name for p in (report / "plots").iterdir())
    assert plots == [
        "relu-beam_gaps.png",  # every run has the certificate columns
        "relu-iou_by_category.png",
        "relu-iou_by_length.png",
        "relu-units_by_category.png",
    ]
    for plot in (report / "plots").iterdir():
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.count('<article class="card"') == 4
    assert html.count('loading="lazy"') == 2 * sum(
        len(u["examples"]["items"]) for u in _json(report)["layers"][0]["units"]
    )


def test_report_json_holds_what_the_page_shows(run: Path, report: Path) -> None:
    data = _json(report)
    results = pd.read_csv(run / "results.csv", keep_default_na=False)
    assert data["format"] == "logiclens-report"
    assert data["run"]["config"]["probe"]["kind"] == "planted"
    assert data["format_version"] == 2
    assert data["examples"] == {
        "kind": "image", "level": None, "available": True, "note": "", "per_unit": TOP, "n_examples": 24,
    }  # fmt: skip
    (layer,) = data["layers"]
    assert layer["name"] == "relu" and layer["n_units"] == 4
    assert layer["summary"]["units"] == 4
    assert layer["summary"]["explained"] == int((results.iou > 0.04).sum()) == 4
    assert layer["summary"]["mean_iou"] == pytest.approx(results.iou.mean())
    lengths = {row["length"]: row["units"] for row in layer["by_length"]}
    assert lengths == results.groupby("length").size().to_dict()
    assert {row["category"] for row in layer["by_category"]} <= set(CATEGORIES)
    assert layer["iou_by_length"]["source"] == "best_by_length"
    assert set(layer["plots"]) == {"iou_by_length", "iou_by_category", "units_by_category", "beam_gaps"}
    for unit, row in zip(layer["units"], results.itertuples()):
        assert unit["formula"] == row.formula and unit["iou"] == pytest.approx(row.iou)
        assert unit["best_atomic"] == row.best_atomic and unit["threshold"] == 0.0
        examples = unit["examples"]
        assert examples["kind"] == "image" and 0 < len(examples["items"]) <= TOP
        activations = [e["activation"] for e in examples["items"]]
        assert activations == sorted(activations, reverse=True)
        for example in examples["items"]:
            assert (report / example["image"]).is_file() and (report / example["overlay"]).is_file()
            # the planted units compute their formulas exactly: the masks agree on every image
            assert example["iou"] == 1.0 and example["unit_pixels"] == example["formula_pixels"] > 0


def test_every_label_is_escaped(report: Path) -> None:
    html = (report / "index.html").read_text(encoding="utf-8")
    assert SCRIPT not in html and CLOSER not in html and "<b>obj</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;obj&lt;/b&gt;" in html
    assert "c &amp; \\&#34;q\\&#34;" in html or "c &amp; &#34;q&#34;" in html
    # the page's own three scripts: the class switch, the embedded data, report.js
    assert html.count("<script") == 3
    data = html.split('<script type="application/json" id="report-data">')[1].split("</script>")[0]
    assert "<" not in data and ">" not in data
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in data
    assert any(SCRIPT in unit["formula"] for unit in json.loads(data)["units"])


def test_report_without_the_probe_has_no_images(run: Path, tmp_path: Path) -> None:
    folder = build_report(run, out=tmp_path / "plain", verbose=0)  # "planted" cannot be reopened
    data = _json(folder)
    assert data["examples"]["available"] is False
    assert "planted" in data["examples"]["note"]
    assert not (folder / "images").exists() and not (folder / "overlays").exists()
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert 'id="no-examples"' in html and html.count('<article class="card"') == 4
    assert all(u["examples"] == {"kind": None, "items": []} for u in data["layers"][0]["units"])


def test_units_never_active_get_cards_without_images(tmp_path: Path) -> None:
    settings = DissectionSettings(
        layers=["relu"], threshold_mode="fixed", fixed_threshold=1.2, batch_size=8,
        explainer=CompositionalExplainer(max_length=3, beam_size=10, holdout=0.0, n_null=0),
    )  # fmt: skip
    results = dissect(planted_model(), PlantedProbe(), tmp_path / "run", settings, verbose=0)
    assert (results.status == "empty").sum() == 3  # only "b AND c" reaches 1.2
    folder = build_report(tmp_path / "run", probe=PlantedProbe(), verbose=0)
    units = _json(folder)["layers"][0]["units"]
    assert [len(u["examples"]["items"]) for u in units] == [0, 0, 5, 0]  # b AND c holds on five images
    assert [u["formula"] for u in units][:2] == ["", ""] and units[0]["iou"] is None
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert html.count("never active above its threshold") == 3
    assert _json(folder)["layers"][0]["summary"]["with_formula"] == 1


def test_unit_masks_are_counted_as_the_pipeline_counts_them() -> None:
    rng = np.random.default_rng(0)
    activations = rng.normal(size=(6, 3, 4, 5)).astype(np.float16)
    signatures = rng.integers(0, 9, size=(6, 16, 20)).astype(np.int32)
    thresholds = np.array([0.5, 1.2, -0.3])
    (expected,) = count_unit_masks(activations, signatures, thresholds, 9)
    units, images = np.divmod(np.arange(18), 6)
    masks = example_masks(activations, signatures, units, images, thresholds, dict.fromkeys(range(3)))
    counts = np.zeros((3, 9), np.int64)
    for unit, image, mask in zip(units, images, masks.unit):
        counts[unit] += np.bincount(signatures[image][mask], minlength=9)
    np.testing.assert_array_equal(counts, expected.counts.toarray())
    assert not masks.formula.any()
    union_empty = ~masks.unit.any(axis=(1, 2))
    assert np.isnan(masks.iou[union_empty]).all() and (masks.iou[~union_empty] == 0).all()


def test_formula_masks_follow_signatures() -> None:
    signatures = np.array([[[0, 1], [2, 3]]], np.int32)
    activations = np.full((1, 1, 2, 2), 2.0, np.float16)
    holds = {0: np.array([True, False, True, False])}
    masks = example_masks(activations, signatures, np.array([0]), np.array([0]), np.array([1.0]), holds)
    np.testing.assert_array_equal(masks.formula[0], [[True, False], [True, False]])
    assert masks.unit[0].all() and masks.iou[0] == 0.5


def test_top_images_rank_by_maximum_then_mean_and_skip_inactive_images() -> None:
    maxima = np.array([[1.0, 0.1], [3.0, 0.2], [3.0, 0.3], [0.5, 0.0]], np.float32)
    means = np.array([[0.1, 0.0], [0.2, 0.0], [0.4, 0.0], [0.0, 0.0]], np.float32)
    top = top_examples(maxima, means, np.array([0.7, 0.25]), 3)
    np.testing.assert_array_equal(top, [[2, 1, 0], [2, -1, -1]])
    ties = top_examples(maxima, means, np.array([3.0, 5.0]), 2, ties_broken=np.array([True, False]))
    np.testing.assert_array_equal(ties, [[2, 1], [-1, -1]])


def test_formula_tokens_join_back() -> None:
    text = '("tennis court" OR NEIGHBORS(a)) AND NOT "say \\"hi\\""'
    tokens = formula_tokens(text)
    assert "".join(piece for _, piece in tokens) == text
    assert [piece for kind, piece in tokens if kind == "op"] == ["OR", "NEIGHBORS", "AND", "NOT"]
    assert ("name", '"tennis court"') in tokens and ("name", '"say \\"hi\\""') in tokens
    assert parse(text)  # a real formula


def test_text_examples_render_escaped() -> None:
    """Text probes plug in through the card's ``examples`` kind."""
    hostile = "<img src=x onerror=alert(1)>"
    unit = {
        "anchor": "u-x-0", "layer": "x", "unit": "0", "formula": "<img>", "iou": 0.5, "length": 1,
        "examples": {"kind": "text", "items": [
            {"index": 3, "activation": 1.5, "formula_holds": True, "iou": 0.5, "heldout": False, "segments": [
                {"name": "<b>premise</b>", "tokens": ["a", hostile, "c"], "matched": [False, True, False],
                 "active": [False, True, True], "activation": [0.0, 2.0, 1.0], "before": 4, "after": 0},
                {"name": "hypothesis", "tokens": ["d"], "matched": [False], "active": None, "activation": None,
                 "before": 0, "after": 0},
            ]},
        ]},
    }  # fmt: skip
    page = environment().from_string('{% import "macros.html.j2" as m %}{{ m.card(unit, False, examples, 0.04) }}')
    html = page.render(unit=unit, examples={"available": True})
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>premise" not in html and "&lt;b&gt;premise&lt;/b&gt;" in html
    assert '<span class="tok unit formula" title="act 2.000">&lt;img' in html
    assert '<span class="tok unit" title="act 1.000">c</span>' in html and '<span class="tok">d</span>' in html
    assert "formula holds" in html and "token IoU 0.50" in html
    assert html.count('<span class="cut"') == 1 and 'title="4 tokens before"' in html


def test_best_by_length_drives_the_length_plot(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    table = pd.DataFrame({"unit": ["0", "1", "2", "3"], "1": [0.5, 0.2, np.nan, 0.1], "2": [0.4, 0.6, np.nan, 0.3]})
    table.to_csv(copy / "best_by_length_relu.csv", index=False)
    data = _json(build_report(copy, top_examples=0, verbose=0))
    curve = data["layers"][0]["iou_by_length"]
    assert curve["source"] == "best_by_length" and curve["lengths"] == [1, 2]
    assert curve["values"] == [[0.5, 0.2, 0.1], [0.5, 0.6, 0.3]]  # best up to each length; empty units left out
    assert data["examples"]["note"].startswith("images were turned off")


def test_rebuilding_replaces_only_a_report(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(run, out=out, top_examples=0, verbose=0)
    (out / "stale.txt").write_text("old")
    build_report(run, out=out, top_examples=0, verbose=0)
    assert not (out / "stale.txt").exists() and (out / "index.html").is_file()
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(ReportError, match="not a logiclens report"):
        build_report(run, out=foreign, top_examples=0, verbose=0)
    assert (foreign / "thesis.tex").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "site"]  # no staging folder left behind


def test_not_a_run_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no results\.csv"):
        build_report(tmp_path, verbose=0)
    with pytest.raises(ReportError, match="no such run directory"):
        build_report(tmp_path / "missing", verbose=0)
    assert issubclass(ReportError, ValueError)  # the command line prints it on one line, exit status 2


def test_report_command(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="logiclens")
    register_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", str(run), "--out", str(tmp_path / "r"), "--top-examples", "2", "-q"])
    assert args.handler(args) == 0
    assert f"report: {tmp_path / 'r' / 'index.html'}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["report", str(run), "--top-images", "-1"])
    assert stop.value.code == 2


def test_probe_from_config() -> None:
    from logiclens.vision.probes.shapes import ShapesProbe

    shapes = ShapesProbe(n_images=3, image_size=32, mask_size=16)
    stored = json.loads(json.dumps({"probe": shapes.config()}))
    reopened = probe_from_config(stored)
    assert isinstance(reopened, ShapesProbe) and reopened.config() == shapes.config()
    np.testing.assert_array_equal(reopened.load(2)[0], shapes.load(2)[0])
    live = PlantedProbe()
    assert probe_from_config({"probe": live.config()}, live) is live
    with pytest.raises(ProbeUnavailableError, match="'planted' cannot be reopened"):
        probe_from_config({"probe": live.config()})
    with pytest.raises(ProbeUnavailableError, match="changed since the run"):
        probe_from_config({"probe": {**stored["probe"], "version": -1}})
    with pytest.raises(ProbeUnavailableError, match="cannot be reopened"):
        probe_from_config({"probe": {"kind": "stamps", "n_images": 2, "seed": 0, "root": "/nonexistent/stamps",
                                     "image_size": [224, 224], "mask_size": [112, 112]}})  # fmt: skip
    with pytest.raises(ProbeUnavailableError, match="does not describe"):
        probe_from_config({})


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report: Path, render_in_chromium) -> None:
    dom, console = render_in_chromium(report / "index.html")
    assert not console, console
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-ready="true"' in root and "data-error" not in root
    assert 'data-visible-cards="4"' in root
    assert dom.count('<article class="card"') == 4
    # the shown cards' images were taken out of their templates, escaped text stayed text
    assert dom.count('class="overlay"') >= 4
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and SCRIPT not in dom
    assert dom.count("<script") == 3


def test_certified_search_section_shows_misses_side_by_side_escaped(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    results = pd.read_csv(copy / "results.csv", dtype={"unit": str})
    assert {"upper_bound", "beam_gap", "ceiling", "certificate", "beam_formula", "beam_iou"} <= set(results)
    with_formula = results.index[results.formula.notna()]
    first = with_formula[0]
    results.loc[first, "beam_formula"] = f"{SCRIPT} OR {CLOSER}"  # a beam answer the optimum beat
    results.loc[first, "beam_iou"] = results.loc[first, "iou"] - 0.25
    results.loc[first, "upper_bound"] = results.loc[first, "iou"]
    results.loc[first, "certificate"] = "optimal"
    results.to_csv(copy / "results.csv", index=False)
    folder = build_report(copy, top_examples=0, verbose=0)
    data = _json(folder)
    layer = data["layers"][0]
    assert [row["unit"] for row in layer["beam_misses"]] == [results.unit[first]]
    assert layer["beam_misses"][0]["gain"] == pytest.approx(0.25)
    assert layer["summary"]["beam_missed"] == 1 and "mean_ceiling" in layer["summary"]
    assert (folder / layer["plots"]["beam_gaps"]).is_file()
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert 'id="certified"' in html and "Beam below optimum" in html and "Mean ceiling" in html
    assert SCRIPT not in html and CLOSER not in html
    section = html.split('id="certified"')[1].split('<section id="units">')[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; OR b&lt;/script&gt;&lt;!--" in section
