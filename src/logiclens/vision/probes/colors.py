"""Broden's eleven colour names, assigned to pixels by a nearest-prototype rule in CIELAB.

Broden labels every pixel with one of the eleven basic colour terms of Berlin and Kay, named
``black-c``, ``blue-c``, ``brown-c``, ``green-c``, ``grey-c``, ``orange-c``, ``pink-c``,
``purple-c``, ``red-c``, ``white-c`` and ``yellow-c``. :func:`color_labels` reproduces such
labels for any RGB image with a two-stage rule:

1. **Achromatic pixels.** A pixel whose CIELAB chroma ``C* = hypot(a*, b*)`` is below
   :data:`ACHROMATIC_CHROMA` (10) is named by lightness alone: ``black-c`` for
   ``L* < 25``, ``white-c`` for ``L* > 85`` and ``grey-c`` in between.
2. **Other pixels** take the name of the nearest prototype (Euclidean distance in CIELAB,
   D65 white) among the sRGB prototypes in :data:`COLOR_PROTOTYPES`. Each name has a few
   prototypes, the first being its canonical colour (dark ones such as navy and maroon
   among the others, so that dark saturated pixels keep their hue); black, the greys and
   white compete here too, so a slightly tinted grey stays grey and a nearly black pixel
   stays black.

The rule is deterministic and vectorised; it costs a few milliseconds per 112 x 112 image.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ACHROMATIC_CHROMA",
    "COLOR_NAMES",
    "COLOR_PROTOTYPES",
    "GREY_LIGHTNESS",
    "color_labels",
    "srgb_to_lab",
]

#: Broden's colour concept names; :func:`color_labels` returns indices into this tuple.
COLOR_NAMES: tuple[str, ...] = (
    "black-c",
    "blue-c",
    "brown-c",
    "green-c",
    "grey-c",
    "orange-c",
    "pink-c",
    "purple-c",
    "red-c",
    "white-c",
    "yellow-c",
)

#: sRGB prototypes in [0, 1] per colour name; the first one is the canonical colour.
COLOR_PROTOTYPES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "black-c": ((0.0, 0.0, 0.0),),
    "blue-c": (
        (0.0, 0.0, 1.0),
        (0.1, 0.1, 0.5),
        (0.0, 0.45, 0.9),
        (0.4, 0.6, 1.0),
        (0.0, 0.75, 1.0),
        (0.15, 0.3, 0.55),
        (0.3, 0.45, 0.65),
        (0.05, 0.1, 0.3),
        (0.55, 0.7, 0.85),
    ),
    "brown-c": ((0.55, 0.27, 0.07), (0.4, 0.26, 0.13), (0.65, 0.45, 0.3), (0.3, 0.18, 0.1), (0.45, 0.35, 0.25)),
    "green-c": (
        (0.0, 0.5, 0.0),
        (0.0, 0.8, 0.0),
        (0.5, 0.8, 0.2),
        (0.2, 0.35, 0.15),
        (0.55, 0.85, 0.55),
        (0.4, 0.5, 0.3),
        (0.25, 0.45, 0.4),
    ),
    "grey-c": ((0.5, 0.5, 0.5), (0.3, 0.3, 0.3), (0.7, 0.7, 0.7)),
    "orange-c": ((1.0, 0.55, 0.0), (1.0, 0.65, 0.3), (0.85, 0.4, 0.05)),
    "pink-c": ((1.0, 0.75, 0.8), (1.0, 0.4, 0.7), (0.85, 0.45, 0.65), (1.0, 0.6, 0.65), (0.8, 0.6, 0.65)),
    "purple-c": (
        (0.5, 0.0, 0.5),
        (0.6, 0.3, 0.9),
        (0.3, 0.1, 0.45),
        (0.75, 0.55, 0.9),
        (0.55, 0.2, 0.8),
        (0.4, 0.25, 0.5),
    ),
    "red-c": ((1.0, 0.0, 0.0), (0.7, 0.0, 0.0), (0.85, 0.15, 0.2), (0.5, 0.05, 0.05), (0.6, 0.2, 0.2)),
    "white-c": ((1.0, 1.0, 1.0),),
    "yellow-c": ((1.0, 1.0, 0.0), (1.0, 0.9, 0.4), (0.9, 0.85, 0.1), (0.95, 0.9, 0.6), (0.8, 0.75, 0.4)),
}

#: chroma (C*) below which a pixel is named by lightness alone
ACHROMATIC_CHROMA = 10.0
#: lightness bounds of grey for achromatic pixels: black below, white above
GREY_LIGHTNESS = (25.0, 85.0)

_BLACK, _GREY, _WHITE = (COLOR_NAMES.index(name) for name in ("black-c", "grey-c", "white-c"))
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)


def srgb_to_lab(rgb: ArrayLike) -> NDArray[np.float64]:
    """Convert sRGB in [0, 1] to CIELAB (D65 white).

    Parameters
    ----------
    rgb : array_like, shape (..., 3)
        sRGB values; values outside [0, 1] are clipped.

    Returns
    -------
    ndarray of float64, shape (..., 3)
        ``L*`` in [0, 100], ``a*`` and ``b*``.
    """
    srgb = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _SRGB_TO_XYZ.T / _D65_WHITE
    epsilon = (6.0 / 29.0) ** 3
    f = np.where(xyz > epsilon, np.cbrt(xyz), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    lightness = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def _prototype_table() -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """All prototypes in CIELAB and the colour index of each."""
    colors, ids = [], []
    for i, name in enumerate(COLOR_NAMES):
        for rgb in COLOR_PROTOTYPES[name]:
            colors.append(rgb)
            ids.append(i)
    return srgb_to_lab(np.array(colors)), np.array(ids, dtype=np.intp)


_PROTOTYPES_LAB, _PROTOTYPE_IDS = _prototype_table()
_PROTOTYPE_NORMS = (_PROTOTYPES_LAB**2).sum(axis=1)


def _achromatic_labels(lightness: NDArray[np.float64]) -> NDArray[np.intp]:
    """Black, grey or white by lightness."""
    low, high = GREY_LIGHTNESS
    return np.where(lightness < low, _BLACK, np.where(lightness > high, _WHITE, _GREY))


def _nearest_prototype(lab: NDArray[np.float64]) -> NDArray[np.intp]:
    """Colour index of the nearest prototype of each (n, 3) CIELAB row."""
    # |x - p|^2 = |x|^2 - 2 x.p + |p|^2; the first term does not change the argmin
    scores = lab @ (-2.0 * _PROTOTYPES_LAB.T)
    scores += _PROTOTYPE_NORMS  # in place: fresh large temporaries are slow
    return _PROTOTYPE_IDS[np.argmin(scores, axis=1)]


def color_labels(rgb: ArrayLike) -> NDArray[np.intp]:
    """Name the colour of every pixel.

    Parameters
    ----------
    rgb : array_like of float, shape (h, w, 3)
        sRGB in [0, 1] (any leading shape works: ``(..., 3)``).

    Returns
    -------
    ndarray of intp, shape (h, w)
        Indices into :data:`COLOR_NAMES`.
    """
    lab = srgb_to_lab(rgb)
    flat = lab.reshape(-1, 3)
    chroma = np.hypot(flat[:, 1], flat[:, 2])
    achromatic = chroma < ACHROMATIC_CHROMA
    labels = _achromatic_labels(flat[:, 0])
    chromatic = ~achromatic
    if chromatic.any():
        labels[chromatic] = _nearest_prototype(flat[chromatic])
    return labels.reshape(lab.shape[:-1])
