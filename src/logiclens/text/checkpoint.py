"""Token ids for the LSTM model, and saving/loading trained NLI models.

A checkpoint is one ``torch.save`` file holding only plain data: the state dict, the model's
constructor arguments, the token list and the tokenizer settings, so that it loads with
``torch.load(..., weights_only=True)`` (no pickled code).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from logiclens.checkpoints import read_checkpoint
from logiclens.text.nli_model import NLIModel

__all__ = ["TokenIndex", "load_nli_model", "save_nli_model"]

FORMAT = "logiclens-nli"
VERSION = 1


class TokenIndex:
    """Map word forms to ids: 0 is padding, 1 is an unknown word, then the known words.

    Parameters
    ----------
    words : sequence of str
        Known words, in id order (ids 2, 3, ...).
    """

    PAD = 0
    UNK = 1

    def __init__(self, words: Sequence[str]) -> None:
        self.tokens: list[str] = ["<pad>", "<unk>", *words]
        self._ids = {w: i for i, w in enumerate(self.tokens) if i >= 2}

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: int | None = None, min_count: int = 1) -> TokenIndex:
        """Known words from tokenised training sentences, most frequent first (ties alphabetical)."""
        counts: Counter[str] = Counter()
        for words in sentences:
            counts.update(words)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked if max_size is None else ranked[:max_size])

    def encode(self, sentences: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids (B, T) and lengths (B,); an empty sentence becomes one unknown-word id."""
        rows = [[self._ids.get(w, self.UNK) for w in words] or [self.UNK] for words in sentences]
        width = max((len(r) for r in rows), default=1)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, torch.tensor([len(r) for r in rows], dtype=torch.long)


def save_nli_model(
    path: str | os.PathLike[str], model: NLIModel, index: TokenIndex, tokenizer: dict[str, Any] | None = None
) -> None:
    """Save a model, its token index and tokenizer settings (``annotator``, ``lowercase``)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config,
        "tokens": list(index.tokens[2:]),
        "tokenizer": dict(tokenizer or {"annotator": "simple", "lowercase": True}),
        "state_dict": model.state_dict(),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, target)


def load_nli_model(path: str | os.PathLike[str]) -> tuple[NLIModel, TokenIndex, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_nli_model` (``weights_only=True``).

    Raises
    ------
    ValueError
        For a file that is not such a checkpoint.

    Returns
    -------
    model : NLIModel
        In eval mode.
    index : TokenIndex
    tokenizer : dict
        ``{"annotator": ..., "lowercase": ...}``, to tokenise new text the same way.
    """
    payload, _, _ = read_checkpoint(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a logiclens NLI checkpoint (saved by `logiclens text train-nli`)")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')} is not supported")
    model = NLIModel(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, TokenIndex(payload["tokens"]), dict(payload["tokenizer"])
