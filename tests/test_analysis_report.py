"""The report's analysis section: shown where a run was analysed, every label escaped, renders in Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from logiclens.analysis import AnalysisSettings, CopyPasteSettings, analyze
from logiclens.explain.compositional import CompositionalExplainer
from logiclens.report import build_report
from logiclens.testing import LabelledPlantedProbe, planted_classifier
from logiclens.vision.dissect import DissectionSettings, dissect

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")

SCRIPT = "<script>alert(1)</script>"
NAMES = ["indoor", "outdoor", SCRIPT, "b & <i>", 'c "q"']


class HostileLabelledProbe(LabelledPlantedProbe):
    def __init__(self) -> None:
        super().__init__(n_images=40, seed=5)
        self.concept_names = list(NAMES)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("analysis") / "run"
    probe, model = HostileLabelledProbe(), planted_classifier()
    model.class_names = [f"{SCRIPT}class", "b&c", "other"]
    settings = DissectionSettings(["relu"], CompositionalExplainer(max_length=2, holdout=0.3, n_null=0, verbose=0))
    dissect(model, probe, folder, settings, verbose=0)
    options = CopyPasteSettings(classes=[0], n_units=1, n_hosts=6, n_boot=100)
    analyze(folder, AnalysisSettings(copy_paste=options, gallery=2), model=model, probe=probe, verbose=0)
    return build_report(folder, probe=probe, top_examples=2, verbose=0)


def test_the_analysis_section_is_escaped_and_complete(report: Path) -> None:
    html = (report / "index.html").read_text(encoding="utf-8")
    assert 'id="analysis"' in html and 'href="#analysis"' in html
    tables = ("analysis-correlations", "analysis-contributions", "analysis-unit-classes", "analysis-copy-paste",
              "analysis-gallery")  # fmt: skip
    for table in tables:
        assert f'id="{table}"' in html
    assert SCRIPT not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;class" in html
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))["analysis"]
    assert data["n_labelled"] > 0 and data["contributions"][0]["positive"][0]["unit"] == 0
    assert data["copy_paste"][0]["beats_control"] is True
    units = {u["unit"]: u for u in data["unit_classes"]}
    assert units[0]["positive"][0]["class_name"] == f"{SCRIPT}class"  # unit 0 drives class 0 (escaped above)
    for item in data["gallery"]:
        assert (report / item["before_image"]).is_file() and (report / item["after_image"]).is_file()
    for path in data["plots"].values():
        assert (report / path).is_file()


def test_the_analysis_section_renders_in_headless_chromium(report: Path, render_in_chromium) -> None:
    dom, console = render_in_chromium(report / "index.html")
    assert not console, console
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-ready="true"' in root and "data-error" not in root
    assert 'id="analysis-gallery"' in dom and 'id="analysis-unit-classes"' in dom and SCRIPT not in dom
    rows = re.search(r'id="analysis-unit-classes".*?</table>', dom, re.S).group(0)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;class" in rows
