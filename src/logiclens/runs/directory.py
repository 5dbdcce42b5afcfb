"""Run directories: a manifest of stages keyed by content fingerprints, written atomically.

A long job is a chain of stages (record, thresholds, masks, search). Each stage records
in ``manifest.json`` the fingerprint of everything it depends on; a rerun skips a stage
whose fingerprint matches and that is marked done, and resumes a stage that was cut short
where it says it stopped. Caches are never trusted because a file merely exists.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from logiclens._version import __version__
from logiclens.core.fingerprint import fingerprint
from logiclens.core.io import atomic_write_text

__all__ = ["RunDirectory", "environment", "fingerprint"]


def environment() -> dict[str, Any]:
    """Versions of Python and the libraries a result depends on."""
    import numpy
    import pandas
    import scipy

    info: dict[str, Any] = {
        "logiclens": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "cpu_count": os.cpu_count(),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.is_available()
    return info


class RunDirectory:
    """A folder holding one job's stages, files and ``manifest.json``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._manifest_path = self.path / "manifest.json"
        self.manifest: dict[str, dict[str, Any]] = {}
        if self._manifest_path.exists():
            try:
                self.manifest = json.loads(self._manifest_path.read_text())
            except json.JSONDecodeError as error:
                raise ValueError(f"{self._manifest_path} is corrupt ({error}); remove it to start over") from None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def stage(self, name: str, key: str) -> dict[str, Any] | None:
        """The stage's saved state if its fingerprint is ``key``, else None."""
        state = self.manifest.get(name)
        return state if state is not None and state.get("fingerprint") == key else None

    def is_done(self, name: str, key: str) -> bool:
        state = self.stage(name, key)
        return bool(state and state.get("done"))

    def update(self, name: str, key: str, **info: Any) -> None:
        """Record the state of a stage (atomically)."""
        state = self.stage(name, key) or {"fingerprint": key}
        state.update(info)
        self.manifest[name] = state
        atomic_write_text(self._manifest_path, json.dumps(self.manifest, indent=2, sort_keys=True))

    def write_json(self, name: str, data: Any) -> Path:
        target = self.path / name
        atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True, default=str))
        return target
