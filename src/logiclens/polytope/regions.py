"""Regions from codes: exact polytopes (identical codes) and clusters of codes.

Exact polytopes are rarely shared by two inputs in a trained network (almost every input has
its own), so usable "polytope units" are clusters of codes: HDBSCAN or k-medoids on Hamming
or Jaccard distances between codes. Every clustering reports its noise fraction (inputs left
unassigned) and coverage, which must be read next to any score of its clusters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.polytope.codes import PolytopeCodes
from logiclens.polytope.distances import code_distances
from logiclens.polytope.units import UnitFamily

__all__ = ["CodeClusters", "ExactPolytopes", "KMedoids"]


class ExactPolytopes:
    """Group inputs by identical code: each group lies in one convex polytope.

    Parameters
    ----------
    min_size : int, default 2
        Polytopes with fewer members are not turned into units by :meth:`family`.

    Attributes
    ----------
    labels_ : int64 (n,)
        Polytope of every input, numbered by first appearance.
    sizes_ : int64 (n_polytopes_,)
    n_polytopes_ : int
        Distinct codes.
    sharing_rate_ : float
        Fraction of inputs whose polytope holds at least one other input.
    """

    def __init__(self, min_size: int = 2) -> None:
        self.min_size = min_size

    def fit(self, codes: PolytopeCodes) -> ExactPolytopes:
        """Group the codes; returns self."""
        if self.min_size < 1:
            raise ValueError("min_size must be at least 1")
        _, first, inverse, counts = np.unique(codes.keys(), return_index=True, return_inverse=True, return_counts=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self.labels_ = rank[inverse.reshape(-1)].astype(np.int64)
        self.sizes_ = counts[order].astype(np.int64)
        self.n_polytopes_ = len(counts)
        self.sharing_rate_ = float((self.sizes_[self.labels_] > 1).mean()) if len(self.labels_) else 0.0
        return self

    def family(self, name: str = "exact polytopes") -> UnitFamily:
        """Polytopes with at least ``min_size`` members as a unit family (the rest counts as noise)."""
        labels = np.where(self.sizes_[self.labels_] >= self.min_size, self.labels_, -1)
        return UnitFamily.from_labels(
            name,
            "region",
            labels,
            self.min_size,
            {"n_polytopes": self.n_polytopes_, "sharing_rate": self.sharing_rate_},
        )


class KMedoids:
    """k-medoids on a precomputed distance matrix (alternating updates, k-medoids++ start).

    The alternating ("Voronoi iteration") algorithm: assign every point to its nearest
    medoid, move each medoid to the member that minimises the within-cluster distance sum,
    repeat until nothing changes. Faster and cruder than PAM / FasterPAM swaps; the best of
    ``n_init`` starts is kept.

    Parameters
    ----------
    n_clusters : int, default 8
    max_iter : int, default 100
    n_init : int, default 4
    random_state : int, default 0

    Attributes
    ----------
    labels_ : int64 (n,)
    medoid_indices_ : int64 (n_clusters,)
    inertia_ : float
        Sum of distances to the assigned medoids.
    n_iter_ : int
    """

    def __init__(self, n_clusters: int = 8, max_iter: int = 100, n_init: int = 4, random_state: int = 0) -> None:
        self.n_clusters = n_clusters
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state

    def _start(self, distances: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int64]:
        n = len(distances)
        medoids = [int(rng.integers(n))]
        nearest = distances[medoids[0]].copy()
        for _ in range(1, self.n_clusters):
            weights = nearest**2
            total = weights.sum()
            pick = int(rng.choice(n, p=weights / total)) if total > 0 else int(rng.integers(n))
            medoids.append(pick)
            nearest = np.minimum(nearest, distances[pick])
        return np.array(medoids, np.int64)

    def fit(self, distances: ArrayLike) -> KMedoids:
        """Cluster from a symmetric (n, n) distance matrix; returns self."""
        d = np.asarray(distances, dtype=np.float64)
        if d.ndim != 2 or d.shape[0] != d.shape[1]:
            raise ValueError(f"distances must be a square matrix, got shape {d.shape}")
        if not 1 <= self.n_clusters <= len(d):
            raise ValueError(f"n_clusters must be in 1 .. {len(d)}, got {self.n_clusters}")
        rng = np.random.default_rng(self.random_state)
        best: tuple[float, NDArray[np.int64], NDArray[np.int64], int] | None = None
        for _ in range(max(1, self.n_init)):
            medoids = self._start(d, rng)
            n_iter = 0
            while n_iter < self.max_iter:
                n_iter += 1
                labels = np.argmin(d[:, medoids], axis=1)
                labels[medoids] = np.arange(len(medoids))
                updated = medoids.copy()
                for k in range(len(medoids)):
                    members = np.flatnonzero(labels == k)
                    updated[k] = members[np.argmin(d[np.ix_(members, members)].sum(axis=1))]
                if np.array_equal(updated, medoids):
                    break
                medoids = updated
            labels = np.argmin(d[:, medoids], axis=1)
            labels[medoids] = np.arange(len(medoids))
            inertia = float(d[np.arange(len(d)), medoids[labels]].sum())
            if best is None or inertia < best[0]:
                best = (inertia, medoids, labels, n_iter)
        assert best is not None
        self.inertia_, self.medoid_indices_, labels, self.n_iter_ = best
        self.labels_ = labels.astype(np.int64)
        return self


class CodeClusters:
    """Clusters of spline codes ("polytope units"), by HDBSCAN or k-medoids on code distances.

    Parameters
    ----------
    method : {"hdbscan", "kmedoids"}, default "hdbscan"
    metric : {"hamming", "jaccard", "layer_hamming"}, default "hamming"
        Distance between codes (:mod:`logiclens.polytope.distances`).
    min_cluster_size : int, default 10
        HDBSCAN's ``min_cluster_size``; also the smallest cluster turned into a unit.
    min_samples : int or None, default None
        HDBSCAN's ``min_samples`` (None: ``min_cluster_size``).
    n_clusters : int, default 15
        k-medoids' k.
    random_state : int, default 0

    Attributes
    ----------
    labels_ : int64 (n,)
        Cluster of every input; -1 is noise (HDBSCAN only).
    n_clusters_ : int
    noise_fraction_ : float
    coverage_ : float
        Fraction of inputs in a cluster of at least ``min_cluster_size`` members (a unit).
    """

    def __init__(
        self,
        method: str = "hdbscan",
        metric: str = "hamming",
        min_cluster_size: int = 10,
        min_samples: int | None = None,
        n_clusters: int = 15,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.metric = metric
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.n_clusters = n_clusters
        self.random_state = random_state

    def fit(self, codes: PolytopeCodes, distances: ArrayLike | None = None) -> CodeClusters:
        """Cluster the codes (or a precomputed distance matrix between them); returns self."""
        d = code_distances(codes, self.metric) if distances is None else np.asarray(distances, np.float64)
        self.labels_ = cluster_distances(
            d, self.method, self.min_cluster_size, self.min_samples, self.n_clusters, self.random_state
        )
        sizes = np.bincount(self.labels_[self.labels_ >= 0], minlength=1)
        self.n_clusters_ = int((sizes > 0).sum())
        self.noise_fraction_ = float((self.labels_ < 0).mean()) if len(self.labels_) else 0.0
        in_unit = (self.labels_ >= 0) & (sizes[np.maximum(self.labels_, 0)] >= self.min_cluster_size)
        self.coverage_ = float(in_unit.mean()) if len(self.labels_) else 0.0
        return self

    def family(self, name: str | None = None) -> UnitFamily:
        """The clusters as a unit family (clusters smaller than ``min_cluster_size`` are dropped)."""
        name = name or f"polytope {self.method}/{self.metric}"
        info: dict[str, Any] = {
            "method": self.method,
            "metric": self.metric,
            "min_cluster_size": self.min_cluster_size,
            "n_clusters": self.n_clusters_,
        }
        family = UnitFamily.from_labels(name, "region", self.labels_, self.min_cluster_size, info)
        family.noise_fraction = self.noise_fraction_
        return family


def cluster_distances(
    distances: NDArray[np.float64],
    method: str,
    min_cluster_size: int = 10,
    min_samples: int | None = None,
    n_clusters: int = 15,
    random_state: int = 0,
) -> NDArray[np.int64]:
    """Cluster labels from a precomputed distance matrix (HDBSCAN: -1 is noise)."""
    if method == "hdbscan":
        from sklearn.cluster import HDBSCAN

        model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, metric="precomputed", copy=True)
        return model.fit(distances).labels_.astype(np.int64)
    if method == "kmedoids":
        return KMedoids(n_clusters, random_state=random_state).fit(distances).labels_
    raise ValueError(f"method must be 'hdbscan' or 'kmedoids', got {method!r}")
