"""Reopen a run's probe from ``config.json``, so that the report can draw its images."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from logiclens.probes.base import ProbeDataset
from logiclens.report.errors import ProbeUnavailableError

__all__ = ["check_probe", "probe_from_config"]


def _shapes(config: Mapping[str, Any]) -> ProbeDataset:
    from logiclens.probes.shapes import ShapesProbe

    return ShapesProbe(
        n_images=config["n_images"], seed=config["seed"], image_size=tuple(config["image_size"]),
        mask_size=tuple(config["mask_size"]),
    )  # fmt: skip


def _stamps(config: Mapping[str, Any]) -> ProbeDataset:
    from logiclens.probes.stamps import StampsProbe

    # never fetched here: the run's own stamps folder, or nothing
    return StampsProbe(
        n_images=config["n_images"], seed=config["seed"], root=config["root"],
        image_size=tuple(config["image_size"]), mask_size=tuple(config["mask_size"]),
    )  # fmt: skip


def _broden(config: Mapping[str, Any]) -> ProbeDataset:
    from logiclens.probes.broden import BrodenProbe

    return BrodenProbe(
        config["root"], index_file=config.get("index_file", "index.csv"), categories=config.get("categories"),
        sources=config.get("sources"), n_images=config.get("n_images"), image_size=tuple(config["image_size"]),
    )  # fmt: skip


def _segmentation(config: Mapping[str, Any]) -> ProbeDataset:
    from logiclens.probes.segmentation import SegmentationFolderProbe

    return SegmentationFolderProbe(
        config["root"], n_images=config.get("n_images"), image_size=tuple(config["image_size"]),
        mask_size=tuple(config["mask_size"]),
    )  # fmt: skip


#: probe kinds (``config()["kind"]``) that can be reopened, and how
OPENERS: dict[str, Callable[[Mapping[str, Any]], ProbeDataset]] = {
    "shapes": _shapes,
    "stamps": _stamps,
    "broden": _broden,
    "segmentation_folder": _segmentation,
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
    opener = OPENERS.get(kind)
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
