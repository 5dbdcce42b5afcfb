"""Bad input, faults and hostile files end in one line naming the culprit (exit status 2), never a traceback.

Each case is one of the trials of the hardening review (issue 16): options, files, models,
text records, problem files, a full disk and damaged reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from logiclens.cli import main

PLANTED = "logiclens.testing:planted_model"


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def failing_model():  # type: ignore[no-untyped-def]
    """A model whose forward pass fails on its third call (the shape check on one image, then batches 0..3, 4..7)."""
    import torch
    from torch import nn

    from logiclens.vision.models.base import ModelAdapter

    class Failing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.relu = nn.ReLU()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("shape mismatch in the user's code")
            return self.relu(x)

    return ModelAdapter(
        Failing(), "failing", input_size=(16, 16), mean=(0, 0, 0), std=(1, 1, 1), default_layers=["relu"]
    )


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["dissect", "--threshold", "nan"], "--threshold"),
        (["dissect", "--threshold", "inf"], "--threshold"),
        (["dissect", "--alpha", "nan"], "--alpha"),
        (["dissect", "--alpha", "5"], "--alpha"),
        (["dissect", "--quantile", "0"], "--quantile"),
        (["dissect", "--holdout", "1"], "--holdout"),
        (["dissect", "--null", "-1"], "--null"),
        (["dissect", "--length", "0"], "--length"),
        (["dissect", "--holdout-by", "pixel"], "--holdout-by"),
        (["text", "explain", "x.jsonl", "--activations", "a.npy", "--quantile", "nan"], "--quantile"),
    ],
)
def test_nonsense_options_are_refused_where_they_are_parsed(argv, culprit, tmp_path, capsys) -> None:
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert culprit in _error_line(capsys)
    assert not (tmp_path / "run").exists()


def _problem(tmp_path: Path, **arrays: np.ndarray) -> Path:
    base = {
        "n_positions": np.array(16),
        "concepts": np.packbits(np.eye(2, 16, dtype=bool), axis=1, bitorder="little"),
        "units": np.packbits(np.eye(1, 16, dtype=bool), axis=1, bitorder="little"),
        "concept_names": np.array(["a", "b"]),
    }
    base.update(arrays)
    path = tmp_path / "problem.npz"
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_search_validation_options_need_an_examples_array(tmp_path, capsys) -> None:
    path = _problem(tmp_path)
    assert main(["search", str(path), "--null", "5", "-q"]) == 2
    assert "'examples'" in _error_line(capsys)
    assert main(["search", str(path), "--alpha", "5", "-q"]) == 2
    assert "--alpha" in _error_line(capsys)
    assert main(["search", str(path), "--null", "-1", "-q"]) == 2
    assert "--null" in _error_line(capsys)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        # 197 positions, 200 bits set: three would be dropped silently
        (
            {
                "n_positions": np.array(197),
                "concepts": np.full((2, 25), 255, np.uint8),
                "units": np.full((1, 25), 255, np.uint8),
            },
            "6 bit(s) set beyond n_positions=197",
        ),
        # a CSR form that lists a position twice
        (
            {"units": None, "units_indptr": np.array([0, 3]), "units_indices": np.array([1, 4, 4])},
            "'units_indices' lists position 4 twice in row 0",
        ),
        # ten billion positions in CSR form: refused before anything is allocated
        (
            {
                "n_positions": np.array(10**10),
                "concepts": None,
                "units": None,
                "concepts_indptr": np.array([0, 1, 2]),
                "concepts_indices": np.array([0, 1]),
                "units_indptr": np.array([0, 1]),
                "units_indices": np.array([0]),
            },
            "n_positions=10,000,000,000 needs at least",
        ),
        # the wrong width for n_positions, seen from the header alone
        ({"concepts": np.zeros((2, 3), np.uint8)}, "'concepts' has 3 bytes per row but n_positions=16 needs 2"),
        # pickled objects
        ({"concept_names": np.array([object()], dtype=object)}, "pickled objects"),
    ],
)
def test_damaged_problem_files_are_named(arrays, message, tmp_path, capsys) -> None:
    path = _problem(tmp_path, **arrays)
    assert main(["search", str(path), "-q"]) == 2
    line = _error_line(capsys)
    assert message in line and str(path) in line


def test_an_unused_array_is_never_read(tmp_path) -> None:
    from logiclens.core.io import read_npz

    path = tmp_path / "big.npz"
    np.savez(path, small=np.arange(3), unused=np.zeros(5_000_000))  # 40 MB never needed
    data = read_npz(path, required=("small",))
    assert data.header("unused") == ((5_000_000,), np.dtype(float))
    assert data["small"].tolist() == [0, 1, 2]


def test_the_device_is_checked_before_anything_is_written(tmp_path, capsys) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    assert main(["dissect", "--model", PLANTED, "--probe", "shapes", "--images", "4", "--device", "cuda",
                 "--out", str(out), "-q"]) == 2  # fmt: skip
    assert "--device cuda: no CUDA device is available here" in _error_line(capsys)
    assert not out.exists()


def test_out_must_be_a_run_directory(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    argv = ["dissect", "--model", PLANTED, "--probe", "shapes", "--images", "4", "-q", "--out"]
    assert main([*argv, str(a_file)]) == 2
    assert "exists and is not a directory" in _error_line(capsys)
    assert main([*argv, str(tmp_path)]) == 2  # a folder of other things
    assert "not a logiclens run" in _error_line(capsys)
    assert a_file.read_text() == "mine"


def test_unreadable_weights_are_named_without_unsafe_advice(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    noise = tmp_path / "weights.pth"
    noise.write_bytes(np.random.default_rng(0).bytes(2048))
    assert main(["dissect", "--model", "resnet18-places365", "--weights", str(noise), "-q",
                 "--out", str(tmp_path / "run")]) == 2  # fmt: skip
    line = _error_line(capsys)
    assert "weights.pth: not a readable PyTorch weights file" in line and "weights_only=False" not in line


def test_a_failing_forward_pass_names_its_images(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    argv = ["dissect", "--model", "test_bad_input:failing_model", "--probe", "shapes", "--images", "12",
            "--batch-size", "4", "--threshold", "0", "-q", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    line = _error_line(capsys)
    assert "forward pass failed on images 4..7" in line and "shape mismatch in the user's code" in line


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"premise": "a dog", "hypothesis": "a cat"}, {"text": "a bird"}], "data.jsonl:2: a pair record needs"),
        ([{"premise": "a dog"}], "data.jsonl:1: a pair record needs a string 'hypothesis'; found missing"),
        (
            [{"premise": None, "hypothesis": "a cat"}],
            "data.jsonl:1: a pair record needs a string 'premise'; found null",
        ),
        ([{"premise": 7, "hypothesis": "a cat"}], "data.jsonl:1: a pair record needs a string 'premise'; found 7"),
        ([{"text": "a dog"}, {"premise": "a", "hypothesis": "b"}], "data.jsonl:2: a pair record among sentences"),
        ([], "data.jsonl: no records"),
        (["", "   "], "data.jsonl: no records"),
    ],
)
def test_text_records_are_validated_per_line(records, message, tmp_path, capsys) -> None:
    data = _write(tmp_path / "data.jsonl", records)
    np.save(tmp_path / "acts.npy", np.zeros((len(records), 2)))
    level = ["--level", "pair"] if records and "premise" in records[0] else []
    argv = ["text", "explain", str(data), "--activations", str(tmp_path / "acts.npy"), "--tokenizer", "simple", *level]
    assert main([*argv, "-q", "--out", str(tmp_path / "run")]) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_text_activations_must_be_a_finite_npy_array(tmp_path, capsys) -> None:
    data = _write(tmp_path / "data.jsonl", [{"text": "a dog runs"}, {"text": "a cat sleeps"}])
    argv = ["text", "explain", str(data), "--tokenizer", "simple", "-q", "--activations"]
    assert main([*argv, str(data)]) == 2  # the JSONL file itself, by mistake
    assert "data.jsonl: not a .npy array file" in _error_line(capsys)
    acts = np.ones((2, 3))
    acts[1, 2] = np.nan
    np.save(tmp_path / "acts.npy", acts)
    assert main([*argv, str(tmp_path / "acts.npy")]) == 2
    assert "NaN or infinite activations (first at row 1, unit 2)" in _error_line(capsys)


def test_concept_masks_must_be_boolean() -> None:
    from logiclens import ConceptSet

    with pytest.raises(ValueError, match="NaN"):
        ConceptSet.from_dense(np.array([[0.0, np.nan]]), ["a"])
    with pytest.raises(ValueError, match=r"concept 'a' holds 0\.3"):
        ConceptSet.from_dense(np.array([[0.3, 0.7]]), ["a"])


def test_the_report_names_an_unparsable_formula_and_cleans_up_after_killed_builds(tmp_path) -> None:
    pytest.importorskip("jinja2")
    from logiclens import CompositionalExplainer, DissectionSettings, build_report, dissect
    from logiclens.report import ReportError
    from logiclens.testing import PlantedProbe, planted_model

    run = tmp_path / "run"
    settings = DissectionSettings(
        layers=["relu"], explainer=CompositionalExplainer(max_length=2, holdout=0, verbose=0), threshold_mode="fixed"
    )
    dissect(planted_model(), PlantedProbe(n_images=8), run, settings, verbose=0)
    stale = run / ".report.building-999999999"  # a build killed long ago
    stale.mkdir()
    (stale / "half.png").write_bytes(b"x")
    build_report(run, probe=PlantedProbe(n_images=8), verbose=0)
    assert not stale.exists() and (run / "report" / "index.html").is_file()
    results = (run / "results.csv").read_text()
    assert ",c OR b," in results
    (run / "results.csv").write_text(results.replace(",c OR b,", ",c OR OR b,", 1))
    with pytest.raises(ReportError, match=r"layer relu, unit 2: formula 'c OR OR b' does not parse"):
        build_report(run, probe=PlantedProbe(n_images=8), verbose=0)


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_run_resumes_after_space_is_freed(tmp_path) -> None:
    pytest.importorskip("torch")
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount)")
    try:
        code = (
            "import sys\nfrom logiclens.cli import main\n"
            f"sys.exit(main(['dissect', '--model', '{PLANTED}', '--probe', 'shapes', '--images', '1000', "
            f"'--threshold', '0', '--length', '1', '--null', '2', '-q', '--no-report', '--out', '{disk / 'run'}']))\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        full = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert full.returncode == 2, full.stderr
        line = full.stderr.strip().splitlines()[-1]
        assert "no space left on device" in line.lower() and "record/" in line and "free some space and rerun" in line
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        resumed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert (disk / "run" / "results.csv").is_file()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_packed_unit_masks_refuse_bits_beyond_the_positions() -> None:
    from logiclens import ConceptSet, UnitMasks

    concepts = ConceptSet.from_dense(np.eye(2, 197, dtype=bool), ["a", "b"])
    with pytest.raises(ValueError, match="3 bit"):
        UnitMasks.from_packed(np.full((1, 25), 255, np.uint8), concepts)
