"""``logiclens analyze``: accuracy when active, contributions to classes and copy-paste edits of a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from logiclens.cli.options import count

__all__ = [
    "add_analysis_options",
    "add_analyze_after_options",
    "analyze_after",
    "register",
    "run",
    "settings_from_args",
]

#: prefix of the analysis options of the commands that analyse after they finish (``--analyze-units``, ...)
AFTER_PREFIX = "analyze-"


def add_analysis_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The analysis options, shared by ``analyze``, ``dissect --analyze`` and ``text explain --analyze``."""
    group = parser.add_argument_group("analysis")
    group.add_argument(f"--{prefix}parts", default="accuracy,contributions,copy_paste",
                       help="comma-separated: accuracy, contributions, copy_paste (default all)")  # fmt: skip
    group.add_argument(f"--{prefix}classes", help="target classes of the copy-paste edits, comma-separated indices "
                       "(default: the classes with the most labelled probe images)")  # fmt: skip
    group.add_argument(f"--{prefix}n-classes", type=count, default=10, metavar="N", help="target classes (default 10)")
    group.add_argument(f"--{prefix}units", type=count, default=3, metavar="N",
                       help="top contributing units per class whose formulas give concepts (default 3)")  # fmt: skip
    group.add_argument(f"--{prefix}hosts", type=count, default=5, metavar="N",
                       help="host images per class (default 5)")  # fmt: skip
    group.add_argument(f"--{prefix}sizes", default="0.35,0.55",
                       help="pasted sizes, fractions of the image side (default 0.35,0.55)")  # fmt: skip
    group.add_argument(f"--{prefix}positions", type=count, default=2, metavar="N",
                       help="seeded positions per size (default 2)")  # fmt: skip
    group.add_argument(f"--{prefix}top-classes", type=count, default=5, metavar="N",
                       help="classes per unit and sign in analysis/unit_classes.csv (default 5)")  # fmt: skip
    group.add_argument(f"--{prefix}analysis-layer", help="layer of the contributions and edits (default: the last "
                       "layer with a linear path to the classifier)")  # fmt: skip


def add_analyze_after_options(parser: argparse.ArgumentParser) -> None:
    """``--analyze`` and the analysis options prefixed ``--analyze-``: for ``dissect`` and ``text explain``."""
    parser.add_argument("--analyze", action="store_true", help="then run `logiclens analyze OUT` (OUT/analysis)")
    add_analysis_options(parser, AFTER_PREFIX)


def analyze_after(args: argparse.Namespace, out: str | Path, model: Any = None, probe: Any = None) -> int:
    """Run ``logiclens analyze OUT`` after a finished run when ``--analyze`` was given.

    Returns
    -------
    int
        The exit status: 0, or 2 after printing the analysis error (the run and its report are kept).
    """
    if not args.analyze:
        return 0
    from logiclens.analysis import AnalysisError, analyze

    verbose = 0 if args.quiet else 1
    try:
        options = settings_from_args(args, AFTER_PREFIX)
        print_summary(analyze(out, options, model=model, probe=probe, verbose=verbose))
    except AnalysisError as error:  # the run itself succeeded: keep it and its report
        print(f"logiclens: error: analysis not written: {error}", file=sys.stderr)
        return 2
    return 0


def settings_from_args(args: argparse.Namespace, prefix: str = "") -> Any:
    """:class:`~logiclens.analysis.AnalysisSettings` from the parsed options."""
    from logiclens.analysis import AnalysisSettings, CopyPasteSettings
    from logiclens.cli.options import CommandError

    def get(name: str) -> Any:
        return getattr(args, prefix.replace("-", "_") + name)

    try:
        sizes = tuple(float(s) for s in get("sizes").split(","))
        classes = [int(c) for c in get("classes").split(",")] if get("classes") else None
    except ValueError:
        raise CommandError("--sizes takes fractions like 0.35,0.55 and --classes class indices like 340,291") from None
    if any(not 0 < s <= 1 for s in sizes):
        raise CommandError(f"--sizes must lie in (0, 1], got {get('sizes')}")
    copy_paste = CopyPasteSettings(
        classes=classes, n_classes=get("n_classes"), n_units=get("units"), n_hosts=get("hosts"), sizes=sizes,
        n_positions=get("positions"), seed=getattr(args, "seed", 0) or 0,
    )  # fmt: skip
    parts = tuple(p.strip() for p in get("parts").split(",") if p.strip())
    return AnalysisSettings(
        parts=parts, layer=get("analysis_layer"), copy_paste=copy_paste, top_classes=get("top_classes")
    )


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``analyze DIR`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "analyze",
        help="accuracy when units fire, what units contribute to each class, copy-paste edits (DIR/analysis)",
        description="The paper's questions 2 and 3 on a finished dissection that recorded predictions: accuracy "
        "when each unit is active against its IoU (Pearson r per maximum formula length), each unit's contribution "
        "to each class, and copy-paste adversarial images made from the top units' formulas, against controls. "
        "Writes DIR/analysis/ (accuracy.csv, contributions.csv, copy_paste.csv, summary.json).",
    )
    parser.add_argument("run", type=Path, metavar="DIR", help="run directory of `logiclens dissect`")
    add_analysis_options(parser)
    parser.add_argument("--model", help="the run's model, when config.json's name cannot be reloaded "
                        "(a module:factory spec)")  # fmt: skip
    parser.add_argument("--weights", help="weights file of --model")
    parser.add_argument("--seed", type=int, default=0, help="seed of hosts and positions (default 0)")
    parser.add_argument("--no-report", action="store_true", help="do not rebuild the HTML report")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Analyze ``args.run``; returns the exit status (errors are raised)."""
    from logiclens.analysis import analyze

    model = None
    if args.model:
        from logiclens.vision.models import load_model

        model = load_model(args.model, weights=args.weights)
    result = analyze(args.run, settings_from_args(args), model=model, verbose=0 if args.quiet else 1)
    print_summary(result)
    if not args.no_report:
        from logiclens.cli.options import write_report

        write_report(args.run, None, 1, 0 if args.quiet else 1)
    return 0


def print_summary(result: Any) -> None:
    """The correlations and the copy-paste effects, briefly."""
    summary = result.summary
    if result.correlations is not None:
        print(f"accuracy when active: {summary['n_labelled']} of {summary['n_images']} inputs labelled")
        for note in summary.get("notes", []):
            print(f"note: {note}")
        print(result.correlations.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    effects = summary.get("copy_paste", {}).get("overall", {})
    if effects:
        for kind in ("targeted", "control", "negated"):
            d = effects[kind]["delta_logp"]
            if d["n"]:
                print(f"{kind:9s} paste: mean change of the target's log-probability {d['mean']:+.3f} "
                      f"[{d['low']:+.3f}, {d['high']:+.3f}] over {d['n']} edits")  # fmt: skip
        verdict = "beat" if effects["beats_control"] else "did NOT beat"
        print(f"targeted pastes {verdict} the controls (paired difference, 95% bootstrap interval)")
    print(f"analysis: {result.folder} ({summary['seconds']:.0f} s)", file=sys.stderr)
