"""``logiclens polytope``: the study, a 2-D demonstration, and analyses of a saved sequential model.

Wire it into the main parser with :func:`register_command`::

    from logiclens.polytope.cli import register_command
    register_command(commands)   # commands = parser.add_subparsers(...)

Subcommands:

* ``study``   -- the full study (digits MLP and CNN, EfficientNet-Lite0 on shapes) into ``--out``;
* ``demo``    -- exact regions of a 2-D toy network, checked against a grid, drawn to a PNG;
* ``analyze`` -- codes, exact polytopes, code clusters, boundary density and local complexity
  of an ``nn.Sequential`` (``module:factory`` with ``--weights``) on inputs from a ``.npy`` file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register_command"]


def register_command(subparsers: Any) -> argparse.ArgumentParser:
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

    study = commands.add_parser(
        "study",
        help="run the study (digits MLP and CNN, EfficientNet-Lite0 on the shapes probe)",
        description="Train the digits models (cached), run the unit-family comparison, boundary density, "
        "scaling and local complexity on every model, and write tables, figures and summary.md.",
    )
    study.add_argument("--out", "-o", type=Path, default=Path("docs/polytope"), help="output folder")
    study.add_argument("--quick", action="store_true", help="small samples (a smoke run, about a minute)")
    study.add_argument("--models", default="mlp,cnn,efficientnet", help="comma-separated subset (default: all)")
    study.add_argument("--skip-efficientnet", action="store_true", help="digits models only")
    study.add_argument("--seed", type=int, default=0)
    study.add_argument("--cache-dir", help="where trained models are cached (default ~/.cache/logiclens/polytope)")
    study.set_defaults(handler=_cmd_study)

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


def _cmd_study(args: argparse.Namespace) -> int:
    from logiclens.polytope.study.run import StudySettings, run_study

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    settings = StudySettings(
        quick=args.quick,
        skip_efficientnet=args.skip_efficientnet,
        models=models,
        seed=args.seed,
        cache_dir=args.cache_dir,
    )
    headline = run_study(args.out, settings, log=lambda line: print(line, file=sys.stderr))
    timing = headline["timing"]
    print(f"wrote {args.out}/summary.md ({timing['total_wall_s']:.0f} s wall, {timing['total_cpu_s']:.0f} s CPU)")
    return 0


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

    import torch

    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise ValueError(f"model must be module:factory, got {spec!r}")
    factory = getattr(importlib.import_module(module_name), factory_name, None)
    if factory is None:
        raise ValueError(f"{module_name} has no {factory_name!r}")
    model = factory()
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return model.eval()


def _cmd_analyze(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from logiclens.polytope import BoundaryDensity, CodeClusters, ExactPolytopes, LocalComplexity, from_torch
    from logiclens.polytope.study.experiments import pick_pairs

    inputs = np.load(args.inputs, allow_pickle=False)
    module = _load_sequential(args.model, args.weights)
    net = from_torch(module, inputs.shape[1:])
    x = inputs.reshape(len(inputs), -1).astype(np.float64)
    labels = np.load(args.labels, allow_pickle=False) if args.labels else net.predict(x)
    summary: dict[str, Any] = {"network": repr(net), "inputs": len(x)}
    codes = net.codes(x)
    rows = []
    for name in [*codes.layer_names, None]:
        sub = codes if name is None else codes.layer(name)
        exact = ExactPolytopes().fit(sub)
        clusters = CodeClusters("hdbscan", "hamming", args.min_cluster_size).fit(sub)
        rows.append(
            {
                "layer": name or "all layers",
                "bits": sub.n_bits,
                "polytopes": exact.n_polytopes_,
                "sharing_rate": exact.sharing_rate_,
                "code_clusters": clusters.n_clusters_,
                "noise_fraction": clusters.noise_fraction_,
                "coverage": clusters.coverage_,
            }
        )
    regions = pd.DataFrame(rows)
    pairs = pick_pairs(labels, args.pairs, seed=args.seed)
    if not len(pairs):  # a single class: paths between any two inputs
        pairs = pick_pairs(np.arange(len(x)), args.pairs, seed=args.seed)
    density = BoundaryDensity(path=args.path, random_state=args.seed).fit(net, x[pairs[:, 0]], x[pairs[:, 1]])
    summary["density"] = density.summary_
    radii = args.radius or [0.1]
    directions = min(args.directions, x.shape[1])
    lc = pd.DataFrame(
        [{"radius": r, "mean_lc": float(LocalComplexity(directions, r).fit(net, x[:500]).total_.mean())} for r in radii]
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(regions.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(pd.Series(density.summary_).to_string(float_format=lambda v: f"{v:.3f}"))
        print(lc.to_string(index=False))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        regions.to_csv(args.out / "regions.csv", index=False)
        density.paths_.to_csv(args.out / "density_paths.csv", index=False)
        lc.to_csv(args.out / "local_complexity.csv", index=False)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
