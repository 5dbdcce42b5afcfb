"""The record stage in shards on a Ray cluster, merged into the same record files as one pass.

The probe's images are cut into shards of whole batches (``settings.shard_images``, rounded
up to a multiple of the batch size, so that every batch is the one the local pass runs).
Each shard is recorded by a Ray task (the model, the probe and the settings are put in the
object store once; a task asks for a GPU when the device is CUDA, and for as many CPUs as
torch uses threads here (at most a node's CPUs), and runs torch on that many threads: CPU
convolutions sum in an order that depends on the thread count, so this is what makes the
activations bit for bit those of the local pass, on workers of the same CPU type) into its
own folder
``record/shards/<i>/``: the same record files the local pass writes, for its images, with
the signature ids of a :class:`~logiclens.core.signatures.SignatureIndex` of its own and
that index's state; then ``done.json`` with the files' digests, written last. A worker holds
one shard's arrays in memory at a time, whatever the probe's size.

The driver merges the shards in image order: activations, predictions and labels are
copied, and each shard's index is absorbed into the run's
(:meth:`~logiclens.core.signatures.SignatureIndex.absorb`), which numbers the signatures
exactly as one pass over all the images does; the shard's ids are remapped. Nothing is
merged until every shard is done, so a failed job never leaves a half-merged run. A killed
job keeps its finished shards: a rerun checks their digests and records only the others.
The run directory must be on a file system every worker sees (a single machine, or a
shared or network file system on a cluster).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from logiclens.core.batching import batch_slices
from logiclens.core.fingerprint import file_digest
from logiclens.core.io import atomic_savez, atomic_write_text, read_npz
from logiclens.core.parallel import map_batches, ray_node_cpus
from logiclens.core.signatures import SignatureIndex
from logiclens.runs import layout
from logiclens.runs.directory import RunDirectory
from logiclens.vision.dissect.recording import Store, predicting, record_pass
from logiclens.vision.dissect.settings import DissectionSettings
from logiclens.vision.probes.base import ProbeDataset

__all__ = ["SHARDS", "plan_shards", "record_sharded"]

#: the folder of the shards, in the run directory
SHARDS = "record/shards"
_PLAN = "plan.json"
_DONE = "done.json"
_INDEX = "index_state.npz"


def plan_shards(n_images: int, shard_images: int, batch_size: int) -> list[tuple[int, int, int]]:
    """``(shard, first image, stop)`` of every shard: whole batches, in image order."""
    size = -(-shard_images // batch_size) * batch_size
    return [(i, part.start, part.stop) for i, part in enumerate(batch_slices(n_images, size))]


def _folder(root: Path, shard: int) -> Path:
    return root / SHARDS / f"{shard:05d}"


class _RecordShard:
    """Picklable job: record one shard into its folder (see the module's docstring)."""

    def __init__(
        self, root: Path, key: str, model: Any, probe: ProbeDataset, settings: DissectionSettings, threads: int
    ) -> None:
        self.root, self.key, self.model, self.probe, self.settings = root, key, model, probe, settings
        self.threads = threads

    def __call__(self, shard: tuple[int, int, int]) -> int:
        import torch

        torch.set_num_threads(self.threads)  # the driver's: CPU kernels sum in an order that depends on it
        index_of, start, stop = shard
        folder = _folder(self.root, index_of)
        shutil.rmtree(folder, ignore_errors=True)
        store = Store(folder, start, stop - start, self.probe.mask_size, predicting(self.model, self.settings))
        index = SignatureIndex(len(self.probe.concept_names))
        record_pass(self.model, self.probe, self.settings, store, index, start, stop)
        store.flush()
        atomic_savez(folder / _INDEX, index.state_dict())
        digests = {name: file_digest(folder / name) for name in [*store.files(self.settings.layers), _INDEX]}
        done = {"key": self.key, "start": start, "stop": stop, "files": digests}
        atomic_write_text(folder / _DONE, json.dumps(done, indent=1))
        return index_of


def _finished(root: Path, key: str, shard: tuple[int, int, int]) -> bool:
    """Whether a shard was recorded for this key and its files are intact."""
    index_of, start, stop = shard
    folder = _folder(root, index_of)
    try:
        done = json.loads((folder / _DONE).read_text(encoding="utf-8"))
        if (done["key"], done["start"], done["stop"]) != (key, start, stop):
            return False
        return all(file_digest(folder / name) == digest for name, digest in done["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def record_sharded(
    run: RunDirectory, key: str, model: Any, probe: ProbeDataset, settings: DissectionSettings, verbose: int
) -> tuple[Store, SignatureIndex]:
    """Record the probe in shards on Ray (reusing finished ones), then merge them into the run's files."""
    shards = plan_shards(len(probe), settings.shard_images, settings.batch_size)
    plan = {"key": key, "shards": shards}
    plan_path = run / SHARDS / _PLAN
    try:
        same_plan = json.loads(plan_path.read_text(encoding="utf-8")) == json.loads(json.dumps(plan))
    except (OSError, ValueError):
        same_plan = False
    if not same_plan:  # shards of other inputs or sizes: start afresh
        shutil.rmtree(run / SHARDS, ignore_errors=True)
        plan_path.parent.mkdir(parents=True)
        atomic_write_text(plan_path, json.dumps(plan))
    missing = [shard for shard in shards if not _finished(run.path, key, shard)]
    if len(missing) < len(shards):
        run.log(f"{run.path}: reusing {len(shards) - len(missing)} of {len(shards)} recorded shards")
    import torch

    threads = min(torch.get_num_threads(), ray_node_cpus(settings.ray_address))
    job = _RecordShard(run.path, key, model, probe, settings, threads)
    gpus = 1.0 if settings.device.startswith("cuda") else 0.0
    progress = tqdm(total=len(shards), initial=len(shards) - len(missing), desc="recording shards", unit="shard",
                    disable=None if verbose else True)  # fmt: skip
    with progress:
        tasks = map_batches(
            job, missing, "ray", address=settings.ray_address, gpus_per_task=gpus, cpus_per_task=threads
        )
        for _ in tasks:
            progress.update(1)
    return _merge(run, shards, probe, settings, predicting(model, settings))


def _blocks(path: Path, rows_per_read: int = 256) -> Iterator[tuple[int, np.ndarray]]:
    """``(offset, rows)`` of a shard's file, a block of rows at a time."""
    part = np.load(path, mmap_mode="r")
    for rows in batch_slices(len(part), rows_per_read):
        yield rows.start, np.asarray(part[rows])


def _merge(
    run: RunDirectory, shards: list[tuple[int, int, int]], probe: ProbeDataset, settings: DissectionSettings,
    predict: bool,
) -> tuple[Store, SignatureIndex]:  # fmt: skip
    """The run's record files and concept index from the finished shards, in image order."""
    store = Store(run.path, 0, len(probe), probe.mask_size, predict)
    index = SignatureIndex(len(probe.concept_names))
    for index_of, start, _ in shards:
        folder = _folder(run.path, index_of)
        remap = index.absorb(SignatureIndex.from_state_dict(read_npz(folder / _INDEX)))
        for layer in settings.layers:
            for offset, rows in _blocks(folder / layout.record_file(layer)):
                store.put_layer(layer, start + offset, rows)
        for offset, rows in _blocks(folder / layout.SIGNATURES):
            store.put_rows(layout.SIGNATURES, start + offset, remap[rows])
        for name in (layout.PREDICTIONS, layout.TOP_CLASSES, layout.TOP_LOGITS, layout.TARGETS):
            if (folder / name).exists():
                for offset, rows in _blocks(folder / name):
                    store.put_rows(name, start + offset, rows)
    store.flush()
    return store, index
