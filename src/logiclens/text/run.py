"""Write a text explanation as a run directory that ``logiclens report`` reads.

The layout follows the vision dissection's (:mod:`logiclens.runs.layout`), so the same report
code reads both:

``results.csv``
    One row per unit: ``layer``, the explainer's columns, and ``threshold``.
``top_formulas.csv``, ``best_by_length_<layer>.csv``
    The top formulas per unit and the best score per exact formula length.
``record/<layer>.npy``
    The activations, float (positions, units): one position per pair, sentence or token.
``concepts.npz``
    The concept set (:meth:`~logiclens.ConceptSet.save`).
``record/predictions.npy``, ``record/targets.npy``
    With a model: its logits and the gold class ids (-1: none) per position, for
    ``logiclens analyze``.
``texts.jsonl``
    The probing examples' tokens and the concepts each token witnesses
    (:mod:`logiclens.runs.texts`).
``split.npz``
    The ``search`` and ``heldout`` examples, where the explainer held some out.
``config.json``, ``environment.json``
    The model, the probe (``{"kind": "text", "level": ...}``) and the settings; versions.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from logiclens.core.concepts import ConceptSet
from logiclens.core.io import atomic_savez, atomic_write_text
from logiclens.explain.active import ActiveUnitsExplainer
from logiclens.explain.compositional import CompositionalExplainer
from logiclens.runs import layout
from logiclens.runs.by_length import by_length_csv
from logiclens.runs.directory import RunDirectory, environment
from logiclens.runs.interchange import results_jsonl
from logiclens.runs.layout import layer_file_name
from logiclens.runs.texts import TextRecord, save_records

__all__ = ["LEVELS", "save_text_run"]

#: what a position is: a premise-hypothesis pair, a sentence, or a token
LEVELS = ("pair", "sentence", "token")


def _activation_array(activations: ArrayLike) -> np.ndarray:
    """Activations as stored: float32 or float64 kept exactly, float16 widened."""
    array = np.asarray(activations)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float32 if array.dtype == np.float16 else np.float64)
    return np.ascontiguousarray(array)


def _outputs(predictions: ArrayLike | None, targets: ArrayLike | None, n_positions: int) -> dict[str, np.ndarray]:
    """The predictions and targets to save, checked against the positions."""
    outputs = {}
    if predictions is not None:
        logits = np.asarray(predictions, np.float32)
        if logits.ndim != 2 or len(logits) != n_positions:
            raise ValueError(f"predictions of shape {logits.shape}; expected ({n_positions}, classes)")
        outputs[layout.PREDICTIONS] = logits
    if targets is not None:
        gold = np.asarray(targets, np.int64)
        if gold.shape != (n_positions,):
            raise ValueError(f"targets of shape {gold.shape}; expected ({n_positions},)")
        outputs[layout.TARGETS] = gold
    return outputs


def save_text_run(
    out: str | os.PathLike[str],
    explainer: ActiveUnitsExplainer,
    activations: ArrayLike,
    thresholds: ArrayLike,
    concepts: ConceptSet,
    records: Sequence[TextRecord],
    level: str,
    layer: str = "units",
    model: Mapping[str, Any] | None = None,
    probe: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    predictions: ArrayLike | None = None,
    targets: ArrayLike | None = None,
) -> Path:
    """Save a fitted text explanation as a run directory.

    Parameters
    ----------
    out : path
        The run directory (created; files of an earlier run there are replaced).
    explainer : ActiveUnitsExplainer
        Fitted on the masks of ``activations`` and ``concepts``.
    activations : array (positions, units)
    thresholds : array (units,)
        Each unit is active where its activation is greater than its threshold (see
        :func:`~logiclens.explain.active.unit_thresholds`).
    concepts : ConceptSet
    records : sequence of TextRecord
        The probing examples, covering the positions in order (e.g.
        :meth:`SentencePairFeatures.records <logiclens.text.SentencePairFeatures.records>`).
    level : {"pair", "sentence", "token"}
    layer : str
        The units' layer name.
    model, probe, settings : mapping, optional
        Stored in ``config.json``; the probe's ``kind`` and ``level``, the search's parameters
        and ``min_active`` are added here.
    predictions : array (positions, classes), optional
        The model's output per position (``record/predictions.npy``, what ``logiclens analyze`` reads).
    targets : array (positions,), optional
        The gold class id per position, -1 where none (``record/targets.npy``).

    Returns
    -------
    Path
        The run directory.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    acts = _activation_array(activations)
    cuts = np.asarray(thresholds, np.float64)
    frame = explainer.explanations_
    n_positions = sum(record.n_positions for record in records)
    if acts.ndim != 2 or acts.shape != (concepts.n_positions, len(frame)) or n_positions != concepts.n_positions:
        raise ValueError(
            f"activations {acts.shape}, {len(frame)} explained units, {concepts.n_positions} concept positions and "
            f"{n_positions} positions in the records do not match"
        )
    if cuts.shape != (len(frame),):
        raise ValueError(f"{cuts.shape[0] if cuts.ndim else 'no'} thresholds for {len(frame)} units")
    outputs = _outputs(predictions, targets, concepts.n_positions)
    run = RunDirectory(out)
    (run / "results.csv").unlink(missing_ok=True)
    (run / layout.RESULTS_JSONL).unlink(missing_ok=True)  # an earlier run's results no longer describe the files
    if (run / "report" / "report.json").is_file():  # nor does its report
        shutil.rmtree(run / "report")
    file_name = layer_file_name(layer)
    (run / "record").mkdir(exist_ok=True)
    np.save(run / "record" / f"{file_name}.npy", acts)
    for name in (layout.PREDICTIONS, layout.TARGETS):  # an earlier run's outputs no longer describe the files
        (run / name).unlink(missing_ok=True)
    for name, array in outputs.items():
        np.save(run / name, array)
    concepts.save(run / "concepts.npz")
    save_records(run / "texts.jsonl", records)
    results = frame.copy()
    results.insert(0, "layer", layer)
    results.insert(results.columns.get_loc("length") + 1, "threshold", cuts)
    (run / "split.npz").unlink(missing_ok=True)
    split = getattr(explainer.explainer_, "split_", None)
    if split is not None:
        atomic_savez(
            run / "split.npz", {"search": np.asarray(split[0], np.int64), "heldout": np.asarray(split[1], np.int64)}
        )
    atomic_write_text(run / "top_formulas.csv", explainer.top_formulas_.assign(layer=layer).to_csv(index=False))
    atomic_write_text(
        run / layout.best_by_length_file(layer),
        by_length_csv(explainer.best_by_length_, getattr(explainer, "formulas_by_length_", None)),
    )
    search = explainer.explainer if explainer.explainer is not None else CompositionalExplainer()
    explainer_config = {"class": type(search).__name__, **search.get_params(deep=False)}
    config = {
        "model": dict(model or {}),
        "probe": {**dict(probe or {}), "kind": "text", "level": level, "n_examples": len(records)},
        "n_concepts": concepts.n_concepts,
        "settings": {**dict(settings or {}), "explainer": explainer_config, "min_active": explainer.min_active_},
    }
    run.write_json("config.json", config)
    run.write_json("environment.json", environment())
    atomic_write_text(run / layout.RESULTS_JSONL, results_jsonl(results, str((model or {}).get("name", "model"))))
    atomic_write_text(run / "results.csv", results.to_csv(index=False))  # last: the run is complete
    return run.path
