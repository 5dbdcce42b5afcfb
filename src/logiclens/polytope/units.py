"""A family of units as binary masks over the probing set: what every comparison consumes.

Neurons, directions, activation clusters and polytope regions all become a
:class:`UnitFamily`: a (U, N) boolean array (``masks[u, i]``: probing input i belongs to
unit u), exactly the ``unit_masks`` that :class:`logiclens.CompositionalExplainer` takes, plus
the family's coverage and noise fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["UnitFamily", "masks_from_labels"]


def masks_from_labels(labels: ArrayLike, min_size: int = 1) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """One mask per cluster label ``>= 0`` with at least ``min_size`` members (label -1 is noise).

    Returns
    -------
    masks : bool (U, N)
    kept : int64 (U,)
        The label of each mask, increasing.
    """
    labels = np.asarray(labels)
    values, counts = np.unique(labels[labels >= 0], return_counts=True)
    kept = values[counts >= min_size].astype(np.int64)
    return labels[None, :] == kept[:, None], kept


@dataclass
class UnitFamily:
    """Units of one kind, as masks over N probing inputs.

    Attributes
    ----------
    name : str
        E.g. ``"polytope HDBSCAN/hamming"``, ``"neuron >0"``.
    kind : str
        ``"region"`` (clusters, polytopes), ``"direction"`` (neurons, NMF, PCA, random
        directions) or ``"control"`` (random subsets).
    masks : bool (U, N)
    unit_names : list of str
    noise_fraction : float
        Fraction of inputs the method left unassigned (HDBSCAN's noise; NaN when not applicable).
    info : dict
        Parameters and other facts (JSON-able).
    """

    name: str
    kind: str
    masks: NDArray[np.bool_]
    unit_names: list[str] = field(default_factory=list)
    noise_fraction: float = float("nan")
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, dtype=bool)
        if self.masks.ndim != 2:
            raise ValueError(f"masks must be (U, N), got shape {self.masks.shape}")
        if not self.unit_names:
            self.unit_names = [f"{self.name}#{u}" for u in range(len(self.masks))]
        if len(self.unit_names) != len(self.masks):
            raise ValueError(f"{len(self.unit_names)} names for {len(self.masks)} units")

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def sizes(self) -> NDArray[np.int64]:
        """Members of each unit."""
        return self.masks.sum(axis=1).astype(np.int64)

    @property
    def coverage(self) -> float:
        """Fraction of inputs that belong to at least one unit."""
        return float(self.masks.any(axis=0).mean()) if self.masks.size else 0.0

    @classmethod
    def from_labels(
        cls,
        name: str,
        kind: str,
        labels: ArrayLike,
        min_size: int = 1,
        info: dict[str, Any] | None = None,
    ) -> UnitFamily:
        """A family of clusters from a label vector (-1: noise)."""
        labels = np.asarray(labels)
        masks, kept = masks_from_labels(labels, min_size)
        noise = float((labels < 0).mean()) if labels.size else float("nan")
        return cls(name, kind, masks, [f"{name}#{k}" for k in kept], noise, dict(info or {}))

    def subset(self, units: Sequence[int] | NDArray[np.integer] | NDArray[np.bool_]) -> UnitFamily:
        """Some of the units (indices or a boolean mask)."""
        index = np.arange(len(self))[np.asarray(units)]
        return UnitFamily(
            self.name, self.kind, self.masks[index], [self.unit_names[i] for i in index], self.noise_fraction, self.info
        )

    def summary(self) -> dict[str, Any]:
        """Name, kind, unit count, sizes, coverage and noise fraction."""
        sizes = self.sizes
        return {
            "family": self.name,
            "kind": self.kind,
            "units": len(self),
            "median_size": float(np.median(sizes)) if len(sizes) else float("nan"),
            "coverage": self.coverage,
            "noise_fraction": self.noise_fraction,
        }
