"""Memory of Ray's workers against the probe's size: bounded by a shard or a block, not by the probe.

Goal (issue 14): the memory of each worker is bounded by its shard (record) or its block of
units (masks, search), not by the number of probe images. The default dissection runs on Ray
(a local instance of 2 CPUs) on probes of increasing size with the same ``--shard-images``;
a thread samples, every 0.2 s, the private resident memory (``RssAnon`` in ``/proc``: not the
page cache of the memory-mapped record files) of every Ray worker process (command line
``ray::...``) and keeps each stage's largest value. If a worker held the
probe, its peak would grow with the images; bounded by the shard, it stays flat in the record
stage (the masks and search workers hold a block of units over all images' counts, which grow
with the signatures, not with the images' pixels).

Linux only. Usage::

    python benchmarks/ray_memory.py [--images 250,1000,2000] [--shard-images 250] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from pathlib import Path

from scale_out import _stages  # the same stage loop, in this folder


def _worker_rss() -> int:
    """The largest private resident memory (``RssAnon``, bytes) among this machine's Ray worker processes.

    Anonymous memory only: the pages of memory-mapped record files a worker reads are file
    pages (page cache, shared and reclaimable), not memory the worker holds.
    """
    largest = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if not (proc / "cmdline").read_bytes().startswith(b"ray::"):
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    largest = max(largest, int(line.split()[1]) * 1024)
        except OSError:
            continue
    return largest


class _Sampler(threading.Thread):
    """Samples the workers' memory; ``watch(stage)`` keeps each stage's largest value (MB) in ``peaks``."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.stop = 0, threading.Event()
        self.peaks: dict[str, float] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _worker_rss())
            time.sleep(0.2)

    @contextlib.contextmanager
    def watch(self, stage: str):  # type: ignore[no-untyped-def]
        self.peak = 0
        yield
        self.peaks[stage] = max(self.peaks.get(stage, 0.0), max(self.peak, _worker_rss()) / 1e6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default="250,1000,2000")
    parser.add_argument("--shard-images", type=int, default=250)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ray_memory"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import ray

    from logiclens import CompositionalExplainer
    from logiclens.vision.dissect import DissectionSettings
    from logiclens.vision.models import load_model
    from logiclens.vision.probes.registry import open_probe

    model = load_model("efficientnet-lite0")
    explainer = CompositionalExplainer(holdout=0.2, n_null=20, random_state=0, verbose=0)
    report = {}
    for n_images in (int(n) for n in args.images.split(",")):
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # fresh workers for every size
        probe = open_probe("default", n_images=n_images, image_size=model.input_size[0])
        settings = DissectionSettings(
            layers=list(model.default_layers), explainer=explainer, backend="ray", shard_images=args.shard_images
        )
        sampler = _Sampler()
        sampler.start()
        try:
            seconds = _stages(model, probe, args.out / str(n_images), settings, sampler.watch)
        finally:
            sampler.stop.set()
            ray.shutdown()
        report[n_images] = {"peak_worker_rss_mb": sampler.peaks, "seconds": seconds}
        print(n_images, "images: largest worker RSS (MB)", {k: round(v) for k, v in sampler.peaks.items()}, flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
