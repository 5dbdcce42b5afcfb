"""``logiclens polytope``: a 2-D demonstration, and analyses of a saved sequential model.

Subcommands (the study of ``docs/polytope/`` is ``examples/polytope_study.py``):

* ``demo``    -- exact regions of a 2-D toy network, checked against a grid, drawn to a PNG;
* ``analyze`` -- codes, exact polytopes, code clusters, boundary density and local complexity
  of an ``nn.Sequential`` (``module:factory`` with ``--weights``) on inputs from a ``.npy`` file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``polytope`` and its subcommands to an ``add_subparsers()`` object; returns the ``polytope`` parser.

    Every subcommand sets ``handler`` (a function of the parsed arguments returning the exit status).
    """
    parser = subparsers.add_parser(
        "polytope",
        help="the polytope lens: spline codes, regions, boundary density and their explanations",
        description="Analyses of 'Interpreting Neural Networks through the Polytope Lens' for piecewise-linear "
        "networks, connected to compositional explanations. See docs/polytope.md.",
    )
    commands = parser.add_subparsers(dest="polytope_command", required=True, metavar="SUBCOMMAND")

    demo = commands.add_parser("demo", help="exact linear regions of a 2-D toy network, drawn to a PNG")
    demo.add_argument("--out", "-o", type=Path, default=Path("polytope_demo.png"), help="figure file")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_cmd_demo)

    analyze = commands.add_parser(
        "analyze",
        help="codes, polytopes, clusters, boundary density and local complexity of a saved nn.Sequential",
        description="MODEL is module:factory returning an nn.Sequential of Linear/Conv/BatchNorm/AvgPool/"
        "Flatten and ReLU/ReLU6/LeakyReLU/Hardtanh modules; INPUTS a .npy array (n, ...) of inputs.",
    )
    analyze.add_argument("model", help="module:factory")
    analyze.add_argument("inputs", type=Path, help=".npy file of inputs (n, ...)")
    analyze.add_argument("--weights", help="weights file (torch.load weights_only=True)")
    analyze.add_argument("--labels", type=Path, help=".npy file of labels (n,), for purity and cross-class paths")
    analyze.add_argument("--pairs", type=int, default=50, help="paths for boundary density (default 50)")
    analyze.add_argument("--path", choices=("lerp", "slerp"), default="lerp")
    analyze.add_argument("--radius", type=float, action="append", help="local-complexity radius (repeatable)")
    analyze.add_argument("--directions", type=int, default=25, help="local complexity: P (at most the input size)")
    analyze.add_argument("--min-cluster-size", type=int, default=10)
    analyze.add_argument("--seed", type=int, default=0)
    analyze.add_argument("--out", "-o", type=Path, help="write the tables (CSV) and a JSON summary here")
    analyze.set_defaults(handler=_cmd_analyze)
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    from logiclens.polytope.demo import run_demo

    facts = run_demo(args.out, seed=args.seed)
    for key, value in facts.items():
        print(f"{key}: {value}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _load_sequential(spec: str, weights: str | None) -> Any:
    """Build ``module:factory`` and load ``weights`` (a state dict, ``torch.load(weights_only=True)``)."""
    import importlib

    from logiclens.checkpoints import read_checkpoint

    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise ValueError(f"model must be module:factory, got {spec!r}")
    factory = getattr(importlib.import_module(module_name), factory_name, None)
    if factory is None:
        raise ValueError(f"{module_name} has no {factory_name!r}")
    model = factory()
    if weights is not None:
        state, _, _ = read_checkpoint(weights)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return model.eval()


def _cmd_analyze(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from logiclens.polytope import from_torch
    from logiclens.polytope.analysis import NetworkAnalysisSettings, analyze_network

    inputs = np.load(args.inputs, allow_pickle=False)
    module = _load_sequential(args.model, args.weights)
    network = from_torch(module, inputs.shape[1:])
    labels = np.load(args.labels, allow_pickle=False) if args.labels else None
    settings = NetworkAnalysisSettings(
        n_pairs=args.pairs, path=args.path, radii=args.radius or [0.1], directions=args.directions,
        min_cluster_size=args.min_cluster_size, random_state=args.seed,
    )  # fmt: skip
    analysis = analyze_network(network, inputs, labels, settings)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(analysis.regions.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(pd.Series(analysis.density.summary_).to_string(float_format=lambda v: f"{v:.3f}"))
        print(analysis.complexity.to_string(index=False))
    if args.out is not None:
        print(f"wrote {analysis.save(args.out)}", file=sys.stderr)
    return 0
