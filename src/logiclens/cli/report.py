"""``logiclens report``: write a run's HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from logiclens.cli.options import count

__all__ = ["register", "run"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report DIR [--out PATH] [--top-examples N] [--layer NAME] [--n-jobs N] [--quiet]`` to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The new sub-command's parser; its ``handler`` default is :func:`run`.
    """
    parser = subparsers.add_parser(
        "report",
        help="write a run's HTML report (DIR/report/index.html)",
        description="Write a self-contained HTML report of a run (`logiclens dissect` or `logiclens text explain`): "
        "settings, summary, plots, a sortable table of every unit and a card per unit with its top-activating "
        "images and masks, or texts with the formula's words marked. "
        "It opens from the file system and loads nothing from the network.",
    )
    parser.add_argument("run", type=Path, metavar="DIR", help="run directory (`dissect` or `text explain`)")
    parser.add_argument("--out", "-o", type=Path, help="report folder (default DIR/report)")
    parser.add_argument("--top-examples", "--top-images", type=count, default=6, metavar="N",
                        help="top-activating images or texts per unit (default 6; 0: none)")  # fmt: skip
    parser.add_argument(
        "--n-jobs", "-j", type=int, default=1, help="processes drawing masks and images (-1: all cores)"
    )
    parser.add_argument("--layer", action="append", help="layer to report (repeatable; default: all)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the report of ``args.run``; returns the exit status (errors are raised)."""
    from logiclens.report.build import build_report

    folder = build_report(
        args.run,
        out=args.out,
        top_examples=args.top_examples,
        layers=args.layer,
        n_jobs=args.n_jobs,
        verbose=0 if args.quiet else 1,
    )
    print(f"report: {folder / 'index.html'}", file=sys.stderr)
    return 0
