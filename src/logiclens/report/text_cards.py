"""Build a text run's unit cards: top-activating examples with the formula's words marked.

An example is a pair, a sentence, or (for token-level runs) a sentence whose tokens are the
positions. Examples rank by the unit's activation on them (its largest over the tokens for
token-level runs; equal values by the mean, then by index), among those where the unit is
active (activation > threshold, compared in float64 as :func:`~logiclens.text.threshold_units`
does). Words are marked as :func:`~logiclens.runs.texts.formula_words` says; for token-level
runs, the tokens where the formula holds and where the unit is active are marked from the
masks themselves, and each example gets its token-level IoU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.report.cards import ShownSegment, TextExample, UnitCard
from logiclens.report.collect import bare_cards, heldout_flags, stored_formula
from logiclens.report.errors import ReportError
from logiclens.report.examples import top_examples
from logiclens.runs.reading import LayerData
from logiclens.runs.texts import TextRecord, formula_concepts

__all__ = ["TOKEN_WINDOW", "fill_text_cards", "text_layer_cards", "top_text_examples"]

#: token-level texts are shown this many tokens either side of their most active token
TOKEN_WINDOW = 20


def top_text_examples(
    activations: np.ndarray,
    offsets: NDArray[np.int64],
    thresholds: NDArray[np.floating],
    k: int,
    block_bytes: int = 64 << 20,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The ``k`` top-activating examples of every unit, and the unit's activation on them.

    An example's activation is the largest over its positions (NaN ignored); only examples
    where it is above the unit's threshold count; equal values are ordered by the mean over
    the positions, then by index (:func:`~logiclens.report.examples.top_examples`).

    Parameters
    ----------
    activations : array (positions, units)
        Usually a memmap; read a block of units at a time, so memory stays near ``block_bytes``.
    offsets : int array (examples + 1,)
        Example e covers positions ``offsets[e]:offsets[e + 1]``.
    thresholds : array (units,)
    k : int
    block_bytes : int
        Memory for one block of units in float64.

    Returns
    -------
    top : int64 array (units, k)
        Example indices, best first, padded with -1.
    values : float64 array (units, k)
        The unit's activation on them (NaN for padding).
    """
    n_positions, n_units = activations.shape
    sizes = np.diff(offsets)
    filled = np.flatnonzero(sizes > 0)
    top = np.full((n_units, k), -1, np.int64)
    values = np.full((n_units, k), np.nan)
    width = max(1, block_bytes // (8 * max(n_positions, len(sizes), 1)))
    for first in range(0, n_units, width):
        block = slice(first, min(first + width, n_units))
        maxima = np.full((len(sizes), block.stop - first), -np.inf)
        means = np.zeros_like(maxima)
        if len(filled):
            acts = np.asarray(activations[:, block], np.float64)
            missing = np.isnan(acts)
            starts = offsets[:-1][filled]
            maxima[filled] = np.maximum.reduceat(np.where(missing, -np.inf, acts), starts, axis=0)
            means[filled] = np.add.reduceat(np.where(missing, 0.0, acts), starts, axis=0) / sizes[filled, None]
        top[block] = top_examples(maxima, means, np.asarray(thresholds, np.float64)[block], k)
        shown = top[block] >= 0
        values[block][shown] = maxima[top[block][shown], np.nonzero(shown)[0]]
    return top, values


def _token_level(
    record: TextRecord,
    acts: NDArray[np.float64],
    threshold: float,
    holds: NDArray[np.bool_] | None,
    window: int = TOKEN_WINDOW,
) -> tuple[list[ShownSegment], float | None]:
    """Segments with per-token unit and formula marks, and the example's token IoU.

    Texts longer than ``2 * window + 1`` tokens are shown around their most active token;
    the IoU is over every token.
    """
    active = acts > threshold
    matched = holds if holds is not None else np.zeros(len(acts), bool)
    union = int((active | matched).sum())
    iou = float((active & matched).sum()) / union if union else None
    shown_from, shown_to = 0, len(acts)
    cropped = len(acts) > 2 * window + 1
    if cropped:
        peak = int(np.argmax(np.where(np.isnan(acts), -np.inf, acts)))
        shown_from = min(max(peak - window, 0), len(acts) - 2 * window - 1)
        shown_to = shown_from + 2 * window + 1
    segments, start = [], 0
    for segment in record.segments:
        stop = start + len(segment.tokens)
        first, last = max(start, shown_from), min(stop, shown_to)
        if first < last or not cropped:
            part = slice(first, max(first, last))
            marks = (matched[part].tolist(), active[part].tolist(), acts[part].tolist())
            tokens = list(segment.tokens[first - start : part.stop - start])
            segments.append(ShownSegment(segment.name, tokens, *marks, first - start, stop - part.stop))
        start = stop
    return segments, iou


def text_layer_cards(
    layer: LayerData,
    concepts: ConceptSet,
    records: Sequence[TextRecord],
    top_k: int,
    level: str,
    heldout: NDArray[np.integer] | None = None,
) -> list[UnitCard]:
    """Cards with the top-activating examples of every unit of a text run's layer.

    Parameters
    ----------
    layer : LayerData
    concepts : ConceptSet
        The run's concept set (``concepts.npz``).
    records : sequence of TextRecord
        The run's ``texts.jsonl``.
    top_k : int
        Examples per unit.
    level : {"pair", "sentence", "token"}
    heldout : int array, optional
        Examples held out of the search.

    Returns
    -------
    list of UnitCard
    """
    cards = bare_cards(layer)
    offsets = np.zeros(len(records) + 1, np.int64)
    np.cumsum([record.n_positions for record in records], out=offsets[1:])
    activations = np.load(layer.activations, mmap_mode="r")
    if activations.ndim != 2 or activations.shape != (offsets[-1], len(cards)) or offsets[-1] != concepts.n_positions:
        raise ReportError(
            f"{layer.activations}: shape {activations.shape} does not match {offsets[-1]} positions of the texts, "
            f"{concepts.n_positions} of the concepts and {len(cards)} units"
        )
    if level == "token" and any(r.n_positions != sum(len(s.tokens) for s in r.segments) for r in records):
        raise ReportError("texts.jsonl: a token-level record must cover one position per token")
    fill_text_cards(
        cards, activations, offsets, layer.thresholds, list(layer.results["formula"]),
        [f"results.csv, layer {layer.name}, unit {u}" for u in layer.results["unit"]],
        concepts, records, top_k, level, heldout,
    )  # fmt: skip
    return cards


def fill_text_cards(
    cards: list[UnitCard],
    activations: np.ndarray,
    offsets: NDArray[np.int64],
    thresholds: NDArray[np.floating],
    formulas: Sequence[str],
    where: Sequence[str],
    concepts: ConceptSet,
    records: Sequence[TextRecord],
    top_k: int,
    level: str,
    heldout: NDArray[np.integer] | None = None,
) -> None:
    """Add the top-activating examples to the cards of units with ``activations`` (positions, units).

    ``formulas`` and ``where`` (the row that holds each formula, for messages) are per unit;
    ``offsets`` give each record's positions (see :func:`top_text_examples`).
    """
    top, top_values = top_text_examples(activations, offsets, thresholds, top_k)
    is_heldout = heldout_flags(heldout, len(records))
    for unit, card in enumerate(cards):
        examples = top[unit][top[unit] >= 0]
        if not len(examples):
            continue
        formula = stored_formula(str(formulas[unit]), where[unit])
        try:
            holds = concepts.mask(formula) if formula is not None else None
            witnesses = formula_concepts(formula, concepts) if formula is not None else frozenset()
        except (KeyError, ValueError):
            holds, witnesses = None, frozenset()
        threshold = float(thresholds[unit])
        for example, value in zip(examples.tolist(), top_values[unit].tolist()):
            record, part = records[example], slice(offsets[example], offsets[example + 1])
            if level == "token":
                acts = np.asarray(activations[part, unit], np.float64)
                segments, iou = _token_level(record, acts, threshold, None if holds is None else holds[part])
            else:
                segments = [
                    ShownSegment(s.name, list(s.tokens), marks)
                    for s, marks in zip(record.segments, record.marked(witnesses))
                ]
                iou = None
            card.examples.append(
                TextExample(
                    index=example,
                    activation=value,
                    formula_holds=None if holds is None else bool(holds[part].any()),
                    iou=iou,
                    segments=segments,
                    heldout=bool(is_heldout[example]),
                )
            )
