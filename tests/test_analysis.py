"""logiclens.analysis: contributions, accuracy when active, copy-paste and word insertion, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from logiclens.analysis import AnalysisError, AnalysisSettings, CopyPasteSettings, analyze
from logiclens.analysis.accuracy import accuracy_when_active, image_activity
from logiclens.analysis.contributions import find_linear_head, gradient_contributions
from logiclens.analysis.copy_paste import paste, plan_class, run_copy_paste, summarize_copy_paste
from logiclens.analysis.formulas import signed_concepts
from logiclens.analysis.insertion import control_words, formula_words, insert_word, run_insertions
from logiclens.analysis.pipeline import concept_areas
from logiclens.cli import main
from logiclens.explain.compositional import CompositionalExplainer
from logiclens.runs import layout
from logiclens.testing import LabelledPlantedProbe, PlantedProbe, planted_classifier, planted_model
from logiclens.vision.activations.upsample import BilinearUpsampler
from logiclens.vision.dissect import DissectionSettings, dissect
from logiclens.vision.models.base import ModelAdapter


# ---------------------------------------------------------------- contributions
def _bn_model(gamma: list[float]) -> ModelAdapter:
    torch.manual_seed(0)
    module = nn.Sequential()
    module.add_module("feat", nn.Conv2d(3, 4, 3, padding=1))
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        bn.running_mean.copy_(torch.tensor([0.5, -0.5, 0.0, 1.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25, 9.0]))
    module.add_module("bn", bn)
    module.add_module("act", nn.ReLU6())
    module.add_module("pool", nn.AdaptiveAvgPool2d(1))
    module.add_module("flat", nn.Flatten())
    fc = nn.Linear(4, 3)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, 2.0, -1.0, 0.5], [-2.0, 1.0, 0.0, 3.0], [0.5, -0.5, 2.0, -1.0]]))
    module.add_module("fc", fc)
    return ModelAdapter(module, "bn-model", input_size=(8, 8), mean=(0, 0, 0), std=(1, 1, 1))


def _record(model: ModelAdapter, layer: str, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    from logiclens.hooks import LayerRecorder

    with LayerRecorder(model.module, [layer], stop_early=False) as recorder:
        captured = recorder.run(images)
        logits = recorder.output
    assert logits is not None
    return captured[layer].numpy(), logits.numpy()


def test_effective_weights_fold_batchnorm_with_a_negative_scale() -> None:
    gamma = [2.0, -1.5, 0.5, 1.0]
    model = _bn_model(gamma)
    images = torch.rand(6, 3, 8, 8)
    acts, logits = _record(model, "feat", images)
    head = find_linear_head(model, "feat", acts, logits, images[:1])
    assert head is not None
    assert head.path == ["bn", "act", "pool", "flat", "fc"]
    scale = np.array(gamma) / np.sqrt(np.array([4.0, 1.0, 0.25, 9.0]) + 1e-5)
    weight = model.module.fc.weight.detach().double().numpy()
    np.testing.assert_allclose(head.effective, weight * scale[None, :], rtol=1e-6)
    # unit 1 has a negative BN scale: its effective weight for class 0 is negative although W[0, 1] = +2,
    # and raising unit 1's activation indeed lowers logit 0 (where the activation is not clipped)
    assert weight[0, 1] > 0 and head.effective[0, 1] < 0
    x = torch.from_numpy(acts[:1].copy())
    with torch.no_grad():
        tail = nn.Sequential(*list(model.module.children())[1:])
        bumped = x.clone()
        bumped[:, 1] += 0.05
        assert float(tail(bumped)[0, 0] - tail(x)[0, 0]) <= 0


def test_no_linear_head_through_a_nonmonotone_module() -> None:
    class Square(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    model = _bn_model([1.0, 1.0, 1.0, 1.0])
    model.module.act = Square()  # type: ignore[assignment]
    images = torch.rand(4, 3, 8, 8)
    acts, logits = _record(model, "feat", images)
    assert find_linear_head(model, "feat", acts, logits, images[:1]) is None


def test_gradient_contributions_match_the_linear_case() -> None:
    """Without BN and activation, grad x activation summed over positions is W[c, k] * mean_pool(A_k)."""
    module = nn.Sequential()
    module.add_module("feat", nn.Conv2d(3, 2, 1))
    module.add_module("pool", nn.AdaptiveAvgPool2d(1))
    module.add_module("flat", nn.Flatten())
    module.add_module("fc", nn.Linear(2, 2))
    model = ModelAdapter(module, "lin", input_size=(4, 4), mean=(0, 0, 0), std=(1, 1, 1))
    images = np.random.default_rng(0).random((5, 3, 4, 4)).astype(np.float32)
    got = gradient_contributions(model, "feat", images, np.array([0, 1]), batch_size=2)
    with torch.no_grad():
        pooled = module.feat(torch.from_numpy(images)).mean(dim=(2, 3)).double().numpy().mean(0)
    expected = module.fc.weight.detach().double().numpy() * pooled[None, :]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- accuracy when active
def test_accuracy_when_active_against_a_plain_loop() -> None:
    rng = np.random.default_rng(1)
    masks = rng.random((7, 50)) < 0.3
    masks[3] = False
    correct = rng.random(50) < 0.6
    got = accuracy_when_active(masks, correct)
    for u in range(7):
        hits = [correct[i] for i in range(50) if masks[u, i]]
        if hits:
            assert got[u] == pytest.approx(sum(hits) / len(hits))
        else:
            assert np.isnan(got[u])


def test_image_activity_is_a_non_empty_upsampled_mask() -> None:
    rng = np.random.default_rng(2)
    acts = rng.normal(size=(6, 5, 4, 4)).astype(np.float32)
    thresholds = np.array([1.5, 2.5, 9.0, 0.0, np.nan])
    got = image_activity(acts, thresholds, (12, 12))
    full = BilinearUpsampler((4, 4), (12, 12))(acts.reshape(-1, 4, 4)).reshape(6, 5, 12, 12)
    with np.errstate(invalid="ignore"):
        expected = (full > thresholds[None, :, None, None].astype(np.float32)).any(axis=(2, 3)).T
    np.testing.assert_array_equal(got, expected)
    assert not got[2].any() and not got[4].any()


# ---------------------------------------------------------------- copy-paste on a planted model
class _Source:
    def __init__(self, probe: PlantedProbe) -> None:
        self.probe = probe

    def image(self, index: int) -> np.ndarray:
        return self.probe.load(index)[0]

    def concept_mask(self, index: int, concept: int) -> np.ndarray:
        return (self.probe.load(index)[1] == concept).any(axis=-1)


def _predict(model: ModelAdapter):  # type: ignore[no-untyped-def]
    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.module(model.preprocess(torch.from_numpy(images))).numpy()

    return predict


def _areas(probe: PlantedProbe) -> np.ndarray:
    areas = np.zeros((len(probe), len(probe.concept_names)), np.int64)
    for i in range(len(probe)):
        labels = probe.load(i)[1]
        for k in range(len(probe.concept_names)):
            areas[i, k] = (labels == k).any(axis=-1).sum()
    return areas


def test_pasting_the_units_concept_raises_its_class_and_the_control_does_not() -> None:
    probe, model = PlantedProbe(n_images=30, seed=3), planted_classifier()
    predict = _predict(model)
    images = np.stack([probe.load(i)[0] for i in range(len(probe))])
    predicted = predict(images).argmax(1)
    formulas = ["a", "a AND NOT b", "b OR c", "a AND c"]
    weights = model.module.fc.weight.detach().numpy()[0]
    settings = CopyPasteSettings(n_units=1, n_hosts=6, sizes=(0.4, 0.6), n_positions=2, n_boot=200)
    plan = plan_class(0, weights, formulas, probe.concept_names, probe.concept_categories, _areas(probe),
                      np.arange(20, 30), predicted, settings)  # fmt: skip
    assert plan is not None and plan.units == [0]
    assert [probe.concept_names[c] for c, _ in plan.targeted] == ["a"]
    assert probe.concept_names[plan.controls[0]] in ("b", "c")
    frame, gallery = run_copy_paste(predict, _Source(probe), [plan], settings, probe.concept_names, keep_images=2)
    targeted, control = frame[frame.kind == "targeted"], frame[frame.kind == "control"]
    assert len(targeted) == len(control) == len(plan.hosts) * 4
    # the paste changes the input: a no-op paste would leave the target's log-probability unchanged
    assert targeted["delta_logp"].mean() > 0.5
    assert (targeted["delta_logp"] > 0).mean() > 0.9
    assert control["delta_logp"].mean() < 0.05
    summary = summarize_copy_paste(frame, n_boot=200)
    assert summary["overall"]["beats_control"] and summary["per_class"]["0"]["beats_control"]
    assert len(gallery) == 2 and not np.array_equal(gallery[0]["before"], gallery[0]["after"])


def test_paste_puts_masked_pixels_only() -> None:
    host = np.zeros((3, 10, 10), np.float32)
    patch = np.ones((3, 2, 2), np.float32)
    alpha = np.array([[True, False], [True, True]])
    out, (top, left, h, w) = paste(host, patch, alpha, 0.4, (0.0, 1.0))
    assert (h, w) == (4, 4) and (top, left) == (0, 6)
    assert out.sum() == 3 * 12 and host.sum() == 0


def test_signed_concepts() -> None:
    assert signed_concepts("(a OR NEIGHBORS(b)) AND NOT (c OR NOT d)") == (["a", "b", "d"], ["c"])


# ---------------------------------------------------------------- the pipeline on planted runs
def _settings() -> DissectionSettings:
    return DissectionSettings(["relu"], CompositionalExplainer(max_length=2, holdout=0.3, n_null=0, verbose=0))


def test_analyze_a_planted_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    probe, model = LabelledPlantedProbe(n_images=40, seed=5), planted_classifier()
    dissect(model, probe, tmp_path, _settings(), verbose=0)
    assert np.load(tmp_path / layout.PREDICTIONS).shape == (40, 3)
    targets = np.load(tmp_path / layout.TARGETS)
    assert set(np.unique(targets)) <= {-1, 0, 1} and (targets >= 0).sum() > 20
    settings = AnalysisSettings(copy_paste=CopyPasteSettings(classes=[0], n_units=1, n_hosts=6, n_boot=100))
    result = analyze(tmp_path, settings, model=model, probe=probe, verbose=0)
    for name in (layout.ACCURACY, layout.CONTRIBUTIONS, layout.COPY_PASTE, layout.ANALYSIS_SUMMARY):
        assert (tmp_path / name).is_file()
    accuracy = pd.read_csv(tmp_path / layout.ACCURACY)
    assert len(accuracy) == 4 and accuracy["accuracy_when_active"].notna().any()
    contributions = pd.read_csv(tmp_path / layout.CONTRIBUTIONS)
    top = contributions[(contributions["class"] == 0) & (contributions["sign"] == "positive")]
    assert top.iloc[0]["unit"] == 0 and top.iloc[0]["method"] == "effective_weight"
    summary = json.loads((tmp_path / layout.ANALYSIS_SUMMARY).read_text())
    assert summary["copy_paste"]["overall"]["beats_control"]
    assert result.correlations is not None and set(result.correlations["iou_kind"]) == {"search", "heldout"}


def test_bad_input_gives_one_line_errors(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "plain"
    dissect(planted_model(), PlantedProbe(n_images=12), plain, _settings(), verbose=0)  # output is not (n, classes)
    assert not (plain / layout.PREDICTIONS).exists()
    with pytest.raises(AnalysisError, match=r"no recorded predictions.*rerun"):
        analyze(plain, verbose=0)
    assert main(["analyze", str(plain), "--no-report", "-q"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "no recorded predictions" in error

    unlabelled = tmp_path / "unlabelled"
    dissect(planted_classifier(), PlantedProbe(n_images=12), unlabelled, _settings(), verbose=0)
    with pytest.raises(AnalysisError, match=r"no probe image has a class label.*--parts"):
        analyze(unlabelled, AnalysisSettings(parts=("accuracy",)), verbose=0)


def test_a_layer_off_the_classifier_path_is_refused() -> None:
    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.side = nn.Conv2d(3, 2, 1)
            self.main = nn.Conv2d(3, 2, 1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.side(x)
            return self.fc(self.main(x).mean(dim=(2, 3)))

    model = ModelAdapter(Branch(), "branch", input_size=(4, 4), mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(RuntimeError):
        gradient_contributions(model, "side", np.zeros((2, 3, 4, 4), np.float32), np.array([0]))


def test_concept_areas_count_pixels_per_image(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from logiclens.core.concepts import ConceptSet

    probe = PlantedProbe(n_images=6)
    dissect(planted_model(), probe, tmp_path, _settings(), verbose=0)
    areas = concept_areas(np.load(tmp_path / layout.SIGNATURES), ConceptSet.load(tmp_path / layout.CONCEPTS))
    np.testing.assert_array_equal(areas, _areas(probe))


# ---------------------------------------------------------------- word insertion on a planted text model
def _text_model(records: list[dict[str, str]]) -> np.ndarray:
    """Class 0 rises with every 'nobody' in the hypothesis; class 1 with 'outside'; class 2 constant."""
    logits = np.zeros((len(records), 3))
    for i, record in enumerate(records):
        words = record["hypothesis"].lower().replace(".", "").split()
        logits[i] = [3.0 * words.count("nobody"), 3.0 * words.count("outside"), 1.0]
    return logits


def test_word_insertion_on_a_planted_text_model() -> None:
    records = [
        {"premise": "A man sleeps.", "hypothesis": "A man is sleeping."},
        {"premise": "Two dogs run.", "hypothesis": "Dogs are outside."},
        {"premise": "A girl sings.", "hypothesis": "The girl is happy."},
    ]
    words = formula_words("hyp:nobody OR (hyp:tag:NN AND NOT hyp:cat)")
    assert words == [("hypothesis", "nobody")]
    counts = {"nobody": 5, "somebody": 6, "cat": 5, "outside": 40, "the": 300}
    controls = control_words("nobody", counts, exclude={"nobody", "cat"}, tags={"nobody": "NN", "somebody": "NN"})
    assert controls == ["somebody"]
    frame = run_insertions(_text_model, records, [(0, "hyp:nobody", words, [("hypothesis", "somebody")])])
    targeted, control = frame[frame.kind == "targeted"], frame[frame.kind == "control"]
    assert len(targeted) == len(control) == 2 * 3  # 3 hosts (none is class 0), start and end
    assert (targeted["delta_logp"] > 1.0).all() and (control["delta_logp"].abs() < 1e-9).all()
    assert targeted["text_after"].iloc[1] == "A man is sleeping nobody."
    assert summarize_copy_paste(frame, n_boot=100)["overall"]["beats_control"]
    assert insert_word("A dog runs.", "big", "before_last") == "A dog big runs."


# ---------------------------------------------------------------- the record stage's predictions
def test_record_keeps_predictions_and_labels_and_resumes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = planted_classifier()
    settings = DissectionSettings(["relu"], CompositionalExplainer(max_length=1, n_null=0, verbose=0), batch_size=4,
                                  checkpoint_seconds=0.0)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        dissect(model, LabelledPlantedProbe(n_images=16, fail_at=9), tmp_path / "a", settings, verbose=0)
    dissect(model, LabelledPlantedProbe(n_images=16), tmp_path / "a", settings, verbose=0)
    dissect(model, LabelledPlantedProbe(n_images=16), tmp_path / "b", settings, verbose=0)
    probe = LabelledPlantedProbe(n_images=16)
    images = np.stack([probe.load(i)[0] for i in range(16)])
    expected = _predict(model)(images)
    for run in ("a", "b"):
        np.testing.assert_allclose(np.load(tmp_path / run / layout.PREDICTIONS), expected, rtol=1e-5, atol=1e-5)
        labels = [probe.class_label(i, probe.load(i)[1]) for i in range(16)]
        np.testing.assert_array_equal(
            np.load(tmp_path / run / layout.TARGETS), [-1 if x is None else x for x in labels]
        )


def test_class_labels_by_name_and_out_of_range() -> None:
    from logiclens.vision.dissect.recording import _class_id

    assert _class_id("other", ["a", "other"], 2, 0) == 1
    assert _class_id(None, None, None, 0) == -1
    with pytest.raises(ValueError, match="not one of the model's classes"):
        _class_id("zebra", ["a"], 1, 3)
    with pytest.raises(ValueError, match=r"outside the model.s 0\.\.1"):
        _class_id(5, None, 2, 3)
    with pytest.raises(ValueError, match="no class names"):
        _class_id("zebra", None, 2, 3)


# ---------------------------------------------------------------- the command line
def test_dissect_analyze_and_analyze_commands(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = str(tmp_path / "run")
    factory = "logiclens.testing:planted_classifier"
    common = ["--probe", "shapes", "--images", "20", "--null", "0", "--length", "1", "--no-report", "-q"]
    # shapes formulas here hold colours and scenes, nothing to paste: the dissection stays, the error says why
    status = main(["dissect", "--model", factory, "--out", out, *common, "--analyze", "--analyze-classes", "0"])
    assert status == 2 and (tmp_path / "run" / layout.RESULTS).is_file()
    assert "analysis not written" in capsys.readouterr().err
    assert main(["analyze", out, "--parts", "contributions", "--no-report", "-q"]) == 2
    assert "pass it with --model module:factory" in capsys.readouterr().err
    assert main(["analyze", out, "--model", factory, "--parts", "contributions", "--no-report", "-q"]) == 0
    table = pd.read_csv(tmp_path / "run" / layout.CONTRIBUTIONS)
    assert set(table["class"]) == {0, 1, 2} and (table["method"] == "effective_weight").all()
    assert main(["analyze", out, "--parts", "nothing", "--no-report"]) == 2


def test_very_wide_heads_keep_their_top_classes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from logiclens.analysis.predictions import load_predictions
    from logiclens.vision.dissect.recording import Store

    (tmp_path / "record").mkdir()
    logits = torch.from_numpy(np.random.default_rng(0).normal(size=(6, layout.MAX_STORED_CLASSES + 10)))
    store = Store(tmp_path, 0, 6, (4, 4), predicting=True)
    store.put_head(logits[:4], 0)
    store.put_head(logits[4:], 4)
    store.flush()
    assert not (tmp_path / layout.PREDICTIONS).exists()
    top = np.load(tmp_path / layout.TOP_CLASSES)
    assert top.shape == (6, layout.N_TOP_CLASSES)
    np.testing.assert_array_equal(top[:, 0], logits.numpy().argmax(1))
    np.testing.assert_allclose(np.load(tmp_path / layout.TOP_LOGITS)[:, 0], logits.numpy().max(1), rtol=1e-6)
    loaded = load_predictions(tmp_path)
    assert loaded.logits is None and (loaded.targets == -1).all()
    np.testing.assert_array_equal(loaded.predicted, logits.numpy().argmax(1))
