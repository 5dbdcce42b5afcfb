"""Today's units: token-grid and channels-last layers, activation files, SAE latents."""

import json

import numpy as np
import pytest

from logiclens import CompositionalExplainer, canonical, parse
from logiclens.sae import load_sae, save_sae
from logiclens.testing import PLANTED_UNIT_FORMULAS, PlantedProbe, planted_model
from logiclens.vision.activations.shapes import to_maps
from logiclens.vision.dissect import ActivationFile, DissectionSettings, dissect

torch = pytest.importorskip("torch")


def _settings(layers, **overrides) -> DissectionSettings:
    values = {"threshold_mode": "fixed", "fixed_threshold": 0.0, "batch_size": 5, "checkpoint_seconds": 0.0}
    values.update(overrides)
    explainer = CompositionalExplainer(max_length=3, beam_size=10, n_null=5, verbose=0)
    return DissectionSettings(layers=layers, explainer=explainer, **values)


def _planted_formulas():
    return [canonical(parse(f)) for f in PLANTED_UNIT_FORMULAS]


class _Tokens(torch.nn.Module):
    """(n, C, h, w) -> (n, extra + h*w, C): patch tokens in row-major order after `extra` leading tokens."""

    def __init__(self, extra: int) -> None:
        super().__init__()
        self.extra = extra

    def forward(self, x):
        n, c = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)
        lead = torch.full((n, self.extra, c), -5.0)
        return torch.cat([lead, tokens], dim=1)


class _ChannelsLast(torch.nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


def _wrapped(extra_module, name="tokens"):
    adapter = planted_model()
    adapter.module.add_module(name, extra_module)
    return adapter


def test_token_layer_with_a_cls_token_recovers_the_planted_units(tmp_path) -> None:
    model = _wrapped(_Tokens(1))
    results = dissect(model, PlantedProbe(), tmp_path / "run", _settings(["tokens"]), verbose=0)
    assert (results.iou == 1.0).all()
    assert [canonical(parse(f)) for f in results.formula] == _planted_formulas()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["layouts"]["tokens"] == {
        "layout": "tokens", "tokens": 257, "extra_tokens": 1, "grid": [16, 16], "units": 4
    }  # fmt: skip
    assert np.load(tmp_path / "run" / "record" / "tokens.npy").shape == (24, 4, 16, 16)


def test_extra_tokens_override_and_channels_last(tmp_path) -> None:
    registers = dissect(
        _wrapped(_Tokens(5)), PlantedProbe(), tmp_path / "reg", _settings(["tokens"], extra_tokens=5), verbose=0
    )
    assert (registers.iou == 1.0).all()
    last = dissect(
        _wrapped(_ChannelsLast(), "nhwc"), PlantedProbe(), tmp_path / "nhwc",
        _settings(["nhwc"], channels_last=True), verbose=0,
    )  # fmt: skip
    assert [canonical(parse(f)) for f in last.formula] == _planted_formulas()


def test_a_token_count_that_is_no_grid_is_a_one_line_error_and_nothing_is_written(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a square grid") as error:
        dissect(_wrapped(_Tokens(3)), PlantedProbe(), tmp_path / "run", _settings(["tokens"]), verbose=0)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="--extra-tokens"):
        to_maps(np.zeros((2, 11, 3)), "x", extra_tokens=None)


def test_a_randomly_initialised_transformers_vit_is_dissected(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    from logiclens.vision.models.base import ModelAdapter

    config = transformers.ViTConfig(
        image_size=16, patch_size=4, num_hidden_layers=1, hidden_size=8, num_attention_heads=2, intermediate_size=16
    )
    torch.manual_seed(0)
    vit = transformers.ViTModel(config, add_pooling_layer=False)
    model = ModelAdapter(vit, "tiny-vit", input_size=(16, 16), default_layers=["layers.0"])
    settings = _settings(["layers.0"], threshold_mode="layer", top_fraction=0.05)
    results = dissect(model, PlantedProbe(n_images=12), tmp_path / "vit", settings, verbose=0)
    assert len(results) == 8
    layouts = json.loads((tmp_path / "vit" / "config.json").read_text())["layouts"]
    assert layouts["layers.0"]["grid"] == [4, 4] and layouts["layers.0"]["extra_tokens"] == 1
    assert (tmp_path / "vit" / "results.csv").exists()


def test_activation_file_goes_through_the_same_stages(tmp_path) -> None:
    probe = PlantedProbe()
    reference = dissect(planted_model(), probe, tmp_path / "model", _settings(["relu"]), verbose=0)
    recorded = np.load(tmp_path / "model" / "record" / "relu.npy").astype(np.float32)
    tokens = np.concatenate([np.zeros((24, 1, 4), np.float32), recorded.reshape(24, 4, -1).transpose(0, 2, 1)], 1)
    np.save(tmp_path / "acts.npy", tokens)
    results = dissect(ActivationFile(tmp_path / "acts.npy"), probe, tmp_path / "file", _settings(["activations"]),
                      verbose=0)  # fmt: skip
    assert list(results.formula) == list(reference.formula)
    assert list(results.iou) == list(reference.iou)
    np.save(tmp_path / "short.npy", recorded[:20])
    with pytest.raises(ValueError, match="hold 20 images but the probe has 24"):
        dissect(ActivationFile(tmp_path / "short.npy"), probe, tmp_path / "bad", _settings(["activations"]), verbose=0)
    np.save(tmp_path / "flat.npy", recorded.reshape(-1))
    with pytest.raises(ValueError, match="expected"):
        dissect(ActivationFile(tmp_path / "flat.npy"), probe, tmp_path / "bad", _settings(["activations"]), verbose=0)
    assert not (tmp_path / "bad").exists()


def test_sae_latents_are_units_and_a_planted_latent_equals_its_concept(tmp_path) -> None:
    # latent 0 copies unit 0 ("a"), latent 1 unit 2 ("b OR c"); latents 2, 3 never fire (dead)
    w_enc = np.zeros((4, 4), np.float32)
    w_enc[0, 0] = 1.0
    w_enc[2, 1] = 2.0
    w_enc[:, 2] = -1.0
    sae = save_sae(tmp_path / "sae", w_enc, b_enc=np.array([0, 0, 0, -100.0]))
    results = dissect(planted_model(), PlantedProbe(), tmp_path / "run", _settings(["relu"], sae=str(sae)), verbose=0)
    assert canonical(parse(results.formula[0])) == canonical(parse("a")) and results.iou[0] == 1.0
    assert canonical(parse(results.formula[1])) == canonical(parse("b OR c")) and results.iou[1] == 1.0
    assert list(results.dead) == [False, False, True, True]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["layouts"]["relu"]["sae"]["d_sae"] == 4


def test_sae_encodings_follow_saelens(tmp_path) -> None:
    rng = np.random.default_rng(0)
    w, b_enc, b_dec = rng.normal(size=(6, 12)), rng.normal(size=12), rng.normal(size=6)
    x = rng.normal(size=(5, 6)).astype(np.float32)
    pre = (x - b_dec) @ w + b_enc
    standard = load_sae(save_sae(tmp_path / "s", w, b_enc, b_dec))
    np.testing.assert_allclose(standard.encode(x), np.maximum(pre, 0), rtol=1e-5, atol=1e-5)
    threshold = np.full(12, 0.5)
    jump = load_sae(save_sae(tmp_path / "j", w, b_enc, b_dec, architecture="jumprelu", threshold=threshold))
    np.testing.assert_allclose(jump.encode(x), np.where(pre > 0.5, pre, 0), rtol=1e-5, atol=1e-5)
    topk = load_sae(save_sae(tmp_path / "t", w, b_enc, b_dec, architecture="topk", k=3))
    expected = np.where(pre >= np.sort(pre, axis=1)[:, -3:-2], np.maximum(pre, 0), 0)
    np.testing.assert_allclose(topk.encode(x), expected, rtol=1e-5, atol=1e-5)
    no_bias = load_sae(save_sae(tmp_path / "n", w, b_enc, b_dec, apply_b_dec_to_input=False,
                                normalize_activations="constant_norm_rescale"))  # fmt: skip
    scaled = x * (np.sqrt(6) / np.linalg.norm(x, axis=1, keepdims=True))
    np.testing.assert_allclose(no_bias.encode(x), np.maximum(scaled @ w + b_enc, 0), rtol=1e-4, atol=1e-4)


def test_bad_saes_are_one_line_errors_and_nothing_is_written(tmp_path) -> None:
    wide = save_sae(tmp_path / "wide", np.ones((7, 3)))
    with pytest.raises(ValueError, match=r"d_in.*layer 'relu' has 4 units") as error:
        dissect(planted_model(), PlantedProbe(), tmp_path / "run", _settings(["relu"], sae=str(wide)), verbose=0)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()
    broken = save_sae(tmp_path / "broken", np.ones((4, 3)))
    (broken / "cfg.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"cfg\.json is not valid JSON"):
        load_sae(broken)
    (broken / "cfg.json").write_text(json.dumps({"d_in": 4, "d_sae": 3, "architecture": "gated"}))
    with pytest.raises(ValueError, match="architecture 'gated' is not supported"):
        load_sae(broken)
    (broken / "cfg.json").write_text(json.dumps({"d_in": 4, "d_sae": 5}))
    with pytest.raises(ValueError, match=r"W_enc has shape \(4, 3\)"):
        load_sae(broken)
    (broken / "cfg.json").write_text(
        json.dumps({"d_in": 4, "d_sae": 3, "normalize_activations": "expected_average_only_in"})
    )
    with pytest.raises(ValueError, match="scaling factor"):
        load_sae(broken)
