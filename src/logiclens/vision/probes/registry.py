"""The registry of probes: open one from a short specification (the ``--probe`` option), or reopen a run's.

:func:`open_probe` takes a specification string:

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

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from logiclens.vision.probes.base import ProbeDataset, ProbeUnavailableError

__all__ = ["PROBE_KINDS", "REOPENERS", "check_probe", "open_probe", "probe_from_config"]

PROBE_KINDS = ("default", "stamps", "shapes", "broden:PATH", "segmentation:PATH")


def _stamps(n_images: int, seed: int, image_size: int, fetch: bool) -> ProbeDataset:
    from logiclens.vision.probes.stamps import StampsProbe

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
    class_map: str | None = None,
    verify: str = "stat",
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
    class_map : str, optional
        Broden only: a ``scene,class`` CSV giving images ground-truth classes of the model.
    verify : {"stat", "full"}
        Folder probes (Broden, segmentation folders): fingerprint their files by size and
        modification time (cheap, the default) or by content, so that a run notices edits.
    """
    if class_map is not None and not spec.startswith("broden:"):
        raise ValueError("--class-map applies to broden:PATH probes (segmentation folders use classes.csv)")
    kind, _, path = spec.partition(":")
    generated = 2000 if n_images is None else n_images
    if kind == "shapes" and not path:
        from logiclens.vision.probes.shapes import ShapesProbe

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
        from logiclens.vision.probes.broden import BrodenProbe

        size = (image_size, image_size) if image_size else None
        return BrodenProbe(
            path, categories=categories, sources=sources, n_images=n_images, image_size=size, class_map=class_map,
            verify=verify,
        )  # fmt: skip
    if kind == "segmentation" and path:
        from logiclens.vision.probes.segmentation import SegmentationFolderProbe

        return SegmentationFolderProbe(path, n_images=n_images, image_size=(image_size, image_size), verify=verify)
    raise ValueError(f"unknown probe {spec!r}; expected one of {', '.join(PROBE_KINDS)}")


# ------------------------------------------------------------------ reopening a run's probe
def _reopen_shapes(config: Mapping[str, Any]) -> ProbeDataset:
    from logiclens.vision.probes.shapes import ShapesProbe

    return ShapesProbe(
        n_images=config["n_images"], seed=config["seed"], image_size=tuple(config["image_size"]),
        mask_size=tuple(config["mask_size"]),
    )  # fmt: skip


def _reopen_stamps(config: Mapping[str, Any]) -> ProbeDataset:
    from logiclens.vision.probes.stamps import StampsProbe

    # never fetched here: the run's own stamps folder, or nothing
    return StampsProbe(
        n_images=config["n_images"], seed=config["seed"], root=config["root"],
        image_size=tuple(config["image_size"]), mask_size=tuple(config["mask_size"]),
    )  # fmt: skip


def _reopen_broden(config: Mapping[str, Any]) -> ProbeDataset:
    from logiclens.vision.probes.broden import BrodenProbe

    return BrodenProbe(
        config["root"], index_file=config.get("index_file", "index.csv"), categories=config.get("categories"),
        sources=config.get("sources"), n_images=config.get("n_images"), image_size=tuple(config["image_size"]),
        class_map=config.get("class_map"), verify=config.get("verify", "stat"),
    )  # fmt: skip


def _reopen_segmentation(config: Mapping[str, Any]) -> ProbeDataset:
    from logiclens.vision.probes.segmentation import SegmentationFolderProbe

    return SegmentationFolderProbe(
        config["root"], n_images=config.get("n_images"), image_size=tuple(config["image_size"]),
        mask_size=tuple(config["mask_size"]), verify=config.get("verify", "stat"),
    )  # fmt: skip


#: probe kinds (``config()["kind"]``) that can be reopened, and how
REOPENERS: dict[str, Callable[[Mapping[str, Any]], ProbeDataset]] = {
    "shapes": _reopen_shapes,
    "stamps": _reopen_stamps,
    "broden": _reopen_broden,
    "segmentation_folder": _reopen_segmentation,
}


def _normalised(config: Mapping[str, Any]) -> Any:
    """A config as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def probe_from_config(config: Mapping[str, Any], probe: ProbeDataset | None = None) -> ProbeDataset:
    """The probe a run was recorded on.

    Parameters
    ----------
    config : mapping
        The run's ``config.json``; its ``probe`` entry is the probe's ``config()``.
    probe : ProbeDataset, optional
        The live probe (``dissect`` passes it): returned as it is when given.

    Returns
    -------
    ProbeDataset
        Reopened from the stored configuration (``shapes``, ``stamps``, ``broden`` and
        ``segmentation_folder`` probes; the stamps are never fetched), and checked to give the
        same configuration back, so that its images are the ones that were recorded.

    Raises
    ------
    ProbeUnavailableError
        If the probe kind cannot be reopened, its files are gone, or they changed since.
    """
    if probe is not None:
        return probe
    stored = config.get("probe")
    if not isinstance(stored, Mapping) or "kind" not in stored:
        raise ProbeUnavailableError("config.json does not describe the probe")
    kind = str(stored["kind"])
    opener = REOPENERS.get(kind)
    if opener is None:
        raise ProbeUnavailableError(f"a probe of kind {kind!r} cannot be reopened from config.json")
    try:
        reopened = opener(stored)
    except (KeyError, TypeError) as error:
        raise ProbeUnavailableError(f"config.json lacks the {kind} probe's setting {error}") from None
    except (OSError, ValueError, ImportError) as error:
        raise ProbeUnavailableError(f"the {kind} probe cannot be reopened ({error})") from None
    if _normalised(reopened.config()) != _normalised(stored):
        raise ProbeUnavailableError(f"the {kind} probe's files changed since the run (its configuration differs)")
    return reopened


def check_probe(probe: ProbeDataset, n_images: int, mask_size: tuple[int, int]) -> None:
    """Check that a probe matches the run's recording.

    Parameters
    ----------
    probe : ProbeDataset
    n_images : int
        Images recorded (``record/signatures.npy`` rows).
    mask_size : (int, int)
        Annotation size of the recording.

    Raises
    ------
    ProbeUnavailableError
        If the number of images or the annotation size differ.
    """
    if len(probe) != n_images or tuple(probe.mask_size) != tuple(mask_size):
        raise ProbeUnavailableError(
            f"the probe has {len(probe)} images of annotation size {tuple(probe.mask_size)}, "
            f"the run recorded {n_images} of size {tuple(mask_size)}"
        )
