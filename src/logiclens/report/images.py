"""Write the probe images a report shows (in worker processes where asked)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from logiclens.report.collect import image_path
from logiclens.report.draw import save_probe_image
from logiclens.report.parallel import run_tasks
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["write_probe_images"]

_IMAGES_PER_TASK = 32


def _write(probe: ProbeDataset, folder: Path, indices: list[int]) -> int:
    for index in indices:
        image, _ = probe.load(index)
        save_probe_image(image, folder / image_path(index))
    return len(indices)


def write_probe_images(
    probe: ProbeDataset, indices: Iterable[int], folder: Path, n_jobs: int = 1, verbose: int = 0
) -> int:
    """Load probe images and save them as JPEG under ``folder`` (see :func:`image_path`).

    Parameters
    ----------
    probe : ProbeDataset
    indices : iterable of int
    folder : Path
        The report folder.
    n_jobs : int
        Worker processes (-1: all cores).
    verbose : int

    Returns
    -------
    int
        Images written.
    """
    wanted = sorted({int(i) for i in indices})
    (folder / "images").mkdir(parents=True, exist_ok=True)
    tasks = [(wanted[start : start + _IMAGES_PER_TASK],) for start in range(0, len(wanted), _IMAGES_PER_TASK)]
    weights = [len(task[0]) for task in tasks]
    done = run_tasks(_write, tasks, n_jobs, (probe, folder), "images", "img", weights, verbose)
    return sum(done)
