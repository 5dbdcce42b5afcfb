"""Static HTML reports of runs: ``logiclens report DIR`` writes ``DIR/report/``.

The report of a ``dissect`` or ``text explain`` run is a self-contained folder that opens
from the file system: an ``index.html`` (the run's settings, a summary per layer, plots, a
sortable and filterable table of every unit and a card per unit with its top-activating
probing images, or texts with the formula's words marked), the plots and images it shows,
its stylesheet and script, and ``report.json`` with everything the page shows. Nothing is
loaded from the network.

:func:`build_report` builds one from Python. Importing this package is cheap: the
builder and its dependencies (jinja2, matplotlib, Pillow) load on first use.
"""

from __future__ import annotations

from typing import Any

from logiclens.report.errors import ProbeUnavailableError, ReportError

__all__ = [
    "ProbeUnavailableError",
    "ReportError",
    "build_report",
    "probe_from_config",
]

_LAZY = {"build_report": "logiclens.report.build", "probe_from_config": "logiclens.vision.probes.registry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'logiclens.report' has no attribute {name!r}")
