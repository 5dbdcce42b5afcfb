"""Exceptions of the report builder."""

from __future__ import annotations

__all__ = ["ProbeUnavailableError", "ReportError"]


class ReportError(ValueError):
    """A report cannot be built (not a run directory, an unsafe output folder, a bad option).

    A ``ValueError``, so that the command line reports it on one line with exit status 2.
    """


class ProbeUnavailableError(ReportError):
    """The run's probe cannot be reopened; the report is built without images."""
