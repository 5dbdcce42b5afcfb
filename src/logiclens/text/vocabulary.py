"""Word forms and the most common words of a corpus."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from logiclens.text.tokenize import AnnotatedText

__all__ = ["is_word", "most_common_words", "word_forms"]


def is_word(token: str) -> bool:
    """True when ``token`` holds at least one letter or digit (so ``"'s"`` is a word, ``","`` is not)."""
    return any(ch.isalnum() for ch in token)


def word_forms(text: AnnotatedText, lowercase: bool = True, lemmatize: bool = False) -> list[str]:
    """The form of every token that word concepts use.

    Parameters
    ----------
    text : AnnotatedText
    lowercase : bool, default True
    lemmatize : bool, default False
        Use the annotator's lemmas (``ValueError`` when it gives none).

    Returns
    -------
    list of str
        One form per token, in order (punctuation included).
    """
    if lemmatize:
        if text.lemmas is None:
            raise ValueError("lemmatize=True needs an annotator that gives lemmas (e.g. spaCy)")
        forms: Sequence[str] = text.lemmas
    else:
        forms = text.words
    return [form.lower() for form in forms] if lowercase else list(forms)


def most_common_words(
    sentences: Iterable[Sequence[str]],
    size: int | None = 2000,
    min_count: int = 1,
    exclude: Iterable[str] = (),
    words_only: bool = True,
) -> list[str]:
    """The most frequent word forms, most frequent first (ties in alphabetical order).

    Parameters
    ----------
    sentences : iterable of sequences of str
        Word forms of each sentence (see :func:`word_forms`); every occurrence counts.
    size : int or None, default 2000
        How many words to keep; None keeps all.
    min_count : int, default 1
        Drop words seen fewer times.
    exclude : iterable of str
        Forms never to keep (e.g. the reference code's ``a an the of``).
    words_only : bool, default True
        Drop tokens without a letter or digit (punctuation).
    """
    counts: Counter[str] = Counter()
    for forms in sentences:
        counts.update(forms)
    excluded = set(exclude)
    ranked = sorted(
        (w for w, c in counts.items() if c >= min_count and w not in excluded and (not words_only or is_word(w))),
        key=lambda w: (-counts[w], w),
    )
    return ranked if size is None else ranked[:size]
