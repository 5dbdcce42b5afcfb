"""Open a probing dataset from a short specification string (the ``--probe`` option).

=========================  =========================================================
``stamps``                 photo cut-outs from Debian's tuxpaint-stamps-default, pasted
                           onto backgrounds (fetched into a cache if not installed)
``shapes``                 procedurally rendered shapes (built in, nothing to fetch)
``default``                ``stamps`` where it can be had, else ``shapes``
``broden:PATH``            a Broden dataset folder (index.csv, label.csv, images/)
``segmentation:PATH``      a segmentation folder (see docs/probes.md)
=========================  =========================================================
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from logiclens.probes.base import ProbeDataset

__all__ = ["PROBE_KINDS", "open_probe"]

PROBE_KINDS = ("default", "stamps", "shapes", "broden:PATH", "segmentation:PATH")


def _stamps(n_images: int, seed: int, image_size: int, fetch: bool) -> ProbeDataset:
    from logiclens.probes.stamps import StampsProbe

    if fetch:
        return StampsProbe.ensure(n_images=n_images, seed=seed, image_size=image_size, mask_size=image_size // 2)
    return StampsProbe(n_images=n_images, seed=seed, image_size=image_size, mask_size=image_size // 2)


def open_probe(
    spec: str = "default",
    n_images: int | None = None,
    seed: int = 0,
    image_size: int = 224,
    categories: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    fetch: bool = True,
) -> ProbeDataset:
    """Open the probe named by ``spec``.

    Parameters
    ----------
    spec : str
        One of :data:`PROBE_KINDS`.
    n_images : int, optional
        Number of images (generated probes default to 2,000; datasets to all of them).
    seed : int
        Seed of generated probes.
    image_size : int
        Input resolution of generated probes and datasets (annotations at half of it for
        generated probes, at their own resolution for datasets).
    categories, sources : sequence of str, optional
        Broden only: which label categories and image sources to use.
    fetch : bool
        Allow fetching the stamps package into the user's cache.
    """
    kind, _, path = spec.partition(":")
    generated = 2000 if n_images is None else n_images
    if kind == "shapes" and not path:
        from logiclens.probes.shapes import ShapesProbe

        return ShapesProbe(n_images=generated, seed=seed, image_size=image_size, mask_size=image_size // 2)
    if kind == "stamps" and not path:
        return _stamps(generated, seed, image_size, fetch)
    if kind == "default" and not path:
        try:
            return _stamps(generated, seed, image_size, fetch)
        except (FileNotFoundError, OSError) as error:
            print(f"logiclens: stamps probe unavailable ({error}); using the built-in shapes probe", file=sys.stderr)
            return open_probe("shapes", n_images, seed, image_size)
    if kind == "broden" and path:
        from logiclens.probes.broden import BrodenProbe

        size = (image_size, image_size) if image_size else None
        return BrodenProbe(path, categories=categories, sources=sources, n_images=n_images, image_size=size)
    if kind == "segmentation" and path:
        from logiclens.probes.segmentation import SegmentationFolderProbe

        return SegmentationFolderProbe(path, n_images=n_images, image_size=(image_size, image_size))
    raise ValueError(f"unknown probe {spec!r}; expected one of {', '.join(PROBE_KINDS)}")
