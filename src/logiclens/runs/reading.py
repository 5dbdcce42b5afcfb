"""Read a finished run directory (written by the vision dissection or a text explanation)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logiclens.core.io import read_npz
from logiclens.runs import layout

__all__ = ["TEXT_COLUMNS", "LayerData", "RunData", "RunError", "load_run", "read_results"]

#: results.csv columns that hold text; every other column is numeric or boolean
TEXT_COLUMNS = (
    "layer", "unit", "formula", "best_atomic", "category", "formula_categories", "status", "auto_formula",
    "certificate", "beam_formula",
)  # fmt: skip
#: numeric columns that hold counts: read as integers with missing values (so 5 shows as 5, not 5.0)
COUNT_COLUMNS = (
    "length", "n_active", "formula_size", "intersection", "n_negations", "reference_length", "auto_length",
)  # fmt: skip


class RunError(ValueError):
    """A run directory that cannot be read (missing, unfinished or damaged files)."""


@dataclass
class LayerData:
    """One dissected layer of a run.

    Attributes
    ----------
    name : str
        The layer's name (``blocks.5``).
    file_name : str
        Its file-system-safe name, as in ``record/<file_name>.npy``.
    results : pandas.DataFrame
        Its rows of ``results.csv``, in unit order, with a fresh 0..U-1 index.
    thresholds : ndarray of float64, shape (U,)
    tie_cuts : ndarray of float64, shape (U,), or None
        Tie-breaking cuts of ``thresholds_<file_name>.npz`` (see
        :mod:`logiclens.vision.activations.ties`), where the run has them.
    best_by_length : pandas.DataFrame or None
        ``best_by_length_<file_name>.csv`` where present: one row per unit, one column per
        exact formula length (``"1"``, ``"2"``, ...), the best metric value found.
    activations : Path
        ``record/<file_name>.npy``: (images, units, h, w), or (positions, units) for text runs.
    channels : ndarray of int, shape (rows,), or None
        For runs with activation ranges (``--ranges K``), where each row of ``results`` is
        one range of a unit: the unit (channel of ``activations``) of each row. None: row
        ``i`` is unit ``i``.
    ranges : (low, high) float64 arrays of shape (rows,), or None
        Each row's inclusive activation range (``thresholds`` then holds ``low``).
    """

    name: str
    file_name: str
    results: pd.DataFrame
    thresholds: np.ndarray
    tie_cuts: np.ndarray | None
    best_by_length: pd.DataFrame | None
    activations: Path
    channels: np.ndarray | None = None
    ranges: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def row_channels(self) -> np.ndarray:
        """The channel of ``activations`` each row of ``results`` describes."""
        return np.arange(len(self.results)) if self.channels is None else self.channels


@dataclass
class RunData:
    """The parts of a run directory a report shows.

    Attributes
    ----------
    path : Path
    config, environment : dict
        ``config.json`` and ``environment.json`` (empty where missing).
    layers : list of LayerData
        In the order of ``results.csv``.
    signatures : Path
        ``record/signatures.npy``.
    concepts : Path
        ``concepts.npz``.
    texts : Path
        ``texts.jsonl``: the probing texts of a text run (see :mod:`logiclens.text.run`).
    heldout : ndarray of int or None
        Examples held out of the search (``split.npz``), where the run has a split.
    """

    path: Path
    config: dict[str, Any]
    environment: dict[str, Any]
    layers: list[LayerData]
    signatures: Path
    concepts: Path
    texts: Path
    heldout: np.ndarray | None

    @property
    def text_level(self) -> str | None:
        """``pair``, ``sentence`` or ``token`` for runs of text probes; None for image probes."""
        probe = self.config.get("probe", {})
        return str(probe.get("level", "sentence")) if isinstance(probe, dict) and probe.get("kind") == "text" else None

    @property
    def metric(self) -> str:
        """The metric the search maximised (``iou`` unless the run says otherwise)."""
        search = self.config.get("settings", {}).get("search", {})
        return str(search.get("metric", "iou"))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None
    return data if isinstance(data, dict) else {}


def _typed(column: pd.Series) -> pd.Series:
    """A column read as text, as booleans where it only holds True/False, else as numbers."""
    values = set(column.unique())
    if values <= {"True", "False", ""} and values & {"True", "False"}:
        return column.map({"True": True, "False": False, "": None}).astype(object)
    return pd.to_numeric(column.replace("", np.nan), errors="coerce")


def read_results(path: Path) -> pd.DataFrame:
    """``results.csv`` with text columns kept verbatim (a concept may be called ``NA``).

    Parameters
    ----------
    path : Path

    Returns
    -------
    pandas.DataFrame
        Text columns (:data:`TEXT_COLUMNS`) as str (missing: ``""``), the others as numbers
        (missing: NaN) or booleans.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: not a readable results table ({error})") from None
    missing = [c for c in ("layer", "unit", "formula", "iou") if c not in frame]
    if missing:
        raise RunError(f"{path}: missing column(s) {', '.join(missing)}")
    for column in frame.columns:
        if column not in TEXT_COLUMNS:
            frame[column] = _typed(frame[column])
        if column in COUNT_COLUMNS and pd.api.types.is_float_dtype(frame[column]):
            values = frame[column].dropna()
            if (values == values.round()).all():
                frame[column] = frame[column].astype("Int64")
    for column in ("length", "best_atomic_iou"):  # runs of older versions may lack them
        if column not in frame:
            frame[column] = np.nan
    for column in ("best_atomic", "category", "status"):
        if column not in frame:
            frame[column] = ""
    return frame


def _best_by_length(path: Path, n_units: int) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype={"unit": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: not a readable table ({error})") from None
    lengths = [c for c in frame.columns if str(c).isdigit()]
    if not lengths or len(frame) != n_units:
        raise RunError(f"{path}: expected {n_units} rows and one column per formula length (1, 2, ...)")
    return frame[sorted(lengths, key=int)].apply(pd.to_numeric, errors="coerce")


def _row_ranges(stored: Path, data: dict, rows: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Channel, range low and range high of each row of a layer dissected with activation ranges."""
    if "range_low" not in data or "range_high" not in data:
        raise RunError(f"{stored}: no activation ranges (range_low, range_high) for the ranged layer {name!r}")
    low, high = np.asarray(data["range_low"], np.float64), np.asarray(data["range_high"], np.float64)
    channels = pd.to_numeric(rows["unit"], errors="coerce").to_numpy(np.float64)
    index = pd.to_numeric(rows["range_index"], errors="coerce").to_numpy(np.float64)
    valid = np.isfinite(channels) & np.isfinite(index) & (channels == np.round(channels)) & (index == np.round(index))
    if low.ndim != 2 or low.shape != high.shape or not valid.all():
        raise RunError(f"{stored}: ranges of shape {low.shape} do not fit the unit and range_index columns of {name!r}")
    channels, index = channels.astype(np.intp), index.astype(np.intp)
    if (channels < 0).any() or (channels >= low.shape[0]).any() or (index < 0).any() or (index >= low.shape[1]).any():
        raise RunError(
            f"{stored}: {low.shape[0]} units x {low.shape[1]} ranges do not cover the rows of layer {name!r}"
        )
    return channels, low[channels, index], high[channels, index]


def _layer(run: Path, name: str, results: pd.DataFrame) -> LayerData:
    file_name = layout.layer_file_name(name)
    rows = results[results["layer"] == name].reset_index(drop=True)
    stored = run / layout.thresholds_file(name)
    data = read_npz(stored) if stored.is_file() else {}
    best_path = run / layout.best_by_length_file(name)
    if "range_index" in rows and rows["range_index"].notna().any():  # one row per range of a unit
        channels, low, high = _row_ranges(stored, data, rows, name)
        best = _best_by_length(best_path, len(rows))
        return LayerData(name, file_name, rows, low, None, best, run / layout.record_file(name), channels, (low, high))
    if "threshold" in rows and (rows["threshold"].notna().all() or "thresholds" not in data):
        thresholds = rows["threshold"].to_numpy(np.float64)  # NaN: a unit that is never active
    elif "thresholds" in data:
        thresholds = np.asarray(data["thresholds"], np.float64)
    else:
        raise RunError(f"{run}: no thresholds for layer {name!r} (results.csv or {stored.name})")
    tie_cuts = np.asarray(data["tie_cuts"], np.float64) if "tie_cuts" in data else None
    if len(thresholds) != len(rows) or (tie_cuts is not None and len(tie_cuts) != len(rows)):
        raise RunError(f"{stored}: {len(thresholds)} thresholds for {len(rows)} units of layer {name!r}")
    best = _best_by_length(best_path, len(rows))
    return LayerData(name, file_name, rows, thresholds, tie_cuts, best, run / layout.record_file(name))


def load_run(path: str | Path) -> RunData:
    """Read a finished run directory.

    Parameters
    ----------
    path : str or Path
        A folder written by :func:`logiclens.vision.dissect.dissect` or
        :func:`logiclens.text.run.save_text_run`.

    Returns
    -------
    RunData

    Raises
    ------
    RunError
        If the folder holds no ``results.csv`` or it cannot be read.
    """
    run = Path(path)
    if not run.is_dir():
        raise RunError(f"{run}: no such run directory")
    results_path = run / layout.RESULTS
    if not results_path.is_file():
        raise RunError(
            f"{run}: not a finished run (no results.csv); `logiclens dissect` or `logiclens text explain` write runs"
        )
    results = read_results(results_path)
    names = list(dict.fromkeys(results["layer"]))
    split = run / layout.SPLIT
    heldout = None
    if split.is_file():
        data = read_npz(split)
        heldout = np.asarray(data["heldout"], np.int64) if "heldout" in data else None
    return RunData(
        path=run,
        config=_read_json(run / layout.CONFIG),
        environment=_read_json(run / layout.ENVIRONMENT),
        layers=[_layer(run, name, results) for name in names],
        signatures=run / layout.SIGNATURES,
        concepts=run / layout.CONCEPTS,
        texts=run / layout.TEXTS,
        heldout=heldout,
    )
