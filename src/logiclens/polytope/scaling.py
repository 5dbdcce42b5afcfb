"""The scaling experiment: multiply a layer's activations by alpha and watch codes and predictions.

With ``h`` the output of layer l, the next pre-activation is ``alpha (w_k . h) + b_k``, affine
in alpha: neuron k switches at ``alpha_k = -b_k / (w_k . h)``. Every crossing along the ray
``alpha h`` is caused by a bias (or a breakpoint away from 0, as ReLU6's 6). A network
without biases and with positively homogeneous activations (ReLU, leaky ReLU) maps rays to
rays: its code and prediction never change with alpha -- the built-in control
(:meth:`PiecewiseLinearNetwork.without_biases`). For large alpha the ray ends in an unbounded
polytope and crossings stop.

Measured (the paper's experiment as recalled in the notes; a design of this package):
prediction change rate and code flips versus alpha = 1 on a grid, and the exact number of
crossings along the ray per unit alpha (:func:`~logiclens.polytope.traversal.traverse_segment`
on the layers after l).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from logiclens.polytope.network import PiecewiseLinearNetwork
from logiclens.polytope.traversal import traverse_segment

__all__ = ["ScalingExperiment"]


class ScalingExperiment:
    """Scale one layer's output by alpha; measure code flips, prediction changes and exact crossings.

    Parameters
    ----------
    layer : int, str or None
        The layer whose output (after its activation) is scaled; None scales the network's
        input (then every layer's crossings count).
    alphas : array of float, optional
        Grid for prediction and code changes; ``geomspace(0.05, 5, 21)`` plus 1 by default.
    alpha_range : (float, float), default (0.05, 5.0)
        The part of the ray traversed exactly.
    alpha_bins : array of float, optional
        Bin edges (within ``alpha_range``) for crossings per unit alpha; 12 log-spaced bins by default.

    Attributes
    ----------
    curves_ : pandas.DataFrame
        Per alpha: ``alpha, class_change, code_flips`` (mean bits of the downstream code that
        differ from alpha = 1) and ``flips_<layer>`` per downstream layer.
    crossings_ : pandas.DataFrame
        Per alpha bin: ``alpha_lo, alpha_hi, crossings_per_unit_alpha`` (mean over inputs).
    ray_crossings_ : int64 (n,)
        Exact crossings of each input's ray over ``alpha_range``.
    class_change_anywhere_ : float
        Fraction of inputs whose predicted class is not constant over ``alpha_range`` (exact).
    """

    def __init__(
        self,
        layer: int | str | None,
        alphas: ArrayLike | None = None,
        alpha_range: tuple[float, float] = (0.05, 5.0),
        alpha_bins: ArrayLike | None = None,
    ) -> None:
        self.layer = layer
        self.alphas = alphas
        self.alpha_range = alpha_range
        self.alpha_bins = alpha_bins

    def fit(self, network: PiecewiseLinearNetwork, x: ArrayLike, decision: bool | int = True) -> ScalingExperiment:
        """Run the experiment on inputs ``x``; returns self.

        ``decision`` is passed to :func:`~logiclens.polytope.traversal.traverse_segment` for
        ``class_change_anywhere_`` (an int G uses a grid for wide outputs).
        """
        lo, hi = (float(a) for a in self.alpha_range)
        if not 0 < lo < hi:
            raise ValueError(f"alpha_range must satisfy 0 < lo < hi, got {self.alpha_range}")
        if self.layer is None:
            h, tail = np.asarray(x, dtype=np.float64).reshape(len(x), -1), network
        else:
            h, tail = network.hidden(x, self.layer), network.tail(self.layer)
        alphas = np.asarray(self.alphas, np.float64) if self.alphas is not None else np.geomspace(0.05, 5.0, 21)
        alphas = np.unique(np.concatenate([alphas, [1.0]]))
        base_pred = tail.predict(h)
        coded_names = [tail.layers[i].name for i in tail.coded_layers]
        slices = np.cumsum([0, *(tail.layers[i].n_bits for i in tail.coded_layers)])
        base_bits = tail.codes(h).unpack() if coded_names else np.zeros((len(h), 0), bool)
        rows = []
        for alpha in alphas:
            scaled = alpha * h
            changed = tail.predict(scaled) != base_pred
            flips = (tail.codes(scaled).unpack() if coded_names else base_bits) != base_bits
            row = {
                "alpha": float(alpha),
                "class_change": float(changed.mean()),
                "code_flips": float(flips.sum(1).mean()),
            }
            for j, name in enumerate(coded_names):
                row[f"flips_{name}"] = float(flips[:, slices[j] : slices[j + 1]].sum(axis=1).mean())
            rows.append(row)
        self.curves_ = pd.DataFrame(rows)
        edges = np.asarray(self.alpha_bins, np.float64) if self.alpha_bins is not None else np.geomspace(lo, hi, 13)
        totals = np.zeros(len(edges) - 1)
        ray_counts = np.zeros(len(h), np.int64)
        anywhere = 0
        for i, point in enumerate(h):
            tr = traverse_segment(tail, lo * point, hi * point, decision)
            alpha_at = lo + tr.t * (hi - lo)
            totals += np.histogram(alpha_at, bins=edges)[0]
            ray_counts[i] = len(tr)
            anywhere += int(np.isfinite(tr.decision_t))
        self.crossings_ = pd.DataFrame(
            {
                "alpha_lo": edges[:-1],
                "alpha_hi": edges[1:],
                "crossings_per_unit_alpha": totals / max(1, len(h)) / np.diff(edges),
            }
        )
        self.ray_crossings_ = ray_counts
        self.class_change_anywhere_ = anywhere / max(1, len(h))
        return self
