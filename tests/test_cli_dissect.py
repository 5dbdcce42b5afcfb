"""`logiclens dissect` and `logiclens layers` on a hand-set model and a segmentation folder."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logiclens import canonical, parse
from logiclens.cli import main
from logiclens.testing import PLANTED_UNIT_FORMULAS, PlantedProbe

PIL = pytest.importorskip("PIL.Image")


def _write_segmentation_folder(root: Path, probe: PlantedProbe) -> Path:
    from logiclens.vision.probes.segmentation import write_label_map

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    names = probe.concept_names
    (root / "labels.csv").write_text(
        "id,name,category\n"
        + "".join(f"{i + 1},{n},{c}\n" for i, (n, c) in enumerate(zip(names, probe.concept_categories)))
    )
    scenes = ["image,label_id"]
    for index in range(len(probe)):
        image, labels = probe.load(index)
        name = f"img{index:03d}"
        PIL.fromarray((image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(root / "images" / f"{name}.png")
        scenes.append(f"{name},{labels[0, 0, 0] + 1}")
        for channel in range(1, labels.shape[-1]):
            suffix = "" if channel == 1 else f".{channel - 1}"
            write_label_map(root / "masks" / f"{name}{suffix}.png", labels[..., channel] + 1)
    (root / "image_labels.csv").write_text("\n".join(scenes) + "\n")
    return root


def test_dissect_recovers_planted_units_from_a_folder(tmp_path, capsys) -> None:
    folder = _write_segmentation_folder(tmp_path / "probe", PlantedProbe(n_images=12))
    out = tmp_path / "run"
    argv = [
        "dissect", "--model", "logiclens.testing:planted_model", "--probe", f"segmentation:{folder}",
        "--threshold", "0", "--out", str(out), "--length", "3", "-q",
    ]  # fmt: skip
    assert main(argv) == 0
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns[:8]) == [
        "layer", "unit", "formula", "iou", "length", "threshold", "score", "precision",
    ]  # fmt: skip
    assert (results.iou == 1.0).all()
    assert [canonical(parse(f)) for f in results.formula] == [canonical(parse(f)) for f in PLANTED_UNIT_FORMULAS]
    printed = capsys.readouterr()
    assert "a AND NOT b" in printed.out or "b AND NOT a" not in printed.out
    assert "results:" in printed.err
    # a second run reuses every stage
    assert main(argv) == 0
    # the certified search: same answers, proven, and recorded once in the run's config
    out_optimal = tmp_path / "run-optimal"
    argv_optimal = [*argv[: argv.index("--out")], "--out", str(out_optimal), "--length", "3", "-q"]
    assert main([*argv_optimal, "--search", "optimal", "--budget", "10"]) == 0
    certified = pd.read_csv(out_optimal / "results.csv")
    assert (certified.iou == 1.0).all() and (certified.certificate == "optimal").all()
    config = (out_optimal / "config.json").read_text()
    assert config.count('"search": "optimal"') == 1 and config.count('"budget_seconds": 10.0') == 1


def test_layers_lists_the_planted_model(capsys) -> None:
    assert main(["layers", "logiclens.testing:planted_model"]) == 0
    out = capsys.readouterr().out
    assert "relu" in out and "(1, 4, 16, 16)" in out and "(default)" in out


def test_dissect_reports_bad_input_on_one_line(tmp_path, capsys) -> None:
    assert main(["dissect", "--model", "no-such-model", "-q"]) == 2
    assert "unknown model" in capsys.readouterr().err
    argv = ["dissect", "--model", "logiclens.testing:planted_model", "--probe", "segmentation:/nonexistent", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("logiclens: error:") and len(err.strip().splitlines()) == 1
    argv = ["dissect", "--model", "logiclens.testing:planted_model", "--probe", "nonsense", "-q"]
    assert main(argv) == 2
    assert "unknown probe" in capsys.readouterr().err


def test_random_init_control_runs_into_its_own_folder(tmp_path, capsys) -> None:
    folder = _write_segmentation_folder(tmp_path / "probe", PlantedProbe(n_images=10))
    out = tmp_path / "run"
    argv = [
        "dissect", "--model", "logiclens.testing:planted_model", "--probe", f"segmentation:{folder}",
        "--threshold", "0", "--out", str(out), "--length", "2", "--null", "4", "--random-init-control", "-q",
    ]  # fmt: skip
    assert main(argv) == 0
    control = pd.read_csv(out / "random_init" / "results.csv")
    assert len(control) == 4
    assert "randomly initialised copy" in capsys.readouterr().out
    config = (out / "random_init" / "config.json").read_text()
    assert "random init" in config


def test_dissect_activation_files_saes_and_ranges_from_the_command_line(tmp_path, capsys) -> None:
    from logiclens.sae import save_sae

    folder = _write_segmentation_folder(tmp_path / "probe", PlantedProbe(n_images=12))
    common = ["--probe", f"segmentation:{folder}", "--threshold", "0", "--length", "2", "--null", "3", "-q"]
    assert main(["dissect", "--model", "logiclens.testing:planted_model", "--out", str(tmp_path / "m"), *common]) == 0
    maps = np.load(tmp_path / "m" / "record" / "relu.npy").astype(np.float32)
    np.save(tmp_path / "nhwc.npy", maps.transpose(0, 2, 3, 1))
    argv = ["dissect", "--activations", str(tmp_path / "nhwc.npy"), "--channels-last", "--image-size", "16",
            "--out", str(tmp_path / "f"), "--no-report", *common]  # fmt: skip
    assert main(argv) == 0
    reference, from_file = pd.read_csv(tmp_path / "m" / "results.csv"), pd.read_csv(tmp_path / "f" / "results.csv")
    assert list(from_file.formula) == list(reference.formula)
    assert (tmp_path / "f" / "results.jsonl").is_file()
    sae = save_sae(tmp_path / "sae", np.eye(4, 8))
    argv = ["dissect", "--model", "logiclens.testing:planted_model", "--sae", str(sae), "--ranges", "2",
            "--out", str(tmp_path / "s"), *common]  # fmt: skip
    assert main(argv) == 0
    assert "4 of 8 SAE latents" in capsys.readouterr().err  # latents 4..7 are dead
    ranged = pd.read_csv(tmp_path / "s" / "results.csv")
    assert len(ranged) == 16 and {"range_index", "range_low", "range_high", "dead"} <= set(ranged.columns)
    page = (tmp_path / "s" / "report" / "index.html").read_text(encoding="utf-8")  # a card per range
    assert page.count('<article class="card"') == 16 and "unit 3 · range 1" in page
    np.save(tmp_path / "short.npy", maps[:5])
    argv = ["dissect", "--activations", str(tmp_path / "short.npy"), "--image-size", "16",
            "--out", str(tmp_path / "bad"), *common]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("logiclens: error:") and "hold 5 images but the probe has 12" in error
    assert not (tmp_path / "bad").exists()
