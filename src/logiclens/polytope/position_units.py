"""Code clusters as units over a probe's positions, with the size-matched baselines (torch-free).

What ``dissect --units code-clusters`` and ``text explain --units code-clusters`` share:

1. :func:`cluster_position_codes`: cluster the codes of a layer's positions (image positions
   or tokens) by HDBSCAN or k-medoids on Hamming distance. Both are quadratic in memory, so
   the clustering is **fitted on a random sample** of ``max_fit`` positions and every
   position is then assigned: to its nearest medoid (k-medoids), or to the cluster of its
   nearest exemplar when it lies within that cluster's radius, and to noise otherwise
   (HDBSCAN; exemplars are up to ``exemplars`` members per cluster, the radius the largest
   distance of a sampled member to its nearest exemplar).
2. :func:`position_families`: the clusters as a :class:`~logiclens.polytope.units.UnitFamily`
   of masks over positions, and the baselines of the same layer at matched sizes: clusters of
   activation vectors (k-means with the same k, fitted on the same sample), directions (PCA
   both signs, NMF, random) thresholded at the median code cluster's size, and random
   subsets of exactly the code clusters' sizes and of a log grid of sizes (the chance level).
3. :func:`size_matched_comparison`: after the pipeline's search has scored every unit, the
   comparison per family and size bin (geometric bins, factor ~3, as in
   :class:`~logiclens.polytope.monosemanticity.MonosemanticityScorer`): units, median IoU,
   median held-out IoU and the excess over the random subsets of the same bin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from logiclens.polytope.codes import PolytopeCodes
from logiclens.polytope.distances import hamming_counts
from logiclens.polytope.monosemanticity import default_size_bins
from logiclens.polytope.regions import cluster_distances
from logiclens.polytope.units import UnitFamily

__all__ = [
    "BASELINES",
    "RegionUnitSettings",
    "cluster_position_codes",
    "position_families",
    "size_matched_comparison",
]

#: baseline families a run can add next to the code clusters
BASELINES = ("activation-clusters", "pca", "nmf", "random", "random-subsets")

CODE_FAMILY = "code clusters"


@dataclass
class RegionUnitSettings:
    """How code-cluster units are made.

    Parameters
    ----------
    method : {"kmedoids", "hdbscan"}
        Clustering of the codes on Hamming distance.
    n_clusters : int
        k of k-medoids (and of the activation k-means baseline).
    min_cluster_size : int
        HDBSCAN's parameter, and the smallest cluster (in positions) kept as a unit.
    max_fit : int
        Positions sampled to fit the clustering and the baselines.
    exemplars : int
        HDBSCAN: members per cluster that other positions are compared with.
    n_components : int
        Directions per method (PCA gives two units per component).
    baselines : tuple of str
        Among :data:`BASELINES`.
    random_state : int
    """

    method: str = "kmedoids"
    n_clusters: int = 16
    min_cluster_size: int = 20
    max_fit: int = 2000
    exemplars: int = 32
    n_components: int = 8
    baselines: tuple[str, ...] = field(default_factory=lambda: BASELINES)
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("kmedoids", "hdbscan"):
            raise ValueError(f"the clustering method must be 'kmedoids' or 'hdbscan', got {self.method!r}")
        if self.n_clusters < 2:
            raise ValueError(f"n_clusters must be >= 2, got {self.n_clusters}")
        if self.min_cluster_size < 2:
            raise ValueError(f"min_cluster_size must be >= 2, got {self.min_cluster_size}")
        if self.max_fit < 2 * self.n_clusters:
            raise ValueError(f"max_fit must be at least 2 * n_clusters = {2 * self.n_clusters}, got {self.max_fit}")
        self.baselines = tuple(self.baselines)
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; choose from {list(BASELINES)}")

    def to_config(self) -> dict[str, Any]:
        """JSON-able settings (for fingerprints and ``config.json``)."""
        out = asdict(self)
        out["baselines"] = list(self.baselines)
        return out


def _sample(n: int, size: int, random_state: int) -> NDArray[np.int64]:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, size=size, replace=False))


def cluster_position_codes(
    codes: PolytopeCodes, settings: RegionUnitSettings, layer: str = "layer"
) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """Cluster labels of every position's code (-1: noise), fitted on a sample.

    Returns
    -------
    labels : int64 (N,)
    info : dict
        ``fit_positions``, ``noise_fraction``, ``n_clusters`` and the sample's noise fraction.

    Raises
    ------
    ValueError
        One line, when no cluster reaches ``min_cluster_size`` positions.
    """
    n = len(codes)
    if n < settings.min_cluster_size:
        raise ValueError(
            f"layer {layer!r} has {n} positions, fewer than the minimum cluster size {settings.min_cluster_size}"
        )
    sample = _sample(n, settings.max_fit, settings.random_state)
    fit = codes[sample]
    counts = hamming_counts(fit)
    n_bits = max(1, codes.n_bits)
    fit_size = min(settings.min_cluster_size, max(5, round(settings.min_cluster_size * len(sample) / n)))
    labels_fit = cluster_distances(
        counts / n_bits, settings.method, fit_size, None, min(settings.n_clusters, len(sample) - 1),
        settings.random_state,
    )  # fmt: skip
    clusters = np.unique(labels_fit[labels_fit >= 0])
    rng = np.random.default_rng(settings.random_state)
    exemplars, owner, radius = [], [], {}
    for cluster in clusters:
        members = np.flatnonzero(labels_fit == cluster)
        if settings.method == "kmedoids":
            within = counts[np.ix_(members, members)].sum(axis=1)
            chosen = members[[int(np.argmin(within))]]
        else:
            chosen = members if len(members) <= settings.exemplars else rng.choice(members, settings.exemplars, False)
            radius[int(cluster)] = int(counts[np.ix_(members, chosen)].min(axis=1).max())
        exemplars.extend(chosen.tolist())
        owner.extend([int(cluster)] * len(chosen))
    labels = np.full(n, -1, np.int64)
    if exemplars:
        exemplar_words = fit.words[np.asarray(exemplars)]
        owner_array = np.asarray(owner)
        for start in range(0, n, 8192):
            distance = hamming_counts(codes.words[start : start + 8192], exemplar_words)
            nearest = distance.argmin(axis=1)
            best = owner_array[nearest]
            if settings.method == "hdbscan":
                limit = np.array([radius[int(c)] for c in best])
                best = np.where(distance[np.arange(len(best)), nearest] <= limit, best, -1)
            labels[start : start + 8192] = best
    sizes = np.bincount(labels[labels >= 0], minlength=1)
    if not (sizes >= settings.min_cluster_size).any():
        raise ValueError(
            f"no code cluster of layer {layer!r} has at least {settings.min_cluster_size} positions "
            f"(largest: {int(sizes.max())} of {n}); lower the minimum cluster size"
        )
    info = {
        "positions": n,
        "fit_positions": len(sample),
        "n_clusters": int((sizes >= settings.min_cluster_size).sum()),
        "noise_fraction": float((labels < 0).mean()),
        "fit_noise_fraction": float((labels_fit < 0).mean()),
        "distinct_codes_in_fit": len(np.unique(fit.keys())),
    }
    return labels, info


def _activation_clusters(
    activations: NDArray[np.floating], sample: NDArray[np.int64], settings: RegionUnitSettings
) -> UnitFamily:
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=settings.n_clusters, n_init=2, random_state=settings.random_state)
    model.fit(np.asarray(activations[sample], np.float64))
    labels = np.concatenate(
        [model.predict(np.asarray(activations[s : s + 8192], np.float64)) for s in range(0, len(activations), 8192)]
    )
    info = {"method": "kmeans", "n_clusters": settings.n_clusters}
    return UnitFamily.from_labels("activation clusters", "region", labels, settings.min_cluster_size, info)


def _directions(
    activations: NDArray[np.floating],
    sample: NDArray[np.int64],
    method: str,
    fraction: float,
    settings: RegionUnitSettings,
) -> UnitFamily:
    """Directions fitted on the sample, every position scored, the top ``fraction`` of each kept."""
    k = settings.n_components
    x = np.asarray(activations, np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        model = PCA(settings.n_components, random_state=settings.random_state).fit(x[sample])
        projected = model.transform(x)
        scores = np.concatenate([projected, -projected], axis=1)
    elif method == "nmf":
        import warnings

        from sklearn.decomposition import NMF
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = NMF(
                settings.n_components, init="nndsvda", max_iter=200, tol=1e-3, random_state=settings.random_state
            )
            model.fit(np.maximum(x[sample], 0.0))
            scores = model.transform(np.maximum(x, 0.0))
    else:
        rng = np.random.default_rng(settings.random_state)
        directions = rng.normal(size=(x.shape[1], settings.n_components))
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)
        scores = (x - x[sample].mean(axis=0)) @ directions
    thresholds = np.quantile(scores, 1.0 - fraction, axis=0)
    masks = (scores > thresholds[None, :]).T
    label = {"pca": "PCA directions", "nmf": "NMF directions", "random": "random directions"}[method]
    suffixes = {
        "pca": [f"pc{j}+" for j in range(k)] + [f"pc{j}-" for j in range(k)],
        "nmf": [f"nmf{j}" for j in range(k)],
        "random": [f"rand{j}" for j in range(k)],
    }[method]
    names = [f"{label}#{suffix}" for suffix in suffixes]
    info = {"method": method, "n_components": settings.n_components, "fraction": fraction}
    return UnitFamily(label, "direction", masks, names, info=info)


def position_families(
    codes: PolytopeCodes,
    activations: NDArray[np.floating] | None,
    settings: RegionUnitSettings,
    layer: str = "layer",
) -> tuple[list[UnitFamily], dict[str, Any]]:
    """Code clusters and the baselines of one layer as unit families over its N positions.

    Parameters
    ----------
    codes : PolytopeCodes (N rows)
    activations : array (N, d), optional
        The layer's activation vectors at the same positions (activation clusters and
        directions need them; without, only the code clusters and random subsets are made).
    settings : RegionUnitSettings
    layer : str
        For messages.

    Returns
    -------
    families : list of UnitFamily
        The code clusters first.
    info : dict
        The clustering's facts (:func:`cluster_position_codes`).
    """
    labels, info = cluster_position_codes(codes, settings, layer)
    method = {"kmedoids": "k-medoids", "hdbscan": "HDBSCAN"}[settings.method]
    family = UnitFamily.from_labels(CODE_FAMILY, "region", labels, settings.min_cluster_size, info)
    family.info = {"method": method, "metric": "hamming", **info}
    families = [family]
    n = len(codes)
    if activations is not None and len(activations) != n:
        raise ValueError(f"{len(activations)} activation rows for {n} codes")
    fraction = float(np.clip(np.median(family.sizes) / n, 1.0 / n, 0.5))
    sample = _sample(n, settings.max_fit, settings.random_state)
    for baseline in settings.baselines:
        if baseline == "random-subsets":
            rng = np.random.default_rng(settings.random_state + 1)
            # the code clusters' own sizes, and a log grid so that any unit's size has a chance level
            grid = np.unique(np.geomspace(1, max(1, n // 2), 12).round().astype(np.int64))
            sizes = np.concatenate([family.sizes, grid])
            masks = np.zeros((len(sizes), n), bool)
            for u, size in enumerate(sizes):
                masks[u, rng.choice(n, size=int(size), replace=False)] = True
            families.append(UnitFamily("random subsets", "control", masks, info={"sizes": sizes.tolist()}))
        elif activations is None:
            continue
        elif baseline == "activation-clusters":
            families.append(_activation_clusters(activations, sample, settings))
        else:
            families.append(_directions(activations, sample, baseline, fraction, settings))
    return families, info


def size_matched_comparison(
    scores: pd.DataFrame, n_positions: int, control: str = "random subsets", iou: str = "iou"
) -> pd.DataFrame:
    """Per family and size bin: units, median IoU, held-out IoU and the excess over chance.

    Parameters
    ----------
    scores : DataFrame
        One row per unit with ``family``, ``size`` (positions) and ``iou`` (optionally
        ``heldout_iou`` and ``significant``).
    n_positions : int
        N (for the bins).
    control : str
        The family whose median IoU per bin is chance (random subsets of matched sizes).

    Returns
    -------
    DataFrame with ``family, size_bin, units, median_size, median_iou, median_heldout_iou,
    chance_iou, excess, significant``; ``chance_iou`` is the control's median in the bin,
    or interpolated in log size from its neighbouring bins, NaN without a control.
    """
    if not len(scores):
        return pd.DataFrame()
    frame = scores.copy()
    frame["size"] = pd.to_numeric(frame["size"], errors="coerce")
    frame = frame[frame["size"] > 0]
    frame[iou] = pd.to_numeric(frame[iou], errors="coerce").fillna(0.0)
    bins = default_size_bins(int(n_positions))
    index = np.clip(np.searchsorted(bins, frame["size"].to_numpy(), side="right") - 1, 0, len(bins) - 2)
    frame["_bin"] = index
    frame["size_bin"] = [f"{bins[i]}-{bins[i + 1] - 1}" for i in index]
    chance = frame[frame["family"] == control]
    if len(chance):
        log_size = np.log(chance["size"].to_numpy(np.float64))
        order = np.argsort(log_size)
        chance_at = lambda sizes: np.interp(np.log(sizes), log_size[order], chance[iou].to_numpy()[order])  # noqa: E731
    rows = []
    for (family, bin_index, size_bin), part in frame.groupby(["family", "_bin", "size_bin"], sort=False):
        row: dict[str, Any] = {
            "family": family,
            "size_bin": size_bin,
            "_bin": bin_index,
            "units": len(part),
            "median_size": float(part["size"].median()),
            "median_iou": float(part[iou].median()),
        }
        if "heldout_iou" in part:
            row["median_heldout_iou"] = float(pd.to_numeric(part["heldout_iou"], errors="coerce").median())
        if len(chance):
            row["chance_iou"] = float(np.median(chance_at(part["size"].to_numpy(np.float64))))
            row["excess"] = float(np.median(part[iou].to_numpy() - chance_at(part["size"].to_numpy(np.float64))))
        if "significant" in part:
            row["significant"] = float(part["significant"].astype(str).str.lower().eq("true").mean())
        rows.append(row)
    out = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(dict.fromkeys(frame["family"]))}
    out["_family"] = out["family"].map(order)
    return out.sort_values(["_bin", "_family"]).drop(columns=["_bin", "_family"]).reset_index(drop=True)
