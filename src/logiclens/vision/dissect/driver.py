"""Vision dissection end to end: :func:`dissect` runs the stages of a job in a run directory."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from logiclens.core.concepts import ConceptSet
from logiclens.core.io import atomic_write_text
from logiclens.core.parallel import connect_ray
from logiclens.runs import layout
from logiclens.runs.directory import RunDirectory, environment
from logiclens.runs.interchange import results_jsonl
from logiclens.vision.dissect.masks import masks_stage
from logiclens.vision.dissect.record import record_stage
from logiclens.vision.dissect.recording import check_layers
from logiclens.vision.dissect.regions import regions_stage
from logiclens.vision.dissect.search import search_stage
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.dissect.split import split_stage
from logiclens.vision.dissect.thresholds import thresholds_stage
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["check_device", "dissect"]


def check_device(device: str, option: str = "--device") -> None:
    """Raise ValueError, on one line naming ``option``, unless torch can run on ``device`` here."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ValueError(f"{option} {device}: not a device name ({error})") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option} {device}: no CUDA device is available here; use {option} cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{option} {device}: no MPS device is available here; use {option} cpu")


def dissect(
    model: Any,
    probe: ProbeDataset,
    out: str | Path,
    settings: DissectionSettings,
    verbose: int = 1,
) -> pd.DataFrame:
    """Explain every unit of the requested layers; resumable.

    Parameters
    ----------
    model : logiclens.vision.models.ModelAdapter or logiclens.vision.dissect.ActivationFile
        A model with ``module``, ``preprocess`` and ``config()``, or activations recorded
        elsewhere, aligned with the probe's images.
    probe : ProbeDataset
    out : path
        Run directory. Rerunning with the same inputs reuses finished stages and resumes
        an interrupted recording.
    settings : DissectionSettings
        The layers, thresholds and the explainer (search, held-out part, null, ``n_jobs``).
    verbose : int
        0 is silent; 1 shows progress bars on a terminal.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, unit), also written to ``out/results.csv``. With
        ``settings.units="code-clusters"`` each layer's code clusters and baselines are in
        ``out/regions_<layer>.csv`` and their size-matched comparison with the neurons in
        ``out/comparison_<layer>.csv`` (see :mod:`logiclens.vision.dissect.regions`).
    """
    check_device(settings.device)
    if settings.count_device is not None:
        check_device(settings.count_device, "--count-device")
    if settings.backend == "ray":  # an unreachable cluster is an error before anything is written
        connect_ray(settings.ray_address)
    layouts = check_layers(model, probe, settings)  # shapes and the SAE, before anything is written
    run = RunDirectory(out)
    config = {
        "model": model.config(),
        "probe": probe.config(),
        "n_concepts": len(probe.concept_names),
        "settings": settings.to_config(),
    }
    if any(info["layout"] != "maps" for info in layouts.values()) or settings.sae is not None:
        config["layouts"] = layouts  # what was done to each layer's output
    run.write_json(layout.CONFIG, config)
    run.write_json(layout.ENVIRONMENT, environment())
    record_key = record_stage(run, model, probe, settings, verbose)
    concepts = ConceptSet.load(run / layout.CONCEPTS)
    split = split_stage(run, record_key, probe, settings)
    frames = []
    for layer in settings.layers:
        thresholds_key, thresholds, cuts = thresholds_stage(run, layer, record_key, probe.mask_size, settings, verbose)
        masks_key, masks = masks_stage(run, layer, thresholds_key, thresholds, cuts, concepts, split, settings, verbose)
        frames.append(search_stage(run, layer, masks_key, masks, concepts, thresholds, split, settings, verbose))
        if settings.units == "code-clusters":
            regions_stage(run, model, probe, layer, record_key, concepts, split, frames[-1], settings, verbose)
    # the per-layer files as written (a rerun that reuses them must not retype a column)
    tables = [(run / layout.results_file(layer)).read_text(encoding="utf-8") for layer in settings.layers]
    table = tables[0] + "".join(t.split("\n", 1)[1] for t in tables[1:])
    # from the table as written, so that a rerun that reuses the stages writes the same bytes
    written = pd.read_csv(io.StringIO(table), dtype={"unit": str})
    atomic_write_text(run / layout.RESULTS_JSONL, results_jsonl(written, model.name))
    atomic_write_text(run / layout.RESULTS, table)
    return pd.concat(frames, ignore_index=True)
