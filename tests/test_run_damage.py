"""Runs verify what they reuse: damaged stage outputs are noticed, recomputed, and the run ends as if undamaged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from logiclens import CompositionalExplainer
from logiclens.runs import layout
from logiclens.testing import PlantedProbe, planted_model
from logiclens.vision.dissect import DissectionSettings, dissect

LAYER = "relu"
#: every file a finished run holds, and the stage that writes it
OUTPUTS = {
    layout.record_file(LAYER): "record",
    layout.SIGNATURES: "record",
    layout.CONCEPTS: "record",
    layout.SPLIT: "split",
    layout.thresholds_file(LAYER): f"thresholds:{LAYER}",
    layout.units_file(LAYER): f"masks:{LAYER}",
    layout.results_file(LAYER): f"search:{LAYER}",
    layout.top_formulas_file(LAYER): f"search:{LAYER}",
    layout.best_by_length_file(LAYER): f"search:{LAYER}",
}
FINAL = [*OUTPUTS, layout.RESULTS]


def _settings(threshold: float = 0.0) -> DissectionSettings:
    explainer = CompositionalExplainer(max_length=2, holdout=0.25, n_null=3, verbose=0)
    return DissectionSettings(
        layers=[LAYER], explainer=explainer, threshold_mode="fixed", fixed_threshold=threshold, batch_size=5,
        checkpoint_seconds=0.0,
    )  # fmt: skip


def _run(folder: Path, threshold: float = 0.0) -> None:
    dissect(planted_model(), PlantedProbe(n_images=16), folder, _settings(threshold), verbose=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("damage") / "reference"
    _run(folder)
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FINAL}


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # edit in place: same size, one byte changed near the end (past any header)
        at = len(data) - 3
        path.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])


@pytest.mark.parametrize("how", ["delete", "truncate", "edit"])
@pytest.mark.parametrize("name", list(OUTPUTS))
def test_a_damaged_output_is_recomputed_and_the_run_ends_as_if_undamaged(
    reference: Path, tmp_path: Path, name: str, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    _damage(run / name, how)
    _run(run)
    err = capsys.readouterr().err
    assert f"recomputing stage {OUTPUTS[name]}" in err and name in err
    assert len([line for line in err.splitlines() if "recomputing" in line]) >= 1
    assert _snapshot(run) == _snapshot(reference)


def test_a_rerun_that_changes_nothing_rewrites_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    _run(run, threshold=1.2)  # three of the four units are never active: empty rows, missing integers
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    _run(run, threshold=1.2)
    after = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    assert after == before
    assert "recomputing" not in capsys.readouterr().err


def test_a_damaged_manifest_recomputes_everything(reference: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / "manifest.json").write_text("{not json")
    _run(run)
    assert "manifest.json is damaged" in capsys.readouterr().err
    assert _snapshot(run) == _snapshot(reference)


def test_an_interrupted_recording_with_truncated_files_starts_over(reference: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        dissect(planted_model(), PlantedProbe(n_images=16, fail_at=9), run, _settings(), verbose=0)
    _damage(run / layout.record_file(LAYER), "truncate")
    _run(run)
    assert _snapshot(run) == _snapshot(reference)


@pytest.mark.parametrize("verify", ["stat", "full"])
def test_an_edited_probe_file_is_noticed(tmp_path: Path, verify: str) -> None:
    """A folder probe's fingerprint changes when an image is rewritten: by modification time, or by content."""
    pytest.importorskip("PIL")
    from logiclens.vision.probes.segmentation import SegmentationFolderProbe
    from test_cli_dissect import _write_segmentation_folder

    folder = _write_segmentation_folder(tmp_path / "probe", PlantedProbe(n_images=4))
    before = SegmentationFolderProbe(folder, image_size=(16, 16), verify=verify).fingerprint()
    assert SegmentationFolderProbe(folder, image_size=(16, 16), verify=verify).fingerprint() == before
    image = folder / "images" / "img001.png"
    data = bytearray(image.read_bytes())
    stat = image.stat()
    image.write_bytes(bytes(data))  # same bytes, new modification time
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = SegmentationFolderProbe(folder, image_size=(16, 16), verify=verify).fingerprint()
    assert (touched != before) if verify == "stat" else (touched == before)  # content unchanged
    data[-20] ^= 0xFF  # an edit of the same size, its time put back
    image.write_bytes(bytes(data))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited = SegmentationFolderProbe(folder, image_size=(16, 16), verify=verify).fingerprint()
    assert (edited == before) if verify == "stat" else (edited != before)
