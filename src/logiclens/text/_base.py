"""What the sentence, pair and token probes share: annotation, vocabulary, tags, neighbours."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from logiclens.core.concepts import ConceptSet
from logiclens.explain.base import BaseEstimator
from logiclens.text.embeddings import WordEmbeddings
from logiclens.text.tokenize import AnnotatedText, Annotator, get_annotator
from logiclens.text.vocabulary import most_common_words, word_forms

NEIGHBOR_SPACES = ("embeddings", "vocabulary")


class WordProbe(BaseEstimator):
    """Base of the text probes: parameters, annotation and the fitted vocabulary.

    Parameters
    ----------
    vocab_size : int or None, default 2000
        Number of most common words that get concepts (None: every word).
    lowercase : bool, default True
        Lower-case word forms.
    lemmatize : bool, default False
        Use lemmas instead of the words as written (needs spaCy).
    annotator : {"spacy", "simple"}, "spacy:MODEL" or an annotator object, default "spacy"
        Tokenizer and tagger. ``"simple"`` is the built-in tokenizer: word and overlap
        concepts only, no spaCy needed.
    tags : bool or None, default None
        Add part-of-speech concepts; None adds them when the annotator gives tags.
    exclude : iterable of str, default ()
        Word forms never to use (the reference code skips ``a an the of . ,``).
    min_count : int, default 1
        Words seen fewer times get no concept.
    embeddings : WordEmbeddings or None, default None
        Word vectors; when given, every word concept gets nearest-neighbour words for
        ``NEIGHBORS``, on the same side.
    n_neighbors : int, default 5
        k, the number of nearest words looked up.
    neighbor_space : {"embeddings", "vocabulary"}, default "embeddings"
        ``"embeddings"``: the k nearest words in the whole embedding table, of which those in
        the probe's vocabulary are kept (so a word may get fewer than k, or none: then it has
        no ``NEIGHBORS`` term); ``"vocabulary"``: the k nearest among the vocabulary's words.

    Attributes
    ----------
    vocabulary_ : list of str
        The words that get concepts, most frequent first.
    tags_ : list of str
        The part-of-speech tags seen by :meth:`fit` (empty without tags).
    neighbors_ : dict
        ``{word: [neighbour words in the vocabulary]}``, only for words with neighbours.
    names_, categories_ : list of str
        Names and categories of the concepts :meth:`transform` builds, in order.
    """

    def __init__(
        self,
        vocab_size: int | None = 2000,
        lowercase: bool = True,
        lemmatize: bool = False,
        annotator: str | Annotator = "spacy",
        tags: bool | None = None,
        exclude: Iterable[str] = (),
        min_count: int = 1,
        embeddings: WordEmbeddings | None = None,
        n_neighbors: int = 5,
        neighbor_space: str = "embeddings",
    ) -> None:
        self.vocab_size = vocab_size
        self.lowercase = lowercase
        self.lemmatize = lemmatize
        self.annotator = annotator
        self.tags = tags
        self.exclude = exclude
        self.min_count = min_count
        self.embeddings = embeddings
        self.n_neighbors = n_neighbors
        self.neighbor_space = neighbor_space

    # -------------------------------------------------------------- helpers
    @property
    def annotator_(self) -> Annotator:
        """The resolved annotator (created once)."""
        cached = self.__dict__.get("_annotator_cache")
        if cached is None or cached[0] is not self.annotator:
            cached = (self.annotator, get_annotator(self.annotator))
            self.__dict__["_annotator_cache"] = cached
        return cached[1]

    def annotate(self, texts: Sequence[str | AnnotatedText]) -> list[AnnotatedText]:
        """Annotate the raw strings among ``texts``; annotated texts pass through."""
        raw = [i for i, t in enumerate(texts) if not isinstance(t, AnnotatedText)]
        done = self.annotator_.annotate([str(texts[i]) for i in raw]) if raw else []
        out: list[Any] = list(texts)
        for i, doc in zip(raw, done):
            out[i] = doc
        return out

    def _use_tags(self, docs: Sequence[AnnotatedText]) -> bool:
        if self.tags is False:
            return False
        has_tags = all(d.tags is not None for d in docs)
        if self.tags and not has_tags:
            raise ValueError("tags=True needs an annotator that gives part-of-speech tags (e.g. 'spacy')")
        return has_tags

    def _forms(self, doc: AnnotatedText) -> list[str]:
        return word_forms(doc, self.lowercase, self.lemmatize)

    def _fit_words(self, docs: Sequence[AnnotatedText]) -> None:
        """Learn ``vocabulary_``, ``tags_`` and ``neighbors_`` from annotated texts."""
        if self.neighbor_space not in NEIGHBOR_SPACES:
            raise ValueError(f"neighbor_space must be one of {NEIGHBOR_SPACES}, got {self.neighbor_space!r}")
        self.vocabulary_ = most_common_words(
            (self._forms(d) for d in docs), self.vocab_size, self.min_count, self.exclude
        )
        self._use_tags_ = self._use_tags(docs)
        self.tags_ = sorted({t for d in docs for t in (d.tags or ())}) if self._use_tags_ else []
        self.neighbors_ = self._fit_neighbors(self.vocabulary_)
        self._word_index = {w: i for i, w in enumerate(self.vocabulary_)}
        self._tag_index = {t: i for i, t in enumerate(self.tags_)}

    def _fit_neighbors(self, vocabulary: list[str]) -> dict[str, list[str]]:
        if self.embeddings is None or self.n_neighbors == 0:
            return {}
        if self.neighbor_space == "vocabulary":
            found = self.embeddings.neighbors(vocabulary, self.n_neighbors, among=vocabulary)
        else:
            known = set(vocabulary)
            found = {
                w: [n for n in nbrs if n in known]
                for w, nbrs in self.embeddings.neighbors(vocabulary, self.n_neighbors).items()
            }
        return {w: nbrs for w, nbrs in found.items() if nbrs}

    def _check_fitted(self) -> None:
        if not hasattr(self, "vocabulary_"):
            raise ValueError(f"this {type(self).__name__} is not fitted; call fit() first")

    def _token_ids(self, doc: AnnotatedText, word_offset: int, tag_offset: int | None) -> list[tuple[int, ...]]:
        """Per token, the concept ids it witnesses: its vocabulary word and (optionally) its tag."""
        tags = doc.tags if tag_offset is not None and doc.tags is not None else (None,) * len(doc.words)
        out = []
        for form, tag in zip(self._forms(doc), tags):
            ids = []
            if form in self._word_index:
                ids.append(word_offset + self._word_index[form])
            if tag is not None and tag in self._tag_index:
                ids.append(tag_offset + self._tag_index[tag])  # type: ignore[operator]
            out.append(tuple(ids))
        return out

    def _side_ids(self, doc: AnnotatedText, word_offset: int, tag_offset: int | None) -> set[int]:
        """Concept ids of one sentence side: its vocabulary words and (optionally) its tags."""
        return {i for ids in self._token_ids(doc, word_offset, tag_offset) for i in ids}

    def _side_neighbors(self, prefix: str) -> dict[str, list[str]]:
        return {f"{prefix}{w}": [f"{prefix}{n}" for n in nbrs] for w, nbrs in self.neighbors_.items()}


def concept_set(rows: Sequence[Iterable[int]], names: Sequence[str], categories: Sequence[str]) -> ConceptSet:
    """A concept set from, for each position, the ids of the concepts it belongs to."""
    lists = [sorted(r) for r in rows]
    indptr = np.zeros(len(lists) + 1, np.int64)
    np.cumsum([len(r) for r in lists], out=indptr[1:])
    indices = np.fromiter((i for r in lists for i in r), np.int64, count=int(indptr[-1]))
    matrix = sp.csr_array((np.ones(len(indices), bool), indices, indptr), shape=(len(lists), len(names)))
    return ConceptSet.from_sparse(matrix.T, names, categories)
