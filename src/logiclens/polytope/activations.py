"""Elementwise activations described by their breakpoints, the unit the polytope lens is built on.

A piecewise-linear activation is continuous and affine between its *breakpoints*: ReLU has
one (0), ReLU6 and hardtanh have two. Every breakpoint of every neuron is a hyperplane in the
space of that neuron's inputs, and one bit of the spline code says on which side of it the
pre-activation lies: ``z > breakpoint``. With one breakpoint at 0 this is the usual ReLU code.

GELU and SiLU are smooth: they have no breakpoints and partition nothing. They are accepted
with ``breakpoints == (0.0,)`` **by convention** (the sign of the pre-activation, as Humayun
et al. and SplineLLM do), flagged ``piecewise_linear = False``; exact traversal, region
enumeration and local complexity refuse them, and :func:`logiclens.polytope.codes.soft_code`
gives their probabilistic code.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, ndtr

__all__ = [
    "Activation",
    "abs_activation",
    "gelu",
    "hardtanh",
    "identity",
    "leaky_relu",
    "relu",
    "relu6",
    "silu",
]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Activation:
    """An elementwise activation function with the breakpoints that define its code.

    Parameters
    ----------
    name : str
        Short name (``"relu"``, ``"relu6"``, ...).
    breakpoints : tuple of float
        Increasing pre-activation values where a piecewise-linear function changes slope
        (for smooth functions: the conventional code thresholds).
    function : callable
        The activation, applied elementwise to a float64 array.
    piecewise_linear : bool, default True
        False for smooth activations (GELU, SiLU): codes by convention only.

    Attributes
    ----------
    n_breakpoints : int
        Code bits per neuron.
    positively_homogeneous : bool
        ``f(a z) = a f(z)`` for ``a > 0`` (every breakpoint at 0 and ``f(0) = 0``): then a
        network without biases maps rays to rays and scaling never changes its code.
    """

    name: str
    breakpoints: tuple[float, ...]
    function: Callable[[Array], Array] = field(compare=False, repr=False)
    piecewise_linear: bool = True

    def __post_init__(self) -> None:
        points = tuple(float(b) for b in self.breakpoints)
        if any(b >= c for b, c in itertools.pairwise(points)):
            raise ValueError(f"breakpoints must increase strictly, got {points}")
        object.__setattr__(self, "breakpoints", points)

    @property
    def n_breakpoints(self) -> int:
        """Code bits per neuron."""
        return len(self.breakpoints)

    @property
    def positively_homogeneous(self) -> bool:
        """True when every breakpoint is 0 and ``f(0) = 0`` (ReLU, leaky ReLU, abs, identity)."""
        zero = float(np.asarray(self.function(np.zeros(1)))[0])
        return self.piecewise_linear and all(b == 0.0 for b in self.breakpoints) and zero == 0.0

    def __call__(self, z: Array) -> Array:
        """Apply the activation elementwise."""
        return self.function(np.asarray(z, dtype=np.float64))

    def code(self, z: Array) -> NDArray[np.bool_]:
        """Hard code bits ``z > breakpoint``: shape ``(*z.shape[:-1], z.shape[-1] * n_breakpoints)``.

        Bits are neuron-major: neuron ``k``'s bit for breakpoint ``j`` is ``k * n_breakpoints + j``.
        """
        z = np.asarray(z)
        if not self.breakpoints:
            return np.zeros((*z.shape[:-1], 0), bool)
        bits = z[..., None] > np.asarray(self.breakpoints, dtype=z.dtype if z.dtype.kind == "f" else np.float64)
        return bits.reshape(*z.shape[:-1], z.shape[-1] * self.n_breakpoints)


def _relu(z: Array) -> Array:
    return np.maximum(z, 0.0)


def _relu6(z: Array) -> Array:
    return np.clip(z, 0.0, 6.0)


def _identity(z: Array) -> Array:
    return z


def _abs(z: Array) -> Array:
    return np.abs(z)


def _gelu(z: Array) -> Array:
    return z * ndtr(z)


def relu() -> Activation:
    """ReLU: one breakpoint at 0."""
    return Activation("relu", (0.0,), _relu)


def relu6() -> Activation:
    """ReLU6 (``min(max(z, 0), 6)``, MobileNet / EfficientNet-Lite): breakpoints 0 and 6."""
    return Activation("relu6", (0.0, 6.0), _relu6)


def hardtanh(min_val: float = -1.0, max_val: float = 1.0) -> Activation:
    """Hardtanh: clip to ``[min_val, max_val]``; breakpoints at both ends."""
    lo, hi = float(min_val), float(max_val)
    return Activation(f"hardtanh({lo:g},{hi:g})", (lo, hi), lambda z: np.clip(z, lo, hi))


def leaky_relu(negative_slope: float = 0.01) -> Activation:
    """Leaky ReLU: slope ``negative_slope`` below 0, 1 above; one breakpoint at 0."""
    a = float(negative_slope)
    return Activation(f"leaky_relu({a:g})", (0.0,), lambda z: np.where(z > 0, z, a * z))


def abs_activation() -> Activation:
    """Absolute value: one breakpoint at 0."""
    return Activation("abs", (0.0,), _abs)


def identity() -> Activation:
    """No activation (the output layer): no breakpoints, no code."""
    return Activation("identity", (), _identity)


def gelu() -> Activation:
    """GELU, ``z * Phi(z)``: smooth; hard code ``z > 0`` **by convention**."""
    return Activation("gelu", (0.0,), _gelu, piecewise_linear=False)


def silu() -> Activation:
    """SiLU / swish, ``z * sigmoid(z)``: smooth; hard code ``z > 0`` **by convention**."""
    return Activation("silu", (0.0,), lambda z: z * expit(z), piecewise_linear=False)
