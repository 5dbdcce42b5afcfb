"""``logiclens search``: explain the units of a problem file with formulas over its concepts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from logiclens.cli.options import (
    CommandError,
    add_search_options,
    add_validation_options,
    explainer_from_args,
    print_table,
    validation_given,
    validation_values,
    write_outputs,
)

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``search`` command."""
    search = commands.add_parser(
        "search",
        help="explain unit masks with formulas over concept masks (a PROBLEM.npz file)",
        description="Search the best formula for every unit of a problem file. The file holds "
        "'concepts' and 'units' (bit-packed rows, np.packbits(..., axis=1, bitorder='little')) or their "
        "sparse form ('concepts_indptr'/'concepts_indices', 'units_indptr'/'units_indices': CSR rows of "
        "active positions), 'n_positions', 'concept_names', and optionally 'concept_categories', "
        "'unit_names' and 'examples' (the example each position belongs to, which enables held-out "
        "scoring and the permutation null).",
    )
    search.add_argument("problem", type=Path, help="problem .npz file")
    search.add_argument("--out", "-o", type=Path, help="write one row per unit to this CSV file")
    search.add_argument("--top-out", type=Path, help="write the top-k formulas per unit to this CSV file")
    add_validation_options(search, "examples (with an 'examples' array)", holdout=0.2, null=0)
    add_search_options(search)
    search.set_defaults(handler=run)


def _unpacked(units: Any, n_positions: int) -> Any:
    """Per-position unit masks (sparse) from the packed or sparse problem-file form."""
    import numpy as np
    import scipy.sparse as sp

    if isinstance(units, np.ndarray):
        return sp.csr_array(np.unpackbits(units, axis=1, count=n_positions, bitorder="little").astype(bool))
    return units


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from logiclens.core.concepts import ConceptSet
    from logiclens.core.io import load_problem
    from logiclens.core.masks import UnitMasks

    problem = load_problem(args.problem)
    if isinstance(problem.concepts, np.ndarray):
        concepts = ConceptSet.from_packed(
            problem.concepts, problem.n_positions, problem.concept_names, problem.concept_categories
        )
    else:
        concepts = ConceptSet.from_sparse(problem.concepts, problem.concept_names, problem.concept_categories)
    if problem.examples is None and validation_given(args):
        raise CommandError(
            f"{args.problem}: --holdout and --null need an 'examples' array (the example each position belongs to)"
        )
    explainer = explainer_from_args(args)
    holdout, null = validation_values(args)
    if problem.examples is not None and (holdout or null):
        units = _unpacked(problem.units, problem.n_positions)
        explainer.fit(units, concepts, problem.unit_names, examples=problem.examples)
    elif isinstance(problem.units, np.ndarray):
        explainer.fit(UnitMasks.from_packed(problem.units, concepts, problem.unit_names), concepts)
    else:
        explainer.fit(UnitMasks.from_sparse(problem.units, concepts, problem.unit_names), concepts)
    columns = ["unit", "formula", "iou", "upper_bound", "certificate", "heldout_iou", "significant", "length"]
    columns += ["best_atomic", "best_atomic_iou"]
    print_table(explainer.explanations_, columns)
    write_outputs(explainer, args.out, args.top_out)
    return 0
