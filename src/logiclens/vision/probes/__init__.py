"""Probing datasets: annotated inputs that turn into concept sets.

``open_probe(spec)`` opens one by name (``stamps``, ``shapes``, ``broden:PATH``,
``segmentation:PATH``); the classes can also be used directly.
"""

from logiclens.vision.probes.base import ProbeBatch, ProbeDataset, stack_labels
from logiclens.vision.probes.broden import BrodenProbe
from logiclens.vision.probes.registry import PROBE_KINDS, open_probe
from logiclens.vision.probes.segmentation import SegmentationFolderProbe, read_label_map, write_label_map
from logiclens.vision.probes.shapes import ShapesProbe
from logiclens.vision.probes.stamps import StampsFetchError, StampsProbe, fetch_stamps, stamps_available

__all__ = [
    "PROBE_KINDS",
    "BrodenProbe",
    "ProbeBatch",
    "ProbeDataset",
    "SegmentationFolderProbe",
    "ShapesProbe",
    "StampsFetchError",
    "StampsProbe",
    "fetch_stamps",
    "open_probe",
    "read_label_map",
    "stack_labels",
    "stamps_available",
    "write_label_map",
]
