"""Cards of region units (code clusters, activation clusters, directions) in the report (issue 15)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logiclens import CompositionalExplainer
from logiclens.core.concepts import ConceptSet
from logiclens.core.formula import parse
from logiclens.polytope.position_units import RegionUnitSettings
from logiclens.report import build_report
from logiclens.report.errors import ReportError
from logiclens.runs.region_masks import load_region_masks, save_region_masks
from logiclens.testing import PlantedProbe, planted_model
from logiclens.vision.dissect import DissectionSettings, dissect

SCRIPT = "<script>alert(1)</script>"
TOP = 3


class HostileProbe(PlantedProbe):
    """The planted probe with a concept name full of HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.concept_names = ["indoor", "outdoor", SCRIPT, "b", 'c & "q"']


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("regions") / "run"
    settings = DissectionSettings(
        layers=["conv"], threshold_mode="fixed", batch_size=8, units="code-clusters",
        regions=RegionUnitSettings(n_clusters=6, min_cluster_size=10, n_components=3),
        explainer=CompositionalExplainer(max_length=2, n_null=2, verbose=0),
    )  # fmt: skip
    dissect(planted_model(), HostileProbe(), folder, settings, verbose=0)
    return folder


@pytest.fixture(scope="module")
def report(run: Path) -> Path:
    return build_report(run, probe=HostileProbe(), top_examples=TOP, verbose=0)


def _layer(report: Path) -> dict:
    return json.loads((report / "report.json").read_text(encoding="utf-8"))["layers"][0]


def test_region_masks_are_the_units_of_the_regions_table(run: Path) -> None:
    regions = pd.read_csv(run / "regions_conv.csv", dtype={"unit": str})
    masks = load_region_masks(run / "region_masks_conv.npz")
    assert masks.units == list(regions.unit) and masks.grid == (16, 16)
    sizes = np.array([masks.mask(row).sum() for row in range(len(masks))])
    np.testing.assert_array_equal(sizes, regions["size"].to_numpy())
    clusters = np.flatnonzero(regions.family.to_numpy() == "code clusters")
    stacked = np.stack([masks.mask(int(row)) for row in clusters])
    assert stacked.sum(axis=0).max() == 1  # code clusters are disjoint


def test_region_cards_show_the_images_most_inside_the_unit(run: Path, report: Path) -> None:
    layer = _layer(report)
    cards = layer["region_units"]
    regions = pd.read_csv(run / "regions_conv.csv", dtype={"unit": str})
    assert len(cards) == (regions.family != "random subsets").sum() and layer["region_note"] == ""
    assert cards[0]["family"] == "code clusters"
    masks = load_region_masks(run / "region_masks_conv.npz")
    concepts = ConceptSet.load(run / "concepts.npz")
    signatures = np.load(run / "record" / "signatures.npy")
    h, w = masks.grid
    for card in cards:
        row = int(card["anchor"].rsplit("-", 1)[1])
        assert card["unit"] == regions.unit[row]
        share = masks.mask(row).reshape(-1, h * w).mean(axis=1)
        expected = sorted(np.flatnonzero(share > 0), key=lambda i: (-share[i], i))[:TOP]
        items = card["examples"]["items"]
        assert [e["index"] for e in items] == expected
        assert [e["activation"] for e in items] == pytest.approx(share[expected].tolist())
        holds = concepts.signature_mask(parse(card["formula"])) if card["formula"] else None
        for e in items:
            assert (report / e["image"]).is_file() and (report / e["overlay"]).is_file()
            formula_pixels = int(holds[signatures[e["index"]]].sum()) if holds is not None else 0
            assert e["formula_pixels"] == formula_pixels
            assert e["unit_pixels"] > 0  # a position of the region is inside the image's upsampled mask
    # the planted codes are unions of concept regions: the best code cluster matches its formula on its images
    best = max((c for c in cards if c["family"] == "code clusters"), key=lambda c: c["iou"])
    assert best["iou"] > 0.9 and all(e["iou"] > 0.5 for e in best["examples"]["items"])


def test_region_labels_are_escaped(run: Path, report: Path) -> None:
    html = (report / "index.html").read_text(encoding="utf-8")
    assert any(SCRIPT in (c["formula"] or "") for c in _layer(report)["region_units"])
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count('<article class="card" id="r-conv-') == len(_layer(report)["region_units"])


def test_damaged_or_missing_region_masks(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    masks = load_region_masks(copy / "region_masks_conv.npz")
    units = list(masks.units)
    units[0] = "renamed"
    dense = np.stack([masks.mask(row) for row in range(len(masks))])
    save_region_masks(copy / "region_masks_conv.npz", dense, units, masks.grid)
    with pytest.raises(ReportError, match=r"region_masks_conv\.npz: its units are not the rows of regions_conv"):
        build_report(copy, probe=HostileProbe(), top_examples=2, verbose=0)
    save_region_masks(copy / "region_masks_conv.npz", dense[:, :-256], masks.units, masks.grid)
    with pytest.raises(ReportError, match="does not cover the run's 24 images"):
        build_report(copy, probe=HostileProbe(), top_examples=2, verbose=0, out=tmp_path / "r2")
    (copy / "region_masks_conv.npz").unlink()  # a run made before region cards: cards without examples
    folder = build_report(copy, probe=HostileProbe(), top_examples=2, verbose=0, out=tmp_path / "r3")
    layer = _layer(folder)
    assert "region_masks_conv.npz" in layer["region_note"]
    assert all(not card["examples"]["items"] for card in layer["region_units"])
    assert "No examples: the run has no region_masks_conv.npz" in (folder / "index.html").read_text()


@pytest.mark.slow
def test_region_cards_open_from_a_link_in_headless_chromium(report: Path, render_in_chromium) -> None:
    dom, console = render_in_chromium(report / "index.html")
    assert not console, console
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-ready="true"' in root and "data-error" not in root
    closed = dom.split('id="region-cards-conv"')[1]
    with_examples = sum(1 for card in _layer(report)["region_units"] if card["examples"]["items"])
    assert closed.startswith(">") and closed.count('<template class="examples">') == with_examples > 0
    # a link to a region card (here: the page opened at its anchor) opens the cards and shows their images
    opener = report / "open.html"
    opener.write_text('<!DOCTYPE html><script>location.replace("index.html#r-conv-0");</script>', encoding="utf-8")
    dom, console = render_in_chromium(opener)
    assert not console, console
    assert re.search(r'<details class="region-cards" id="region-cards-conv" open', dom)
    cards = dom.split('id="region-cards-conv"')[1]
    assert '<template class="examples">' not in cards and cards.count('class="overlay"') >= TOP
    assert SCRIPT not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_text_region_cards_mark_the_tokens_of_the_unit(tmp_path: Path) -> None:
    from logiclens.text.pipeline import TextConceptSettings, TextSettings, explain_text

    words = ["dog", "cat", "runs", "sleeps", "the", "a"]
    rng = np.random.default_rng(0)
    texts = [f"{rng.choice(['the', 'a'])} {rng.choice(['dog', 'cat'])} {rng.choice(['runs', 'sleeps'])}"
             for _ in range(80)]  # fmt: skip
    data = tmp_path / "s.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    tokens = [w for t in texts for w in t.split()]
    centers = rng.normal(size=(len(words), 16)) * 2
    np.save(
        tmp_path / "pre.npy", np.stack([centers[words.index(w)] for w in tokens]) + 0.3 * rng.normal(size=(240, 16))
    )
    settings = TextSettings(
        level="token", concepts=TextConceptSettings(tokenizer="simple", tags=False), min_active=5,
        explainer=CompositionalExplainer(max_length=1, n_null=0, verbose=0), units="code-clusters",
        regions=RegionUnitSettings(n_clusters=6, min_cluster_size=10, n_components=2),
    )  # fmt: skip
    result = explain_text(data, activations=tmp_path / "pre.npy", settings=settings, out=tmp_path / "run")
    masks = load_region_masks(tmp_path / "run" / "region_masks_units.npz")
    assert masks.units == list(result.regions.unit) and masks.grid == ()
    np.testing.assert_array_equal(np.stack([masks.mask(r) for r in range(len(masks))]), result.region_masks)
    folder = build_report(tmp_path / "run", top_examples=2, verbose=0)
    cards = [c for c in _layer(folder)["region_units"] if c["family"] == "code clusters"]
    assert len(cards) == 6
    for card in cards:
        row = int(card["anchor"].rsplit("-", 1)[1])
        inside = masks.mask(row)
        word = card["formula"].split(":")[1]
        for example in card["examples"]["items"]:
            (segment,) = example["segments"]
            first = 3 * example["index"]
            assert segment["active"] == inside[first : first + 3].tolist()
            assert segment["matched"] == [t == word for t in segment["tokens"]]
            assert example["activation"] == pytest.approx(inside[first : first + 3].mean())
            assert example["iou"] == 1.0
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert 'id="region-cards-units"' in html and html.count('<article class="card" id="r-units-') == len(
        _layer(folder)["region_units"]
    )
