"""The study's analyses, each on any piecewise-linear network and probing set.

* :func:`unit_families` -- every unit family of the comparison from one layer's codes and
  activations: exact polytopes, code clusters (HDBSCAN on Hamming and Jaccard, k-medoids on
  Hamming), activation clusters (HDBSCAN, k-means), neurons (top 2, 5, 10 %, > 0), NMF, PCA
  and random directions (top 5, 10 %);
* :func:`claim_regions` -- the size-matched verdict on "polytope regions are monosemantic,
  directions are not";
* :func:`density_runs` -- boundary density along paths with the decision-aligned statistics;
* :func:`complexity_runs` -- local complexity at data, decision-boundary and random points;
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from logiclens.polytope.baselines import activation_clusters, direction_units, neuron_units
from logiclens.polytope.codes import PolytopeCodes
from logiclens.polytope.complexity import LocalComplexity
from logiclens.polytope.density import BoundaryDensity
from logiclens.polytope.distances import code_distances
from logiclens.polytope.network import PiecewiseLinearNetwork
from logiclens.polytope.regions import CodeClusters, ExactPolytopes
from logiclens.polytope.units import UnitFamily

__all__ = ["claim_regions", "complexity_runs", "density_runs", "unit_families"]

Array = NDArray[np.float64]

ACTIVATION_PREFIX = "activation"


def unit_families(
    codes: PolytopeCodes,
    activations: Array,
    preactivations: Array,
    min_cluster_size: int = 10,
    n_clusters: int = 30,
    n_components: int = 15,
    quantiles: Sequence[float] = (0.02, 0.05, 0.1),
    random_state: int = 0,
    max_neurons: int | None = None,
) -> tuple[list[UnitFamily], dict[str, Any]]:
    """All unit families of one layer (module docstring), and facts about its exact polytopes.

    Parameters
    ----------
    codes : PolytopeCodes
        The codes whose clusters are the polytope units (one layer, or several layers).
    activations : array (N, d)
        Post-activations of the same layer (clusters, top-quantile neurons, directions).
    preactivations : array (N, d)
        Pre-activations (neurons "> 0": one code bit each).
    n_clusters : int, default 30
        k of k-medoids and k-means (each also run with ``n_clusters // 3``).
    quantiles : sequence of float, default (0.02, 0.05, 0.1)
        Top fractions for neurons (all of them) and directions (the last two), so that direction
        units exist at several sizes for the size-matched comparison.
    max_neurons : int, optional
        Score a random subset of this many neurons (wide layers).
    """
    facts: dict[str, Any] = {}
    exact = ExactPolytopes(min_size=2).fit(codes)
    facts.update(n_inputs=len(codes), n_polytopes=exact.n_polytopes_, sharing_rate=exact.sharing_rate_)
    families = [exact.family()]
    for metric in ("hamming", "jaccard"):
        distances = code_distances(codes, metric)
        families.append(CodeClusters("hdbscan", metric, min_cluster_size).fit(codes, distances).family())
        if metric == "hamming":
            for k in (n_clusters // 3, n_clusters):
                clusters = CodeClusters("kmedoids", metric, min_cluster_size=1, n_clusters=k, random_state=random_state)
                families.append(clusters.fit(codes, distances).family(f"polytope kmedoids/hamming k={k}"))
    families.append(activation_clusters(activations, "hdbscan", "euclidean", min_cluster_size))
    for k in (n_clusters // 3, n_clusters):
        name = f"activation kmeans/euclidean k={k}"
        families.append(activation_clusters(activations, "kmeans", n_clusters=k, random_state=random_state, name=name))
    neurons = np.arange(activations.shape[1])
    if max_neurons is not None and len(neurons) > max_neurons:
        neurons = np.sort(np.random.default_rng(random_state).choice(neurons, max_neurons, replace=False))
    names = [f"n{j}" for j in neurons]
    for q in quantiles:
        families.append(neuron_units(activations[:, neurons], "quantile", q, min_size=1, names=names))
    families.append(neuron_units(preactivations[:, neurons], "positive", min_size=1, names=names))
    for method in ("nmf", "pca", "random"):
        for q in quantiles[-2:]:
            families.append(direction_units(activations, method, n_components, q, random_state))
    return families, facts


def _group(family: str, kind: str) -> str:
    if family.startswith("exact polytopes"):
        return "exact polytopes"  # tiny (mostly 2-3 inputs): reported, but kept out of the region comparison
    if family.startswith("polytope"):
        return "polytope regions"
    if family.startswith(ACTIVATION_PREFIX):
        return "activation clusters"
    if kind == "direction":
        return "directions"
    return "control"


def claim_regions(scores: pd.DataFrame, min_units: int = 3) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Size-matched comparison of polytope regions, activation clusters and directions.

    Within every size bin holding at least ``min_units`` units of both groups, the medians of
    the best-formula IoU are compared (Mann-Whitney U, one-sided), and pooled over bins by the
    median of the excess over chance. Returns the per-bin table and a verdict dict.
    """
    from scipy.stats import mannwhitneyu

    frame = scores.copy()
    frame["group"] = [_group(f, k) for f, k in zip(frame["family"], frame["kind"])]
    iou = [c for c in frame.columns if c.startswith("iou_")][-1]
    rows = []
    for (_bin_index, label), part in frame.groupby(["_bin", "size_bin"], sort=True):
        row: dict[str, Any] = {"size_bin": label}
        for group in ("polytope regions", "activation clusters", "directions"):
            values = part.loc[part["group"] == group, iou]
            row[f"{group} units"] = len(values)
            row[f"{group} median IoU"] = float(values.median()) if len(values) else np.nan
        row["chance IoU"] = float(part["null_iou"].median())
        for other in ("directions", "activation clusters"):
            a = part.loc[part["group"] == "polytope regions", iou].to_numpy(dtype=np.float64)
            b = part.loc[part["group"] == other, iou].to_numpy(dtype=np.float64)
            if len(a) >= min_units and len(b) >= min_units:
                row[f"p polytope > {other}"] = float(mannwhitneyu(a, b, alternative="greater").pvalue)
            else:
                row[f"p polytope > {other}"] = np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    verdict: dict[str, Any] = {}
    for other in ("directions", "activation clusters"):
        shared = table.dropna(subset=[f"p polytope > {other}"])
        wins = int((shared["polytope regions median IoU"] > shared[f"{other} median IoU"]).sum())
        verdict[f"bins compared with {other}"] = len(shared)
        verdict[f"bins where polytopes beat {other}"] = wins
        verdict[f"bins significant vs {other} (p<0.05)"] = int((shared[f"p polytope > {other}"] < 0.05).sum())
    excess = frame.groupby("group")["excess"].median()
    verdict["median excess over chance"] = {k: float(v) for k, v in excess.items()}
    return table, verdict


def density_runs(
    network: PiecewiseLinearNetwork,
    x: Array,
    pairs: NDArray[np.int64],
    settings: Sequence[dict[str, Any]],
    model_name: str,
) -> tuple[pd.DataFrame, dict[str, BoundaryDensity]]:
    """Run :class:`BoundaryDensity` for several settings (``{"name", "path", "space", ...}``) on one set of pairs."""
    rows, fitted = [], {}
    for setting in settings:
        options = {k: v for k, v in setting.items() if k not in ("name", "network")}
        model = setting.get("network", network)
        density = BoundaryDensity(**options).fit(model, x[pairs[:, 0]], x[pairs[:, 1]])
        fitted[setting["name"]] = density
        rows.append({"model": model_name, "setting": setting["name"], **density.summary_})
    return pd.DataFrame(rows), fitted


def boundary_points(network: PiecewiseLinearNetwork, x: Array, density: BoundaryDensity, pairs: NDArray) -> Array:
    """Inputs at the first decision change of each straight (lerp, input-space) path."""
    out = []
    for (i, j), tr in zip(pairs, density.traversals_):
        if np.isfinite(tr.decision_t):
            out.append(x[i] + tr.decision_t * (x[j] - x[i]))
    return np.asarray(out).reshape(len(out), -1)


def complexity_runs(
    network: PiecewiseLinearNetwork,
    point_sets: dict[str, Array],
    radii: Sequence[float],
    n_directions: int = 25,
    model_name: str = "",
    margins: Array | None = None,
) -> pd.DataFrame:
    """Mean local complexity per point set and radius; with ``margins`` (for the set ``data``), Spearman(LC, margin)."""
    from scipy.stats import spearmanr

    rows = []
    for radius in radii:
        for name, points in point_sets.items():
            if not len(points):
                continue
            lc = LocalComplexity(n_directions=n_directions, radius=radius, random_state=0).fit(network, points)
            row = {
                "model": model_name,
                "points": name,
                "radius": radius,
                "n": len(points),
                "mean_lc": float(lc.total_.mean()),
                "median_lc": float(np.median(lc.total_)),
            }
            for j, layer in enumerate(lc.layer_names_):
                row[f"mean_lc_{layer}"] = float(lc.counts_[:, j].mean())
            if margins is not None and name == "data" and lc.total_.std() > 0:
                row["spearman_lc_margin"] = float(spearmanr(lc.total_, margins).statistic)
            rows.append(row)
    return pd.DataFrame(rows)


def logit_margins(network: PiecewiseLinearNetwork, x: Array) -> Array:
    """Top-1 minus top-2 output of each input."""
    out = np.sort(network.forward(x), axis=1)
    return out[:, -1] - out[:, -2]
