"""Local complexity (Humayun, Balestriero & Baraniuk, ICML 2024) and distance to the nearest boundary.

**Local complexity** of a point x: the number of neurons (hyperplanes: neuron x breakpoint)
whose side is not the same at all ``2P`` vertices ``x +- r v_p`` of a cross-polytope spanned
by ``P`` random orthonormal directions ``v_p``. For the first layer this counts exactly the
hyperplanes that cut the neighbourhood; for deeper layers it counts the hyperplanes that
separate the *embedded* vertices (an approximation, as in the original). Their defaults:
``P = 25`` and ``r`` in {0.05, 0.1, 0.5, 1, 5} for [0, 1]-scaled MNIST; their code also
counts sign changes of the logits (``include_output=True``).

**Nearest-boundary distance**: ``min_k |z_k - b| / |grad_x z_k|`` per layer. Exact for the
first layer; deeper layers use the gradient of the input's own affine piece (the distance to
the hyperplane extended from the current polytope, a local approximation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from logiclens.polytope.activations import Activation
from logiclens.polytope.network import DenseAffine, PiecewiseLinearNetwork

__all__ = ["LocalComplexity", "boundary_distances", "random_orthonormal"]

Array = NDArray[np.float64]


def random_orthonormal(dimension: int, count: int, rng: np.random.Generator) -> Array:
    """``count`` random orthonormal directions in R^dimension (QR of a Gaussian matrix): (count, dimension)."""
    if count > dimension:
        raise ValueError(f"cannot draw {count} orthonormal directions in {dimension} dimensions")
    q, r = np.linalg.qr(rng.normal(size=(dimension, count)))
    return (q * np.sign(np.diag(r))[None, :]).T


class LocalComplexity:
    """Humayun et al.'s local complexity at each input, per layer.

    Parameters
    ----------
    n_directions : int, default 25
        P; the neighbourhood has 2P vertices.
    radius : float, default 0.1
        r, in input units.
    include_output : bool, default False
        Also count sign changes of the output layer's values (the official code does).
    shared_directions : bool, default False
        One set of directions for all inputs instead of a fresh set per input.
    random_state : int, default 0
    batch_size : int or None, default None
        Inputs per batch (each brings 2P vertices); by default as many as keep one batch's
        widest layer under 2**24 values (128 MB).

    Attributes
    ----------
    counts_ : int64 (n, n_layers_counted)
        Non-constant hyperplanes per input and layer.
    fractions_ : float64 (n, n_layers_counted)
        The same, as a fraction of the layer's hyperplanes.
    total_ : int64 (n,)
    layer_names_ : list of str
    """

    def __init__(
        self,
        n_directions: int = 25,
        radius: float = 0.1,
        include_output: bool = False,
        shared_directions: bool = False,
        random_state: int = 0,
        batch_size: int | None = None,
    ) -> None:
        self.n_directions = n_directions
        self.radius = radius
        self.include_output = include_output
        self.shared_directions = shared_directions
        self.random_state = random_state
        self.batch_size = batch_size

    def fit(self, network: PiecewiseLinearNetwork, x: ArrayLike) -> LocalComplexity:
        """Compute the local complexity of every input; returns self."""
        network.require_piecewise_linear("local complexity")
        points = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        rng = np.random.default_rng(self.random_state)
        dimension = points.shape[1]
        counted = list(network.coded_layers)
        last = len(network.layers) - 1
        if self.include_output and last not in counted:
            counted.append(last)
        self.layer_names_ = [network.layers[i].name for i in counted]
        widths = np.array(
            [
                max(1, network.layers[i].n_bits)
                if network.layers[i].activation.n_breakpoints
                else network.layers[i].width
                for i in counted
            ]
        )
        shared = random_orthonormal(dimension, self.n_directions, rng) if self.shared_directions else None
        counts = np.zeros((len(points), len(counted)), np.int64)
        p = self.n_directions
        widest = max([dimension, *(layer.width for layer in network.layers)])
        batch = self.batch_size or max(1, 2**24 // (2 * p * widest))
        for start in range(0, len(points), batch):
            block = points[start : start + batch]
            if shared is not None:
                directions = np.broadcast_to(shared, (len(block), p, dimension))
            else:
                directions = np.stack([random_orthonormal(dimension, p, rng) for _ in block])
            offsets = self.radius * np.concatenate([directions, -directions], axis=1)  # (b, 2P, d)
            vertices = (block[:, None, :] + offsets).reshape(-1, dimension)
            pre = network.preactivations(vertices, batch_size=len(vertices))
            for c, i in enumerate(counted):
                activation = network.layers[i].activation
                bits = activation.code(pre[i]) if activation.n_breakpoints else pre[i] > 0
                bits = bits.reshape(len(block), 2 * p, -1)
                varying = bits.any(axis=1) & ~bits.all(axis=1)
                counts[start : start + len(block), c] = varying.sum(axis=1)
        self.counts_ = counts
        self.fractions_ = counts / widths[None, :]
        self.total_ = counts.sum(axis=1)
        return self

    def frame(self) -> pd.DataFrame:
        """Per input: ``total`` and one column per counted layer."""
        data = {"total": self.total_}
        data.update({f"lc_{name}": self.counts_[:, j] for j, name in enumerate(self.layer_names_)})
        return pd.DataFrame(data)


def boundary_distances(network: PiecewiseLinearNetwork, x: ArrayLike) -> Array:
    """Distance from each input to the nearest breakpoint hyperplane of each coded layer: (n, n_coded).

    Exact for the first layer; deeper layers use the input's own affine piece (module docstring).
    Needs dense layers (:class:`DenseAffine`); inf for layers whose neurons are constant.
    """
    network.require_piecewise_linear("boundary distances")
    if not all(isinstance(layer.affine, DenseAffine) for layer in network.layers):
        raise ValueError("boundary_distances needs dense layers (DenseAffine)")
    points = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    coded = network.coded_layers
    out = np.full((len(points), len(coded)), np.inf)
    for n, point in enumerate(points):
        jacobian = np.eye(points.shape[1])
        h = point
        column = 0
        for i, layer in enumerate(network.layers):
            weight = layer.affine.weight  # type: ignore[attr-defined]
            z = weight @ h + layer.affine.bias
            grad = weight @ jacobian
            norms = np.linalg.norm(grad, axis=1)
            if i in coded:
                gaps = np.abs(z[:, None] - np.asarray(layer.activation.breakpoints)[None, :])
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(norms[:, None] > 0, gaps / norms[:, None], np.inf)
                out[n, column] = ratio.min() if ratio.size else np.inf
                column += 1
            slope = _slopes(layer.activation, z)
            jacobian = slope[:, None] * grad
            h = layer.activation(z)
    return out


def _slopes(activation: Activation, z: Array) -> Array:
    """Slope of a piecewise-linear activation on the piece holding each ``z`` (``z == b`` counts below b)."""
    points = np.asarray(activation.breakpoints)
    if not len(points):
        return np.ones_like(z)
    # two probes strictly inside every piece give its slope exactly
    inner = np.concatenate([[points[0] - 1.0], (points[:-1] + points[1:]) / 2, [points[-1] + 1.0]])
    delta = np.concatenate([[0.5], np.diff(points) / 4, [0.5]])
    piece_slopes = (activation(inner + delta) - activation(inner - delta)) / (2 * delta)
    return piece_slopes[np.searchsorted(points, z, side="left")]
