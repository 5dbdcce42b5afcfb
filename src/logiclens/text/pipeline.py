"""Explaining a text model's units end to end: :func:`explain_text` (what ``logiclens text explain`` runs).

Records of a JSONL file -> the paper's concepts (pairs, sentences or tokens) -> the units'
activations (recorded from the paper's NLI checkpoint, or given) -> masks (``> threshold``
or a top quantile) -> the search of every unit active often enough, validated by a held-out
split and, optionally, a permutation null -> optionally, a run directory that
``logiclens report`` reads.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.core.io import read_array
from logiclens.explain.active import ActiveUnitsExplainer, threshold_units, unit_thresholds
from logiclens.explain.compositional import CompositionalExplainer
from logiclens.polytope.position_units import RegionUnitSettings
from logiclens.runs.texts import TextRecord

__all__ = ["TextConceptSettings", "TextExplanation", "TextSettings", "explain_text"]

LEVELS = ("auto", "pair", "sentence", "token")


@dataclass
class TextConceptSettings:
    """Which concepts a text probe builds (see ``docs/language.md``).

    Parameters
    ----------
    tokenizer : str
        ``"spacy"`` (tags), ``"simple"`` (no tags) or ``"spacy:MODEL"``.
    vocab_size : int
        The most common words that become concepts.
    lemmatize : bool
        Lemmas instead of words (spaCy).
    tags : bool
        Part-of-speech concepts.
    embeddings : str
        For NEIGHBORS: ``"none"``, ``"minilm"`` or ``"glove:PATH"``.
    n_neighbors : int
    neighbor_space : {"embeddings", "vocabulary"}
    """

    tokenizer: str = "spacy"
    vocab_size: int = 2000
    lemmatize: bool = False
    tags: bool = True
    embeddings: str = "none"
    n_neighbors: int = 5
    neighbor_space: str = "embeddings"

    def probe(self, level: str) -> Any:
        """The concept builder of a level (``SentencePairFeatures``, ``SentenceFeatures`` or ``TokenFeatures``)."""
        from logiclens.text.embeddings import WordEmbeddings
        from logiclens.text.features import SentenceFeatures, SentencePairFeatures
        from logiclens.text.tokens import TokenFeatures

        if self.embeddings == "none":
            embeddings = None
        elif self.embeddings == "minilm":
            embeddings = WordEmbeddings.minilm()
        elif self.embeddings.startswith("glove:"):
            embeddings = WordEmbeddings.from_glove(self.embeddings.removeprefix("glove:"))
        else:
            raise ValueError(f"embeddings must be none, minilm or glove:PATH, got {self.embeddings!r}")
        kind = {"pair": SentencePairFeatures, "sentence": SentenceFeatures, "token": TokenFeatures}[level]
        return kind(
            vocab_size=self.vocab_size, lemmatize=self.lemmatize, annotator=self.tokenizer,
            tags=None if self.tags else False, embeddings=embeddings, n_neighbors=self.n_neighbors,
            neighbor_space=self.neighbor_space,
        )  # fmt: skip


@dataclass
class TextSettings:
    """What :func:`explain_text` computes, apart from the data and the model.

    Parameters
    ----------
    level : {"auto", "pair", "sentence", "token"}
        What a position is; ``"auto"`` reads pairs or sentences from the records' fields.
    concepts : TextConceptSettings
    threshold : float
        A unit is active where its activation is greater than this.
    quantile : float, optional
        Instead of ``threshold``, a per-unit top fraction q.
    min_active : int or float
        Units active on fewer positions (a count, or a fraction) are reported ``skipped``.
    explainer : CompositionalExplainer
        The search and its validation (``holdout``, ``n_null``, ``alpha``, ``random_state``).
    limit : int, optional
        Read at most this many records.
    units : {"neurons", "code-clusters"}
        ``"code-clusters"`` also explains clusters of the layer's codes (with a model: the
        sign of the input of the layer's nonlinearity; with given activations: the sign of
        the activations, which must then be pre-activations) and the baselines of
        ``regions``, and compares every family with the neurons at matched sizes.
    regions : RegionUnitSettings
    pool : {"mean", "max", "first"}
        With a Hugging Face model: how a word's pieces (token level) or a sentence's or
        pair's tokens (sentence and pair levels) are pooled.
    sae : str, optional
        Folder of a sparse autoencoder in SAELens' format (:mod:`logiclens.sae`): its latents,
        encoded from the layer's per-token activations before pooling, are the units. With a
        Hugging Face model only.
    """

    level: str = "auto"
    concepts: TextConceptSettings = field(default_factory=TextConceptSettings)
    threshold: float = 0.0
    quantile: float | None = None
    min_active: int | float = 0.05
    explainer: CompositionalExplainer = field(default_factory=CompositionalExplainer)
    limit: int | None = None
    units: str = "neurons"
    regions: RegionUnitSettings = field(default_factory=RegionUnitSettings)
    pool: str = "mean"
    sae: str | None = None

    def __post_init__(self) -> None:
        if self.units not in ("neurons", "code-clusters"):
            raise ValueError(f"units must be 'neurons' or 'code-clusters', got {self.units!r}")
        if self.pool not in ("mean", "max", "first"):
            raise ValueError(f"pool must be mean, max or first, got {self.pool!r}")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        if not isinstance(self.explainer, CompositionalExplainer):
            raise TypeError(f"explainer must be a CompositionalExplainer, got {type(self.explainer).__name__}")


@dataclass
class TextExplanation:
    """The result of :func:`explain_text`.

    Attributes
    ----------
    explainer : ActiveUnitsExplainer
        Fitted: ``explanations_`` (one row per unit; with a model and gold labels also
        ``accuracy_when_active``), ``top_formulas_``, ``best_by_length_``, ``skipped_``.
    concepts : ConceptSet
    activations : ndarray (positions, units)
    thresholds : ndarray (units,)
    records : list of TextRecord
        The probing examples with the concepts each token witnesses.
    level, layer : str
    correct : ndarray (positions,) or None
        1/0 where the model's prediction is right/wrong, NaN without a gold label.
    regions : DataFrame or None
        With ``units="code-clusters"``: one row per code cluster and baseline unit
        (``family``, ``unit``, ``size``, formula, IoU, held-out IoU, null).
    comparison : DataFrame or None
        The size-matched comparison of all families, neurons included.
    logits : float32 (positions, classes) or None
        With a model: its output on every pair (saved as the run's predictions).
    targets : int64 (positions,) or None
        With a model: the gold class ids, -1 where none.
    region_masks : bool ndarray (region units, positions) or None
        The positions of each row of ``regions``.
    """

    explainer: ActiveUnitsExplainer
    concepts: ConceptSet
    activations: NDArray[np.floating]
    thresholds: NDArray[np.float64]
    records: list[TextRecord]
    level: str
    layer: str
    correct: NDArray[np.float64] | None = None
    regions: Any = None
    comparison: Any = None
    logits: NDArray[np.float32] | None = None
    targets: NDArray[np.int64] | None = None
    region_masks: NDArray[np.bool_] | None = None

    def accuracy_correlation(self) -> tuple[float, float, int]:
        """Pearson r (with p and the number of units) between IoU and accuracy when active (searched units)."""
        from logiclens.text.analysis import iou_accuracy_correlation

        frame = self.explainer.explanations_
        if "accuracy_when_active" not in frame:
            raise ValueError("no accuracy when active: explain a model on records with gold labels")
        searched = (frame.status == "ok").to_numpy()
        return iou_accuracy_correlation(
            frame.iou.to_numpy(float)[searched], frame.accuracy_when_active.to_numpy(float)[searched]
        )


def _activations(path: str | os.PathLike[str], n_positions: int, level: str, tokenizer: str) -> NDArray:
    activations = read_array(path, kinds="fiub")
    if activations.ndim != 2 or activations.shape[0] != n_positions:
        unit = "tokens" if level == "token" else "records"
        raise ValueError(
            f"{path}: activations have shape {activations.shape}; expected ({n_positions}, units): one row per "
            f"{unit[:-1]} ({n_positions:,} {unit} with tokenizer {tokenizer})"
        )
    _check_finite(activations, str(path))
    return activations


def _check_finite(activations: NDArray, source: str) -> None:
    """Raise ValueError naming the first NaN or infinite activation (they would silently count as inactive)."""
    bad = ~np.isfinite(activations)
    if bad.any():
        row, unit = np.argwhere(bad)[0]
        raise ValueError(
            f"{source}: {int(bad.sum()):,} NaN or infinite activations (first at row {row}, unit {unit}); "
            "fix or drop them before explaining"
        )


def _model_codes(checkpoint: str | os.PathLike[str], pairs: Any, layer: str) -> Any:
    """Codes at the nonlinearity of the model's layer, one row per pair."""
    from logiclens.polytope.hooked import record_codes
    from logiclens.text.checkpoint import load_nli_model
    from logiclens.text.lstm import encode_pairs, tokenize_pairs

    model, index, tokenizer = load_nli_model(checkpoint)
    inputs = encode_pairs(index, *tokenize_pairs(pairs, tokenizer))
    batches = (tuple(x[start : start + 512] for x in inputs) for start in range(0, len(inputs[0]), 512))
    return record_codes(model, layer, batches, soft=False).codes


def _regions(
    acts: NDArray,
    masks: NDArray[np.bool_],
    concepts: ConceptSet,
    codes: Any,
    explainer: ActiveUnitsExplainer,
    examples: NDArray,
    groups: Any,
    settings: TextSettings,
    layer: str,
) -> tuple[Any, Any, NDArray[np.bool_]]:
    """Code clusters and baselines explained like the neurons, the size-matched comparison, and the units' masks."""
    import pandas as pd

    from logiclens.polytope.codes import PolytopeCodes
    from logiclens.polytope.position_units import position_families, size_matched_comparison

    if codes is None:  # given activations are the pre-activations
        codes = PolytopeCodes.from_bits(np.asarray(acts) > 0, [layer])
    families, _ = position_families(codes, np.asarray(acts, np.float32), settings.regions, layer)
    unit_masks = np.concatenate([family.masks for family in families])
    regions_explainer = ActiveUnitsExplainer(settings.explainer, 1).fit(unit_masks, concepts, None, examples, groups)
    frame = regions_explainer.explanations_.copy()
    frame["unit"] = [name for family in families for name in family.unit_names]
    frame.insert(0, "family", [family.name for family in families for _ in family.unit_names])
    frame.insert(0, "layer", layer)
    frame.insert(frame.columns.get_loc("unit") + 1, "size", unit_masks.sum(axis=1))
    neurons = explainer.explanations_.assign(family="neurons", size=masks.sum(axis=1), layer=layer)
    comparison = size_matched_comparison(pd.concat([frame, neurons], ignore_index=True), concepts.n_positions)
    return frame, comparison, unit_masks


def _model_activations(
    checkpoint: str | os.PathLike[str], pairs: Any, layer: str | None
) -> tuple[NDArray, NDArray[np.float64] | None, str, NDArray[np.float32], NDArray[np.int64]]:
    """The model's units on the pairs, 1/0 for right/wrong predictions (NaN: no gold label), the layer, the
    logits (pairs, classes) and the gold class ids (-1: none)."""
    from logiclens.text.checkpoint import load_nli_model
    from logiclens.text.data import label_ids
    from logiclens.text.lstm import encode_pairs, tokenize_pairs
    from logiclens.text.recording import record_layer
    from logiclens.text.training import predict_logits

    model, index, tokenizer = load_nli_model(checkpoint)
    inputs = encode_pairs(index, *tokenize_pairs(pairs, tokenizer))
    layer = layer or model.penultimate
    activations = record_layer(model, inputs, layer)
    logits = predict_logits(model, inputs).float().numpy()
    gold = np.full(len(logits), -1, np.int64)
    correct = None
    if "gold_label" in pairs:
        gold = label_ids(pairs["gold_label"]).to_numpy().astype(np.int64)
        predicted = logits.argmax(-1)
        correct = np.where(gold >= 0, (predicted == gold).astype(float), np.nan)
    return activations, correct, layer, logits, gold


def _hf_activations(
    hf_model: str | os.PathLike[str], layer: str | None, level: str, table: Any, inputs: Any, settings: TextSettings
) -> tuple[NDArray, str, dict[str, Any]]:
    """A Hugging Face model's layer on the probe's positions (words, sentences or pairs), and its description."""
    from logiclens.text.transformer import (
        load_transformer,
        record_text_activations,
        record_word_activations,
        resolve_model_folder,
    )

    folder = resolve_model_folder(hf_model)
    model, tokenizer = load_transformer(folder)
    if layer is None:
        blocks = [name for name, _ in model.named_modules() if name.endswith(".intermediate")]
        if not blocks:
            raise ValueError(f"{folder}: give --layer (`logiclens layers --hf-model {hf_model}` lists the layers)")
        layer = blocks[-1]
    sae = None
    info: dict[str, Any] = {"name": "all-MiniLM-L6-v2" if str(hf_model) == "minilm" else folder.name,
                            "hf_model": str(folder), "pool": settings.pool}  # fmt: skip
    if settings.sae is not None:
        from logiclens.sae import load_sae

        sae = load_sae(settings.sae)
        info["sae"] = sae.config()
    transform = sae.encode if sae is not None else None
    try:
        if level == "token":
            acts = record_word_activations(model, tokenizer, inputs, layer, settings.pool, transform=transform)
        else:
            texts = list(zip(table["premise"], table["hypothesis"])) if level == "pair" else list(table["text"])
            acts = record_text_activations(model, tokenizer, texts, layer, settings.pool, transform=transform)
    except ValueError as error:
        raise ValueError(str(error).splitlines()[0]) from None
    missing = np.isnan(acts)
    if missing.any():  # words cut off by the model's maximum length: never active
        acts = np.where(missing, np.nanmin(acts, axis=0, keepdims=True), acts)
    return acts, layer, info


def explain_text(
    data: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    hf_model: str | os.PathLike[str] | None = None,
    activations: str | os.PathLike[str] | None = None,
    layer: str | None = None,
    settings: TextSettings | None = None,
    out: str | os.PathLike[str] | None = None,
) -> TextExplanation:
    """Explain the units of a text model (or of given activations) on the records of a JSONL file.

    Parameters
    ----------
    data : path
        JSONL records: ``premise``/``hypothesis`` pairs (``gold_label`` optional) or ``text``.
    model : path, optional
        A checkpoint of ``logiclens text train-nli``: its layer ``layer`` is recorded on the pairs.
    hf_model : path or "minilm", optional
        Instead of ``model``: a local Hugging Face model folder (``"minilm"``: the packaged
        all-MiniLM-L6-v2); its layer ``layer`` is recorded with the hook recorder, pooled per
        word (token level) or over tokens (sentence and pair levels) by ``settings.pool``.
    activations : path, optional
        Instead of ``model``: an ``.npy`` array, one row per record (or token), one column per unit.
    layer : str, optional
        The model's layer (default: the penultimate; for ``hf_model`` the last
        ``*.intermediate`` module); with ``activations``, the name the run gives the units
        (default ``units``).
    settings : TextSettings, optional
    out : path, optional
        Write a run directory here (see :func:`logiclens.text.run.save_text_run`); build
        its report with :func:`logiclens.report.build_report`.

    Returns
    -------
    TextExplanation
    """
    from logiclens.text.analysis import accuracy_when_active
    from logiclens.text.data import read_pairs, read_sentences, record_kind

    settings = settings or TextSettings()
    if sum(source is not None for source in (model, hf_model, activations)) != 1:
        raise ValueError("give a model, a Hugging Face model or activations (one of them)")
    if settings.sae is not None and hf_model is None:
        raise ValueError("an SAE encodes a Hugging Face model's layer: give --hf-model with --sae")
    level = settings.level if settings.level != "auto" else record_kind(data, settings.limit)
    if model is not None and level != "pair":
        raise ValueError("a model explains an NLI model, which needs premise/hypothesis pairs")
    table = read_pairs(data, settings.limit) if level == "pair" else read_sentences(data, settings.limit)
    probe = settings.concepts.probe(level)
    inputs = probe.annotate_pairs(table) if level == "pair" else probe.annotate(list(table["text"]))
    concepts = probe.fit_transform(inputs)
    correct = logits = gold = None
    hf_info = None
    if model is not None:
        acts, correct, layer, logits, gold = _model_activations(model, table, layer)
        _check_finite(acts, f"{model} layer {layer}")
    elif hf_model is not None:
        acts, layer, hf_info = _hf_activations(hf_model, layer, level, table, inputs, settings)
        _check_finite(acts, f"{hf_model} layer {layer}")
    else:
        assert activations is not None
        acts, layer = (
            _activations(activations, concepts.n_positions, level, settings.concepts.tokenizer),
            layer or "units",
        )
    thresholds = unit_thresholds(acts, settings.threshold, settings.quantile)
    masks = threshold_units(acts, thresholds)
    if level == "token":
        examples, groups = probe.examples(inputs), None
        if settings.explainer.n_null and len(np.unique(np.bincount(examples))) > 1:
            # the null permutes whole examples of equal size: with sentences of different lengths each
            # token is an example of its own (the null permutes tokens), and the held-out split still
            # keeps every sentence on one side (groups)
            examples, groups = np.arange(len(examples)), [int(s) for s in examples]
    else:  # pairs are split by premise, so that no premise is on both sides
        examples = np.arange(len(table))
        groups = [" ".join(premise.words).lower() for premise, _ in inputs] if level == "pair" else None
    explainer = ActiveUnitsExplainer(settings.explainer, settings.min_active).fit(
        masks, concepts, None, examples, groups
    )
    if correct is not None:
        labelled = np.isfinite(correct)
        right = np.nan_to_num(correct, nan=0.0).astype(bool)
        explainer.explanations_["accuracy_when_active"] = accuracy_when_active(masks[:, labelled], right[labelled])
    if settings.sae is not None:  # latents never active on the probe
        explainer.explanations_["dead"] = ~(acts > 0).any(axis=0)
    result = TextExplanation(explainer, concepts, acts, thresholds, list(probe.records(inputs)), level, layer, correct)
    result.logits, result.targets = logits, gold
    if settings.units == "code-clusters":
        codes = _model_codes(model, table, layer) if model is not None else None
        result.regions, result.comparison, result.region_masks = _regions(
            acts, masks, concepts, codes, explainer, examples, groups, settings, layer
        )
    if out is not None:
        _save(result, out, data, model, activations, settings, hf_info)
    return result


def _save(
    result: TextExplanation,
    out: str | os.PathLike[str],
    data: str | os.PathLike[str],
    model: str | os.PathLike[str] | None,
    activations: str | os.PathLike[str] | None,
    settings: TextSettings,
    hf_info: dict[str, Any] | None = None,
) -> Path:
    from logiclens.text.run import save_text_run

    if hf_info is not None:
        model_info = hf_info
    elif model is not None:
        model_info = {"name": Path(model).name, "checkpoint": str(model)}
    else:
        model_info = {"name": Path(str(activations)).name, "activations": str(activations)}
    probe_info = {"data": str(data), "limit": settings.limit, **asdict(settings.concepts)}
    run_settings: dict[str, Any] = {"threshold": settings.threshold, "quantile": settings.quantile}
    if settings.units != "neurons":
        run_settings.update(units=settings.units, regions=settings.regions.to_config())
    folder = save_text_run(
        out, result.explainer, result.activations, result.thresholds, result.concepts, result.records,
        result.level, result.layer, model_info, probe_info, run_settings, result.logits, result.targets,
    )  # fmt: skip
    if result.regions is not None:
        from logiclens.core.io import atomic_write_text
        from logiclens.runs import layout
        from logiclens.runs.region_masks import save_region_masks

        names = [str(u) for u in result.regions["unit"]]
        save_region_masks(Path(folder) / layout.region_masks_file(result.layer), result.region_masks, names)
        atomic_write_text(Path(folder) / layout.regions_file(result.layer), result.regions.to_csv(index=False))
        atomic_write_text(Path(folder) / layout.comparison_file(result.layer), result.comparison.to_csv(index=False))
    return folder
