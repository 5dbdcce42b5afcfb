"""The concepts a formula uses, split by whether they appear negated."""

from __future__ import annotations

from logiclens.core.formula import Concept, Formula, Neighbors, Not, parse

__all__ = ["signed_concepts"]


def signed_concepts(formula: Formula | str) -> tuple[list[str], list[str]]:
    """Concept names of a formula that appear un-negated and negated, in order, each once.

    ``NEIGHBORS(x)`` counts as ``x``; a double negation is un-negated.
    """
    if isinstance(formula, str):
        if not formula.strip():
            return [], []
        formula = parse(formula)
    positive: list[str] = []
    negative: list[str] = []

    def walk(node: Formula, negated: bool) -> None:
        if isinstance(node, (Concept, Neighbors)):
            target = negative if negated else positive
            if node.name not in target:
                target.append(node.name)
        elif isinstance(node, Not):
            walk(node.operand, not negated)
        else:
            for operand in getattr(node, "operands", ()):
                walk(operand, negated)

    walk(formula, False)
    return positive, negative
