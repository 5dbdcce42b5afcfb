"""Lexical overlap between premise and hypothesis, as Mu & Andreas (2020) define it.

The overlap of a pair is the IoU (Jaccard index) of the *sets* of words of the two sentences:
|P ∩ H| / |P ∪ H|, over unique word forms (punctuation excluded). A pair where both sides have
no word has overlap 0. The concept ``overlap>25%`` holds when the overlap is strictly greater
than 0.25. (The reference code divides shared by non-shared token ids and counts the padding
id; that is not what the paper describes and is not done here.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["DEFAULT_THRESHOLDS", "overlap_flags", "overlap_name", "word_iou"]

#: The paper's four overlap concepts: more than 0 %, 25 %, 50 % and 75 %.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)


def word_iou(first: Iterable[str], second: Iterable[str]) -> float:
    """IoU of the unique words of two sentences (0.0 when both are empty).

    Examples
    --------
    >>> word_iou(["a", "man", "sleeps"], ["a", "man", "runs"])
    0.5
    """
    a, b = set(first), set(second)
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def overlap_name(threshold: float) -> str:
    """Concept name for "overlap above ``threshold``": ``overlap>25%`` for 0.25."""
    return f"overlap>{100 * threshold:g}%"


def overlap_flags(ious: Sequence[float], thresholds: Sequence[float]) -> list[list[int]]:
    """For each pair, the indices of the thresholds its overlap exceeds."""
    return [[i for i, t in enumerate(thresholds) if iou > t] for iou in ious]
