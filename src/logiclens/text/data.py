"""Read sentences and sentence pairs from JSONL files.

One JSON object per line. Pair files have ``premise`` and ``hypothesis`` fields (SNLI's
``sentence1``/``sentence2`` are accepted too) and optionally ``gold_label`` (or ``label``);
sentence files have a ``text`` field. Other fields are kept as columns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

__all__ = ["LABELS", "is_pair_file", "label_ids", "read_jsonl", "read_pairs", "read_sentences"]

#: NLI classes, in the order of the classifier's outputs (as in the reference code).
LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")

_ALIASES = {"sentence1": "premise", "sentence2": "hypothesis", "label": "gold_label"}


def read_jsonl(path: str | os.PathLike[str], limit: int | None = None) -> pd.DataFrame:
    """Read a JSONL file into a data frame (one row per non-empty line).

    Parameters
    ----------
    path : path-like
    limit : int, optional
        Read at most this many records.

    Raises
    ------
    ValueError
        For a line that is not a JSON object (the message gives the line number).
    """
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and len(records) >= limit:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            records.append({_ALIASES.get(k, k): v for k, v in record.items()})
    return pd.DataFrame.from_records(records)


def is_pair_file(frame: pd.DataFrame) -> bool:
    """True when the records have ``premise`` and ``hypothesis`` fields."""
    return {"premise", "hypothesis"} <= set(frame.columns)


def read_pairs(path: str | os.PathLike[str], limit: int | None = None, labelled_only: bool = False) -> pd.DataFrame:
    """Read sentence pairs.

    Parameters
    ----------
    path : path-like
        JSONL with ``premise`` and ``hypothesis`` (strings; missing values become ``""``).
    limit : int, optional
        Read at most this many records.
    labelled_only : bool, default False
        Keep only pairs whose ``gold_label`` is one of :data:`LABELS` (SNLI marks pairs
        without a majority label with ``-``).

    Returns
    -------
    pandas.DataFrame
        With columns ``premise``, ``hypothesis`` and the file's other fields, index 0..n-1.
    """
    frame = read_jsonl(path, limit)
    if not is_pair_file(frame):
        raise ValueError(f"{path}: records need 'premise' and 'hypothesis' fields; found {sorted(frame.columns)}")
    for column in ("premise", "hypothesis"):
        frame[column] = frame[column].fillna("").astype(str)
    if labelled_only:
        if "gold_label" not in frame:
            raise ValueError(f"{path}: labelled_only needs a 'gold_label' field")
        frame = frame[frame["gold_label"].isin(LABELS)].reset_index(drop=True)
    return frame


def read_sentences(path: str | os.PathLike[str], limit: int | None = None) -> pd.DataFrame:
    """Read single sentences from JSONL records with a ``text`` field."""
    frame = read_jsonl(path, limit)
    if "text" not in frame:
        raise ValueError(f"{path}: records need a 'text' field; found {sorted(frame.columns)}")
    frame["text"] = frame["text"].fillna("").astype(str)
    return frame


def label_ids(labels: pd.Series) -> pd.Series:
    """Map label names to class ids (0 entailment, 1 neutral, 2 contradiction; -1 otherwise)."""
    mapping = {name: i for i, name in enumerate(LABELS)}
    return labels.map(mapping).fillna(-1).astype(int)
