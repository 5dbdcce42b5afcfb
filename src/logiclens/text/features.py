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

from logiclens.core.concepts import ConceptSet
from logiclens.runs.texts import TextRecord, TextSegment
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

    def _sides(self) -> tuple[tuple[str, int, int | None], tuple[str, int, int | None]]:
        """(segment name, word id offset, tag id offset or None) of the premise and the hypothesis."""
        v, t = len(self.vocabulary_), len(self.tags_)
        tags = self._use_tags_
        return ("premise", 0, 2 * v if tags else None), ("hypothesis", v, 2 * v + t if tags else None)

    def _overlap_ids(self, annotated: list[tuple[AnnotatedText, AnnotatedText]]) -> list[tuple[int, ...]]:
        """Per pair, the ids of the overlap concepts that hold."""
        offset = 2 * len(self.vocabulary_) + 2 * len(self.tags_)
        flags = overlap_flags(self.overlaps(annotated), list(self.overlap_thresholds))
        return [tuple(offset + i for i in above) for above in flags]

    def transform(self, pairs: Pairs) -> ConceptSet:
        """Concept set over the pairs, one position per pair, in order."""
        self._check_fitted()
        annotated = self.annotate_pairs(pairs)
        rows = []
        for docs, overlap in zip(annotated, self._overlap_ids(annotated)):
            ids = set(overlap)
            for doc, (_, word_offset, tag_offset) in zip(docs, self._sides()):
                ids |= self._side_ids(doc, word_offset, tag_offset)
            rows.append(ids)
        concepts = concept_set(rows, self.names_, self.categories_)
        if self.neighbors_:
            concepts = concepts.with_neighbors({**self._side_neighbors("pre:"), **self._side_neighbors("hyp:")})
        return concepts

    def records(self, pairs: Pairs) -> list[TextRecord]:
        """The pairs as a report shows them: premise and hypothesis tokens with the concepts each witnesses.

        A token witnesses its side's word and tag concepts, and, when it is a word both
        sentences share, the overlap concepts that hold on the pair.
        """
        self._check_fitted()
        annotated = self.annotate_pairs(pairs)
        records = []
        for docs, overlap in zip(annotated, self._overlap_ids(annotated)):
            shared = set.intersection(*({f for f in self._forms(doc) if is_word(f)} for doc in docs))
            segments = []
            for doc, (name, word_offset, tag_offset) in zip(docs, self._sides()):
                ids = self._token_ids(doc, word_offset, tag_offset)
                ids = [i + overlap if form in shared else i for i, form in zip(ids, self._forms(doc))]
                segments.append(TextSegment(name, doc.words, tuple(ids)))
            records.append(TextRecord(tuple(segments)))
        return records

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

    def records(self, texts: Sequence[Text]) -> list[TextRecord]:
        """The sentences as a report shows them: tokens with the word and tag concepts each witnesses."""
        self._check_fitted()
        tag_offset = len(self.vocabulary_) if self._use_tags_ else None
        return [
            TextRecord((TextSegment("text", doc.words, tuple(self._token_ids(doc, 0, tag_offset))),))
            for doc in self.annotate(texts)
        ]

    def fit_transform(self, texts: Sequence[Text], y: Any = None) -> ConceptSet:
        """``fit`` then ``transform``, annotating once."""
        docs = self.annotate(texts)
        return self.fit(docs).transform(docs)
