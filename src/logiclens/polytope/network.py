"""One representation of a piecewise-linear network, shared by codes, traversal, complexity and scaling.

A :class:`PiecewiseLinearNetwork` is a list of layers, each an affine map followed by an
elementwise :class:`~logiclens.polytope.activations.Activation`; the last layer usually has
the identity activation (the logits). Everything works on flat float64 vectors: a
convolutional feature map is flattened in torch's ``(C, H, W)`` order and its shape is kept
in ``layer_shapes``.

Affine maps are :class:`AffineStep` objects. :class:`DenseAffine` holds a weight matrix and
a bias (numpy only); :class:`logiclens.polytope.torch_adapter.TorchAffine` evaluates a chain
of torch modules (convolutions, batch norm, pooling, linear) for maps too large to densify.
Build a network from your own matrices with :meth:`PiecewiseLinearNetwork.from_layers`, or
from an ``nn.Sequential`` with :func:`logiclens.polytope.torch_adapter.from_torch`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.polytope import activations as act
from logiclens.polytope.activations import Activation
from logiclens.polytope.codes import PolytopeCodes

__all__ = ["AffineStep", "DenseAffine", "Layer", "PiecewiseLinearNetwork"]

Array = NDArray[np.float64]

_ACTIVATIONS = {
    "relu": act.relu,
    "relu6": act.relu6,
    "identity": act.identity,
    "linear": act.identity,
    "none": act.identity,
    "abs": act.abs_activation,
    "leaky_relu": act.leaky_relu,
    "hardtanh": act.hardtanh,
    "gelu": act.gelu,
    "silu": act.silu,
}


def as_activation(spec: Activation | str | None) -> Activation:
    """An :class:`Activation` from itself, a name (``"relu"``, ``"relu6"``, ...) or None (identity)."""
    if isinstance(spec, Activation):
        return spec
    if spec is None:
        return act.identity()
    try:
        return _ACTIVATIONS[str(spec).lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {spec!r}; known: {sorted(_ACTIVATIONS)}") from None


class AffineStep(ABC):
    """An affine map ``x -> A x + b`` between flat float64 vectors, applied to rows.

    Attributes
    ----------
    in_features, out_features : int
    bias : ndarray (out_features,)
    """

    in_features: int
    out_features: int
    bias: Array

    @abstractmethod
    def __call__(self, x: Array) -> Array:
        """``A x + b`` for every row of ``x`` (n, in_features) -> (n, out_features)."""

    def linear(self, x: Array) -> Array:
        """``A x`` without the bias."""
        return self(x) - self.bias

    @abstractmethod
    def without_bias(self) -> AffineStep:
        """The same map with ``b = 0``."""

    def row_norms(self) -> Array:
        """Euclidean norm of each row of ``A`` (distance scale of each neuron's hyperplane)."""
        eye = np.eye(self.in_features)
        out = np.zeros(self.out_features)
        for start in range(0, self.in_features, 256):
            out += np.square(self.linear(eye[start : start + 256])).sum(axis=0)
        return np.sqrt(out)


class DenseAffine(AffineStep):
    """An affine map given by a weight matrix and a bias.

    Parameters
    ----------
    weight : array (out_features, in_features)
    bias : array (out_features,), optional
        Zero when omitted.
    """

    def __init__(self, weight: ArrayLike, bias: ArrayLike | None = None) -> None:
        self.weight = np.ascontiguousarray(np.asarray(weight, dtype=np.float64))
        if self.weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (out, in), got shape {self.weight.shape}")
        self.out_features, self.in_features = self.weight.shape
        self.bias = np.zeros(self.out_features) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
        if self.bias.shape != (self.out_features,):
            raise ValueError(f"bias must have shape ({self.out_features},), got {self.bias.shape}")

    def __call__(self, x: Array) -> Array:
        return np.asarray(x, dtype=np.float64) @ self.weight.T + self.bias

    def linear(self, x: Array) -> Array:
        return np.asarray(x, dtype=np.float64) @ self.weight.T

    def without_bias(self) -> DenseAffine:
        return DenseAffine(self.weight, None)

    def row_norms(self) -> Array:
        return np.linalg.norm(self.weight, axis=1)

    def __repr__(self) -> str:
        return f"DenseAffine({self.in_features} -> {self.out_features})"


@dataclass(frozen=True)
class Layer:
    """One layer: an affine map, then an activation.

    Attributes
    ----------
    affine : AffineStep
    activation : Activation
    name : str
        The layer's name (the activation module's name for torch models).
    preactivation_module : str or None
        Name of the torch module whose output is this layer's pre-activation (what
        :class:`logiclens.hooks.LayerRecorder` records); None for user-built layers.
    shape : tuple of int or None
        Shape of the layer's output before flattening (``(C, H, W)`` for convolutions).
    """

    affine: AffineStep
    activation: Activation
    name: str
    preactivation_module: str | None = None
    shape: tuple[int, ...] | None = None

    @property
    def width(self) -> int:
        """Number of neurons."""
        return self.affine.out_features

    @property
    def n_bits(self) -> int:
        """Code bits of the layer (neurons x breakpoints)."""
        return self.width * self.activation.n_breakpoints


class PiecewiseLinearNetwork:
    """A feed-forward network as a list of (affine map, activation) layers.

    Parameters
    ----------
    layers : sequence of Layer
        In order; each layer's ``in_features`` must equal the previous layer's ``out_features``.
    input_shape : tuple of int, optional
        Shape of one input before flattening (``(1, 8, 8)`` for 8x8 grey images).

    Attributes
    ----------
    layers : list of Layer
    in_features : int
    coded_layers : list of int
        Indices of the layers whose activation has breakpoints (the hidden layers).

    Examples
    --------
    >>> import numpy as np
    >>> net = PiecewiseLinearNetwork.from_layers([(np.eye(2), np.zeros(2), "relu"), (np.ones((1, 2)), None, None)])
    >>> net.forward(np.array([[1.0, -2.0]]))
    array([[1.]])
    """

    def __init__(self, layers: Sequence[Layer], input_shape: tuple[int, ...] | None = None) -> None:
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        for previous, layer in zip(self.layers, self.layers[1:]):
            if layer.affine.in_features != previous.affine.out_features:
                raise ValueError(
                    f"layer {layer.name!r} takes {layer.affine.in_features} inputs but {previous.name!r} "
                    f"gives {previous.affine.out_features}"
                )
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        self.in_features = self.layers[0].affine.in_features
        self.input_shape = tuple(input_shape) if input_shape is not None else (self.in_features,)
        if int(np.prod(self.input_shape)) != self.in_features:
            raise ValueError(f"input_shape {self.input_shape} does not hold {self.in_features} features")

    @classmethod
    def from_layers(
        cls,
        layers: Sequence[tuple[ArrayLike, ArrayLike | None, Activation | str | None]],
        names: Sequence[str] | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> PiecewiseLinearNetwork:
        """Build from ``(weight, bias, activation)`` triples.

        Parameters
        ----------
        layers : sequence of (array (out, in), array (out,) or None, Activation or str or None)
            Activation names: ``relu``, ``relu6``, ``leaky_relu``, ``hardtanh``, ``abs``,
            ``gelu``, ``silu``, ``identity`` (None is identity).
        names : sequence of str, optional
            Layer names; ``"layer0"``, ``"layer1"``, ... by default.
        input_shape : tuple of int, optional
        """
        names = list(names) if names is not None else [f"layer{i}" for i in range(len(layers))]
        if len(names) != len(layers):
            raise ValueError(f"{len(names)} names for {len(layers)} layers")
        built = [
            Layer(DenseAffine(weight, bias), as_activation(activation), name)
            for (weight, bias, activation), name in zip(layers, names)
        ]
        return cls(built, input_shape)

    # ---------------------------------------------------------------- structure
    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __repr__(self) -> str:
        parts = ", ".join(f"{layer.name}: {layer.width} {layer.activation.name}" for layer in self.layers)
        return f"PiecewiseLinearNetwork({self.in_features} -> [{parts}])"

    @property
    def coded_layers(self) -> list[int]:
        """Indices of the layers with at least one breakpoint."""
        return [i for i, layer in enumerate(self.layers) if layer.activation.n_breakpoints]

    @property
    def names(self) -> list[str]:
        """Layer names, in order."""
        return [layer.name for layer in self.layers]

    @property
    def piecewise_linear(self) -> bool:
        """False when some activation is smooth (GELU, SiLU)."""
        return all(layer.activation.piecewise_linear for layer in self.layers)

    def require_piecewise_linear(self, what: str) -> None:
        """Raise ``ValueError`` naming ``what`` if some activation is smooth."""
        smooth = [layer.name for layer in self.layers if not layer.activation.piecewise_linear]
        if smooth:
            raise ValueError(f"{what} needs a piecewise-linear network; layers {smooth} are smooth (GELU/SiLU)")

    def index(self, layer: int | str) -> int:
        """Index of a layer given by index (negative allowed) or name."""
        if isinstance(layer, str):
            try:
                return self.names.index(layer)
            except ValueError:
                raise ValueError(f"no layer {layer!r}; layers: {self.names}") from None
        index = int(layer)
        if not -len(self.layers) <= index < len(self.layers):
            raise IndexError(f"layer index {layer} out of range for {len(self.layers)} layers")
        return index % len(self.layers)

    def tail(self, after: int | str) -> PiecewiseLinearNetwork:
        """The layers after ``after``: the network that reads the output of layer ``after``."""
        start = self.index(after) + 1
        if start >= len(self.layers):
            raise ValueError(f"no layers after {self.names[start - 1]!r}")
        shape = self.layers[start - 1].shape
        return PiecewiseLinearNetwork(self.layers[start:], shape)

    def without_biases(self) -> PiecewiseLinearNetwork:
        """The same network with every bias set to 0 (the control of the scaling experiment)."""
        layers = [
            Layer(layer.affine.without_bias(), layer.activation, layer.name, layer.preactivation_module, layer.shape)
            for layer in self.layers
        ]
        return PiecewiseLinearNetwork(layers, self.input_shape)

    # ---------------------------------------------------------------- evaluation
    def _flat(self, x: ArrayLike) -> Array:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.in_features:
            raise ValueError(f"inputs have {x.shape[1]} features, the network takes {self.in_features}")
        return x

    def _rows(self, batch_size: int | None) -> int:
        """Rows per batch: as given, or as many as keep the widest layer under 2**24 values (128 MB)."""
        if batch_size is not None:
            return max(1, int(batch_size))
        widest = max([self.in_features, *(layer.width for layer in self.layers)])
        return max(1, 2**24 // widest)

    def forward(self, x: ArrayLike, batch_size: int | None = None) -> Array:
        """The network's output (n, out_features) for inputs (n, ...); ``batch_size`` rows at a time."""
        x = self._flat(x)
        batch_size = self._rows(batch_size)
        out = []
        for start in range(0, len(x), batch_size):
            h = x[start : start + batch_size]
            for layer in self.layers:
                h = layer.activation(layer.affine(h))
            out.append(h)
        return np.concatenate(out) if out else np.zeros((0, self.layers[-1].width))

    def preactivations(self, x: ArrayLike, batch_size: int | None = None) -> list[Array]:
        """Pre-activations of every layer: a list of (n, width) arrays, one per layer."""
        x = self._flat(x)
        batch_size = self._rows(batch_size)
        chunks: list[list[Array]] = [[] for _ in self.layers]
        for start in range(0, len(x), batch_size):
            h = x[start : start + batch_size]
            for i, layer in enumerate(self.layers):
                z = layer.affine(h)
                chunks[i].append(z)
                h = layer.activation(z)
        return [np.concatenate(c) if c else np.zeros((0, layer.width)) for c, layer in zip(chunks, self.layers)]

    def hidden(self, x: ArrayLike, layer: int | str, batch_size: int | None = None) -> Array:
        """Output of layer ``layer`` (after its activation): the input of :meth:`tail`."""
        stop = self.index(layer) + 1
        x = self._flat(x)
        batch_size = self._rows(batch_size)
        out = []
        for start in range(0, len(x), batch_size):
            h = x[start : start + batch_size]
            for item in self.layers[:stop]:
                h = item.activation(item.affine(h))
            out.append(h)
        return np.concatenate(out) if out else np.zeros((0, self.layers[stop - 1].width))

    def predict(self, x: ArrayLike, batch_size: int | None = None) -> NDArray[np.intp]:
        """Arg-max of the output."""
        return np.argmax(self.forward(x, batch_size), axis=1)

    def codes(
        self, x: ArrayLike, layers: Sequence[int | str] | None = None, batch_size: int | None = None
    ) -> PolytopeCodes:
        """Hard spline codes of ``x``: a :class:`~logiclens.polytope.codes.PolytopeCodes`.

        Parameters
        ----------
        x : array (n, ...)
        layers : sequence of int or str, optional
            Which layers; every coded layer by default.
        """
        chosen = self.coded_layers if layers is None else [self.index(layer) for layer in layers]
        pre = self.preactivations(x, batch_size)
        bits = [self.layers[i].activation.code(pre[i]) for i in chosen]
        return PolytopeCodes.from_bits(bits, [self.layers[i].name for i in chosen])
