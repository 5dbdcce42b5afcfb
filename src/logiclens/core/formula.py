"""Logical formulas over named concepts: the explanation language.

A formula is an immutable tree of :class:`Concept` leaves combined with :class:`Not`,
:class:`And`, :class:`Or` and :class:`Neighbors`. ``str(formula)`` prints it in the syntax of
Mu & Andreas (2020), e.g. ``(water OR river) AND NOT blue``, and :func:`parse` reads that
syntax back, so that ``parse(str(f)) == f`` for every formula.

Syntax
------
* ``AND`` and ``OR`` are n-ary and never mixed without parentheses: ``a AND b OR c`` is a
  syntax error, ``(a AND b) OR c`` is not. Nested operations of the same kind are flattened,
  so ``And(And(a, b), c) == And(a, b, c)``.
* ``NOT`` binds tightest: ``NOT a AND b`` is ``(NOT a) AND b``.
* ``NEIGHBORS(name)`` is the OR of a word concept and its nearest words in an embedding
  space (the neighbour relation belongs to the concept set).
* A concept name is printed bare when it is a run of characters other than white space,
  parentheses and double quotes, and is not a keyword; otherwise it is double-quoted with
  ``\\"`` and ``\\\\`` escapes: ``"tennis court" OR "say \\"hi\\""``.

Length is the number of concept leaves (``NEIGHBORS(x)`` is one leaf, ``NOT`` adds nothing);
:attr:`Formula.reference_length` reproduces the reference code's count, which adds one per
``NOT``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "And",
    "Concept",
    "Formula",
    "FormulaSyntaxError",
    "Neighbors",
    "Not",
    "Or",
    "canonical",
    "parse",
    "positive_leaves",
]

KEYWORDS = frozenset({"AND", "OR", "NOT", "NEIGHBORS"})
_BARE_NAME = re.compile(r'[^\s()"]+')


class FormulaSyntaxError(ValueError):
    """Raised by :func:`parse` for text that is not a formula."""


def format_name(name: str) -> str:
    """Return ``name`` as it appears in a formula: bare if unambiguous, else quoted."""
    if _BARE_NAME.fullmatch(name) and name not in KEYWORDS:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Formula:
    """Base class of formula nodes. Nodes are immutable, hashable and compare by structure."""

    __slots__ = ()

    @property
    def length(self) -> int:
        """Number of concept leaves (``NOT`` does not count)."""
        return sum(1 for _ in self.leaves())

    @property
    def n_negations(self) -> int:
        """Number of ``NOT`` nodes."""
        return sum(_count_nots(self))

    @property
    def reference_length(self) -> int:
        """Length as the reference code counts it: leaves plus ``NOT`` nodes."""
        return self.length + self.n_negations

    def leaves(self) -> Iterator[Concept | Neighbors]:
        """Yield the leaves (concepts and ``NEIGHBORS`` terms) from left to right."""
        raise NotImplementedError

    def concept_names(self) -> list[str]:
        """Names of the concepts the formula mentions, in order of first appearance."""
        seen: dict[str, None] = {}
        for leaf in self.leaves():
            seen.setdefault(leaf.name, None)
        return list(seen)

    def _operand_text(self) -> str:
        """Text of this node as the operand of a binary operator or ``NOT``."""
        return str(self)


@dataclass(frozen=True, slots=True)
class _Leaf(Formula):
    """A leaf: a named concept, or the NEIGHBORS term of one."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"concept name must be a string, got {type(self.name).__name__}")

    def leaves(self) -> Iterator[Concept | Neighbors]:
        yield self  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class Concept(_Leaf):
    """A named primitive concept."""

    def __str__(self) -> str:
        return format_name(self.name)


@dataclass(frozen=True, slots=True)
class Neighbors(_Leaf):
    """``NEIGHBORS(name)``: the concept OR its nearest neighbours in an embedding space."""

    def __str__(self) -> str:
        return f"NEIGHBORS({format_name(self.name)})"


@dataclass(frozen=True, slots=True)
class Not(Formula):
    """Negation of a formula."""

    operand: Formula

    def leaves(self) -> Iterator[Concept | Neighbors]:
        yield from self.operand.leaves()

    def __str__(self) -> str:
        return "NOT " + self.operand._operand_text()


class _Junction(Formula):
    """Shared behaviour of the n-ary :class:`And` and :class:`Or`."""

    __slots__ = ()
    operands: tuple[Formula, ...]
    keyword = ""

    def __init__(self, *operands: Formula) -> None:
        flat: list[Formula] = []
        for operand in operands:
            if not isinstance(operand, Formula):
                raise TypeError(f"operands must be formulas, got {type(operand).__name__}")
            if type(operand) is type(self):
                flat.extend(operand.operands)  # type: ignore[attr-defined]
            else:
                flat.append(operand)
        if len(flat) < 2:
            raise ValueError(f"{self.keyword} needs at least two operands")
        object.__setattr__(self, "operands", tuple(flat))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("formulas are immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.operands == self.operands  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.keyword, self.operands))

    def __reduce__(self) -> tuple[type, tuple[Formula, ...]]:
        return (type(self), self.operands)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.operands))})"

    def leaves(self) -> Iterator[Concept | Neighbors]:
        for operand in self.operands:
            yield from operand.leaves()

    def __str__(self) -> str:
        return f" {self.keyword} ".join(operand._operand_text() for operand in self.operands)

    def _operand_text(self) -> str:
        return f"({self})"


class And(_Junction):
    """Conjunction of two or more formulas."""

    __slots__ = ("operands",)
    keyword = "AND"


class Or(_Junction):
    """Disjunction of two or more formulas."""

    __slots__ = ("operands",)
    keyword = "OR"


def _count_nots(formula: Formula) -> Iterator[int]:
    if isinstance(formula, Not):
        yield 1
        yield from _count_nots(formula.operand)
    elif isinstance(formula, _Junction):
        for operand in formula.operands:
            yield from _count_nots(operand)


def positive_leaves(formula: Formula) -> list[Concept | Neighbors]:
    """The leaves under an even number of ``NOT`` nodes, from left to right.

    These are the concepts whose presence makes the formula hold (in ``a AND NOT b``, ``a``).

    Examples
    --------
    >>> positive_leaves(parse("(a OR NOT b) AND NOT (c AND NOT d)"))
    [Concept(name='a'), Concept(name='d')]
    """
    return [leaf for leaf, positive in _leaves_with_polarity(formula, True) if positive]


def _leaves_with_polarity(formula: Formula, positive: bool) -> Iterator[tuple[Concept | Neighbors, bool]]:
    if isinstance(formula, _Leaf):
        yield formula, positive  # type: ignore[misc]
    elif isinstance(formula, Not):
        yield from _leaves_with_polarity(formula.operand, not positive)
    elif isinstance(formula, _Junction):
        for operand in formula.operands:
            yield from _leaves_with_polarity(operand, positive)
    else:
        raise TypeError(f"not a formula: {formula!r}")


def canonical(formula: Formula) -> Formula:
    """Return a canonical form: operands of AND/OR sorted and repeated operands dropped.

    Two formulas that differ only in operand order or repetition (``A OR B`` and
    ``B OR A OR B``) have the same canonical form. Operands are ordered by their printed
    canonical text. Double negations are removed (``NOT NOT a`` is ``a``).
    """
    if isinstance(formula, Not):
        inner = canonical(formula.operand)
        return inner.operand if isinstance(inner, Not) else Not(inner)
    if isinstance(formula, _Junction):
        operands: list[Formula] = []
        for operand in (canonical(o) for o in formula.operands):
            # a double negation removed can expose a junction of the same kind: flatten it first
            operands.extend(operand.operands if type(operand) is type(formula) else [operand])  # type: ignore[attr-defined]
        unique = {str(op): op for op in operands}
        ordered = [unique[key] for key in sorted(unique)]
        if len(ordered) == 1:
            return ordered[0]
        return type(formula)(*ordered)
    return formula


# ----------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\()|(?P<rparen>\))
        |"(?P<quoted>(?:[^"\\]|\\.)*)"
        |(?P<bare>[^\s()"]+)
    )""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)

_Token = tuple[str, str, int]  # (kind, text, offset); kind in lparen/rparen/name/keyword


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FormulaSyntaxError(f"unterminated quoted name at offset {pos}: {text!r}")
        offset = match.start(match.lastgroup or 0)
        if match.group("lparen"):
            tokens.append(("lparen", "(", offset))
        elif match.group("rparen"):
            tokens.append(("rparen", ")", offset))
        elif match.group("quoted") is not None:
            tokens.append(("name", _ESCAPE.sub(r"\1", match.group("quoted")), offset))
        else:
            word = match.group("bare")
            tokens.append(("keyword" if word in KEYWORDS else "name", word, offset))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def error(self, message: str) -> FormulaSyntaxError:
        where = self.tokens[self.pos][2] if self.pos < len(self.tokens) else len(self.text)
        return FormulaSyntaxError(f"{message} at offset {where} in {self.text!r}")

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or token[0] != kind or (text is not None and token[1] != text):
            expected = text or kind
            found = "end of input" if token is None else repr(token[1])
            raise self.error(f"expected {expected}, found {found}")
        self.pos += 1
        return token

    def expression(self) -> Formula:
        operands = [self.term()]
        keyword = None
        while (token := self.peek()) is not None and token[0] == "keyword" and token[1] in ("AND", "OR"):
            if keyword is not None and token[1] != keyword:
                raise self.error("AND and OR cannot be mixed without parentheses")
            keyword = token[1]
            self.pos += 1
            operands.append(self.term())
        if keyword is None:
            return operands[0]
        return And(*operands) if keyword == "AND" else Or(*operands)

    def term(self) -> Formula:
        token = self.peek()
        if token is None:
            raise self.error("expected a concept, NOT, NEIGHBORS or '('")
        kind, text, _ = token
        if kind == "lparen":
            self.pos += 1
            inner = self.expression()
            self.take("rparen")
            return inner
        if kind == "name":
            self.pos += 1
            return Concept(text)
        if kind == "keyword" and text == "NOT":
            self.pos += 1
            return Not(self.term())
        if kind == "keyword" and text == "NEIGHBORS":
            self.pos += 1
            self.take("lparen")
            name = self.take("name")[1]
            self.take("rparen")
            return Neighbors(name)
        raise self.error(f"unexpected {text!r}")


def parse(text: str) -> Formula:
    """Parse a formula written in the paper's syntax.

    Parameters
    ----------
    text : str
        For example ``"(water OR river) AND NOT blue"``. The reference code's fully
        parenthesised output, ``((water OR river) AND (NOT blue))``, parses too.

    Returns
    -------
    Formula

    Raises
    ------
    FormulaSyntaxError
        If ``text`` is not a well-formed formula.
    """
    parser = _Parser(text)
    if not parser.tokens:
        raise FormulaSyntaxError("empty formula")
    formula = parser.expression()
    if parser.peek() is not None:
        raise parser.error(f"unexpected {parser.peek()[1]!r}")  # type: ignore[index]
    return formula
