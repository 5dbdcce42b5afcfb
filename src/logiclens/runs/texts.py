"""The probing texts as a report shows them: tokens, and the concepts each token witnesses.

A :class:`TextRecord` is one probing example (a sentence, a premise–hypothesis pair, or a
sentence whose tokens are positions) split into named segments of tokens. Each token lists
the concepts it *witnesses*: those that hold on the example because of that token (``hyp:dog``
for the hypothesis token "dog", ``pre:tag:NN`` for every premise noun, ``overlap>50%`` for every
word the two sentences share when their overlap is above 50 %). The words a formula matches
are the tokens witnessing one of its positive leaves (:func:`formula_words`).

Records are saved as JSON lines (``texts.jsonl`` of a text run), one example per line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logiclens.core.concepts import ConceptSet
from logiclens.core.formula import Formula, Neighbors, positive_leaves
from logiclens.core.io import InputFileError, atomic_write_text

__all__ = ["TextRecord", "TextSegment", "formula_concepts", "formula_words", "load_records", "save_records"]


@dataclass(frozen=True)
class TextSegment:
    """A named run of tokens of an example (``premise``, ``hypothesis`` or ``text``).

    Attributes
    ----------
    name : str
    tokens : tuple of str
    concepts : tuple of tuple of int
        Per token, the indices (in the run's concept set) of the concepts it witnesses.
    """

    name: str
    tokens: tuple[str, ...]
    concepts: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.concepts) != len(self.tokens):
            raise ValueError(f"segment {self.name!r}: {len(self.concepts)} concept lists for {len(self.tokens)} tokens")


@dataclass(frozen=True)
class TextRecord:
    """One probing example.

    Attributes
    ----------
    segments : tuple of TextSegment
    n_positions : int
        Positions of the concept set the example covers: 1 for sentences and pairs, its
        number of tokens when every token is a position.
    """

    segments: tuple[TextSegment, ...]
    n_positions: int = 1

    def marked(self, concepts: frozenset[int]) -> list[list[bool]]:
        """Per segment and token: the token witnesses one of ``concepts``."""
        return [[not concepts.isdisjoint(ids) for ids in segment.concepts] for segment in self.segments]

    def to_json(self) -> dict[str, Any]:
        """The record as one line of ``texts.jsonl`` stores it."""
        return {
            "n_positions": self.n_positions,
            "segments": [
                {"name": s.name, "tokens": list(s.tokens), "concepts": [list(ids) for ids in s.concepts]}
                for s in self.segments
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> TextRecord:
        """Read a record written by :meth:`to_json`; ``ValueError`` for anything else."""
        if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
            raise ValueError("expected an object with a list of segments")
        n_positions = data.get("n_positions", 1)
        if not isinstance(n_positions, int) or isinstance(n_positions, bool) or n_positions < 0:
            raise ValueError(f"n_positions must be a count, got {n_positions!r}")
        segments = []
        for segment in data["segments"]:
            if not isinstance(segment, dict):
                raise ValueError("a segment must be an object")
            tokens, ids = segment.get("tokens"), segment.get("concepts")
            if not _list_of(tokens, str) or not isinstance(ids, list) or not all(_list_of(i, int) for i in ids):
                raise ValueError("a segment needs 'tokens' (strings) and 'concepts' (lists of integers)")
            segments.append(TextSegment(str(segment.get("name", "")), tuple(tokens), tuple(map(tuple, ids))))
        return cls(tuple(segments), n_positions)


def _list_of(value: Any, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)


def save_records(path: str | os.PathLike[str], records: Iterable[TextRecord]) -> None:
    """Write records as JSON lines (atomically)."""
    lines = (json.dumps(record.to_json()) for record in records)  # ASCII: any token survives, lone surrogates too
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def load_records(path: str | os.PathLike[str]) -> list[TextRecord]:
    """Read records written by :func:`save_records`.

    Raises
    ------
    InputFileError
        If the file is missing or a line is not a record (the message gives the line number).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise InputFileError(f"{path}: not UTF-8 text ({error})") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(TextRecord.from_json(json.loads(line)))
        except (json.JSONDecodeError, ValueError) as error:
            raise InputFileError(f"{path}:{number}: not a text record ({error})") from None
    return records


def formula_concepts(formula: Formula, concepts: ConceptSet) -> frozenset[int]:
    """Indices of the concepts that witness a formula: its positive leaves, with their neighbours.

    Parameters
    ----------
    formula : Formula
    concepts : ConceptSet
        The run's concept set (``NEIGHBORS(c)`` stands for ``c`` and its neighbours in it).

    Raises
    ------
    KeyError
        For a concept the set does not have.
    """
    found: set[int] = set()
    for leaf in positive_leaves(formula):
        found.add(concepts.index(leaf.name))
        if isinstance(leaf, Neighbors):
            found.update(concepts.index(name) for name in concepts.neighbor_names(leaf.name))
    return frozenset(found)


def formula_words(formula: Formula, record: TextRecord, concepts: ConceptSet) -> list[list[bool]]:
    """Per segment and token of an example: the token is a word the formula matches.

    A token is matched when it witnesses one of the formula's positive leaves (see
    :func:`formula_concepts`); negated concepts match nothing, since their absence is what
    the formula asks for.
    """
    return record.marked(formula_concepts(formula, concepts))
