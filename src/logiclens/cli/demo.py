"""``logiclens demo``: search a built-in synthetic problem whose units were planted from known formulas."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from logiclens.cli.options import add_search_options, explainer_from_args, print_table, write_outputs

__all__ = ["DEMO_FORMULAS", "register"]

DEMO_FORMULAS = [
    "c0",
    "c1 OR c2",
    "c3 AND NOT c4",
    "(c5 OR c6) AND c7",
    "(c8 OR c9 OR c10) AND NOT c11",
    "c12 AND c13",
]


def register(commands: Any) -> None:
    """Add the ``demo`` command."""
    demo = commands.add_parser("demo", help="search a built-in synthetic problem with planted formulas")
    demo.add_argument("--noise", type=float, default=0.02, help="fraction of unit positions flipped (default 0.02)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", "-o", type=Path, help="write one row per unit to this CSV file")
    demo.add_argument("--top-out", type=Path, help="write the top-k formulas per unit to this CSV file")
    add_search_options(demo)
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from logiclens.core.formula import canonical, parse
    from logiclens.testing import planted_problem

    problem = planted_problem(DEMO_FORMULAS, n_positions=200_000, n_concepts=60, noise=args.noise, seed=args.seed)
    print(
        f"Synthetic problem: {problem.concepts}, {len(DEMO_FORMULAS)} units planted from known formulas "
        f"with {args.noise:.0%} of their positions flipped.",
        file=sys.stderr,
    )
    explainer = explainer_from_args(args).fit(problem.unit_masks, problem.concepts)
    frame = explainer.explanations_.assign(planted=problem.planted)
    print_table(frame, ["unit", "planted", "formula", "iou", "length", "best_atomic", "best_atomic_iou"])
    write_outputs(explainer, args.out, args.top_out)

    def canonical_text(text: str) -> str:
        return str(canonical(parse(text)))

    recovered = (frame.formula.map(canonical_text) == pd.Series(problem.planted).map(canonical_text)).sum()
    print(f"recovered {recovered} of {len(frame)} planted formulas exactly", file=sys.stderr)
    return 0
