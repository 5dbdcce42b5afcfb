"""Options and output helpers shared by the ``logiclens`` commands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CommandError",
    "add_search_options",
    "add_validation_options",
    "count",
    "explainer_from_args",
    "finite",
    "holdout_fraction",
    "open_fraction",
    "positive",
    "print_table",
    "validation_given",
    "validation_values",
    "wide_tables",
    "write_outputs",
    "write_report",
]


class CommandError(Exception):
    """An error to report on one line, with exit status 2."""


def count(text: str) -> int:
    """A whole number >= 0 (``argparse`` type)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive(text: str) -> int:
    """A whole number >= 1 (``argparse`` type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def finite(text: str) -> float:
    """A finite number (``argparse`` type: no NaN, no infinity)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def open_fraction(text: str) -> float:
    """A number in (0, 1) (``argparse`` type)."""
    value = finite(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), got {text}")
    return value


def holdout_fraction(text: str) -> float:
    """A number in [0, 1) (``argparse`` type)."""
    value = finite(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def duration(text: str) -> float:
    """Seconds, as a number or with a unit: ``5``, ``5s``, ``250ms``, ``2m`` (``argparse`` type)."""
    units = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    stripped = text.strip().lower()
    for suffix in ("ms", "s", "m", "h"):  # "ms" before "s" and "m"
        if stripped.endswith(suffix):
            number, scale = stripped[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = stripped, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be seconds (5, 5s, 250ms, 2m), got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite duration >= 0, got {text!r}")
    return value


def add_search_options(parser: argparse.ArgumentParser) -> None:
    """Add the explainer's search options (``--length``, ``--beam``, ... ``--n-jobs``, ``--quiet``)."""
    from logiclens.core.search.names import BEAM_MODES, METRIC_NAMES, OPERATORS

    group = parser.add_argument_group("search")
    group.add_argument("--length", "-L", type=positive, default=3, help="maximum formula length (default 3)")
    group.add_argument("--beam", "-B", type=positive, default=10, help="beam size (default 10)")
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
    group.add_argument("--metric", choices=METRIC_NAMES, default="iou", help="what to maximise (default iou)")
    group.add_argument("--penalty", type=holdout_fraction, default=0.0, help="complexity penalty in [0, 1) (default 0)")
    group.add_argument("--min-support", type=positive, default=1, help="ignore concepts with fewer positions")
    group.add_argument(
        "--max-expansion", type=positive, default=None, help="extend formulas only with the unit's top-N primitives"
    )
    group.add_argument("--top-k", type=positive, default=1, help="formulas to keep per unit (default 1)")
    group.add_argument(
        "--search",
        choices=("beam", "optimal"),
        default="beam",
        help="beam (default; its answers get a cheap certificate) or optimal: the certified best formula of the "
        "beam's space (IoU without penalty only; docs/search.md)",
    )
    group.add_argument(
        "--budget",
        type=duration,
        default=None,
        help="with --search optimal: time per unit (5, 5s, 250ms; default none)",
    )
    group.add_argument(
        "--max-nodes", type=count, default=None, help="with --search optimal: expanded formulas per unit (reproducible)"
    )
    group.add_argument("--n-jobs", "-j", type=int, default=1, help="processes (-1: all cores; dissect's default)")
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    execution = parser.add_argument_group("execution")
    execution.add_argument("--backend", choices=("local", "ray"), default="local",
                           help="local (default: --n-jobs processes here) or ray: tasks on a Ray cluster "
                           "(pip install 'logiclens[ray]'; docs/scaling.md); the results are the same")  # fmt: skip
    execution.add_argument("--ray-address", metavar="HOST:PORT",
                           help="with --backend ray: the cluster to join (default $RAY_ADDRESS, else a Ray "
                           "instance started on this machine)")  # fmt: skip


def add_validation_options(parser: argparse.ArgumentParser, examples: str, holdout: float, null: int) -> None:
    """Add ``--holdout``, ``--null`` and ``--alpha`` (see ``docs/validation.md``) to a command."""
    group = parser.add_argument_group("validation")
    held = f"fraction of {examples} held out of the search (default {holdout:g}; 0: none)"
    group.add_argument("--holdout", type=holdout_fraction, help=held)
    group.add_argument("--null", type=count, help=f"permutations of the null (default {null}; 0: none)")
    group.add_argument("--alpha", type=open_fraction, default=0.05,
                       help="false-discovery rate of `significant`, in (0, 1) (default 0.05)")  # fmt: skip
    parser.set_defaults(validation_defaults=(holdout, null))


def validation_values(args: argparse.Namespace) -> tuple[float, int]:
    """``--holdout`` and ``--null`` as given, or the command's defaults."""
    holdout, null = args.validation_defaults
    return (holdout if args.holdout is None else args.holdout), (null if args.null is None else args.null)


def validation_given(args: argparse.Namespace) -> bool:
    """Whether ``--holdout`` or ``--null`` was given on the command line."""
    return args.holdout is not None or args.null is not None


def explainer_from_args(args: argparse.Namespace, seed: int = 0) -> Any:
    """The :class:`~logiclens.CompositionalExplainer` the search and validation options describe."""
    from logiclens.explain.compositional import CompositionalExplainer

    validation = {}
    if hasattr(args, "holdout"):
        holdout, null = validation_values(args)
        validation = {"holdout": holdout, "n_null": null, "alpha": args.alpha}
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
        search=args.search,
        budget_seconds=args.budget,
        max_nodes=args.max_nodes,
        random_state=seed,
        n_jobs=args.n_jobs,
        verbose=0 if args.quiet else 1,
        backend=args.backend,
        ray_address=args.ray_address,
        **validation,
    )


def wide_tables() -> Any:
    """A pandas option context that prints whole tables."""
    import pandas as pd

    return pd.option_context("display.max_rows", None, "display.max_colwidth", 120, "display.width", 200)


def print_table(frame: Any, columns: Sequence[str], file: Any = None) -> None:
    """Print the columns of ``frame`` that it has, four decimals, no index."""
    with wide_tables():
        shown = frame[[c for c in columns if c in frame]]
        print(shown.to_string(index=False, float_format=lambda x: f"{x:.4f}"), file=file or sys.stdout)


def write_outputs(explainer: Any, out: Path | None, top_out: Path | None) -> None:
    """Write a fitted explainer's results (``--out``) and top formulas (``--top-out``) as CSV."""
    from logiclens.core.io import atomic_write_text

    if out is not None:
        atomic_write_text(out, explainer.explanations_.to_csv(index=False))
        print(f"wrote {out}", file=sys.stderr)
    if top_out is not None:
        atomic_write_text(top_out, explainer.top_formulas_.to_csv(index=False))
        print(f"wrote {top_out}", file=sys.stderr)


def write_report(out: str | Path, probe: Any, n_jobs: int, verbose: int) -> None:
    """Write the run's HTML report; a missing jinja2/matplotlib is reported, not raised."""
    from logiclens.report import build_report

    try:
        folder = build_report(out, probe=probe, n_jobs=n_jobs, verbose=verbose)
    except ImportError as error:  # jinja2/matplotlib missing: the dissection itself succeeded
        print(f"logiclens: no HTML report ({error})", file=sys.stderr)
        return
    print(f"report: {folder / 'index.html'}", file=sys.stderr)


def add_region_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--units`` and the code-cluster options (``--cluster-method``, ``--clusters``, ...)."""
    group = parser.add_argument_group("code-cluster units (--units code-clusters)")
    group.add_argument(
        "--units",
        choices=("neurons", "code-clusters"),
        default="neurons",
        help="code-clusters: also explain clusters of the layer's codes (at its nonlinearity) with activation "
        "clusters, PCA/NMF/random directions and random subsets, and compare them with the neurons at matched sizes",
    )
    group.add_argument("--cluster-method", choices=("kmedoids", "hdbscan"), default="kmedoids",
                       help="clustering of the codes on Hamming distance (default kmedoids)")  # fmt: skip
    group.add_argument("--clusters", type=int, default=16, help="k of k-medoids and k-means (default 16)")
    group.add_argument("--min-cluster-size", type=int, default=20,
                       help="smallest cluster kept as a unit, in positions (default 20)")  # fmt: skip
    group.add_argument("--fit-positions", type=int, default=2000,
                       help="positions sampled to fit the clustering (default 2000)")  # fmt: skip


def region_settings_from_args(args: argparse.Namespace, seed: int = 0) -> Any:
    """The :class:`~logiclens.polytope.position_units.RegionUnitSettings` of the region options."""
    from logiclens.polytope.position_units import RegionUnitSettings

    return RegionUnitSettings(
        method=args.cluster_method, n_clusters=args.clusters, min_cluster_size=args.min_cluster_size,
        max_fit=args.fit_positions, random_state=seed,
    )  # fmt: skip
