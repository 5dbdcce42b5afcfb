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

__all__ = ["LABELS", "is_pair_file", "label_ids", "read_jsonl", "read_pairs", "read_sentences", "record_kind"]

#: NLI classes, in the order of the classifier's outputs (as in the reference code).
LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")

_ALIASES = {"sentence1": "premise", "sentence2": "hypothesis", "label": "gold_label"}


def _records(path: str | os.PathLike[str], limit: int | None) -> list[tuple[int, dict]]:
    """(line number, record) of every non-empty line, field aliases applied."""
    records = []
    try:
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
                records.append((number, {_ALIASES.get(k, k): v for k, v in record.items()}))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not records:
        raise ValueError(f"{path}: no records (expected one JSON object per line)")
    return records


def _frame(path: str | os.PathLike[str], records: list[tuple[int, dict]], fields: tuple[str, ...]) -> pd.DataFrame:
    """The records as a frame, each checked to hold every one of ``fields`` as a string."""
    for number, record in records:
        for field in fields:
            value = record.get(field)
            if not isinstance(value, str):
                found = "missing" if field not in record else f"{json.dumps(value)} ({type(value).__name__})"
                kind = "a pair record" if "premise" in fields else "a sentence record"
                raise ValueError(f"{path}:{number}: {kind} needs a string {field!r}; found {found}")
    return pd.DataFrame.from_records([record for _, record in records])


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
        For a line that is not a JSON object, or a file without records (the message gives
        ``file:line``).
    """
    return _frame(path, _records(path, limit), ())


def is_pair_file(frame: pd.DataFrame) -> bool:
    """True when the records have ``premise`` and ``hypothesis`` fields."""
    return {"premise", "hypothesis"} <= set(frame.columns)


def record_kind(path: str | os.PathLike[str], limit: int | None = None) -> str:
    """``"pair"`` or ``"sentence"``: the kind of every record of a JSONL file (by its first record).

    Raises
    ------
    ValueError
        Naming ``file:line`` of the first record of the other kind (a file mixing pairs and
        sentences would explain empty pairs).
    """
    records = _records(path, limit)
    kinds = ["pair" if "premise" in record or "hypothesis" in record else "sentence" for _, record in records]
    for (number, _), kind in zip(records, kinds):
        if kind != kinds[0]:
            raise ValueError(
                f"{path}:{number}: a {kind} record among {kinds[0]}s (line {records[0][0]}); give one kind per file"
            )
    return kinds[0]


def read_pairs(path: str | os.PathLike[str], limit: int | None = None, labelled_only: bool = False) -> pd.DataFrame:
    """Read sentence pairs.

    Parameters
    ----------
    path : path-like
        JSONL with ``premise`` and ``hypothesis`` strings in every record.
    limit : int, optional
        Read at most this many records.
    labelled_only : bool, default False
        Keep only pairs whose ``gold_label`` is one of :data:`LABELS` (SNLI marks pairs
        without a majority label with ``-``).

    Returns
    -------
    pandas.DataFrame
        With columns ``premise``, ``hypothesis`` and the file's other fields, index 0..n-1.

    Raises
    ------
    ValueError
        Naming ``file:line`` of the first record without a string premise or hypothesis
        (a sentence record in a pair file, a ``null`` or a number).
    """
    frame = _frame(path, _records(path, limit), ("premise", "hypothesis"))
    if labelled_only:
        if "gold_label" not in frame:
            raise ValueError(f"{path}: labelled_only needs a 'gold_label' field")
        frame = frame[frame["gold_label"].isin(LABELS)].reset_index(drop=True)
    return frame


def read_sentences(path: str | os.PathLike[str], limit: int | None = None) -> pd.DataFrame:
    """Read single sentences from JSONL records, each with a ``text`` string (``file:line`` in every error)."""
    records = _records(path, limit)
    for number, record in records:
        if "premise" in record or "hypothesis" in record:
            raise ValueError(f"{path}:{number}: a pair record among sentences; give every record a 'text' only")
    return _frame(path, records, ("text",))


def label_ids(labels: pd.Series) -> pd.Series:
    """Map label names to class ids (0 entailment, 1 neutral, 2 contradiction; -1 otherwise)."""
    mapping = {name: i for i, name in enumerate(LABELS)}
    return labels.map(mapping).fillna(-1).astype(int)
