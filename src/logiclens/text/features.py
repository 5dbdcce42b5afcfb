"""Sentence-level concepts: one position per sentence pair (NLI) or per sentence.

For pairs, as in Mu & Andreas (2020, section 3): for each of the most common words,
``pre:w`` (w appears in the premise) and ``hyp:w`` (in the hypothesis); for each Penn
Treebank tag, ``pre:tag:NN`` and ``hyp:tag:NN``; and ``overlap>0%``, ``overlap>25%``,
``overlap>50%``, ``overlap>75%`` (IoU of the two sentences' unique words, see
:mod:`logiclens.text.overlap`). Categories: ``premise-word``, ``hypothesis-word``,
``premise-tag``, ``hypothesis-tag``, ``overlap``.

For single sentences: ``word:w`` and ``tag:NN`` (categories ``word``, ``tag``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from logiclens.concepts import ConceptSet
from logiclens.text._base import WordProbe, concept_set
from logiclens.text.embeddings import WordEmbeddings
from logiclens.text.overlap import DEFAULT_THRESHOLDS, overlap_flags, overlap_name, word_iou
from logiclens.text.tokenize import AnnotatedText, Annotator
from logiclens.text.vocabulary import is_word

__all__ = ["SentenceFeatures", "SentencePairFeatures"]

Text = str | AnnotatedText
Pairs = pd.DataFrame | Sequence[tuple[Text, Text]]


def split_pairs(pairs: Pairs) -> tuple[list[Text], list[Text]]:
    """Premises and hypotheses of a data frame (``premise``/``hypothesis`` columns) or of 2-tuples."""
    if isinstance(pairs, pd.DataFrame):
        missing = {"premise", "hypothesis"} - set(pairs.columns)
        if missing:
            raise ValueError(f"pairs need 'premise' and 'hypothesis' columns; missing {sorted(missing)}")
        return list(pairs["premise"]), list(pairs["hypothesis"])
    premises, hypotheses = [], []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"a pair must be (premise, hypothesis), got {len(pair)} items")
        premises.append(pair[0])
        hypotheses.append(pair[1])
    return premises, hypotheses


class SentencePairFeatures(WordProbe):
    """Concepts over premise-hypothesis pairs, one position per pair.

    ``fit`` learns the most common words (over premises and hypotheses together) and the
    tags; ``transform`` builds a :class:`~logiclens.ConceptSet` (with the neighbour relation
    when ``embeddings`` are given, so that ``NEIGHBORS(hyp:couch)`` is the OR of
    ``hyp:couch`` and its nearest words' ``hyp:`` concepts).

    Parameters
    ----------
    overlap_thresholds : sequence of float, default (0, 0.25, 0.5, 0.75)
        One ``overlap>t`` concept per threshold; empty for none.
    **others
        See :class:`~logiclens.text._base.WordProbe`: ``vocab_size``, ``lowercase``,
        ``lemmatize``, ``annotator``, ``tags``, ``exclude``, ``min_count``, ``embeddings``,
        ``n_neighbors``, ``neighbor_space``.

    Examples
    --------
    >>> probe = SentencePairFeatures(annotator="simple")
    >>> concepts = probe.fit_transform([("A man sleeps .", "A man is asleep ."), ("A dog runs", "Nobody runs")])
    >>> concepts.mask("hyp:nobody").tolist(), concepts.mask("overlap>25%").tolist()
    ([False, True], [True, False])
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
        overlap_thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ) -> None:
        super().__init__(
            vocab_size, lowercase, lemmatize, annotator, tags, exclude, min_count, embeddings, n_neighbors,
            neighbor_space,
        )  # fmt: skip
        self.overlap_thresholds = overlap_thresholds

    def annotate_pairs(self, pairs: Pairs) -> list[tuple[AnnotatedText, AnnotatedText]]:
        """Annotate every pair once, to pass the result to ``fit`` and ``transform``."""
        premises, hypotheses = split_pairs(pairs)
        docs = self.annotate([*premises, *hypotheses])
        return list(zip(docs[: len(premises)], docs[len(premises) :]))

    def fit(self, pairs: Pairs, y: Any = None) -> SentencePairFeatures:
        """Learn the vocabulary and tags from pairs (strings or annotated texts)."""
        annotated = self.annotate_pairs(pairs)
        self._fit_words([doc for pair in annotated for doc in pair])
        v, t = len(self.vocabulary_), len(self.tags_)
        thresholds = list(self.overlap_thresholds)
        self.names_ = [
            *(f"pre:{w}" for w in self.vocabulary_),
            *(f"hyp:{w}" for w in self.vocabulary_),
            *(f"pre:tag:{tag}" for tag in self.tags_),
            *(f"hyp:tag:{tag}" for tag in self.tags_),
            *(overlap_name(x) for x in thresholds),
        ]
        self.categories_ = (
            ["premise-word"] * v + ["hypothesis-word"] * v + ["premise-tag"] * t + ["hypothesis-tag"] * t
        ) + ["overlap"] * len(thresholds)
        return self

    def overlaps(self, pairs: Pairs) -> list[float]:
        """The lexical overlap (IoU of unique words) of every pair."""
        return [
            word_iou((f for f in self._forms(p) if is_word(f)), (f for f in self._forms(h) if is_word(f)))
            for p, h in self.annotate_pairs(pairs)
        ]

    def transform(self, pairs: Pairs) -> ConceptSet:
        """Concept set over the pairs, one position per pair, in order."""
        self._check_fitted()
        annotated = self.annotate_pairs(pairs)
        v, t = len(self.vocabulary_), len(self.tags_)
        tags = self._use_tags_
        overlap_offset = 2 * v + 2 * t
        ious = self.overlaps(annotated)
        flags = overlap_flags(ious, list(self.overlap_thresholds))
        rows = []
        for (premise, hypothesis), above in zip(annotated, flags):
            ids = self._side_ids(premise, 0, 2 * v if tags else None)
            ids |= self._side_ids(hypothesis, v, 2 * v + t if tags else None)
            ids.update(overlap_offset + i for i in above)
            rows.append(ids)
        concepts = concept_set(rows, self.names_, self.categories_)
        if self.neighbors_:
            concepts = concepts.with_neighbors({**self._side_neighbors("pre:"), **self._side_neighbors("hyp:")})
        return concepts

    def fit_transform(self, pairs: Pairs, y: Any = None) -> ConceptSet:
        """``fit`` then ``transform``, annotating the pairs once."""
        annotated = self.annotate_pairs(pairs)
        return self.fit(annotated).transform(annotated)


class SentenceFeatures(WordProbe):
    """Concepts over single sentences, one position per sentence: ``word:w`` and ``tag:T``.

    Same parameters as :class:`SentencePairFeatures`, without the overlap concepts.
    """

    def fit(self, texts: Sequence[Text], y: Any = None) -> SentenceFeatures:
        """Learn the vocabulary and tags."""
        self._fit_words(self.annotate(texts))
        self.names_ = [*(f"word:{w}" for w in self.vocabulary_), *(f"tag:{tag}" for tag in self.tags_)]
        self.categories_ = ["word"] * len(self.vocabulary_) + ["tag"] * len(self.tags_)
        return self

    def transform(self, texts: Sequence[Text]) -> ConceptSet:
        """Concept set over the sentences, in order."""
        self._check_fitted()
        tag_offset = len(self.vocabulary_) if self._use_tags_ else None
        rows = [self._side_ids(doc, 0, tag_offset) for doc in self.annotate(texts)]
        concepts = concept_set(rows, self.names_, self.categories_)
        if self.neighbors_:
            concepts = concepts.with_neighbors(self._side_neighbors("word:"))
        return concepts

    def fit_transform(self, texts: Sequence[Text], y: Any = None) -> ConceptSet:
        """``fit`` then ``transform``, annotating once."""
        docs = self.annotate(texts)
        return self.fit(docs).transform(docs)
