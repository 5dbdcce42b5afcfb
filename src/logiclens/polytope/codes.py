"""Spline (polytope) codes: which side of every neuron's breakpoints an input lies on, bit-packed.

The hard code of layer l is ``q_l(x) = [z_l(x) > b for every neuron and breakpoint b]``
(for ReLU: ``z > 0``); the network code concatenates the layers. Inputs with equal codes lie
in one convex polytope of input space, on which the network is affine.

:class:`PolytopeCodes` stores codes bit-packed into ``uint64`` words, each layer starting on
a word boundary (padding bits are zero, so they change no distance). Hamming and Jaccard
distances are popcounts of XOR / AND / OR of words (:mod:`logiclens.polytope.distances`).

Soft codes (:func:`soft_code`) are a **convention** for smooth activations, following
Balestriero & Baraniuk ("From Hard to Soft", 2019): a GELU neuron is "on" with probability
``Phi(z)``, a SiLU neuron with ``sigmoid(beta * z)``; the hard code is their limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, ndtr

__all__ = ["PolytopeCodes", "hard_code", "pack_bits", "soft_code", "unpack_bits"]

Words = NDArray[np.uint64]


def pack_bits(bits: ArrayLike) -> Words:
    """Pack a boolean (n, m) array into uint64 words (n, ceil(m / 64)), bit j of a row in word j // 64.

    Within a word, bit ``j % 64`` is the ``2 ** (j % 64)`` place (little-endian bit order).
    """
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 2:
        raise ValueError(f"bits must be 2-D (n, m), got shape {bits.shape}")
    n, m = bits.shape
    n_words = -(-m // 64)
    packed = np.packbits(bits, axis=1, bitorder="little")
    padded = np.zeros((n, n_words * 8), np.uint8)
    padded[:, : packed.shape[1]] = packed
    return padded.view("<u8").astype(np.uint64, copy=False).reshape(n, n_words)


def unpack_bits(words: Words, n_bits: int) -> NDArray[np.bool_]:
    """Inverse of :func:`pack_bits`: a boolean (n, n_bits) array."""
    words = np.ascontiguousarray(np.asarray(words, dtype=np.uint64))
    as_bytes = words.astype("<u8", copy=False).view(np.uint8).reshape(len(words), -1)
    return np.unpackbits(as_bytes, axis=1, bitorder="little", count=int(n_bits)).astype(bool)


def hard_code(preactivations: ArrayLike, breakpoints: Sequence[float] = (0.0,)) -> NDArray[np.bool_]:
    """Hard code bits ``z > b`` for every neuron (last axis) and breakpoint, neuron-major.

    Parameters
    ----------
    preactivations : array (..., n_neurons)
    breakpoints : sequence of float, default (0.0,)
        ReLU: ``(0,)``; ReLU6: ``(0, 6)``; GELU/SiLU: ``(0,)`` by convention.

    Returns
    -------
    bool array (..., n_neurons * len(breakpoints))
    """
    z = np.asarray(preactivations)
    points = np.asarray(breakpoints, dtype=np.float64)
    if points.ndim != 1 or points.size == 0:
        raise ValueError("breakpoints must be a non-empty sequence")
    return (z[..., None] > points).reshape(*z.shape[:-1], z.shape[-1] * points.size)


def soft_code(preactivations: ArrayLike, activation: str = "gelu", beta: float = 1.0) -> NDArray[np.float64]:
    """Probabilistic ("soft") code of smooth activations -- a **convention**, not a partition.

    Parameters
    ----------
    preactivations : array (..., n_neurons)
    activation : {"gelu", "silu", "relu"}
        ``gelu``: ``Phi(z)`` (standard normal CDF, the gate of ``z * Phi(z)``);
        ``silu``: ``sigmoid(beta * z)`` (the gate of swish); ``relu``: the hard code as floats.
    beta : float, default 1.0
        Inverse temperature of the SiLU gate (``beta -> inf`` gives the hard code).

    Returns
    -------
    float64 array, same shape, values in [0, 1]
        Compare soft codes with :func:`logiclens.polytope.distances.soft_l1_distances`.
    """
    z = np.asarray(preactivations, dtype=np.float64)
    if activation == "gelu":
        return ndtr(z)
    if activation == "silu":
        return expit(float(beta) * z)
    if activation == "relu":
        return (z > 0).astype(np.float64)
    raise ValueError(f"soft codes are defined for gelu, silu and relu, not {activation!r}")


@dataclass(frozen=True)
class PolytopeCodes:
    """Bit-packed hard codes of n inputs over one or more layers.

    Attributes
    ----------
    words : uint64 array (n, n_words)
        The layers' packed bits side by side; layer i occupies ``word_slices[i]``.
    layer_names : tuple of str
    layer_bits : tuple of int
        Number of bits of each layer.
    """

    words: Words
    layer_names: tuple[str, ...]
    layer_bits: tuple[int, ...]

    def __post_init__(self) -> None:
        words = np.ascontiguousarray(np.asarray(self.words, dtype=np.uint64))
        if words.ndim != 2:
            raise ValueError(f"words must be 2-D, got shape {words.shape}")
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "layer_names", tuple(str(n) for n in self.layer_names))
        object.__setattr__(self, "layer_bits", tuple(int(b) for b in self.layer_bits))
        if len(self.layer_names) != len(self.layer_bits):
            raise ValueError("one bit count per layer name is needed")
        expected = sum(-(-b // 64) for b in self.layer_bits)
        if words.shape[1] != expected:
            raise ValueError(f"{words.shape[1]} words for layers of {self.layer_bits} bits (expected {expected})")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_bits(cls, bits: Sequence[ArrayLike] | ArrayLike, names: Sequence[str] | None = None) -> PolytopeCodes:
        """Pack per-layer boolean arrays.

        Parameters
        ----------
        bits : bool array (n, m) or sequence of bool arrays (n, m_l)
            One array per layer (a single array is one layer).
        names : sequence of str, optional
            Layer names; ``"0"``, ``"1"``, ... by default.
        """
        arrays = [np.asarray(bits, dtype=bool)] if isinstance(bits, np.ndarray) else [np.asarray(b, bool) for b in bits]
        if not arrays:
            raise ValueError("no layers given")
        n = len(arrays[0])
        for array in arrays:
            if array.ndim != 2 or len(array) != n:
                raise ValueError(f"every layer's bits must be (n, m) with the same n; got shape {array.shape}")
        names = [str(i) for i in range(len(arrays))] if names is None else list(names)
        words = np.concatenate([pack_bits(a) for a in arrays], axis=1)
        return cls(words, tuple(names), tuple(a.shape[1] for a in arrays))

    @classmethod
    def from_preactivations(
        cls,
        preactivations: Sequence[ArrayLike] | dict[str, ArrayLike],
        breakpoints: Sequence[float] = (0.0,),
        names: Sequence[str] | None = None,
    ) -> PolytopeCodes:
        """Codes from recorded pre-activations (e.g. :func:`~logiclens.polytope.recording.record_preactivations`).

        Parameters
        ----------
        preactivations : dict of name to array (n, m), or sequence of arrays
        breakpoints : sequence of float, default (0.0,)
            The activation's breakpoints (ReLU6: ``(0, 6)``).
        names : sequence of str, optional
            Layer names for a sequence input.
        """
        if isinstance(preactivations, dict):
            names, arrays = list(preactivations), list(preactivations.values())
        else:
            arrays = list(preactivations)
        flat = [np.asarray(a).reshape(len(a), -1) for a in arrays]
        return cls.from_bits([hard_code(a, breakpoints) for a in flat], names)

    # ---------------------------------------------------------------- structure
    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        layers = ", ".join(f"{name}: {bits}" for name, bits in zip(self.layer_names, self.layer_bits))
        return f"PolytopeCodes({len(self)} codes; bits per layer {{{layers}}})"

    @property
    def n_bits(self) -> int:
        """Total number of code bits."""
        return sum(self.layer_bits)

    @property
    def word_slices(self) -> list[slice]:
        """The words of each layer."""
        out, start = [], 0
        for bits in self.layer_bits:
            stop = start + -(-bits // 64)
            out.append(slice(start, stop))
            start = stop
        return out

    def _layer_index(self, layer: int | str) -> int:
        if isinstance(layer, str):
            if layer not in self.layer_names:
                raise ValueError(f"no layer {layer!r}; layers: {list(self.layer_names)}")
            return self.layer_names.index(layer)
        return range(len(self.layer_names))[int(layer)]

    def layers(self, layers: Sequence[int | str]) -> PolytopeCodes:
        """The codes restricted to some layers (the cross-layer code of those layers)."""
        indices = [self._layer_index(layer) for layer in layers]
        slices = self.word_slices
        words = np.concatenate([self.words[:, slices[i]] for i in indices], axis=1)
        return PolytopeCodes(
            words, tuple(self.layer_names[i] for i in indices), tuple(self.layer_bits[i] for i in indices)
        )

    def layer(self, layer: int | str) -> PolytopeCodes:
        """The code of one layer."""
        return self.layers([layer])

    def __getitem__(self, rows: ArrayLike | slice) -> PolytopeCodes:
        """Some of the codes (rows), e.g. ``codes[mask]``."""
        return PolytopeCodes(self.words[rows], self.layer_names, self.layer_bits)

    def unpack(self) -> NDArray[np.bool_]:
        """All bits as a boolean (n, n_bits) array, layers in order."""
        slices = self.word_slices
        parts = [unpack_bits(self.words[:, s], bits) for s, bits in zip(slices, self.layer_bits)]
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(self), 0), bool)

    def bit_names(self) -> list[str]:
        """``"<layer>:<bit>"`` for every bit, in :meth:`unpack` order."""
        return [f"{name}:{j}" for name, bits in zip(self.layer_names, self.layer_bits) for j in range(bits)]

    def ones(self) -> NDArray[np.int64]:
        """Number of set bits of each code."""
        return np.bitwise_count(self.words).sum(axis=1, dtype=np.int64)

    def keys(self) -> NDArray[np.void]:
        """One hashable ``np.void`` scalar per code: equal codes, equal keys (for grouping)."""
        contiguous = np.ascontiguousarray(self.words)
        return contiguous.view(np.dtype((np.void, contiguous.dtype.itemsize * contiguous.shape[1]))).ravel()
