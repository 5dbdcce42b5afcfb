"""The formula language: printing, parsing, length and canonical form."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logiclens.core.formula import (
    And,
    Concept,
    Formula,
    FormulaSyntaxError,
    Neighbors,
    Not,
    Or,
    canonical,
    format_name,
    parse,
)

names = st.one_of(
    st.sampled_from(["water", "river", "blue-c", "hyp:couch", "pre:'s", "tennis court", "AND", "NOT", "", "a(b)"]),
    st.text(min_size=0, max_size=8),
)
leaves = st.one_of(names.map(Concept), names.map(Neighbors))


def _junction(kind: type, children: list[Formula]) -> Formula:
    return kind(*children)


formulas = st.recursive(
    leaves,
    lambda inner: st.one_of(
        inner.map(Not),
        st.builds(_junction, st.sampled_from([And, Or]), st.lists(inner, min_size=2, max_size=4)),
    ),
    max_leaves=12,
)


@given(formulas)
@settings(max_examples=300)
def test_parse_round_trips_printing(formula: Formula) -> None:
    assert parse(str(formula)) == formula


@given(formulas)
def test_canonical_is_idempotent_and_order_free(formula: Formula) -> None:
    once = canonical(formula)
    assert canonical(once) == once
    if isinstance(formula, (And, Or)):
        reversed_formula = type(formula)(*reversed(formula.operands))
        assert canonical(reversed_formula) == once


@given(formulas)
def test_length_counts_leaves_and_reference_length_adds_nots(formula: Formula) -> None:
    text = str(formula)
    assert formula.length == len(list(formula.leaves()))
    assert formula.reference_length == formula.length + formula.n_negations
    assert formula.n_negations <= text.count("NOT")


def test_paper_syntax() -> None:
    formula = And(Or(Concept("water"), Concept("river")), Not(Concept("blue")))
    assert str(formula) == "(water OR river) AND NOT blue"
    assert formula.length == 3
    assert formula.reference_length == 4
    assert formula.concept_names() == ["water", "river", "blue"]


def test_reference_code_output_parses() -> None:
    assert parse("(((water OR river) AND (NOT blue-c)) OR lake)") == Or(
        And(Or(Concept("water"), Concept("river")), Not(Concept("blue-c"))), Concept("lake")
    )


def test_multi_word_and_keyword_names_are_quoted() -> None:
    assert format_name("tennis court") == '"tennis court"'
    assert format_name("AND") == '"AND"'
    assert format_name('say "hi"') == '"say \\"hi\\""'
    assert format_name("pre:'s") == "pre:'s"
    assert parse('"tennis court" OR NEIGHBORS("ice rink")') == Or(Concept("tennis court"), Neighbors("ice rink"))


def test_not_binds_tighter_than_and() -> None:
    assert parse("NOT a AND b") == And(Not(Concept("a")), Concept("b"))
    assert parse("NOT (a AND b)") == Not(And(Concept("a"), Concept("b")))
    assert str(Not(And(Concept("a"), Concept("b")))) == "NOT (a AND b)"


def test_same_operator_nesting_is_flattened() -> None:
    a, b, c = Concept("a"), Concept("b"), Concept("c")
    assert And(And(a, b), c) == And(a, And(b, c)) == And(a, b, c)
    assert str(Or(Or(a, b), c)) == "a OR b OR c"


def test_canonical_form_of_commuted_and_repeated_operands() -> None:
    assert canonical(parse("b OR a")) == canonical(parse("a OR b"))
    assert canonical(parse("a OR b OR a")) == canonical(parse("a OR b"))
    assert canonical(parse("NOT NOT a")) == Concept("a")
    assert canonical(parse("(d AND c) OR a")) == parse("a OR (c AND d)")


@pytest.mark.parametrize(
    "text",
    ["", "   ", "a AND", "a AND b OR c", "(a OR b", "a OR b)", "NEIGHBORS a", 'a OR "b', "AND", "a b"],
)
def test_syntax_errors_are_reported(text: str) -> None:
    with pytest.raises(FormulaSyntaxError):
        parse(text)


def test_formulas_are_immutable_and_hashable() -> None:
    formula = parse("a OR b")
    with pytest.raises(AttributeError):
        formula.operands = ()  # type: ignore[misc]
    assert len({parse("a OR b"), parse("(a OR b)"), parse("b OR a")}) == 2


def test_junctions_need_two_formula_operands() -> None:
    with pytest.raises(ValueError):
        And(Concept("a"))
    with pytest.raises(TypeError):
        Or(Concept("a"), "b")  # type: ignore[arg-type]


@given(formulas, st.integers(0, 2**32 - 1))
@settings(max_examples=100)
def test_canonical_form_has_the_same_truth_table(formula: Formula, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = {name: rng.random(16) < 0.5 for name in formula.concept_names()}

    def evaluate(node: Formula) -> np.ndarray:
        if isinstance(node, (Concept, Neighbors)):
            return values[node.name]
        if isinstance(node, Not):
            return ~evaluate(node.operand)
        parts = [evaluate(op) for op in node.operands]  # type: ignore[attr-defined]
        return np.logical_and.reduce(parts) if isinstance(node, And) else np.logical_or.reduce(parts)

    assert np.array_equal(evaluate(formula), evaluate(canonical(formula)))


def test_canonical_flattens_junctions_exposed_by_double_negation() -> None:
    formula = Or(Concept("x"), Not(Not(Or(Concept("z"), Concept("y")))))
    assert canonical(formula) == parse("x OR y OR z")
    assert canonical(canonical(formula)) == canonical(formula)
