"""The report folder: built aside, then swapped in, replacing only an earlier report."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from logiclens.report.errors import ReportError

__all__ = ["MARKER", "publish", "staging_folder"]

#: the file that marks a folder as a logiclens report (safe to replace)
MARKER = "report.json"


def _check_replaceable(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ReportError(f"{target}: exists and is not a report folder; choose another --out")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise ReportError(f"{target}: refusing to replace a folder that is not a logiclens report")


def staging_folder(target: Path) -> Path:
    """A fresh, empty folder beside ``target`` to build the report in.

    Raises
    ------
    ReportError
        If ``target`` exists and is not an earlier report (or an empty folder).
    """
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    staging = target.parent / f".{target.name}.building-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def _remove_stale(target: Path) -> None:
    """Remove the staging and old folders that killed builds of this report left behind."""
    for leftover in target.parent.glob(f".{target.name}.*-*"):
        kind, _, pid = leftover.name.rpartition("-")
        if not kind.endswith((".building", ".old")) or not pid.isdigit() or not leftover.is_dir():
            continue
        if int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another build, still running
        shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(staging: Path, target: Path) -> None:
    """Move a finished report into place, removing the earlier one."""
    _check_replaceable(target)
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
