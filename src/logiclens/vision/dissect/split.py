"""The split stage: which images are searched, which held out, and the permutations of the null."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from logiclens.core.batching import batch_slices
from logiclens.core.fingerprint import fingerprint
from logiclens.core.io import atomic_savez, read_npz
from logiclens.explain.statistics import null_permutations, split_examples
from logiclens.runs import layout
from logiclens.runs.directory import RunDirectory
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["Split", "split_stage", "split_weights"]


@dataclass
class Split:
    """Which images are searched and which held out, and the permutations of the null.

    ``variants[v][i]`` is the image whose annotations image i's activations are counted
    against in variant v, or -1 to leave image i out: variant 0 is the search part,
    variant 1 the held-out part (when there is one), then one variant per permutation.
    """

    search: np.ndarray
    heldout: np.ndarray
    variants: list[np.ndarray]
    key: str

    @property
    def n_null(self) -> int:
        return len(self.variants) - (2 if len(self.heldout) else 1)


def split_stage(run: RunDirectory, record_key: str, probe: ProbeDataset, settings: DissectionSettings) -> Split:
    n_images = len(probe)
    explainer = settings.explainer
    key = fingerprint(
        "split", record_key, explainer.holdout, explainer.n_null, explainer.random_state, settings.holdout_by
    )
    path = run / layout.SPLIT
    if run.is_done("split", key):
        data = read_npz(path)
        return Split(data["search"], data["heldout"], list(data["variants"]), key)
    if explainer.holdout:
        groups = [probe.group(i) for i in range(n_images)] if settings.holdout_by == "group" else None
        search, heldout = split_examples(n_images, explainer.holdout, explainer.random_state, groups)
    else:
        search, heldout = np.arange(n_images), np.empty(0, np.intp)

    def variant(images: np.ndarray, sources: np.ndarray) -> np.ndarray:
        out = np.full(n_images, -1, np.int64)
        out[images] = sources
        return out

    variants = [variant(search, search)]
    if len(heldout):
        variants.append(variant(heldout, heldout))
    orders = null_permutations(len(search), explainer.n_null, explainer.random_state)
    variants += [variant(search, search[order]) for order in orders]
    atomic_savez(path, {"search": search, "heldout": heldout, "variants": np.array(variants)})
    run.finish("split", key, [layout.SPLIT], n_search=len(search), n_heldout=len(heldout), by=settings.holdout_by)
    return Split(search, heldout, variants, key)


def split_weights(signatures: np.ndarray, images: np.ndarray, n_signatures: int) -> np.ndarray:
    """Positions per signature over some images."""
    weights = np.zeros(n_signatures, np.int64)
    for part in batch_slices(len(images), 256):
        weights += np.bincount(np.asarray(signatures[images[part]]).ravel(), minlength=n_signatures)
    return weights
