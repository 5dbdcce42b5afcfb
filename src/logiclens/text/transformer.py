"""Per-word activations of a transformer layer, for token-level probes.

The words of each annotated sentence go to a Hugging Face fast tokenizer as pre-split words
(``is_split_into_words=True``); the layer is recorded with
:class:`~logiclens.hooks.LayerRecorder` (for BERT-style models the FFN units of
block i are ``encoder.layer.i.intermediate``, already after the GELU), and the word pieces of
each word are pooled, so that row j of the result is the j-th token position of
:class:`~logiclens.text.tokens.TokenFeatures`. Words cut off by the model's maximum length
get NaN (never active).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from logiclens.hooks import LayerRecorder
from logiclens.text.embeddings import minilm_path
from logiclens.text.tokenize import AnnotatedText

__all__ = ["POOLING", "load_transformer", "record_word_activations"]

POOLING = ("mean", "max", "first")


def load_transformer(path: str | os.PathLike[str] | None = None) -> tuple[Any, Any]:
    """A Hugging Face model and fast tokenizer from a local directory (default all-MiniLM-L6-v2)."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        raise ImportError("transformers is not installed: pip install -c constraints.txt transformers") from error
    folder = str(Path(path) if path is not None else minilm_path())
    model = AutoModel.from_pretrained(folder, local_files_only=True)
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)


def record_word_activations(
    model: Any,
    tokenizer: Any,
    texts: Sequence[AnnotatedText],
    layer: str,
    pool: str = "mean",
    batch_size: int = 32,
    max_length: int = 256,
) -> NDArray[np.float32]:
    """Activations of ``layer`` for every word of every text.

    Parameters
    ----------
    model : nn.Module
        A Hugging Face encoder called with the tokenizer's outputs.
    tokenizer
        The matching *fast* tokenizer (``word_ids()`` is needed).
    texts : sequence of AnnotatedText
    layer : str
        A ``named_modules()`` name whose output is (batch, pieces, units).
    pool : {"mean", "max", "first"}, default "mean"
        How the pieces of a word are combined.
    batch_size, max_length : int

    Returns
    -------
    ndarray of float32, shape (total words, units)
    """
    if pool not in POOLING:
        raise ValueError(f"pool must be one of {POOLING}, got {pool!r}")
    parts: list[NDArray[np.float32]] = []
    with LayerRecorder(model, layer) as recorder:
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            encoded = tokenizer(
                [list(t.words) for t in batch], is_split_into_words=True, padding=True, truncation=True,
                max_length=max_length, return_tensors="pt",
            )  # fmt: skip
            output = recorder.run(**encoded)[layer]
            if output.ndim != 3:
                raise ValueError(f"layer {layer!r} gives shape {tuple(output.shape)}; expected (batch, pieces, units)")
            for i, text in enumerate(batch):
                parts.append(_pool_words(output[i], encoded.word_ids(i), len(text.words), pool))
    if not parts:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(parts)


def _pool_words(pieces: torch.Tensor, word_ids: Sequence[int | None], n_words: int, pool: str) -> NDArray[np.float32]:
    """(n_words, units) from (pieces, units), with NaN for words without pieces."""
    values = pieces.float().numpy()
    out = np.full((n_words, values.shape[1]), np.nan, np.float32)
    groups: dict[int, list[int]] = {}
    for position, word in enumerate(word_ids):
        if word is not None:
            groups.setdefault(word, []).append(position)
    for word, positions in groups.items():
        rows = values[positions]
        out[word] = rows.mean(0) if pool == "mean" else rows.max(0) if pool == "max" else rows[0]
    return out
