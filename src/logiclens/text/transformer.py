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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from logiclens.hooks import LayerRecorder
from logiclens.text.embeddings import minilm_path
from logiclens.text.tokenize import AnnotatedText

__all__ = [
    "POOLING", "list_text_layers", "load_transformer", "record_text_activations", "record_word_activations",
    "resolve_model_folder",
]  # fmt: skip

POOLING = ("mean", "max", "first")


def resolve_model_folder(name: str | os.PathLike[str] | None) -> Path:
    """The local folder of a Hugging Face model: ``"minilm"`` (or None) is the packaged all-MiniLM-L6-v2.

    Raises
    ------
    ValueError
        On one line, for a name that is not a local folder (it would need the network:
        logiclens never downloads a model).
    """
    if name is None or str(name) == "minilm":
        return minilm_path()
    folder = Path(name)
    if not folder.is_dir():
        raise ValueError(
            f"--hf-model {name}: not a local folder, and logiclens never downloads models; download it where "
            "the Hub is reachable (huggingface-cli download NAME --local-dir DIR) and give DIR, or use minilm"
        )
    if not (folder / "config.json").is_file():
        raise ValueError(f"--hf-model {folder}: no config.json; give a saved Hugging Face model folder")
    return folder


def load_transformer(path: str | os.PathLike[str] | None = None) -> tuple[Any, Any]:
    """A Hugging Face model and fast tokenizer from a local directory (default, or ``"minilm"``: all-MiniLM-L6-v2)."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        raise ImportError("transformers is not installed: pip install -c constraints.txt transformers") from error
    folder = str(resolve_model_folder(path))
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
    transform: Callable[[torch.Tensor], NDArray[np.float32]] | None = None,
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
    transform : callable, optional
        Applied to each batch's (batch, pieces, units) output before pooling, e.g. an SAE's
        ``encode`` (its latents become the units).

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
            parts.append(_pool_batch(output, encoded, [len(t.words) for t in batch], pool, transform))
    if not parts:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(parts)


def _pool_batch(
    output: torch.Tensor,
    encoded: Any,
    n_words: Sequence[int],
    pool: str,
    transform: Callable[[torch.Tensor], NDArray[np.float32]] | None,
) -> NDArray[np.float32]:
    """(words of the batch, units) from (batch, pieces, units): the pieces of each word pooled.

    Only pieces that belong to a word are read (and encoded by ``transform``); a word's
    pieces are contiguous, so each word is one segment of a ``reduceat``. Words without
    pieces (cut off by the maximum length) are NaN.
    """
    texts, positions, words = [], [], []
    offset = 0
    for i, count in enumerate(n_words):
        for position, word in enumerate(encoded.word_ids(i)):
            if word is not None:
                texts.append(i)
                positions.append(position)
                words.append(offset + word)
        offset += count
    rows = output[torch.as_tensor(texts, dtype=torch.long), torch.as_tensor(positions, dtype=torch.long)]
    values = transform(rows) if transform is not None else rows.float().numpy()
    out = np.full((offset, values.shape[-1]), np.nan, np.float32)
    if not words:
        return out
    word_ids, starts = np.unique(np.asarray(words), return_index=True)
    if pool == "first":
        out[word_ids] = values[starts]
    elif pool == "max":
        out[word_ids] = np.maximum.reduceat(values, starts, axis=0)
    else:
        lengths = np.diff(np.append(starts, len(values)))
        out[word_ids] = np.add.reduceat(values, starts, axis=0, dtype=np.float64) / lengths[:, None]
    return out


def record_text_activations(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str] | Sequence[tuple[str, str]],
    layer: str,
    pool: str = "mean",
    batch_size: int = 32,
    max_length: int = 256,
    transform: Callable[[torch.Tensor], NDArray[np.float32]] | None = None,
) -> NDArray[np.float32]:
    """One row per sentence (or sentence pair, encoded together): ``layer`` pooled over its tokens.

    Parameters
    ----------
    texts : sequence of str, or of (premise, hypothesis)
    pool : {"mean", "max", "first"}
        Over the non-padding tokens (``first``: the first token, e.g. ``[CLS]``).
    transform : callable, optional
        Applied to the (batch, tokens, units) output before pooling (an SAE's ``encode``).

    Returns
    -------
    ndarray of float32, shape (len(texts), units)
    """
    if pool not in POOLING:
        raise ValueError(f"pool must be one of {POOLING}, got {pool!r}")
    parts: list[NDArray[np.float32]] = []
    with LayerRecorder(model, layer) as recorder:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            if batch and isinstance(batch[0], tuple):
                first, second = [p for p, _ in batch], [h for _, h in batch]
                encoded = tokenizer(first, second, padding=True, truncation=True, max_length=max_length,
                                    return_tensors="pt")  # fmt: skip
            else:
                encoded = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            output = recorder.run(**encoded)[layer]
            if output.ndim != 3:
                raise ValueError(f"layer {layer!r} gives shape {tuple(output.shape)}; expected (batch, tokens, units)")
            values = transform(output) if transform is not None else output.float().numpy()
            mask = encoded["attention_mask"].numpy().astype(bool)[:, :, None]
            if pool == "first":
                parts.append(values[:, 0])
            elif pool == "max":
                parts.append(np.where(mask, values, -np.inf).max(axis=1))
            else:
                parts.append((values * mask).sum(axis=1) / mask.sum(axis=1))
    if not parts:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(parts).astype(np.float32)


def list_text_layers(model: Any, tokenizer: Any, text: str = "A man plays a guitar.") -> list[tuple[str, Any]]:
    """``(name, output shape or None)`` of every module of a text model, run on one sentence."""
    shapes: dict[str, Any] = {}
    handles = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            tensor = (
                output
                if isinstance(output, torch.Tensor)
                else next(
                    (o for o in (output if isinstance(output, (tuple, list)) else []) if isinstance(o, torch.Tensor)),
                    None,
                )
            )
            shapes.setdefault(name, None if tensor is None else tuple(tensor.shape))

        return hook

    names = [name for name, _ in model.named_modules()]
    for name, module in model.named_modules():
        handles.append(module.register_forward_hook(hook_for(name)))
    try:
        with torch.inference_mode():
            model(**tokenizer([text], return_tensors="pt"))
    finally:
        for handle in handles:
            handle.remove()
    return [(name, shapes.get(name)) for name in names]
