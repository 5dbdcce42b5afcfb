"""The ``logiclens`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

EXIT_USAGE = 2


class CommandError(Exception):
    """An error to report on one line, with exit status 2."""


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    from logiclens.search.beam import BEAM_MODES, OPERATORS
    from logiclens.search.metrics import METRICS

    group = parser.add_argument_group("search")
    group.add_argument("--length", "-L", type=int, default=3, help="maximum formula length (default 3)")
    group.add_argument("--beam", "-B", type=int, default=10, help="beam size (default 10)")
    group.add_argument(
        "--operators",
        default="or,and,and_not",
        help=f"comma-separated, from {','.join(OPERATORS)} (default or,and,and_not)",
    )
    group.add_argument(
        "--beam-mode",
        choices=BEAM_MODES,
        default="reference",
        help="reference: old beam competes with new formulas (authors' code, default); paper: keep only new formulas",
    )
    group.add_argument("--metric", choices=tuple(METRICS), default="iou", help="what to maximise (default iou)")
    group.add_argument("--penalty", type=float, default=0.0, help="complexity penalty in [0, 1) (default 0)")
    group.add_argument("--min-support", type=int, default=1, help="ignore concepts with fewer positions")
    group.add_argument(
        "--max-expansion", type=int, default=None, help="extend formulas only with the unit's top-N primitives"
    )
    group.add_argument("--top-k", type=int, default=1, help="formulas to keep per unit (default 1)")
    group.add_argument("--n-jobs", "-j", type=int, default=1, help="processes (-1: all cores)")
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _explainer(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from logiclens.explainer import CompositionalExplainer

    return CompositionalExplainer(
        max_length=args.length,
        beam_size=args.beam,
        operators=tuple(op.strip() for op in args.operators.split(",") if op.strip()),
        beam_mode=args.beam_mode,
        metric=args.metric,
        complexity_penalty=args.penalty,
        min_support=args.min_support,
        max_expansion_concepts=args.max_expansion,
        top_k=args.top_k,
        n_jobs=args.n_jobs,
        verbose=0 if args.quiet else 1,
    )


def _print_table(frame, columns: Sequence[str]) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.max_colwidth", 120, "display.width", 200):
        print(frame[list(columns)].to_string(index=False, float_format=lambda x: f"{x:.4f}"))


def _write_outputs(explainer, out: Path | None, top_out: Path | None) -> None:  # type: ignore[no-untyped-def]
    from logiclens.io import atomic_write_text

    if out is not None:
        atomic_write_text(out, explainer.explanations_.to_csv(index=False))
        print(f"wrote {out}", file=sys.stderr)
    if top_out is not None:
        atomic_write_text(top_out, explainer.top_formulas_.to_csv(index=False))
        print(f"wrote {top_out}", file=sys.stderr)


def _cmd_search(args: argparse.Namespace) -> int:
    import numpy as np

    from logiclens.concepts import ConceptSet
    from logiclens.io import load_problem
    from logiclens.masks import UnitMasks

    problem = load_problem(args.problem)
    if isinstance(problem.concepts, np.ndarray):
        concepts = ConceptSet.from_packed(
            problem.concepts, problem.n_positions, problem.concept_names, problem.concept_categories
        )
    else:
        concepts = ConceptSet.from_sparse(problem.concepts, problem.concept_names, problem.concept_categories)
    if isinstance(problem.units, np.ndarray):
        units = UnitMasks.from_packed(problem.units, concepts, problem.unit_names)
    else:
        units = UnitMasks.from_sparse(problem.units, concepts, problem.unit_names)
    explainer = _explainer(args).fit(units, concepts)
    _print_table(explainer.explanations_, ["unit", "formula", "iou", "length", "best_atomic", "best_atomic_iou"])
    _write_outputs(explainer, args.out, args.top_out)
    return 0


DEMO_FORMULAS = [
    "c0",
    "c1 OR c2",
    "c3 AND NOT c4",
    "(c5 OR c6) AND c7",
    "(c8 OR c9 OR c10) AND NOT c11",
    "c12 AND c13",
]


def _cmd_demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from logiclens.testing import planted_problem

    problem = planted_problem(DEMO_FORMULAS, n_positions=200_000, n_concepts=60, noise=args.noise, seed=args.seed)
    print(
        f"Synthetic problem: {problem.concepts}, {len(DEMO_FORMULAS)} units planted from known formulas "
        f"with {args.noise:.0%} of their positions flipped.",
        file=sys.stderr,
    )
    explainer = _explainer(args).fit(problem.unit_masks, problem.concepts)
    frame = explainer.explanations_.assign(planted=problem.planted)
    _print_table(frame, ["unit", "planted", "formula", "iou", "length", "best_atomic", "best_atomic_iou"])
    _write_outputs(explainer, args.out, args.top_out)
    recovered = (frame.formula.map(_canonical_text) == pd.Series(problem.planted).map(_canonical_text)).sum()
    print(f"recovered {recovered} of {len(frame)} planted formulas exactly", file=sys.stderr)
    return 0


def _canonical_text(text: str) -> str:
    from logiclens.formula import canonical, parse

    return str(canonical(parse(text)))


def build_parser() -> argparse.ArgumentParser:
    from logiclens import __version__

    parser = argparse.ArgumentParser(prog="logiclens", description="Explain what the units of a neural network detect.")
    parser.add_argument("--version", action="version", version=f"logiclens {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    search = commands.add_parser(
        "search",
        help="explain unit masks with formulas over concept masks (a PROBLEM.npz file)",
        description="Search the best formula for every unit of a problem file. The file holds "
        "'concepts' and 'units' (bit-packed rows, np.packbits(..., axis=1, bitorder='little')) or their "
        "sparse form ('concepts_indptr'/'concepts_indices', 'units_indptr'/'units_indices': CSR rows of "
        "active positions), 'n_positions', 'concept_names', and optionally 'concept_categories' and "
        "'unit_names'.",
    )
    search.add_argument("problem", type=Path, help="problem .npz file")
    search.add_argument("--out", "-o", type=Path, help="write one row per unit to this CSV file")
    search.add_argument("--top-out", type=Path, help="write the top-k formulas per unit to this CSV file")
    _add_search_options(search)
    search.set_defaults(handler=_cmd_search)

    demo = commands.add_parser("demo", help="search a built-in synthetic problem with planted formulas")
    demo.add_argument("--noise", type=float, default=0.02, help="fraction of unit positions flipped (default 0.02)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", "-o", type=Path, help="write one row per unit to this CSV file")
    demo.add_argument("--top-out", type=Path, help="write the top-k formulas per unit to this CSV file")
    _add_search_options(demo)
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from logiclens.io import InputFileError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (InputFileError, CommandError) as error:
        print(f"logiclens: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:  # invalid option values, inconsistent inputs
        print(f"logiclens: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("logiclens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
