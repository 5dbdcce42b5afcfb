"""Layer outputs of any layout brought to activation maps (n, C, h, w).

* (n, C, h, w): convolutional maps, kept as they are.
* (n, C): one value per unit and image, a 1 x 1 map.
* (n, tokens, dim): a vision transformer's tokens. After ``extra_tokens`` leading tokens
  (CLS, registers) the patch tokens form an h x w grid in row-major order; they become
  (n, dim, h, w). By default one leading token is dropped when the rest is a perfect square
  (a ViT's CLS token), and none when the token count itself is one.
* (n, h, w, C) with ``channels_last=True``: channels-last maps (TensorFlow, JAX), transposed.

:func:`to_maps` applies one of these and :func:`describe_layout` says what it did, in the
words the run records.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["describe_layout", "grid_of", "to_maps"]


def grid_of(n_tokens: int, extra_tokens: int | None) -> tuple[int, int, int]:
    """(extra tokens, h, w) of a token sequence, or ValueError on one line when it is no square grid.

    Parameters
    ----------
    n_tokens : int
        Tokens per example.
    extra_tokens : int or None
        Leading tokens to drop; None: one when the rest is a perfect square, else none when
        all tokens are.
    """
    candidates = [extra_tokens] if extra_tokens is not None else [1, 0]
    for extra in candidates:
        patches = n_tokens - extra
        side = math.isqrt(max(patches, 0))
        if extra >= 0 and patches > 0 and side * side == patches:
            return extra, side, side
    given = f"after dropping {extra_tokens} leading token(s)" if extra_tokens is not None else "with 0 or 1 extra token"
    raise ValueError(
        f"a token layer with {n_tokens} tokens per example is not a square grid of patches {given}; "
        "give the number of leading extra tokens (CLS, registers) with --extra-tokens N"
    )


def to_maps(
    array: NDArray[np.floating], layer: str, extra_tokens: int | None = None, channels_last: bool = False
) -> NDArray[np.floating]:
    """A layer's output as (n, C, h, w) maps (see the module's description).

    Parameters
    ----------
    array : ndarray
        The layer's output for a batch, (n, C, h, w), (n, C), (n, tokens, dim) or, with
        ``channels_last``, (n, h, w, C).
    layer : str
        The layer's name, for error messages.
    extra_tokens : int, optional
        Leading tokens of a token layer that are not patches.
    channels_last : bool, default False
        Whether a 4-D output is (n, h, w, C).

    Returns
    -------
    ndarray (n, C, h, w)

    Raises
    ------
    ValueError
        On one line, for shapes that fit none of the layouts.
    """
    shape = tuple(array.shape)
    if array.ndim == 2:
        return array[:, :, None, None]
    if array.ndim == 3:
        extra, h, w = grid_of(shape[1], extra_tokens)
        patches = array[:, extra:, :]
        return patches.reshape(shape[0], h, w, shape[2]).transpose(0, 3, 1, 2)
    if array.ndim == 4:
        return array.transpose(0, 3, 1, 2) if channels_last else array
    raise ValueError(
        f"layer {layer!r} has output shape {shape}; expected (n, C, h, w), (n, C), (n, tokens, dim) "
        "or (n, h, w, C) with --channels-last"
    )


def describe_layout(
    shape: tuple[int, ...], extra_tokens: int | None = None, channels_last: bool = False
) -> dict[str, Any]:
    """What :func:`to_maps` does to one example's output of ``shape`` (without the batch axis), for the run's record."""
    if len(shape) == 2:
        extra, h, w = grid_of(shape[0], extra_tokens)
        return {"layout": "tokens", "tokens": shape[0], "extra_tokens": extra, "grid": [h, w], "units": shape[1]}
    if len(shape) == 3 and channels_last:
        return {"layout": "channels_last", "grid": list(shape[:2]), "units": shape[2]}
    if len(shape) == 1:
        return {"layout": "vector", "grid": [1, 1], "units": shape[0]}
    return {"layout": "maps", "grid": list(shape[1:]), "units": shape[0]}
