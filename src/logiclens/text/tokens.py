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
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from logiclens.core.concepts import ConceptSet
from logiclens.runs.texts import TextRecord
from logiclens.text._base import concept_set
from logiclens.text.features import SentenceFeatures
from logiclens.text.tokenize import AnnotatedText

__all__ = ["TokenFeatures"]


class TokenFeatures(SentenceFeatures):
    """Concepts over tokens: ``word:w`` (category ``word``) and ``tag:T`` (category ``tag``).

    Same parameters as :class:`~logiclens.text.SentencePairFeatures` (without overlap), and
    the same vocabulary as :class:`~logiclens.text.SentenceFeatures`, which it extends.
    Punctuation tokens are positions too; they get a tag concept but no word concept.
    """

    def transform(self, texts: Sequence[str | AnnotatedText]) -> ConceptSet:
        """Concept set over every token of every text, in order."""
        self._check_fitted()
        tag_offset = len(self.vocabulary_) if self._use_tags_ else None
        rows = [set(ids) for doc in self.annotate(texts) for ids in self._token_ids(doc, 0, tag_offset)]
        concepts = concept_set(rows, self.names_, self.categories_)
        if self.neighbors_:
            concepts = concepts.with_neighbors(self._side_neighbors("word:"))
        return concepts

    def records(self, texts: Sequence[str | AnnotatedText]) -> list[TextRecord]:
        """The texts as a report shows them: one record per text, covering one position per token."""
        return [replace(r, n_positions=len(r.segments[0].tokens)) for r in super().records(texts)]

    def examples(self, texts: Sequence[str | AnnotatedText]) -> NDArray[np.int64]:
        """The text index of every token position (for ``CompositionalExplainer.fit(examples=...)``)."""
        docs = self.annotate(texts)
        return np.repeat(np.arange(len(docs)), [len(d.words) for d in docs])
