"""Text probes after Mu & Andreas (2020, section 3): NLI sentence pairs, sentences and tokens.

Concepts (:class:`SentencePairFeatures`, :class:`SentenceFeatures`, :class:`TokenFeatures`),
``NEIGHBORS`` from word vectors (:class:`WordEmbeddings`), unit masks and the minimum-activity
rule (:func:`threshold_units`, :class:`ActiveUnitsExplainer`), the accuracy-versus-IoU
analysis (:mod:`logiclens.text.analysis`), run directories the HTML report reads
(:func:`save_text_run`, :mod:`logiclens.runs.texts`), and, with torch, the paper's NLI model
(:mod:`logiclens.text.nli_model`, :mod:`logiclens.text.lstm`) and transformer recording
(:mod:`logiclens.text.encoders`, :mod:`logiclens.text.transformer`). This module imports
neither torch nor spaCy; the torch-based names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from logiclens.explain.active import ActiveUnitsExplainer, threshold_units, unit_thresholds
from logiclens.runs.texts import TextRecord, TextSegment, formula_words
from logiclens.text.analysis import accuracy_when_active, correlation_by_length, iou_accuracy_correlation
from logiclens.text.data import LABELS, read_pairs, read_sentences
from logiclens.text.embeddings import WordEmbeddings
from logiclens.text.features import SentenceFeatures, SentencePairFeatures
from logiclens.text.overlap import word_iou
from logiclens.text.pipeline import TextConceptSettings, TextExplanation, TextSettings, explain_text
from logiclens.text.run import save_text_run
from logiclens.text.tokenize import AnnotatedText, SimpleAnnotator, SpacyAnnotator, simple_tokenize
from logiclens.text.tokens import TokenFeatures

_LAZY = {
    "MLPHead": "logiclens.text.nli_model",
    "NLIModel": "logiclens.text.nli_model",
    "LSTMEncoder": "logiclens.text.nli_model",
    "train_nli": "logiclens.text.lstm",
    "save_nli_model": "logiclens.text.checkpoint",
    "load_nli_model": "logiclens.text.checkpoint",
    "fit_classifier": "logiclens.text.training",
    "record_layer": "logiclens.text.recording",
    "encode_sentences": "logiclens.text.encoders",
    "record_word_activations": "logiclens.text.transformer",
}

__all__ = [
    "LABELS",
    "ActiveUnitsExplainer",
    "AnnotatedText",
    "SentenceFeatures",
    "SentencePairFeatures",
    "SimpleAnnotator",
    "SpacyAnnotator",
    "TextConceptSettings",
    "TextExplanation",
    "TextRecord",
    "TextSettings",
    "TextSegment",
    "TokenFeatures",
    "WordEmbeddings",
    "accuracy_when_active",
    "correlation_by_length",
    "explain_text",
    "formula_words",
    "iou_accuracy_correlation",
    "read_pairs",
    "read_sentences",
    "save_text_run",
    "simple_tokenize",
    "threshold_units",
    "unit_thresholds",
    "word_iou",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'logiclens.text' has no attribute {name!r}")
