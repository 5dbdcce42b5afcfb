"""``text explain --analyze`` and ``logiclens analyze`` on a small planted NLI run, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logiclens.cli import main
from logiclens.runs import layout

pytest.importorskip("torch")


def _planted_pairs(n: int = 90) -> list[dict[str, str]]:
    """The hypothesis' first word gives the label: someone (entailment), maybe (neutral), nobody (contradiction)."""
    rng = np.random.default_rng(0)
    cue = {"entailment": "someone", "neutral": "maybe", "contradiction": "nobody"}
    rows = []
    for i in range(n):
        label = list(cue)[i % 3]
        subject = ["man", "woman", "dog", "child"][rng.integers(4)]
        rows.append({"premise": f"A {subject} runs .", "hypothesis": f"{cue[label]} runs .", "gold_label": label})
    return rows


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    import torch

    from logiclens.text.checkpoint import save_nli_model
    from logiclens.text.lstm import train_nli

    folder = tmp_path_factory.mktemp("text-analysis")
    data = folder / "pairs.jsonl"
    probing = _planted_pairs()
    for i in range(0, len(probing), 4):  # wrong gold labels on a quarter of the pairs: the model is not always right
        probing[i]["gold_label"] = "neutral" if probing[i]["gold_label"] != "neutral" else "entailment"
    data.write_text("\n".join(json.dumps(r) for r in probing) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    model, index, _ = train_nli(
        pd.DataFrame(_planted_pairs()), epochs=6, batch_size=15, lr=5e-3, embedding_dim=8, hidden=16, mlp_hidden=16,
        valid_fraction=0.2,
    )  # fmt: skip
    checkpoint = folder / "m.pt"
    save_nli_model(checkpoint, model, index)
    out = folder / "run"
    argv = ["text", "explain", str(data), "--model", str(checkpoint), "--tokenizer", "simple", "--min-active", "5",
            "--length", "2", "--holdout", "0.3", "-q", "--out", str(out), "--analyze",
            "--analyze-top-classes", "2"]  # fmt: skip
    assert main(argv) == 0
    return out, checkpoint, data


def test_text_explain_analyze_writes_the_analysis_and_its_report(text_run: tuple[Path, Path, Path]) -> None:
    out, checkpoint, _ = text_run
    logits, targets = np.load(out / layout.PREDICTIONS), np.load(out / layout.TARGETS)
    assert logits.shape == (90, 3) and set(np.unique(targets)) == {0, 1, 2}
    # accuracy when active: the same numbers as text explain's own column, computed independently
    results = pd.read_csv(out / layout.RESULTS)
    accuracy = pd.read_csv(out / layout.ACCURACY)
    np.testing.assert_allclose(accuracy["accuracy_when_active"], results["accuracy_when_active"], equal_nan=True)
    summary = json.loads((out / layout.ANALYSIS_SUMMARY).read_text())
    kinds = {(row["iou_kind"], row["max_length"]) for row in summary["correlations"]}
    assert kinds == {("search", 1), ("search", 2), ("heldout", 1), ("heldout", 2)}
    assert all(np.isfinite(row["r"]) for row in summary["correlations"])
    assert "copy-paste" in " ".join(summary["notes"]) and not (out / layout.COPY_PASTE).exists()
    # contributions: the penultimate units' weights into the output layer, with the class names
    from logiclens.text.checkpoint import load_nli_model

    model, _, _ = load_nli_model(checkpoint)
    weight = model.head.mlp.out.weight.detach().double().numpy()
    np.testing.assert_allclose(np.load(out / "analysis" / "contributions_head.mlp.relu2.npy"), weight)
    per_unit = pd.read_csv(out / layout.UNIT_CLASSES)
    assert set(per_unit["class_name"]) <= {"entailment", "neutral", "contradiction"}
    assert per_unit.groupby(["unit", "sign"]).size().max() <= 2
    report = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["analysis"]["correlations"] and report["analysis"]["unit_classes"]


def test_analyze_a_text_run_directory(text_run: tuple[Path, Path, Path], capsys: pytest.CaptureFixture) -> None:
    out, _, _ = text_run
    (out / layout.ACCURACY).unlink()
    assert main(["analyze", str(out), "--parts", "accuracy", "--no-report", "-q"]) == 0
    assert (out / layout.ACCURACY).is_file() and "heldout" in capsys.readouterr().out


def test_a_text_run_without_a_model_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "s.jsonl"
    data.write_text("\n".join(json.dumps({"text": t}) for t in ["a dog runs", "a cat", "nobody runs"]) + "\n")
    np.save(tmp_path / "acts.npy", np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]))
    argv = ["text", "explain", str(data), "--activations", str(tmp_path / "acts.npy"), "--tokenizer", "simple",
            "--min-active", "1", "--holdout", "0", "-q", "--no-report"]  # fmt: skip
    assert main([*argv, "--analyze"]) == 2
    assert "--analyze needs --out" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "run"), "--analyze"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "analysis not written" in error and "no recorded predictions" in error
    assert (tmp_path / "run" / layout.RESULTS).is_file()
