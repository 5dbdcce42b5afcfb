"""The polytope lens on one piecewise-linear network and a set of inputs: :func:`analyze_network`.

Per layer (and over all layers): spline codes, exact polytopes and code clusters; boundary
density along paths between inputs of different labels; local complexity at a few radii.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from logiclens.polytope.complexity import LocalComplexity
from logiclens.polytope.density import BoundaryDensity
from logiclens.polytope.network import PiecewiseLinearNetwork
from logiclens.polytope.paths import PATH_KINDS, pick_pairs
from logiclens.polytope.regions import CodeClusters, ExactPolytopes

__all__ = ["NetworkAnalysis", "NetworkAnalysisSettings", "analyze_network"]


@dataclass
class NetworkAnalysisSettings:
    """What :func:`analyze_network` computes.

    Parameters
    ----------
    n_pairs : int
        Paths for boundary density (between inputs of different labels where there are two).
    path : {"lerp", "slerp"}
    radii : list of float
        Local-complexity radii.
    directions : int
        Local complexity: random directions P (at most the input size).
    min_cluster_size : int
        HDBSCAN's minimum cluster size for code clusters.
    complexity_inputs : int
        Inputs at which local complexity is measured (the first ones).
    random_state : int
    """

    n_pairs: int = 50
    path: str = "lerp"
    radii: list[float] = field(default_factory=lambda: [0.1])
    directions: int = 25
    min_cluster_size: int = 10
    complexity_inputs: int = 500
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.path not in PATH_KINDS:
            raise ValueError(f"path must be one of {PATH_KINDS}, got {self.path!r}")
        if self.n_pairs < 1 or self.directions < 1 or self.min_cluster_size < 2:
            raise ValueError("n_pairs and directions must be >= 1 and min_cluster_size >= 2")
        if not self.radii or any(not np.isfinite(r) or r <= 0 for r in self.radii):
            raise ValueError(f"radii must be positive numbers, got {self.radii}")


@dataclass
class NetworkAnalysis:
    """The results of :func:`analyze_network`.

    Attributes
    ----------
    regions : pandas.DataFrame
        Per layer and over all layers: ``bits``, ``polytopes``, ``sharing_rate``,
        ``code_clusters``, ``noise_fraction``, ``coverage``.
    density : BoundaryDensity
        Fitted; ``summary_`` and ``paths_`` hold the numbers.
    complexity : pandas.DataFrame
        ``radius``, ``mean_lc``.
    summary : dict
        The network, the number of inputs, the settings and the density summary.
    """

    regions: pd.DataFrame
    density: BoundaryDensity
    complexity: pd.DataFrame
    summary: dict[str, Any]

    def save(self, out: str | Path) -> Path:
        """Write ``regions.csv``, ``density_paths.csv``, ``local_complexity.csv`` and ``summary.json``."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        self.regions.to_csv(folder / "regions.csv", index=False)
        self.density.paths_.to_csv(folder / "density_paths.csv", index=False)
        self.complexity.to_csv(folder / "local_complexity.csv", index=False)
        (folder / "summary.json").write_text(json.dumps(self.summary, indent=1, default=str) + "\n")
        return folder


def analyze_network(
    network: PiecewiseLinearNetwork,
    inputs: ArrayLike,
    labels: ArrayLike | None = None,
    settings: NetworkAnalysisSettings | None = None,
) -> NetworkAnalysis:
    """Codes, regions, boundary density and local complexity of a network on some inputs.

    Parameters
    ----------
    network : PiecewiseLinearNetwork
        E.g. :func:`logiclens.polytope.from_torch` of an ``nn.Sequential``.
    inputs : array (n, ...)
    labels : array (n,), optional
        Labels for the paths' pairs (default: the network's predictions).
    settings : NetworkAnalysisSettings, optional
    """
    settings = settings or NetworkAnalysisSettings()
    x = np.asarray(inputs).reshape(len(inputs), -1).astype(np.float64)
    labels = network.predict(x) if labels is None else np.asarray(labels)
    if len(labels) != len(x):
        raise ValueError(f"{len(labels)} labels for {len(x)} inputs")
    codes = network.codes(x)
    rows = []
    for name in [*codes.layer_names, None]:
        sub = codes if name is None else codes.layer(name)
        exact = ExactPolytopes().fit(sub)
        clusters = CodeClusters("hdbscan", "hamming", settings.min_cluster_size).fit(sub)
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
    pairs = pick_pairs(labels, settings.n_pairs, seed=settings.random_state)
    if not len(pairs):  # a single class: paths between any two inputs
        pairs = pick_pairs(np.arange(len(x)), settings.n_pairs, seed=settings.random_state)
    density = BoundaryDensity(path=settings.path, random_state=settings.random_state).fit(
        network, x[pairs[:, 0]], x[pairs[:, 1]]
    )
    directions = min(settings.directions, x.shape[1])
    sample = x[: settings.complexity_inputs]
    complexity = pd.DataFrame(
        [
            {"radius": r, "mean_lc": float(LocalComplexity(directions, r).fit(network, sample).total_.mean())}
            for r in settings.radii
        ]
    )
    summary = {"network": repr(network), "inputs": len(x), "settings": asdict(settings), "density": density.summary_}
    return NetworkAnalysis(pd.DataFrame(rows), density, complexity, summary)
