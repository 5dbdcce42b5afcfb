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


def add_validation_options(parser: argparse.ArgumentParser, examples: str, holdout: float, null: int) -> None:
    """Add ``--holdout``, ``--null`` and ``--alpha`` (see ``docs/validation.md``) to a command."""
    group = parser.add_argument_group("validation")
    held = f"fraction of {examples} held out of the search (default {holdout:g}; 0: none)"
    group.add_argument("--holdout", type=float, default=holdout, help=held)
    group.add_argument("--null", type=int, default=null, help=f"permutations of the null (default {null}; 0: none)")
    group.add_argument("--alpha", type=float, default=0.05, help="false-discovery rate of `significant` (default 0.05)")


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
    explainer = _explainer(args)
    if problem.examples is not None and (args.holdout or args.null):
        explainer.set_params(holdout=args.holdout, n_null=args.null, alpha=args.alpha)
        units = _unpacked(problem.units, problem.n_positions)
        explainer.fit(units, concepts, problem.unit_names, examples=problem.examples)
    elif isinstance(problem.units, np.ndarray):
        explainer.fit(UnitMasks.from_packed(problem.units, concepts, problem.unit_names), concepts)
    else:
        explainer.fit(UnitMasks.from_sparse(problem.units, concepts, problem.unit_names), concepts)
    columns = ["unit", "formula", "iou", "heldout_iou", "significant", "length", "best_atomic", "best_atomic_iou"]
    _print_table(explainer.explanations_, [c for c in columns if c in explainer.explanations_])
    _write_outputs(explainer, args.out, args.top_out)
    return 0


def _unpacked(units, n_positions: int):  # type: ignore[no-untyped-def]
    """Per-position unit masks (sparse) from the packed or sparse problem-file form."""
    import numpy as np
    import scipy.sparse as sp

    if isinstance(units, np.ndarray):
        return sp.csr_array(np.unpackbits(units, axis=1, count=n_positions, bitorder="little").astype(bool))
    return units


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


def _cmd_layers(args: argparse.Namespace) -> int:
    from logiclens.models import list_layers, load_model

    model = load_model(args.model, weights=args.weights)
    print(f"{'layer':<40} output shape (one {model.input_size[0]}x{model.input_size[1]} image)")
    for name, shape in list_layers(model):
        marker = "  (default)" if name in model.default_layers else ""
        print(f"{name or '(model)':<40} {'-' if shape is None else tuple(shape)}{marker}")
    return 0


def _cmd_dissect(args: argparse.Namespace) -> int:
    from logiclens.dissect import DissectionSettings, dissect, summarize
    from logiclens.models import load_model
    from logiclens.probes.registry import open_probe

    model = load_model(args.model, weights=args.weights)
    layers = args.layer or model.default_layers
    probe = open_probe(
        args.probe,
        n_images=args.images,
        seed=args.seed,
        image_size=model.input_size[0],
        categories=args.categories.split(",") if args.categories else None,
        sources=args.sources.split(",") if args.sources else None,
    )
    explainer = _explainer(args)
    search = {k: v for k, v in explainer.get_params().items() if k not in ("n_jobs", "verbose")}
    settings = DissectionSettings(
        layers=list(layers),
        top_fraction=args.quantile,
        threshold_mode="fixed" if args.threshold is not None else args.threshold_mode,
        fixed_threshold=0.0 if args.threshold is None else args.threshold,
        batch_size=args.batch_size,
        device=args.device,
        search=search,
        holdout=args.holdout,
        n_null=args.null,
        alpha=args.alpha,
        split_seed=args.seed,
    )
    print(
        f"dissecting {model.name} layers {', '.join(layers)} on {len(probe)} images of the "
        f"{probe.config().get('kind', args.probe)} probe ({len(probe.concept_names)} concepts) into {args.out}",
        file=sys.stderr,
    )
    verbose = 0 if args.quiet else 1
    results = dissect(model, probe, args.out, settings, n_jobs=args.n_jobs, verbose=verbose)
    columns = ["layer", "unit", "formula", "iou", "heldout_iou", "significant", "best_atomic", "best_atomic_iou"]
    with _wide_tables():
        print(summarize(results).to_string(float_format=lambda x: f"{x:.4f}"))
        best = results.sort_values("iou", ascending=False).head(args.show)
        print(best[[c for c in columns if c in best]].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    if args.random_init_control:
        from logiclens.dissect import random_init_copy

        control_out = Path(args.out) / "random_init"
        print(f"control: the same dissection of a randomly initialised copy, into {control_out}", file=sys.stderr)
        control = dissect(random_init_copy(model), probe, control_out, settings, n_jobs=args.n_jobs, verbose=verbose)
        with _wide_tables():
            print("randomly initialised copy:")
            print(summarize(control).to_string(float_format=lambda x: f"{x:.4f}"))
    if not args.no_report:
        _write_report(args.out, probe, args.n_jobs, verbose)
    print(f"results: {Path(args.out) / 'results.csv'}", file=sys.stderr)
    return 0


def _write_report(out: str | Path, probe, n_jobs: int, verbose: int) -> None:  # type: ignore[no-untyped-def]
    from logiclens.report import build_report

    try:
        folder = build_report(out, probe=probe, n_jobs=n_jobs, verbose=verbose)
    except ImportError as error:  # jinja2/matplotlib missing: the dissection itself succeeded
        print(f"logiclens: no HTML report ({error})", file=sys.stderr)
        return
    print(f"report: {folder / 'index.html'}", file=sys.stderr)


def _wide_tables():  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.option_context("display.max_rows", None, "display.max_colwidth", 100, "display.width", 200)


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
        "active positions), 'n_positions', 'concept_names', and optionally 'concept_categories', "
        "'unit_names' and 'examples' (the example each position belongs to, which enables held-out "
        "scoring and the permutation null).",
    )
    search.add_argument("problem", type=Path, help="problem .npz file")
    search.add_argument("--out", "-o", type=Path, help="write one row per unit to this CSV file")
    search.add_argument("--top-out", type=Path, help="write the top-k formulas per unit to this CSV file")
    add_validation_options(search, "examples (with an 'examples' array)", holdout=0.2, null=0)
    _add_search_options(search)
    search.set_defaults(handler=_cmd_search)

    layers = commands.add_parser("layers", help="list a model's layer names and output shapes")
    layers.add_argument("model", nargs="?", default="efficientnet-lite0", help="model (default efficientnet-lite0)")
    layers.add_argument("--weights", help="weights file (resnet18-places365, module:factory)")
    layers.set_defaults(handler=_cmd_layers)

    dissect = commands.add_parser(
        "dissect",
        help="explain every unit of an image model's layers on a probing set",
        description="Record a layer's activations on a probing set, threshold each unit at its top "
        "quantile, and search the formula over the probe's concepts that best matches each unit. "
        "Rerunning with the same options resumes an interrupted run and reuses finished stages.",
    )
    dissect.add_argument("--model", default="efficientnet-lite0", help="efficientnet-lite0 (default), "
                         "resnet18-places365 (with --weights), or module:factory")  # fmt: skip
    dissect.add_argument("--weights", help="weights file for resnet18-places365 or module:factory")
    dissect.add_argument("--layer", action="append", help="layer to dissect (repeatable; default: the model's)")
    dissect.add_argument("--probe", default="default", help="default (stamps, else shapes), stamps, shapes, "
                         "broden:PATH or segmentation:PATH")  # fmt: skip
    dissect.add_argument("--images", type=int, help="number of probe images (generated probes: 2000)")
    dissect.add_argument("--categories", help="Broden categories, comma-separated (e.g. object,part,color)")
    dissect.add_argument("--sources", help="Broden image sources, comma-separated (e.g. ade20k)")
    dissect.add_argument("--seed", type=int, default=0, help="seed of generated probes")
    dissect.add_argument("--quantile", type=float, default=0.005, help="top fraction q per unit (default 0.005)")
    dissect.add_argument("--threshold-mode", choices=("layer", "upsampled"), default="layer",
                         help="quantile over the layer's positions (NetDissect, default) or over upsampled pixels "
                         "(the paper's definition)")  # fmt: skip
    dissect.add_argument("--threshold", type=float, help="fixed threshold instead of a quantile (e.g. 0)")
    add_validation_options(dissect, "images", holdout=0.2, null=20)
    dissect.add_argument(
        "--random-init-control",
        action="store_true",
        help="also dissect a randomly initialised copy, into OUT/random_init",
    )
    dissect.add_argument("--no-report", action="store_true", help="do not write the HTML report (OUT/report)")
    dissect.add_argument("--batch-size", type=int, default=32)
    dissect.add_argument("--device", default="cpu", help="cpu or cuda")
    dissect.add_argument("--out", "-o", default="runs/dissect", help="run directory (default runs/dissect)")
    dissect.add_argument("--show", type=int, default=15, help="best units to print (default 15)")
    _add_search_options(dissect)
    dissect.set_defaults(handler=_cmd_dissect)

    demo = commands.add_parser("demo", help="search a built-in synthetic problem with planted formulas")
    demo.add_argument("--noise", type=float, default=0.02, help="fraction of unit positions flipped (default 0.02)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", "-o", type=Path, help="write one row per unit to this CSV file")
    demo.add_argument("--top-out", type=Path, help="write the top-k formulas per unit to this CSV file")
    _add_search_options(demo)
    demo.set_defaults(handler=_cmd_demo)

    from logiclens.polytope.cli import register_command as register_polytope
    from logiclens.report import register_command as register_report
    from logiclens.text.cli import register_command as register_text

    register_report(commands)
    register_polytope(commands)
    register_text(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from logiclens.io import InputFileError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (InputFileError, CommandError, ValueError, FileNotFoundError, ImportError) as error:
        # bad files, invalid option values, inconsistent inputs, missing optional packages
        print(f"logiclens: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("logiclens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
