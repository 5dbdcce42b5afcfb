"""``analyze``: the paper's questions 2 and 3 on a finished vision or text run, written under ``RUN/analysis/``.

* ``accuracy.csv``: per unit, the images where it is active, how many of them carry a label,
  and the model's accuracy on those (:mod:`logiclens.analysis.accuracy`);
  ``summary.json["correlations"]`` holds Pearson r, p and n per maximum formula length, for
  search and held-out IoU, and for the random-init control where the run has one;
  ``heldout_by_length_<layer>.csv`` the held-out IoU of each unit's answer at every maximum
  length (:mod:`logiclens.analysis.heldout`).
* ``contributions.csv``: per class, its top positive and negative units with formulas and IoU
  (:mod:`logiclens.analysis.contributions`); the full matrix is
  ``analysis/contributions_<layer>.npy`` (classes x units); ``unit_classes.csv`` per unit,
  its top classes.
* ``copy_paste.csv``: one row per edit (:mod:`logiclens.analysis.copy_paste`), with
  ``summary.json["copy_paste"]`` the effects and their bootstrap intervals, and
  ``analysis/gallery/`` the strongest targeted edits as PNG pairs.

Text runs (``text explain --model``) get accuracy (pair and sentence runs: an input counts
where the unit's activation is above its threshold) and, for the NLI model's penultimate
layer, contributions; no copy-paste edits (a note in ``summary.json`` says so).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from logiclens.analysis.accuracy import accuracy_when_active, correlations, image_activity
from logiclens.analysis.contributions import (
    contribution_table,
    find_linear_head,
    gradient_contributions,
    unit_class_table,
)
from logiclens.analysis.copy_paste import CopyPasteSettings, plan_class, run_copy_paste, summarize_copy_paste
from logiclens.analysis.errors import AnalysisError
from logiclens.analysis.heldout import heldout_by_length
from logiclens.analysis.predictions import Predictions, load_predictions
from logiclens.core.concepts import ConceptSet
from logiclens.core.io import atomic_write_text
from logiclens.core.masks import UnitMasks
from logiclens.explain.active import threshold_units
from logiclens.runs import layout
from logiclens.runs.by_length import read_formulas_by_length
from logiclens.runs.reading import LayerData, RunData, RunError, load_run

__all__ = ["PARTS", "AnalysisResult", "AnalysisSettings", "analyze"]

#: the analyses :func:`analyze` can run
PARTS = ("accuracy", "contributions", "copy_paste")


@dataclass
class AnalysisSettings:
    """What :func:`analyze` computes.

    Parameters
    ----------
    parts : tuple of str
        Any of :data:`PARTS`.
    layer : str, optional
        The layer whose contributions and copy-paste edits are made. Default: the last layer
        of the run with a linear path to the classifier, else the run's last layer.
    top_units : int
        Positive and negative units kept per class in ``contributions.csv``.
    top_classes : int
        Positive and negative classes kept per unit in ``unit_classes.csv``.
    grad_images : int
        Probe images of the gradient-times-activation fallback.
    copy_paste : CopyPasteSettings
    gallery : int
        Strongest targeted edits saved as image pairs.
    batch_size : int
    """

    parts: tuple[str, ...] = PARTS
    layer: str | None = None
    top_units: int = 10
    top_classes: int = 5
    grad_images: int = 64
    copy_paste: CopyPasteSettings = field(default_factory=CopyPasteSettings)
    gallery: int = 8
    batch_size: int = 32

    def __post_init__(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"unknown analysis part(s) {unknown}; choose from {', '.join(PARTS)}")


@dataclass
class AnalysisResult:
    """What :func:`analyze` wrote, as tables.

    Attributes
    ----------
    accuracy, correlations, contributions, copy_paste : DataFrame or None
    summary : dict
        ``summary.json``.
    folder : Path
    """

    accuracy: pd.DataFrame | None
    correlations: pd.DataFrame | None
    contributions: pd.DataFrame | None
    copy_paste: pd.DataFrame | None
    summary: dict[str, Any]
    folder: Path


class _ProbeImages:
    """Probe images and concept masks (from the run's signatures) at the image resolution."""

    def __init__(self, probe: Any, signatures: NDArray[np.int32], concepts: ConceptSet) -> None:
        self.probe, self.signatures, self.concepts = probe, signatures, concepts
        height, width = probe.image_size
        mask_h, mask_w = signatures.shape[1:]
        self._rows = np.minimum((np.arange(height) + 0.5) * mask_h / height, mask_h - 1).astype(np.intp)
        self._cols = np.minimum((np.arange(width) + 0.5) * mask_w / width, mask_w - 1).astype(np.intp)

    def image(self, index: int) -> NDArray[np.float32]:
        return self.probe.load(int(index))[0]

    def concept_mask(self, index: int, concept: int) -> NDArray[np.bool_]:
        small = self.concepts.concept_signatures(concept)[np.asarray(self.signatures[int(index)])]
        return small[self._rows[:, None], self._cols[None, :]]


def concept_areas(signatures: NDArray[np.int32], concepts: ConceptSet, chunk: int = 64) -> NDArray[np.int64]:
    """Pixels of every concept in every image: int64 (images, concepts), read ``chunk`` images at a time."""
    import scipy.sparse as sp

    n_images = len(signatures)
    incidence = concepts.signature_concepts.astype(np.int64)
    out = np.zeros((n_images, concepts.n_concepts), np.int64)
    for first in range(0, n_images, chunk):
        block = np.asarray(signatures[first : first + chunk])
        flat = block.reshape(len(block), -1)
        rows = np.repeat(np.arange(len(block)), flat.shape[1])
        counts = sp.csr_array(
            (np.ones(flat.size, np.int64), (rows, flat.reshape(-1))), shape=(len(block), concepts.n_signatures)
        )
        out[first : first + len(block)] = (counts @ incidence).toarray()
    return out


def _predict_fn(model: Any, batch_size: int) -> Any:
    import torch

    # channels-last convolutions run about 1.5x faster on CPU (as in the record stage)
    module = model.module.eval().to(memory_format=torch.channels_last)

    def predict(images: NDArray[np.float32]) -> NDArray[np.float32]:
        outputs = []
        with torch.inference_mode():
            for first in range(0, len(images), batch_size):
                batch = model.preprocess(torch.from_numpy(np.ascontiguousarray(images[first : first + batch_size])))
                outputs.append(module(batch.contiguous(memory_format=torch.channels_last)).float().numpy())
        return np.concatenate(outputs)

    return predict


def _accuracy(run: RunData, predictions: Predictions, source: str):  # type: ignore[no-untyped-def]
    """Per-unit accuracy when active, the r table, and the held-out-by-length tables per layer."""
    labelled = predictions.labelled
    if not labelled.any():
        kind = "image" if run.text_level is None else "text"
        raise AnalysisError(
            f"{run.path}: no probe {kind} has a class label in the model's label space, so there is no accuracy; "
            "give the probe labels (see docs/analysis.md) or run `logiclens analyze --parts contributions,copy_paste`"
        )
    correct = predictions.correct[labelled] > 0.5
    frames, tables, by_length = [], [], {}
    for layer in run.layers:
        active = _activity(run, layer, len(predictions.predicted))
        accuracy = accuracy_when_active(active[:, labelled], correct)
        frame = layer.results[["layer", "unit", "formula", "iou"]].copy()
        frame["heldout_iou"] = layer.results.get("heldout_iou", np.nan)
        frame.insert(0, "source", source)
        frame["n_active"] = active.sum(axis=1)
        frame["n_active_labelled"] = active[:, labelled].sum(axis=1)
        frame["accuracy_when_active"] = accuracy
        frames.append(frame)
        heldout = _heldout_by_length(run, layer)
        if heldout is not None:
            heldout.insert(0, "source", source)
            heldout.insert(0, "layer", layer.name)
            by_length[layer.name] = heldout
        tables.append(correlations(layer, accuracy, source, heldout))
    return pd.concat(frames, ignore_index=True), pd.concat(tables, ignore_index=True), by_length


def _activity(run: RunData, layer: LayerData, n_inputs: int) -> NDArray[np.bool_]:
    """(units, inputs): where each unit is active on each input the model classified."""
    activations = np.load(layer.activations, mmap_mode="r")
    if run.text_level is None:
        if activations.ndim != 4:
            raise AnalysisError(f"layer {layer.name!r} is not an image layer (activations {activations.shape})")
        signatures = np.load(run.signatures, mmap_mode="r")
        return image_activity(activations, layer.thresholds, tuple(signatures.shape[1:]), layer.tie_cuts)  # type: ignore[arg-type]
    if run.text_level == "token":
        raise AnalysisError(
            f"{run.path} is a token-level text run: the model classifies records, not tokens, so there is no "
            "accuracy per unit; run `logiclens analyze --parts contributions`"
        )
    active = threshold_units(np.asarray(activations), layer.thresholds)
    if active.shape[1] != n_inputs:
        raise AnalysisError(f"{layer.activations}: {active.shape[1]} positions for {n_inputs} predictions")
    return active


def _heldout_by_length(run: RunData, layer: LayerData) -> pd.DataFrame | None:
    """The layer's held-out IoU at every maximum length, where the run has the formulas and a held-out part."""
    path = run.path / layout.best_by_length_file(layer.name)
    if layer.best_by_length is None or run.heldout is None or not len(run.heldout) or not path.is_file():
        return None
    formulas = read_formulas_by_length(path)
    if formulas is None or formulas.shape != layer.best_by_length.shape:
        return None  # a run searched before the formulas were kept: held-out r at the run's length only
    masks = _heldout_masks(run, layer)
    if masks is None:
        return None
    table = heldout_by_length(layer.best_by_length, formulas, *masks)
    table["unit"] = np.repeat(layer.results["unit"].astype(str).to_numpy(), layer.best_by_length.shape[1])
    return table


def _heldout_masks(run: RunData, layer: LayerData) -> tuple[UnitMasks, ConceptSet] | None:
    concepts = ConceptSet.load(run.concepts)
    heldout = np.asarray(run.heldout)
    if run.text_level is not None:
        if run.text_level == "token":
            return None  # the split holds examples, not tokens
        active = threshold_units(np.asarray(np.load(layer.activations, mmap_mode="r"))[heldout], layer.thresholds)
        subset = concepts.subset(heldout)
        return UnitMasks.from_dense(active, subset), subset
    from logiclens.vision.dissect.masks import load_variants
    from logiclens.vision.dissect.search import variants_of
    from logiclens.vision.dissect.split import Split

    units = run.path / layout.units_file(layer.name)
    if not units.is_file():
        return None
    masks = load_variants(units)
    if len(masks) < 2 or len(masks[0]) != len(layer.results):
        return None  # no held-out variant, or activation ranges (rows per range)
    signatures = np.load(run.signatures, mmap_mode="r")
    search = np.setdiff1d(np.arange(len(signatures)), heldout)
    variants = variants_of(concepts, masks[:2], Split(search, heldout, [], ""), signatures)
    assert variants.heldout is not None and variants.heldout_concepts is not None
    return variants.heldout, variants.heldout_concepts


def _reopen_model(run: RunData) -> Any:
    from logiclens.vision.models import load_model

    spec = run.config.get("model", {})
    name = spec.get("name")
    if not name:
        raise AnalysisError(f"{run.path}: config.json names no model; pass the model to analyze()")
    weights = (spec.get("weights") or {}).get("path")
    try:
        model = load_model(name, weights=weights)
    except ValueError as error:
        raise AnalysisError(
            f"cannot reload the run's model ({str(error).rstrip('.')}); pass it with --model module:factory"
        ) from None
    if spec.get("state_sha256") and model.config()["state_sha256"] != spec["state_sha256"]:
        raise AnalysisError(f"{run.path}: the model {name!r} loaded now has other weights than the run's")
    return model


def analyze(
    run_dir: str | Path,
    settings: AnalysisSettings | None = None,
    model: Any = None,
    probe: Any = None,
    verbose: int = 1,
) -> AnalysisResult:
    """Accuracy when active, contributions to classes and copy-paste edits of a vision or text run.

    Parameters
    ----------
    run_dir : str or Path
        A finished run (``logiclens dissect``, ``logiclens text explain --model``) that recorded predictions.
    settings : AnalysisSettings, optional
    model : ModelAdapter, optional
        The run's model; by default reloaded from ``config.json`` (checked by its weights' hash).
    probe : ProbeDataset, optional
        The run's probe; by default reopened from ``config.json``.
    verbose : int

    Returns
    -------
    AnalysisResult
        Also written to ``run_dir/analysis/``.

    Raises
    ------
    AnalysisError
        One line that says what to do: no predictions, no labelled images (accuracy), no
        classifier path and no gradient (contributions), a token-level text run (accuracy).
    """
    settings = settings or AnalysisSettings()
    started = time.perf_counter()
    clock = _Clock()
    try:
        run = load_run(run_dir)
    except RunError as error:
        raise AnalysisError(str(error)) from None
    predictions = load_predictions(run.path)
    text = run.text_level is not None
    summary: dict[str, Any] = {
        "settings": {**asdict(settings), "copy_paste": asdict(settings.copy_paste)},
        "n_images": len(predictions.predicted),
        "n_labelled": int(predictions.labelled.sum()),
        "active_rule": _TEXT_RULE if text else _IMAGE_RULE,
        "notes": [],
    }
    if text and "copy_paste" in settings.parts:
        settings = replace(settings, parts=tuple(p for p in settings.parts if p != "copy_paste"))
        summary["notes"].append(
            "no copy-paste edits for a text run here: word insertions come from logiclens.analysis.insertion "
            "(see docs/analysis.md)"
        )
    folder = run.path / layout.ANALYSIS
    folder.mkdir(exist_ok=True)
    accuracy = table = contributions = edits = None
    if "accuracy" in settings.parts:
        accuracy, table, by_length = _accuracy(run, predictions, "model")
        control = run.path / "random_init"
        if (control / layout.RESULTS).is_file() and (control / layout.PREDICTIONS).is_file():
            control_run = load_run(control)
            control_predictions = load_predictions(control)
            control_predictions.targets = predictions.targets
            extra, extra_table, extra_by_length = _accuracy(control_run, control_predictions, "random_init")
            accuracy = pd.concat([accuracy, extra], ignore_index=True)
            table = pd.concat([table, extra_table], ignore_index=True)
            for name, frame in extra_by_length.items():
                by_length[name] = pd.concat([by_length[name], frame]) if name in by_length else frame
        atomic_write_text(run.path / layout.ACCURACY, accuracy.to_csv(index=False))
        for stale in folder.glob("heldout_by_length_*.csv"):  # an earlier analysis' tables
            stale.unlink()
        for name, frame in by_length.items():
            atomic_write_text(run.path / layout.heldout_by_length_file(name), frame.to_csv(index=False))
        summary["correlations"] = json.loads(table.to_json(orient="records"))
        clock.lap("accuracy")
    if text and "contributions" in settings.parts:
        layer, matrix, classes, class_names = _text_contributions(run, settings)
        contributions = _write_contributions(run, folder, summary, layer, matrix, "effective_weight", classes,
                                             class_names, settings)  # fmt: skip
        clock.lap("contributions")
    elif "contributions" in settings.parts or "copy_paste" in settings.parts:
        signatures = np.load(run.signatures, mmap_mode="r")
        model = model if model is not None else _reopen_model(run)
        if probe is None:
            from logiclens.vision.probes.registry import probe_from_config

            probe = probe_from_config(run.config)
        concepts = ConceptSet.load(run.concepts)
        layer, matrix, method, classes = _contributions(run, model, probe, predictions, settings)
        contributions = _write_contributions(run, folder, summary, layer, matrix, method, classes,
                                             getattr(model, "class_names", None), settings)  # fmt: skip
        clock.lap("contributions")
        if "copy_paste" in settings.parts:
            edits, gallery, plans_info = _copy_paste(
                run, layer, model, probe, concepts, predictions, matrix, classes, settings, signatures
            )
            atomic_write_text(run.path / layout.COPY_PASTE, edits.to_csv(index=False))
            summary["copy_paste"] = {
                **summarize_copy_paste(edits, settings.copy_paste.n_boot, settings.copy_paste.seed),
                "classes": plans_info,
            }
            summary["gallery"] = _save_gallery(folder, gallery)
            clock.lap("copy_paste")
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["seconds_by_part"] = clock.laps
    atomic_write_text(run.path / layout.ANALYSIS_SUMMARY, json.dumps(summary, indent=2, default=_plain))
    return AnalysisResult(accuracy, table, contributions, edits, summary, folder)


_IMAGE_RULE = "An image counts for a unit where its unit mask (upsampled map > threshold) is non-empty"
_TEXT_RULE = "An input (pair or sentence) counts for a unit where its activation is above the unit's threshold"


def _write_contributions(run, folder, summary, layer, matrix, method, classes, class_names, settings):  # type: ignore[no-untyped-def]
    """contributions.csv (per class), unit_classes.csv (per unit) and the full matrix."""
    contributions = contribution_table(matrix, layer.name, method, layer.results, classes, class_names,
                                       settings.top_units)  # fmt: skip
    atomic_write_text(run.path / layout.CONTRIBUTIONS, contributions.to_csv(index=False))
    per_unit = unit_class_table(matrix, layer.name, method, layer.results, classes, class_names, settings.top_classes)
    atomic_write_text(run.path / layout.UNIT_CLASSES, per_unit.to_csv(index=False))
    np.save(folder / f"contributions_{layer.file_name}.npy", matrix)
    summary["contributions"] = {"layer": layer.name, "method": method, "n_classes": len(classes)}
    return contributions


def _text_contributions(run: RunData, settings: AnalysisSettings):  # type: ignore[no-untyped-def]
    """Effective weights of an NLI checkpoint's penultimate units: the output layer's weight (ReLU, dropout between)."""
    from logiclens.text.checkpoint import load_nli_model
    from logiclens.text.data import LABELS

    checkpoint = run.config.get("model", {}).get("checkpoint")
    if not checkpoint:
        raise AnalysisError(
            f"{run.path}: contributions of a text run need the NLI checkpoint it explained (config.json names none); "
            "run `logiclens analyze --parts accuracy`"
        )
    model, _, _ = load_nli_model(checkpoint)
    layer = _pick_layer(run, settings.layer)[0]
    if layer.name != model.penultimate:
        raise AnalysisError(
            f"layer {layer.name!r} has no linear path to the classifier (only {model.penultimate!r} has); "
            "run `logiclens analyze --parts accuracy`"
        )
    weight = model.head.mlp.out.weight.detach().double().numpy()
    return layer, weight, np.arange(weight.shape[0]), list(LABELS)[: weight.shape[0]]


class _Clock:
    """Wall seconds of each part, for summary.json (the benchmark reads them)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._mark = time.perf_counter()

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.laps[part] = round(now - self._mark, 2)
        self._mark = now


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return str(value)


def _pick_layer(run: RunData, name: str | None) -> list[LayerData]:
    if name is None:
        return list(reversed(run.layers))
    for layer in run.layers:
        if layer.name == name:
            return [layer]
    raise AnalysisError(f"the run has no layer {name!r}; its layers: {', '.join(x.name for x in run.layers)}")


def _contributions(run: RunData, model: Any, probe: Any, predictions: Predictions, settings: AnalysisSettings):  # type: ignore[no-untyped-def]
    import torch

    candidates = _pick_layer(run, settings.layer)
    example = model.preprocess(torch.from_numpy(probe.load(0)[0][None]))
    for layer in candidates:
        activations = np.load(layer.activations, mmap_mode="r")
        if predictions.logits is None:
            break
        head = find_linear_head(model, layer.name, activations[:8], predictions.logits[:8], example)
        if head is not None:
            classes = np.arange(head.effective.shape[0])
            return layer, head.effective, "effective_weight", classes
    layer = candidates[0]
    classes = _default_classes(predictions, settings.copy_paste)
    if not len(classes):
        raise AnalysisError("no classes to attribute: the run has no predictions to pick classes from")
    n = min(settings.grad_images, len(predictions.predicted))
    images = np.stack([probe.load(i)[0] for i in range(n)]).astype(np.float32)
    try:
        matrix = gradient_contributions(model, layer.name, images, classes, settings.batch_size)
    except RuntimeError as error:
        raise AnalysisError(
            f"layer {layer.name!r} has no linear path to the classifier and no gradient to the logits ({error}); "
            "choose another layer with --layer"
        ) from None
    return layer, matrix, "grad_x_activation", classes


def _default_classes(predictions: Predictions, settings: CopyPasteSettings) -> NDArray[np.intp]:
    if settings.classes:
        return np.asarray(settings.classes, np.intp)
    values = predictions.targets[predictions.labelled]
    if not len(values):
        values = predictions.predicted
    ids, counts = np.unique(values, return_counts=True)
    order = np.lexsort((ids, -counts))
    return ids[order].astype(np.intp)


def _copy_paste(run, layer, model, probe, concepts, predictions, matrix, classes, settings, signatures):  # type: ignore[no-untyped-def]
    options = settings.copy_paste
    areas = concept_areas(signatures, concepts)
    n_images = len(predictions.predicted)
    hosts = run.heldout if run.heldout is not None and len(run.heldout) else np.arange(n_images)
    row_of = {int(c): i for i, c in enumerate(classes)}
    formulas = layer.results["formula"].astype(str).tolist()
    plans, info = [], []
    for target in _default_classes(predictions, options):
        if int(target) not in row_of:
            continue
        plan = plan_class(int(target), matrix[row_of[int(target)]], formulas, concepts.names, concepts.categories,
                          areas, hosts, predictions.predicted, options)  # fmt: skip
        if plan is None or not plan.hosts:
            info.append({"target": int(target), "skipped": "no pasteable un-negated concept in its top units"})
            continue
        plans.append(plan)
        info.append({"target": int(target), "units": plan.units,
                     "targeted": [concepts.names[c] for c, _ in plan.targeted],
                     "controls": [concepts.names[c] if c >= 0 else "" for c in plan.controls],
                     "negated": [concepts.names[c] for c, _ in plan.negated], "hosts": plan.hosts})  # fmt: skip
        if len(plans) >= options.n_classes:
            break
    if not plans:
        raise AnalysisError(
            f"no target class has a pasteable concept in its top units' formulas (layer {layer.name!r}); "
            "try another --layer or more --units"
        )
    source = _ProbeImages(probe, signatures, concepts)
    edits, gallery = run_copy_paste(
        _predict_fn(model, settings.batch_size), source, plans, options, concepts.names,
        getattr(model, "class_names", None), settings.batch_size, settings.gallery,
    )  # fmt: skip
    return edits, gallery, info


def _save_gallery(folder: Path, gallery: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The strongest targeted edits as PNG pairs under ``analysis/gallery/``."""
    from PIL import Image

    out = folder / "gallery"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    saved = []
    for number, item in enumerate(gallery):
        names = {}
        for which in ("before", "after"):
            pixels = (np.clip(item[which].transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
            name = f"{number:02d}_{which}.png"
            Image.fromarray(pixels).save(out / name)
            names[which] = f"gallery/{name}"
        saved.append({"row": item["row"], **names})
    return saved
