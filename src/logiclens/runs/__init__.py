"""Run directories: the one owner of their layout, manifest, readers and summary.

:class:`RunDirectory` writes stages keyed by fingerprints (:mod:`.directory`);
:mod:`.layout` names every file; :func:`load_run` reads a finished run; :func:`summarize`
is the per-layer summary; :mod:`.texts` reads and writes the probing texts of text runs.
"""

from logiclens.runs.directory import RunDirectory, environment
from logiclens.runs.layout import layer_file_name
from logiclens.runs.reading import LayerData, RunData, RunError, load_run, read_results
from logiclens.runs.summary import DETECTOR_IOU, summarize

__all__ = [
    "DETECTOR_IOU",
    "LayerData",
    "RunData",
    "RunDirectory",
    "RunError",
    "environment",
    "layer_file_name",
    "load_run",
    "read_results",
    "summarize",
]
