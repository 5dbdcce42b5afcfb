"""Train and run the paper's LSTM NLI model on JSONL pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from logiclens.text.checkpoint import TokenIndex
from logiclens.text.data import label_ids
from logiclens.text.features import split_pairs
from logiclens.text.nli_model import NLIModel
from logiclens.text.recording import record_layer
from logiclens.text.tokenize import AnnotatedText, get_annotator
from logiclens.text.training import TrainingHistory, fit_classifier, predict_logits
from logiclens.text.vocabulary import word_forms

__all__ = ["encode_pairs", "predict_nli", "record_nli_units", "tokenize_pairs", "train_nli"]


def tokenize_pairs(pairs: pd.DataFrame, tokenizer: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """Word forms of premises and hypotheses (``tokenizer``: ``{"annotator", "lowercase"}``)."""
    annotator = get_annotator(tokenizer.get("annotator", "simple"))
    premises, hypotheses = split_pairs(pairs)
    texts = [*premises, *hypotheses]
    raw = [i for i, t in enumerate(texts) if not isinstance(t, AnnotatedText)]
    docs: list[Any] = list(texts)
    for i, doc in zip(raw, annotator.annotate([str(texts[i]) for i in raw])):
        docs[i] = doc
    forms = [word_forms(d, bool(tokenizer.get("lowercase", True))) for d in docs]
    return forms[: len(premises)], forms[len(premises) :]


def encode_pairs(
    index: TokenIndex, premises: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]
) -> tuple[torch.Tensor, ...]:
    """Model inputs ``(premise ids, premise lengths, hypothesis ids, hypothesis lengths)``."""
    return (*index.encode(premises), *index.encode(hypotheses))


def train_nli(
    pairs: pd.DataFrame,
    *,
    tokenizer: dict[str, Any] | None = None,
    max_vocab: int | None = 50_000,
    min_count: int = 1,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    valid_fraction: float = 0.1,
    seed: int = 0,
    verbose: bool = False,
    **model_options: Any,
) -> tuple[NLIModel, TokenIndex, TrainingHistory]:
    """Train :class:`~logiclens.text.nli_model.NLIModel` on labelled pairs.

    Parameters
    ----------
    pairs : DataFrame
        ``premise``, ``hypothesis`` and ``gold_label`` (pairs with other labels are dropped).
    tokenizer : dict, optional
        ``{"annotator": "simple" | "spacy", "lowercase": True}`` (the default; the reference
        uses spaCy's lower-cased tokens).
    max_vocab, min_count
        Token index: the most frequent training words get ids, the rest are unknown.
    epochs, batch_size, lr, valid_fraction, seed, verbose
        See :func:`~logiclens.text.training.fit_classifier`; ``seed`` also seeds the
        model's initialisation.
    **model_options
        ``embedding_dim``, ``hidden``, ``bidirectional``, ``mlp_hidden``, ``n_hidden``,
        ``dropout`` (see :class:`NLIModel`).

    Returns
    -------
    model, index, history
    """
    tokenizer = dict(tokenizer or {"annotator": "simple", "lowercase": True})
    if "gold_label" not in pairs:
        raise ValueError("training pairs need a 'gold_label' field")
    labels = label_ids(pairs["gold_label"])
    pairs = pairs[labels >= 0]
    if pairs.empty:
        raise ValueError("no training pair has a label in entailment/neutral/contradiction")
    premises, hypotheses = tokenize_pairs(pairs, tokenizer)
    index = TokenIndex.build([*premises, *hypotheses], max_vocab, min_count)
    torch.manual_seed(seed)
    model = NLIModel(len(index), **model_options)
    history = fit_classifier(
        model,
        encode_pairs(index, premises, hypotheses),
        torch.tensor(labels[labels >= 0].to_numpy(), dtype=torch.long),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        valid_fraction=valid_fraction,
        seed=seed,
        verbose=verbose,
    )
    return model, index, history


def predict_nli(
    model: NLIModel, index: TokenIndex, pairs: pd.DataFrame, tokenizer: dict[str, Any]
) -> NDArray[np.int64]:
    """Predicted class ids (0 entailment, 1 neutral, 2 contradiction)."""
    inputs = encode_pairs(index, *tokenize_pairs(pairs, tokenizer))
    return predict_logits(model, inputs).argmax(-1).numpy()


def record_nli_units(
    model: NLIModel, index: TokenIndex, pairs: pd.DataFrame, tokenizer: dict[str, Any], layer: str | None = None
) -> NDArray[np.float32]:
    """Activations (N pairs, U units) of ``layer`` (default: the penultimate ReLU)."""
    inputs = encode_pairs(index, *tokenize_pairs(pairs, tokenizer))
    return record_layer(model, inputs, layer or model.penultimate)
