"""The unit families a polytope comparison needs besides polytopes.

Without these, "polytopes beat directions" cannot be told apart from "clusters beat
directions" or from "small masks score differently":

* clusters of raw activations (HDBSCAN or k-means, Euclidean or cosine);
* single neurons, thresholded at a top quantile or at 0 (the neuron's on-region, one bit of
  the code);
* directions: NMF components (non-negative activations), PCA components (both signs) and
  random Gaussian directions, each thresholded at a top quantile of the projection;
* random subsets of given sizes (a size-matched chance control).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.polytope.units import UnitFamily

__all__ = ["activation_clusters", "direction_units", "neuron_units", "random_subsets"]

Array = NDArray[np.float64]


def _top(scores: Array, quantile: float) -> NDArray[np.bool_]:
    """Per column, the inputs whose score is above the column's (1 - quantile) quantile: bool (U, N)."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    thresholds = np.quantile(scores, 1.0 - quantile, axis=0)
    return (scores > thresholds[None, :]).T


def activation_clusters(
    activations: ArrayLike,
    method: str = "hdbscan",
    metric: str = "euclidean",
    min_cluster_size: int = 10,
    n_clusters: int = 15,
    random_state: int = 0,
    name: str | None = None,
) -> UnitFamily:
    """Clusters of activation vectors as units.

    Parameters
    ----------
    activations : array (N, d)
    method : {"hdbscan", "kmeans"}
    metric : {"euclidean", "cosine"}
        Cosine clusters the L2-normalised vectors (k-means) or uses the cosine distance (HDBSCAN).
    min_cluster_size : int, default 10
        HDBSCAN's parameter; also the smallest cluster kept as a unit.
    n_clusters : int, default 15
        k-means' k.
    random_state : int, default 0
    name : str, optional
        Family name (default ``"activation <method>/<metric>"``).

    Notes
    -----
    HDBSCAN runs on the precomputed (N, N) distance matrix: fast in high dimensions, N^2 memory.
    """
    x = np.asarray(activations, dtype=np.float64).reshape(len(activations), -1)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
    elif metric != "euclidean":
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    if method == "hdbscan":
        from sklearn.cluster import HDBSCAN
        from sklearn.metrics import pairwise_distances

        # a precomputed matrix is much faster than tree queries in hundreds of dimensions
        distances = pairwise_distances(x, metric="euclidean")
        labels = HDBSCAN(min_cluster_size=min_cluster_size, metric="precomputed", copy=True).fit(distances).labels_
        info = {"method": method, "metric": metric, "min_cluster_size": min_cluster_size}
        return UnitFamily.from_labels(name or f"activation hdbscan/{metric}", "region", labels, min_cluster_size, info)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=n_clusters, n_init=2, random_state=random_state).fit(x).labels_
        info = {"method": method, "metric": metric, "n_clusters": n_clusters}
        return UnitFamily.from_labels(name or f"activation kmeans/{metric}", "region", labels, 1, info)
    raise ValueError(f"method must be 'hdbscan' or 'kmeans', got {method!r}")


def neuron_units(
    activations: ArrayLike,
    mode: str = "quantile",
    quantile: float = 0.1,
    threshold: float = 0.0,
    min_size: int = 1,
    names: Sequence[str] | None = None,
) -> UnitFamily:
    """Single neurons as units.

    Parameters
    ----------
    activations : array (N, d)
        Post- or pre-activations (``mode="positive"`` on pre-activations gives the code bits).
    mode : {"quantile", "positive"}
        ``quantile``: the top ``quantile`` of each neuron's values; ``positive``: values above
        ``threshold`` (0: the neuron's on-region).
    min_size : int, default 1
        Neurons active on fewer inputs are dropped (dead neurons).
    names : sequence of str, optional
    """
    x = np.asarray(activations, dtype=np.float64).reshape(len(activations), -1)
    if mode == "quantile":
        masks = _top(x, quantile)
        label = f"neuron top {quantile:g}"
    elif mode == "positive":
        masks = (x > threshold).T
        label = "neuron >0" if threshold == 0 else f"neuron >{threshold:g}"
    else:
        raise ValueError(f"mode must be 'quantile' or 'positive', got {mode!r}")
    names = [f"n{j}" for j in range(x.shape[1])] if names is None else list(names)
    keep = masks.sum(axis=1) >= min_size
    family = UnitFamily(label, "direction", masks[keep], [f"{label}#{n}" for n, k in zip(names, keep) if k])
    family.info = {"mode": mode, "quantile": quantile, "threshold": threshold}
    return family


def direction_units(
    activations: ArrayLike,
    method: str = "nmf",
    n_components: int = 15,
    quantile: float = 0.1,
    random_state: int = 0,
) -> UnitFamily:
    """Directions in activation space as units: the top ``quantile`` of inputs by projection.

    Parameters
    ----------
    activations : array (N, d)
    method : {"nmf", "pca", "random"}
        ``nmf``: NMF components of the (clipped non-negative) activations, scored by their
        coefficients; ``pca``: principal components of the centred activations, both signs (2
        units per component); ``random``: Gaussian directions on the centred activations.
    n_components : int, default 15
    quantile : float, default 0.1
    random_state : int, default 0
    """
    x = np.asarray(activations, dtype=np.float64).reshape(len(activations), -1)
    info = {"method": method, "n_components": n_components, "quantile": quantile}
    if method == "nmf":
        import warnings

        from sklearn.decomposition import NMF
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():  # 200 iterations are plenty to rank inputs by their coefficients
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = NMF(n_components, init="nndsvda", max_iter=200, tol=1e-3, random_state=random_state)
            scores = model.fit_transform(np.maximum(x, 0.0))
        names = [f"nmf{k}" for k in range(n_components)]
    elif method == "pca":
        from sklearn.decomposition import PCA

        projected = PCA(n_components, random_state=random_state).fit_transform(x)
        scores = np.concatenate([projected, -projected], axis=1)
        names = [f"pc{k}+" for k in range(n_components)] + [f"pc{k}-" for k in range(n_components)]
    elif method == "random":
        rng = np.random.default_rng(random_state)
        directions = rng.normal(size=(x.shape[1], n_components))
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)
        scores = (x - x.mean(axis=0)) @ directions
        names = [f"rand{k}" for k in range(n_components)]
    else:
        raise ValueError(f"method must be 'nmf', 'pca' or 'random', got {method!r}")
    label = {"nmf": "NMF", "pca": "PCA", "random": "random direction"}[method] + f" top {quantile:g}"
    return UnitFamily(label, "direction", _top(scores, quantile), [f"{label}#{n}" for n in names], info=info)


def random_subsets(n_positions: int, sizes: ArrayLike, random_state: int = 0) -> UnitFamily:
    """Uniformly random subsets of the given sizes: the chance level of any score at those sizes."""
    rng = np.random.default_rng(random_state)
    sizes = np.asarray(sizes, dtype=np.int64)
    masks = np.zeros((len(sizes), int(n_positions)), bool)
    for u, size in enumerate(sizes):
        masks[u, rng.choice(int(n_positions), size=int(size), replace=False)] = True
    return UnitFamily("random subset", "control", masks, info={"sizes": sizes.tolist()})
