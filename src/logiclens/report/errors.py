"""Exceptions of the report builder."""

from __future__ import annotations

from logiclens.runs.reading import RunError
from logiclens.vision.probes.base import ProbeUnavailableError

__all__ = ["ProbeUnavailableError", "ReportError"]


class ReportError(RunError):
    """A report cannot be built (not a run directory, an unsafe output folder, a bad option).

    A ``ValueError``, so that the command line reports it on one line with exit status 2.
    """
