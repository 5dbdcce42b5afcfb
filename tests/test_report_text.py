"""Reports of text runs: the texts' records, matched words, text cards, the CLI run directory and a browser."""

from __future__ import annotations

import argparse
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logiclens.core.concepts import ConceptSet
from logiclens.core.formula import And, Concept, Formula, Neighbors, Not, Or, parse, positive_leaves
from logiclens.core.io import InputFileError
from logiclens.report.text_cards import _token_level, text_layer_cards, top_text_examples
from logiclens.runs.reading import load_run
from logiclens.runs.texts import TextRecord, TextSegment, formula_words, load_records, save_records
from logiclens.text import SentenceFeatures, SentencePairFeatures, TokenFeatures
from logiclens.text.tokenize import AnnotatedText

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")

SCRIPT = "<script>alert(1)</script>"


# ------------------------------------------------------------------ positive leaves
def _holds(formula: Formula, true: set[str]) -> bool:
    if isinstance(formula, (Concept, Neighbors)):
        return formula.name in true
    if isinstance(formula, Not):
        return not _holds(formula.operand, true)
    values = [_holds(op, true) for op in formula.operands]  # type: ignore[attr-defined]
    return all(values) if isinstance(formula, And) else any(values)


_names = st.sampled_from("abcd")
_formulas = st.recursive(
    _names.map(Concept),
    lambda inner: st.one_of(
        inner.map(Not),
        st.builds(lambda ops: And(*ops), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda ops: Or(*ops), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=6,
)


@given(_formulas, st.sets(_names), _names)
def test_positive_leaves_are_the_concepts_whose_presence_helps(formula: Formula, true: set[str], name: str) -> None:
    """Monotonicity: turning on a concept that occurs only positively never falsifies the formula,
    and one that never occurs positively never makes it hold."""
    positive = [leaf.name for leaf in positive_leaves(formula)]
    every = [leaf.name for leaf in formula.leaves()]
    assert all(positive.count(n) <= every.count(n) for n in positive)
    if positive.count(name) == every.count(name) and _holds(formula, true):
        assert _holds(formula, true | {name})
    if name not in positive and not _holds(formula, true):
        assert not _holds(formula, true | {name})


def test_positive_leaves_examples() -> None:
    assert positive_leaves(parse("a AND NOT (b OR NOT c)")) == [Concept("a"), Concept("c")]
    assert positive_leaves(parse("NOT NEIGHBORS(x)")) == []
    assert positive_leaves(parse("a OR NOT a")) == [Concept("a")]


# ------------------------------------------------------------------ records and witnesses
class WhitespaceAnnotator:
    """Splits on spaces only, so a token may be any string (HTML included)."""

    def annotate(self, texts):
        return [AnnotatedText(tuple(t.split())) for t in texts]


_words = st.sampled_from(["a", "dog", "Dog", "cat", "runs", "nobody", ".", ",", "sleeps", "the"])
_sentences = st.lists(_words, max_size=6).map(" ".join)


def _position_concepts(concepts: ConceptSet) -> list[set[int]]:
    """Per position, the ids of the concepts that hold there (plain evaluation, no neighbours)."""
    holds = np.array([concepts.mask(Concept(name)) for name in concepts.names], bool)
    holds = holds.reshape(len(concepts.names), concepts.n_positions)
    return [set(np.flatnonzero(holds[:, i]).tolist()) for i in range(concepts.n_positions)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_sentences, _sentences), min_size=1, max_size=6))
def test_pair_witnesses_are_exactly_the_concepts_that_hold(pairs: list[tuple[str, str]]) -> None:
    probe = SentencePairFeatures(annotator=WhitespaceAnnotator(), vocab_size=4)
    concepts = probe.fit_transform(pairs)
    records = probe.records(pairs)
    assert [r.n_positions for r in records] == [1] * len(pairs)
    for record, holding, (premise, hypothesis) in zip(records, _position_concepts(concepts), pairs):
        assert [s.name for s in record.segments] == ["premise", "hypothesis"]
        assert [list(s.tokens) for s in record.segments] == [premise.split(), hypothesis.split()]
        witnessed = {i for s in record.segments for ids in s.concepts for i in ids}
        assert witnessed == holding


@settings(max_examples=30, deadline=None)
@given(st.lists(_sentences, min_size=1, max_size=6))
def test_sentence_and_token_witnesses_match_their_concepts(texts: list[str]) -> None:
    sentences = SentenceFeatures(annotator=WhitespaceAnnotator(), vocab_size=3)
    concepts = sentences.fit_transform(texts)
    for record, holding in zip(sentences.records(texts), _position_concepts(concepts)):
        assert {i for ids in record.segments[0].concepts for i in ids} == holding
    tokens = TokenFeatures(annotator=WhitespaceAnnotator(), vocab_size=3)
    concepts = tokens.fit_transform(texts)
    records = tokens.records(texts)
    assert sum(r.n_positions for r in records) == concepts.n_positions
    per_token = [set(ids) for r in records for ids in r.segments[0].concepts]
    assert per_token == _position_concepts(concepts)


def test_matched_words_of_a_pair() -> None:
    embeddings_free = SentencePairFeatures(annotator=WhitespaceAnnotator(), vocab_size=None)
    pairs = [("a dog runs", "nobody runs"), ("a cat sleeps", "a cat sleeps")]
    concepts = embeddings_free.fit_transform(pairs).with_neighbors({"hyp:nobody": ["hyp:runs"]})
    first, second = embeddings_free.records(pairs)
    assert formula_words(parse("pre:dog AND NOT hyp:a"), first, concepts) == [[False, True, False], [False, False]]
    # NEIGHBORS marks the concept's neighbours too; negated concepts mark nothing
    assert formula_words(parse("NEIGHBORS(hyp:nobody)"), first, concepts) == [[False] * 3, [True, True]]
    assert formula_words(parse("NOT hyp:runs"), first, concepts) == [[False] * 3, [False, False]]
    # overlap concepts mark the shared words, only where the overlap is high enough
    assert formula_words(parse("overlap>50%"), second, concepts) == [[True] * 3, [True] * 3]
    assert formula_words(parse("overlap>50%"), first, concepts) == [[False] * 3, [False, False]]
    assert formula_words(parse("overlap>0%"), first, concepts) == [[False, False, True], [False, True]]


def test_records_round_trip_and_bad_lines(tmp_path: Path) -> None:
    records = [
        # odd tokens: HTML, a lone surrogate, a line separator
        TextRecord((TextSegment("pre", ("Ünï", SCRIPT, "\ud800\u2028"), ((0, 3), (), ())), TextSegment("hyp", (), ()))),
        TextRecord((TextSegment("text", ("a", "b"), ((), (1,))),), n_positions=2),
    ]
    save_records(tmp_path / "texts.jsonl", records)
    assert load_records(tmp_path / "texts.jsonl") == records
    (tmp_path / "bad.jsonl").write_text('{"segments": []}\n{"segments": [{"tokens": ["a"], "concepts": [["x"]]}]}\n')
    with pytest.raises(InputFileError, match=r"bad\.jsonl:2: not a text record"):
        load_records(tmp_path / "bad.jsonl")
    with pytest.raises(InputFileError, match="no such file"):
        load_records(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="2 concept lists for 1 tokens"):
        TextSegment("x", ("a",), ((), ()))


# ------------------------------------------------------------------ cards
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=8),
    st.integers(1, 3),
    st.integers(1, 4),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_top_text_examples_match_a_plain_ranking(
    sizes: list[int], n_units: int, k: int, narrow_blocks: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    acts = rng.normal(size=(offsets[-1], n_units)).round(1).astype(np.float32)  # rounding makes ties
    acts[rng.random(acts.shape) < 0.1] = np.nan
    thresholds = rng.choice([-0.5, 0.0, 0.3], size=n_units)
    block = 8 if narrow_blocks else 64 << 20  # one unit per block, or all at once
    top, values = top_text_examples(acts, offsets, thresholds, k, block_bytes=block)
    for unit in range(n_units):
        ranked = []
        for e, (start, stop) in enumerate(itertools.pairwise(offsets)):
            column = acts[start:stop, unit].astype(np.float64)
            finite = column[~np.isnan(column)]
            if len(finite) and finite.max() > thresholds[unit]:
                ranked.append((-finite.max(), -np.nan_to_num(column).sum() / len(column), e))
        expected = [e for _, _, e in sorted(ranked)[:k]]
        assert top[unit].tolist() == expected + [-1] * (k - len(expected))
        np.testing.assert_array_equal(values[unit][: len(expected)], [-m for m, _, _ in sorted(ranked)[:k]])
        assert np.isnan(values[unit][len(expected) :]).all()


def _explain(tmp_path: Path, lines: list[dict], acts: np.ndarray, *extra: str, status: int = 0) -> Path:
    from logiclens.cli import main

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    np.save(tmp_path / "acts.npy", acts)
    out = tmp_path / "run"
    argv = ["text", "explain", str(data), "--activations", str(tmp_path / "acts.npy"), "--tokenizer", "simple"]
    assert main([*argv, "--min-active", "1", "--holdout", "0", "-q", "--out", str(out), *extra]) == status
    return out


PAIRS = [
    {"premise": "A dog runs in the park .", "hypothesis": "Nobody is running ."},
    {"premise": "A man sleeps .", "hypothesis": f"A man is asleep {SCRIPT} ."},
    {"premise": "Two dogs play .", "hypothesis": "The dogs play outside ."},
    {"premise": "A woman sings .", "hypothesis": "Nobody sings ."},
    {"premise": "A cat sleeps .", "hypothesis": "A cat is awake ."},
]
#: unit 0 fires on "nobody" hypotheses, unit 1 on "man", unit 2 is never active
PAIR_ACTS = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_pair_run_report(tmp_path: Path) -> None:
    out = _explain(tmp_path, PAIRS, PAIR_ACTS, "--length", "1")
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert results.formula.tolist()[:2] == ["hyp:nobody", "pre:man"] and results.status[2] == "skipped"
    assert results.threshold.tolist() == [0.0, 0.0, 0.0] and (results.layer == "units").all()
    assert {"top_formulas.csv", "best_by_length_units.csv", "texts.jsonl", "concepts.npz"} <= {
        p.name for p in out.iterdir()
    }
    data = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    assert data["examples"] == {
        "kind": "text", "level": "pair", "available": True, "note": "", "per_unit": 6, "n_examples": 5,
    }  # fmt: skip
    nobody, man, silent = data["layers"][0]["units"]
    assert [e["index"] for e in nobody["examples"]["items"]] == [3, 0]  # active examples, highest first
    assert [e["activation"] for e in nobody["examples"]["items"]] == [2.0, 1.0]
    first = nobody["examples"]["items"][0]
    assert first["formula_holds"] is True and first["iou"] is None
    assert first["segments"][1] == {
        "name": "hypothesis", "tokens": ["Nobody", "sings", "."], "matched": [True, False, False],
        "active": None, "activation": None, "before": 0, "after": 0,
    }  # fmt: skip
    assert not any(first["segments"][0]["matched"])
    assert man["examples"]["items"][0]["segments"][0]["matched"] == [False, True, False, False]
    assert silent["examples"] == {"kind": None, "items": []}
    html = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert SCRIPT not in html and "&lt;" in html  # the hostile words are text
    assert "probing pairs" in html and "a word the formula matches" in html
    assert html.count('<article class="card"') == 3 and "never active above its threshold" in html
    assert "<dt>length</dt><dd>1</dd>" in html  # counts stay integers though skipped units have none


def test_token_run_report_marks_tokens_from_the_masks(tmp_path: Path) -> None:
    texts = [{"text": "The dog barks ."}, {"text": "A cat sleeps ."}, {"text": "The dog and the cat play ."}]
    per_token = [0.0, 0.9, 0.2, 0.0] + [0.0] * 4 + [0.0, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0]
    acts = np.array([per_token, [-v for v in per_token]]).T  # unit 1 is never active
    out = _explain(tmp_path, texts, acts, "--level", "token", "--length", "1")
    data = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    unit, silent = data["layers"][0]["units"]
    assert unit["formula"] == "word:dog" and unit["iou"] == pytest.approx(2 / 3)
    items = unit["examples"]["items"]
    assert [e["index"] for e in items] == [0, 2]  # text 1 has no active token
    barks = items[0]["segments"][0]
    assert barks["active"] == [False, True, True, False] and barks["matched"] == [False, True, False, False]
    assert barks["activation"] == pytest.approx([0.0, 0.9, 0.2, 0.0])
    assert items[0]["iou"] == pytest.approx(0.5) and items[0]["formula_holds"] is True
    assert items[1]["segments"][0]["matched"] == items[1]["segments"][0]["active"] == [False, True] + [False] * 5
    assert items[1]["iou"] == 1.0
    assert silent["examples"]["items"] == []
    html = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert '<span class="tok unit formula" title="act 0.900">dog</span>' in html
    assert "token IoU 0.50" in html and "probing texts" in html


def test_held_out_pairs_are_split_by_premise_and_tagged(tmp_path: Path) -> None:
    pairs = [*PAIRS, {"premise": "A dog runs in the park .", "hypothesis": "A dog is outside ."}] * 2
    acts = np.vstack([PAIR_ACTS, PAIR_ACTS[:1]] * 2)
    out = _explain(tmp_path, pairs, acts, "--length", "1", "--holdout", "0.4", "--null", "3")
    split = np.load(out / "split.npz")
    search, held = set(split["search"].tolist()), set(split["heldout"].tolist())
    assert search | held == set(range(12)) and not search & held and len(held) >= 4
    premises = [p["premise"] for p in pairs]
    assert not {premises[i] for i in search} & {premises[i] for i in held}  # no premise on both sides
    results = pd.read_csv(out / "results.csv")
    assert {"heldout_iou", "p_value", "q_value", "significant"} <= set(results.columns)
    data = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    items = [item for unit in data["layers"][0]["units"] for item in unit["examples"]["items"]]
    assert items and all(item["heldout"] == (item["index"] in held) for item in items)
    assert "Held-out IoU" in (out / "report" / "index.html").read_text(encoding="utf-8")


def test_text_cards_agree_with_a_plain_reference(tmp_path: Path) -> None:
    """Cards rebuilt from the run directory: ranking, activity and matches recomputed by hand."""
    rng = np.random.default_rng(5)
    acts = np.round(rng.normal(size=(len(PAIRS), 4)), 2)
    out = _explain(tmp_path, PAIRS, acts, "--length", "2", "--quantile", "0.5", "--no-report")
    run = load_run(out)
    (layer,) = run.layers
    concepts = ConceptSet.load(run.concepts)
    records = load_records(run.texts)
    cards = text_layer_cards(layer, concepts, records, 3, "pair")
    for unit, card in enumerate(cards):
        threshold = layer.thresholds[unit]
        assert threshold == pytest.approx(np.quantile(acts[:, unit], 0.5))
        active = [e for e in range(len(PAIRS)) if acts[e, unit] > threshold]
        expected = sorted(active, key=lambda e: (-acts[e, unit], e))[:3]
        assert [example.index for example in card.examples] == expected
        formula = layer.results.formula[unit]
        for example in card.examples:
            holds = bool(concepts.mask(parse(formula))[example.index]) if formula else None
            assert example.formula_holds == holds
            assert [s.matched for s in example.segments] == (
                formula_words(parse(formula), records[example.index], concepts)
                if formula
                else [[False] * len(s.tokens) for s in records[example.index].segments]
            )


def test_long_token_texts_are_shown_around_their_most_active_token() -> None:
    tokens = [f"t{i}" for i in range(12)]
    segments = (TextSegment("a", tuple(tokens[:5]), ((),) * 5), TextSegment("b", tuple(tokens[5:]), ((),) * 7))
    record = TextRecord(segments, n_positions=12)
    acts = np.zeros(12)
    acts[[1, 6]] = [0.5, 2.0]
    holds = np.zeros(12, bool)
    holds[[1, 7]] = True
    segments, iou = _token_level(record, acts, 0.0, holds, window=2)
    assert iou == pytest.approx(1 / 3)  # over every token: {1, 6} against {1, 7}
    # tokens 4..8 around token 6: the last of segment "a", the first four of "b"
    assert [(s.name, s.tokens, s.before, s.after) for s in segments] == [
        ("a", ["t4"], 4, 0), ("b", ["t5", "t6", "t7", "t8"], 0, 3),
    ]  # fmt: skip
    assert segments[1].active == [False, True, False, False] and segments[1].matched == [False, False, True, False]
    far = np.zeros(12)
    far[11] = 1.0
    segments, _ = _token_level(record, far, 0.0, None, window=2)
    assert [(s.name, s.tokens, s.before, s.after) for s in segments] == [("b", ["t7", "t8", "t9", "t10", "t11"], 2, 0)]


def test_report_command_rebuilds_a_text_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from logiclens.cli.report import register as register_command

    out = _explain(tmp_path, PAIRS, PAIR_ACTS, "--length", "1", "--no-report")
    assert not (out / "report").exists()
    parser = argparse.ArgumentParser(prog="logiclens")
    register_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", str(out), "--top-examples", "1", "-q"])
    assert args.handler(args) == 0
    data = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    assert [len(u["examples"]["items"]) for u in data["layers"][0]["units"]] == [1, 1, 0]
    _explain(tmp_path, PAIRS, PAIR_ACTS, "--length", "1", "--no-report")  # a new run drops the old report
    assert not (out / "report").exists()
    assert args.handler(args) == 0
    (out / "texts.jsonl").write_text("not json\n")
    args = parser.parse_args(["report", str(out), "-q"])
    assert args.handler(args) == 0
    data = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    assert data["examples"]["available"] is False and "texts.jsonl:1" in data["examples"]["note"]


def test_bad_inputs_of_a_text_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from logiclens.core.io import atomic_savez
    from logiclens.report import ReportError, build_report

    acts = PAIR_ACTS.copy()
    acts[:, 2] = np.nan  # NaN would count as inactive: refused, as in vision runs
    out = _explain(tmp_path, PAIRS, acts, "--length", "1", "--quantile", "0.4", status=2)
    assert "NaN or infinite activations (first at row 0, unit 2)" in capsys.readouterr().err
    assert not out.exists()
    out = _explain(tmp_path, PAIRS, PAIR_ACTS, "--length", "1", "--quantile", "0.4")
    results = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    results.loc[2, "threshold"] = ""  # a unit without a threshold (never active) still gets a card
    results.to_csv(out / "results.csv", index=False)
    units = json.loads((build_report(out, verbose=0) / "report.json").read_text(encoding="utf-8"))["layers"][0]["units"]
    assert units[2]["threshold"] is None and units[2]["examples"]["items"] == []
    texts = out / "texts.jsonl"
    good = texts.read_bytes()
    texts.write_bytes(good + b"\n\n")  # blank lines are skipped
    assert len(load_records(texts)) == len(PAIRS)
    texts.write_bytes(good + b"\xff\n")  # not UTF-8: the report says so and shows no examples
    data = json.loads((build_report(out, verbose=0) / "report.json").read_text(encoding="utf-8"))
    assert not data["examples"]["available"] and "not UTF-8" in data["examples"]["note"]
    texts.write_bytes(good)
    atomic_savez(out / "split.npz", {"search": np.arange(5), "heldout": np.array([7])})
    with pytest.raises(ReportError, match=r"held-out examples must lie in \[0, 5\)"):
        build_report(out, verbose=0)


def test_explain_rejects_a_bad_top_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _explain(tmp_path, PAIRS, PAIR_ACTS, "--top-examples", "-1", status=2)
    assert "--top-examples: must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_text_report_renders_in_headless_chromium(tmp_path: Path, render_in_chromium) -> None:
    out = _explain(tmp_path, PAIRS, PAIR_ACTS, "--length", "1")
    dom, console = render_in_chromium(out / "report" / "index.html")
    assert not console, console
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-ready="true"' in root and "data-error" not in root and 'data-visible-cards="3"' in root
    # the shown cards' texts were taken out of their templates, with the matched words marked
    assert dom.count('<figure class="example text">') == 3
    assert '<span class="tok formula">Nobody</span>' in dom and '<span class="tok formula">man</span>' in dom
    assert SCRIPT not in dom and dom.count("<script") == 3
