"""Accuracy when active for text runs: the one implementation lives in :mod:`logiclens.explain.accuracy`.

Kept so that ``from logiclens.text.analysis import ...`` goes on working; images and text
share :func:`accuracy_when_active`, :func:`iou_accuracy_correlation` and
:func:`correlation_by_length` (and :mod:`logiclens.analysis` builds its tables on them).
"""

from __future__ import annotations

from logiclens.explain.accuracy import accuracy_when_active, correlation_by_length, iou_accuracy_correlation

__all__ = ["accuracy_when_active", "correlation_by_length", "iou_accuracy_correlation"]
