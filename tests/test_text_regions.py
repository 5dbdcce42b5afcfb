"""Code clusters as units in the text pipeline (issue 15, item 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logiclens import CompositionalExplainer
from logiclens.polytope.position_units import RegionUnitSettings
from logiclens.text.pipeline import TextConceptSettings, TextSettings, explain_text

WORDS = ["dog", "cat", "runs", "sleeps", "the", "a"]


def _sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        f"{rng.choice(['the', 'a'])} {rng.choice(['dog', 'cat'])} {rng.choice(['runs', 'sleeps'])}" for _ in range(n)
    ]


def _write(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def test_token_code_clusters_find_the_planted_words(tmp_path: Path) -> None:
    texts = _sentences(120)
    data = _write(tmp_path / "s.jsonl", texts)
    tokens = [w for t in texts for w in t.split()]
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(len(WORDS), 24)) * 2
    pre = np.stack([centers[WORDS.index(w)] for w in tokens]) + 0.3 * rng.normal(size=(len(tokens), 24))
    np.save(tmp_path / "pre.npy", pre)
    settings = TextSettings(
        level="token", concepts=TextConceptSettings(tokenizer="simple", tags=False), min_active=5,
        explainer=CompositionalExplainer(max_length=2, n_null=3, verbose=0), units="code-clusters",
        regions=RegionUnitSettings(n_clusters=6, min_cluster_size=10, n_components=3),
    )  # fmt: skip
    result = explain_text(data, activations=tmp_path / "pre.npy", settings=settings, out=tmp_path / "run")
    clusters = result.regions[result.regions.family == "code clusters"]
    assert len(clusters) == 6 and (clusters.iou > 0.95).all()
    assert {f.split(":")[-1] for f in clusters.formula} == set(WORDS)
    assert {"neurons", "code clusters", "PCA directions", "random subsets"} <= set(result.comparison.family)
    assert (tmp_path / "run" / "comparison_units.csv").is_file()
    assert pd.read_csv(tmp_path / "run" / "regions_units.csv").family.iloc[0] == "code clusters"


def _run_cli(argv: list[str]) -> int:
    from logiclens.cli.text import register as register_command

    parser = argparse.ArgumentParser(prog="logiclens")
    register_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_text_code_clusters_of_an_nli_model(tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(60):
        premise = " ".join(rng.choice(WORDS, 4))
        same = rng.random() < 0.5
        hypothesis = premise if same else " ".join(rng.choice(WORDS, 4))
        pairs.append({"premise": premise, "hypothesis": hypothesis, "gold_label": "entailment" if same else "neutral"})
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    model = tmp_path / "m.pt"
    common = ["--embedding-dim", "8", "--hidden", "8", "--mlp-hidden", "16", "--epochs", "1"]
    assert _run_cli(["text", "train-nli", str(data), "-o", str(model), *common]) == 0
    argv = ["text", "explain", str(data), "--model", str(model), "--tokenizer", "simple", "--min-active", "2",
            "--layer", "head.mlp.relu2", "--units", "code-clusters", "--clusters", "4", "--min-cluster-size", "3",
            "--length", "1", "--null", "2", "-q", "--out", str(tmp_path / "run"), "--no-report"]  # fmt: skip
    assert _run_cli(argv) == 0
    assert "size-matched comparison of head.mlp.relu2" in capsys.readouterr().out
    regions = pd.read_csv(tmp_path / "run" / "regions_head.mlp.relu2.csv")
    assert (regions.family == "code clusters").any()
    with pytest.raises(ValueError, match="fewer than the minimum cluster size"):
        _run_cli([*argv[:-4], "--min-cluster-size", "1000", "-q", "--out", str(tmp_path / "r2"), "--no-report"])
