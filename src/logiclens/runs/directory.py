"""Run directories: a manifest of stages keyed by content fingerprints, written atomically.

A long job is a chain of stages (record, thresholds, masks, search). Each stage records
in ``manifest.json`` the fingerprint of everything it depends on; a rerun skips a stage
whose fingerprint matches, that is marked done and whose output files still have the
content digests it recorded, and resumes a stage that was cut short where it says it
stopped. Caches are never trusted because a file merely exists.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from logiclens._version import __version__
from logiclens.core.fingerprint import file_digest
from logiclens.core.io import atomic_write_text

__all__ = ["RunDirectory", "environment"]


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
    """A folder holding one job's stages, files and ``manifest.json``.

    A finished stage records a content digest of every file it wrote (:meth:`finish`);
    :meth:`is_done` trusts a stage only while those files are all there, unchanged, and
    says on one line why it recomputes one that is not. A damaged ``manifest.json`` is
    set aside (a notice) and every stage is recomputed.
    """

    def __init__(self, path: str | os.PathLike[str], log: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self._manifest_path = self.path / "manifest.json"
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path}: exists and is not a directory; choose another output folder")
        if self.path.is_dir() and any(self.path.iterdir()) and not self._manifest_path.exists():
            raise ValueError(
                f"{self.path}: a folder that is not a logiclens run (no manifest.json) and not empty; "
                "choose another output folder"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.log = log or _notice
        self._verified: dict[str, bool] = {}
        self.manifest: dict[str, dict[str, Any]] = {}
        if self._manifest_path.exists():
            try:
                manifest = json.loads(self._manifest_path.read_text(encoding="utf-8"))
                if not isinstance(manifest, dict) or not all(isinstance(v, dict) for v in manifest.values()):
                    raise ValueError("not a mapping of stages")
                self.manifest = manifest
            except (ValueError, UnicodeDecodeError) as error:
                self.log(f"{self._manifest_path} is damaged ({error}); recomputing every stage")
        else:
            atomic_write_text(self._manifest_path, "{}")  # marks the folder as a run

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def stage(self, name: str, key: str) -> dict[str, Any] | None:
        """The stage's saved state if its fingerprint is ``key``, else None."""
        state = self.manifest.get(name)
        return state if state is not None and state.get("fingerprint") == key else None

    def is_done(self, name: str, key: str) -> bool:
        """Whether the stage finished with fingerprint ``key`` and its outputs are intact."""
        state = self.stage(name, key)
        return bool(state and state.get("done")) and self._intact(name, state)

    def _intact(self, name: str, state: dict[str, Any]) -> bool:
        if name not in self._verified:
            problems = []
            for relative, expected in state.get("outputs", {}).items():
                target = self.path / relative
                if not target.is_file():
                    problems.append(f"{relative} is missing")
                elif target.stat().st_size != expected.get("size"):
                    problems.append(f"{relative} has {target.stat().st_size} bytes, not {expected.get('size')}")
                elif file_digest(target) != expected.get("digest"):
                    problems.append(f"{relative} changed since it was written")
            if problems:
                self.log(f"{self.path}: {'; '.join(problems)}: recomputing stage {name}")
            self._verified[name] = not problems
        return self._verified[name]

    def output_digest(self, name: str, relative: str) -> str:
        """The recorded digest of one output of a finished stage (part of the next stages' keys)."""
        return str(self.manifest[name]["outputs"][relative]["digest"])

    def update(self, name: str, key: str, **info: Any) -> None:
        """Record the state of a stage (atomically)."""
        state = self.stage(name, key) or {"fingerprint": key}
        state.update(info)
        self.manifest[name] = state
        self._verified.pop(name, None)
        atomic_write_text(self._manifest_path, json.dumps(self.manifest, indent=2, sort_keys=True))

    def finish(self, name: str, key: str, outputs: Sequence[str], **info: Any) -> None:
        """Mark a stage done, with the size and content digest of each of its ``outputs`` (relative paths)."""
        digests = {
            relative: {"size": (self.path / relative).stat().st_size, "digest": file_digest(self.path / relative)}
            for relative in outputs
        }
        self.update(name, key, done=True, outputs=digests, **info)
        self._verified[name] = True

    def write_json(self, name: str, data: Any) -> Path:
        target = self.path / name
        atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True, default=str))
        return target


def _notice(message: str) -> None:
    print(f"logiclens: {message}", file=sys.stderr)
