"""Word insertions for text models: the text side of copy-paste (Mu & Andreas, section 6).

For a unit whose formula holds word concepts (``hyp:nobody``, ``NEIGHBORS(hyp:couch)``,
``pre:tall``), the word is inserted into the side the concept names (``pre:`` the premise,
``hyp:`` the hypothesis, no prefix: the single text) at documented positions:

* ``start``: before the first word;
* ``end``: after the last word (before a final ``.``, ``!`` or ``?``);
* ``before_last``: before the last word (after the subject of short captions, most often).

With ``NEIGHBORS(...)`` the concept's neighbours are inserted too, each as its own edit.
Control words have a similar frequency (closest log count) and, where tags are given, the
same part of speech, and appear in no formula. Each edit records the probability of the
class the unit supports before and after; :func:`~logiclens.analysis.copy_paste.summarize_copy_paste`
summarises the rows as for images (``host`` is the input's index).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from logiclens.analysis.formulas import signed_concepts

__all__ = ["POSITIONS", "control_words", "formula_words", "insert_word", "run_insertions"]

POSITIONS = ("start", "end", "before_last")
_SIDES = {"pre": "premise", "hyp": "hypothesis"}


def formula_words(formula: str, neighbors: Mapping[str, Sequence[str]] | None = None) -> list[tuple[str, str]]:
    """The (side, word) pairs a formula's un-negated word concepts name.

    ``side`` is ``premise``, ``hypothesis`` or ``text``. Concepts that are not words
    (tags such as ``hyp:tag:NN``, overlap concepts) are skipped. Neighbours of
    ``NEIGHBORS(x)`` come from ``neighbors[x]``.
    """
    positive, _ = signed_concepts(formula)
    words: list[tuple[str, str]] = []
    mentions_neighbors = "NEIGHBORS(" in formula
    for name in positive:
        side, _, word = name.partition(":") if ":" in name else ("", "", name)
        side_name = _SIDES.get(side, "text") if word else "text"
        word = word or name
        if ":" in word or not word.replace("'", "").replace("-", "").isalpha():
            continue
        for item in [word, *((neighbors or {}).get(name, []) if mentions_neighbors else [])]:
            item = item.partition(":")[2] or item
            if (side_name, item) not in words:
                words.append((side_name, item))
    return words


def insert_word(text: str, word: str, position: str) -> str:
    """``text`` with ``word`` inserted at ``position`` (one of :data:`POSITIONS`), split on spaces."""
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    tokens = text.split()
    tail = ""
    if tokens and tokens[-1][-1:] in ".!?":
        tail = tokens[-1][-1]
        tokens[-1] = tokens[-1][:-1]
        if not tokens[-1]:
            tokens.pop()
    if position == "start":
        tokens.insert(0, word)
    elif position == "end":
        tokens.append(word)
    else:
        tokens.insert(max(0, len(tokens) - 1), word)
    return " ".join(tokens) + tail


def control_words(
    word: str,
    counts: Mapping[str, int],
    exclude: set[str],
    tags: Mapping[str, str] | None = None,
    n: int = 1,
) -> list[str]:
    """Words of similar frequency (and the same tag, where known) that are in no formula.

    Parameters
    ----------
    word : str
    counts : mapping
        Word -> count in the probing texts.
    exclude : set of str
        Words that appear in any formula.
    tags : mapping, optional
        Word -> its most common part-of-speech tag.
    n : int

    Returns
    -------
    list of str
        Up to ``n`` words, closest log-frequency first (ties: alphabetical).
    """
    reference = np.log1p(counts.get(word, 1))
    candidates = []
    for other, count in counts.items():
        if other == word or other in exclude or not other.isalpha():
            continue
        if tags is not None and tags.get(other) != tags.get(word):
            continue
        candidates.append((abs(np.log1p(count) - reference), other))
    return [other for _, other in sorted(candidates)[:n]]


def run_insertions(
    predict: Callable[[list[dict[str, str]]], np.ndarray],
    records: Sequence[Mapping[str, str]],
    targets: Sequence[tuple[int, str, list[tuple[str, str]], list[tuple[str, str]]]],
    positions: Sequence[str] = ("start", "end"),
) -> pd.DataFrame:
    """Insert formula words and control words into inputs not assigned to each target class.

    Parameters
    ----------
    predict : callable
        List of records (``premise``/``hypothesis`` or ``text``) -> logits (n, classes).
    records : sequence of dict
        The inputs (e.g. held-out pairs).
    targets : sequence of (class, unit formula, words, controls)
        ``words`` and ``controls``: (side, word) pairs, controls in the same order as words.
    positions : sequence of str

    Returns
    -------
    DataFrame
        One row per edit: ``target, kind (targeted|control), concept (the word), controls_for,
        side, position, host, text_before, text_after, p_before, p_after, logp_before, logp_after,
        delta_logp, rank_before, rank_after, flipped``; ``size`` is 1.
    """
    base = np.asarray(predict([dict(r) for r in records]), np.float64)
    base_lp = (
        base - np.log(np.exp(base - base.max(1, keepdims=True)).sum(1, keepdims=True)) - base.max(1, keepdims=True)
    )
    rows: list[dict[str, Any]] = []
    edited: list[dict[str, str]] = []
    for target, formula, words, controls in targets:
        hosts = [i for i in range(len(records)) if int(np.argmax(base[i])) != target]
        pairs = [("targeted", w, ("", "")) for w in words] + [
            ("control", c, w) for w, c in zip(words, controls) if c[1]
        ]  # fmt: skip
        for kind, (side, word), (_, control_of) in pairs:
            for host in hosts:
                record = dict(records[host])
                key = side if side in record else ("text" if "text" in record else "hypothesis")
                for position in positions:
                    changed = dict(record)
                    changed[key] = insert_word(record[key], word, position)
                    edited.append(changed)
                    rows.append({"target": target, "formula": formula, "kind": kind, "concept": word,
                                 "controls_for": control_of, "side": key, "position": position, "size": 1,
                                 "host": host, "text_before": record[key], "text_after": changed[key]})  # fmt: skip
    if not rows:
        return pd.DataFrame(rows)
    after = np.asarray(predict(edited), np.float64)
    after_lp = after - after.max(1, keepdims=True)
    after_lp = after_lp - np.log(np.exp(after_lp).sum(1, keepdims=True))
    for i, row in enumerate(rows):
        t, h = row["target"], row["host"]
        lp0, lp1 = base_lp[h], after_lp[i]
        row.update({"p_before": float(np.exp(lp0[t])), "p_after": float(np.exp(lp1[t])),
                    "logp_before": float(lp0[t]), "logp_after": float(lp1[t]), "delta_logp": float(lp1[t] - lp0[t]),
                    "rank_before": int((lp0 > lp0[t]).sum()), "rank_after": int((lp1 > lp1[t]).sum()),
                    "flipped": bool(np.argmax(lp1) == t)})  # fmt: skip
    return pd.DataFrame(rows)
