"""The one error type of the analyses: a one-line message that says what to do."""

from __future__ import annotations

__all__ = ["AnalysisError"]


class AnalysisError(ValueError):
    """An analysis that cannot run on the run it was given (the message says what to do)."""
