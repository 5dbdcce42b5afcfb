"""Boundary density along paths between inputs, aligned at the model's decision change.

For each pair of inputs (x_a, x_b) a path is traversed exactly
(:mod:`logiclens.polytope.traversal`), in input space or in the hidden space after a layer
(then only the later layers' boundaries are counted). Density is crossings per unit length of
the path, per layer and in total.

The paper's claim (confirmed in its abstract): the density of polytope boundaries reflects
semantic boundaries. The operationalisation here (a design choice, since the paper's exact
protocol could not be checked):

* ``t*`` = the first change of the network's arg-max along the path (exact);
* **window ratio** = density within ``|t - t*| <= window`` divided by the path's mean density
  (> 1 supports the claim);
* controls: the same ratio at the midpoint ``t = 0.5`` (lerp paths have structure there
  whatever the decision), and a **shuffled-t*** null (each path scored at another path's t*);
* ``Spearman(peak position, t*)`` over paths, the peak being the densest of ``n_bins`` bins;
* the **aligned profile**: density relative to the path mean, in bins of ``t - t*``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from logiclens.polytope.network import PiecewiseLinearNetwork
from logiclens.polytope.paths import make_path
from logiclens.polytope.traversal import Traversal, traverse_path

__all__ = ["BoundaryDensity", "window_ratio"]

Array = NDArray[np.float64]


def window_ratio(traversal: Traversal, center: float, window: float) -> float:
    """Density within ``|t - center| <= window`` (clipped to [0, 1]) over the path's mean density."""
    if not np.isfinite(center) or len(traversal) == 0:
        return float("nan")
    lo, hi = max(0.0, center - window), min(1.0, center + window)
    if hi <= lo:
        return float("nan")
    inside = np.count_nonzero((traversal.t >= lo) & (traversal.t <= hi))
    return float(inside / (hi - lo) / len(traversal))


class BoundaryDensity:
    """Exact boundary crossings along many paths, with decision-aligned statistics.

    Parameters
    ----------
    path : {"lerp", "slerp"}, default "lerp"
    space : int, str or None, default None
        None: interpolate inputs. A layer (index or name): interpolate that layer's outputs
        and count the crossings of the layers after it.
    center : array or None, default None
        Centre of slerp paths, in the interpolated space; the mean of all end points when None.
    n_chords : int, default 64
        Chords of a slerp polyline.
    n_bins : int, default 50
        Bins of the per-path profile (peak position).
    window : float, default 0.025
        Half-width of the window around t*, as a fraction of the path.
    align_bins : int, default 40
        Bins of ``t - t*`` over [-1, 1] for the aligned profile.
    n_shuffles : int, default 200
        Permutations of the shuffled-t* null.
    decision : bool or int, default True
        How t* is located (:func:`~logiclens.polytope.traversal.traverse_segment`): exactly,
        or on a grid of that many steps and then exactly within the bracketing step.
    random_state : int, default 0

    Attributes
    ----------
    traversals_ : list of Traversal
    paths_ : pandas.DataFrame
        Per path: ``pair, length, crossings, crossings_<layer>, density, decision_t,
        start_class, end_class, window_ratio, midpoint_ratio, peak_t``.
    profiles_ : float64 (P, n_bins)
        Crossings per unit length in each bin of each path.
    aligned_ : pandas.DataFrame
        ``offset, relative_density, paths``: mean density relative to the path mean, by
        ``t - t*`` (paths with a decision change only).
    summary_ : dict
        ``paths, with_decision, mean_crossings, mean_density, mean_window_ratio,
        median_window_ratio, fraction_window_above_1, pooled_window_ratio,
        mean_midpoint_ratio, shuffled_mean_window_ratio, shuffled_p, spearman_peak_decision``.
    """

    def __init__(
        self,
        path: str = "lerp",
        space: int | str | None = None,
        center: ArrayLike | None = None,
        n_chords: int = 64,
        n_bins: int = 50,
        window: float = 0.025,
        align_bins: int = 40,
        n_shuffles: int = 200,
        decision: bool | int = True,
        random_state: int = 0,
    ) -> None:
        self.path = path
        self.space = space
        self.center = center
        self.n_chords = n_chords
        self.n_bins = n_bins
        self.window = window
        self.align_bins = align_bins
        self.n_shuffles = n_shuffles
        self.decision = decision
        self.random_state = random_state

    def fit(self, network: PiecewiseLinearNetwork, starts: ArrayLike, ends: ArrayLike) -> BoundaryDensity:
        """Traverse the paths from ``starts[i]`` to ``ends[i]``; returns self."""
        a = np.asarray(starts, dtype=np.float64)
        b = np.asarray(ends, dtype=np.float64)
        a, b = (
            a.reshape(len(a), -1) if len(a) else a.reshape(0, 0),
            b.reshape(len(b), -1) if len(b) else b.reshape(0, 0),
        )
        if a.shape != b.shape:
            raise ValueError(f"starts and ends differ in shape: {a.shape} vs {b.shape}")
        if not len(a):
            raise ValueError("no paths: starts and ends are empty")
        model = network
        if self.space is not None:
            a, b = network.hidden(a, self.space), network.hidden(b, self.space)
            model = network.tail(self.space)
        center = np.concatenate([a, b]).mean(axis=0) if self.center is None else np.asarray(self.center, np.float64)
        self.traversals_ = [
            traverse_path(model, make_path(self.path, a[i], b[i], center, self.n_chords), self.decision)
            for i in range(len(a))
        ]
        self.layer_names_ = list(model.names)
        self._tabulate()
        return self

    def _tabulate(self) -> None:
        rows = []
        profiles = np.zeros((len(self.traversals_), self.n_bins))
        centres = (np.arange(self.n_bins) + 0.5) / self.n_bins
        for i, tr in enumerate(self.traversals_):
            profiles[i] = tr.histogram(self.n_bins)
            row = {
                "pair": i,
                "length": tr.length,
                "crossings": len(tr),
                **{f"crossings_{name}": n for name, n in tr.counts().items()},
                "density": len(tr) / tr.length if tr.length > 0 else np.nan,
                "decision_t": tr.decision_t,
                "start_class": tr.start_class,
                "end_class": tr.end_class,
                "window_ratio": window_ratio(tr, tr.decision_t, self.window),
                "midpoint_ratio": window_ratio(tr, 0.5, self.window),
                "peak_t": float(centres[np.argmax(profiles[i])]) if len(tr) else np.nan,
            }
            rows.append(row)
        self.paths_ = pd.DataFrame(rows)
        self.profiles_ = profiles
        self.aligned_ = self._aligned()
        self.summary_ = self._summary()

    def _aligned(self) -> pd.DataFrame:
        edges = np.linspace(-1.0, 1.0, self.align_bins + 1)
        width = edges[1] - edges[0]
        total = np.zeros(self.align_bins)
        paths = np.zeros(self.align_bins)
        for tr in self.traversals_:
            if not np.isfinite(tr.decision_t) or len(tr) == 0:
                continue
            counts, _ = np.histogram(tr.t - tr.decision_t, bins=edges)
            # fraction of each offset bin that lies on the path [0, 1]
            lo = np.clip(edges[:-1] + tr.decision_t, 0.0, 1.0)
            hi = np.clip(edges[1:] + tr.decision_t, 0.0, 1.0)
            covered = (hi - lo) / width
            ok = covered > 0.5
            mean_density = len(tr)  # crossings per unit of t
            total[ok] += counts[ok] / ((hi - lo)[ok] * mean_density)
            paths[ok] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.where(paths > 0, total / paths, np.nan)
        return pd.DataFrame({"offset": (edges[:-1] + edges[1:]) / 2, "relative_density": relative, "paths": paths})

    def _summary(self) -> dict[str, float]:
        from scipy.stats import spearmanr

        frame = self.paths_
        decided = frame[np.isfinite(frame["decision_t"]) & (frame["crossings"] > 0)]
        ratios = decided["window_ratio"].to_numpy()
        pooled = np.nan
        if len(decided):
            inside = sum(
                np.count_nonzero(np.abs(self.traversals_[i].t - self.traversals_[i].decision_t) <= self.window)
                for i in decided["pair"]
            )
            span = sum(min(1.0, t + self.window) - max(0.0, t - self.window) for t in decided["decision_t"].to_numpy())
            mean_density = decided["crossings"].sum() / len(decided)  # crossings per unit of t, over all paths
            pooled = (inside / span) / mean_density if span > 0 and mean_density > 0 else np.nan
        rng = np.random.default_rng(self.random_state)
        null = []
        if len(decided) > 1:
            chosen = [self.traversals_[i] for i in decided["pair"]]
            times = decided["decision_t"].to_numpy()
            for _ in range(self.n_shuffles):
                shuffled = rng.permutation(times)
                null.append(np.nanmean([window_ratio(tr, t, self.window) for tr, t in zip(chosen, shuffled)]))
        observed = float(np.nanmean(ratios)) if len(ratios) else np.nan
        null_arr = np.asarray(null)
        rho = np.nan
        if len(decided) > 2 and decided["peak_t"].nunique() > 1 and decided["decision_t"].nunique() > 1:
            rho = float(spearmanr(decided["peak_t"], decided["decision_t"]).statistic)
        return {
            "paths": len(frame),
            "with_decision": len(decided),
            "mean_crossings": float(frame["crossings"].mean()) if len(frame) else np.nan,
            "mean_density": float(frame["density"].mean()) if len(frame) else np.nan,
            "mean_window_ratio": observed,
            "median_window_ratio": float(np.nanmedian(ratios)) if len(ratios) else np.nan,
            "fraction_window_above_1": float(np.mean(ratios > 1)) if len(ratios) else np.nan,
            "pooled_window_ratio": float(pooled),
            "mean_midpoint_ratio": float(np.nanmean(decided["midpoint_ratio"])) if len(decided) else np.nan,
            "shuffled_mean_window_ratio": float(null_arr.mean()) if len(null_arr) else np.nan,
            "shuffled_p": float((1 + np.sum(null_arr >= observed)) / (1 + len(null_arr))) if len(null_arr) else np.nan,
            "spearman_peak_decision": rho,
        }
