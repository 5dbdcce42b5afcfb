"""Token-level concepts: one position per token, for units that fire per token (transformers).

Each token gets ``word:w`` (its word form, for the most common words) and ``tag:T`` (its Penn
Treebank tag, with spaCy). Positions are the tokens of all sentences in order;
:meth:`TokenFeatures.examples` gives the sentence of each, for held-out splits by sentence.
Unit activations must follow the same tokens: annotate once with
:meth:`~TokenFeatures.annotate`, feed the words to the model
(:func:`logiclens.text.transformer.record_word_activations`), and pass the same annotated
texts to ``fit``/``transform``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from logiclens.concepts import ConceptSet
from logiclens.text._base import WordProbe, concept_set
from logiclens.text.tokenize import AnnotatedText

__all__ = ["TokenFeatures"]


class TokenFeatures(WordProbe):
    """Concepts over tokens: ``word:w`` (category ``word``) and ``tag:T`` (category ``tag``).

    Same parameters as :class:`~logiclens.text.SentencePairFeatures` (without overlap).
    Punctuation tokens are positions too; they get a tag concept but no word concept.
    """

    def fit(self, texts: Sequence[str | AnnotatedText], y: Any = None) -> TokenFeatures:
        """Learn the vocabulary and tags."""
        self._fit_words(self.annotate(texts))
        self.names_ = [*(f"word:{w}" for w in self.vocabulary_), *(f"tag:{tag}" for tag in self.tags_)]
        self.categories_ = ["word"] * len(self.vocabulary_) + ["tag"] * len(self.tags_)
        return self

    def transform(self, texts: Sequence[str | AnnotatedText]) -> ConceptSet:
        """Concept set over every token of every text, in order."""
        self._check_fitted()
        offset = len(self.vocabulary_)
        rows: list[set[int]] = []
        for doc in self.annotate(texts):
            tags = doc.tags if self._use_tags_ and doc.tags is not None else (None,) * len(doc.words)
            for form, tag in zip(self._forms(doc), tags):
                ids = set()
                if form in self._word_index:
                    ids.add(self._word_index[form])
                if tag is not None and tag in self._tag_index:
                    ids.add(offset + self._tag_index[tag])
                rows.append(ids)
        concepts = concept_set(rows, self.names_, self.categories_)
        if self.neighbors_:
            concepts = concepts.with_neighbors(self._side_neighbors("word:"))
        return concepts

    def fit_transform(self, texts: Sequence[str | AnnotatedText], y: Any = None) -> ConceptSet:
        """``fit`` then ``transform``, annotating once."""
        docs = self.annotate(texts)
        return self.fit(docs).transform(docs)

    def examples(self, texts: Sequence[str | AnnotatedText]) -> NDArray[np.int64]:
        """The text index of every token position (for ``CompositionalExplainer.fit(examples=...)``)."""
        docs = self.annotate(texts)
        return np.repeat(np.arange(len(docs)), [len(d.words) for d in docs])
