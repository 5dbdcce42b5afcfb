"""Local against Ray on one machine: the default dissection, stage by stage, side by side in one run.

Goal (issue 14): a Ray run of the default dissection (EfficientNet-Lite0 on the default probe,
``blocks.5`` and ``conv_head``, 20 % held out, a 20-permutation null) takes at most 1.3x the
local run, both with 2 workers (the local run's ``n_jobs=2``; a Ray instance of 2 CPUs). Each
backend records into a fresh run directory; the stages run as ``logiclens dissect`` runs them,
each timed; the two ``results.csv`` are compared byte for byte. Then, for the projections in
``docs/scaling.md``:

* the record throughput of one worker: images per second of one record shard in this process;
* the search cost per unit: CPU seconds of the beam (length 3, beam 10) per ``conv_head`` unit
  on the search part, in this process;
* the masks cost per (image, unit) map of ``conv_head``, from the local run's masks stage.

Usage::

    python benchmarks/scale_out.py [--images 2000] [--out /tmp/scale_out] [--order local,ray] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import time
from pathlib import Path


def _load() -> float:
    return os.getloadavg()[0]


def _stages(model, probe, out: Path, settings, watch=None) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The stages of ``logiclens.vision.dissect.dissect``, timed (wall seconds).

    ``watch(stage)``, if given, is a context manager entered around each stage ("record",
    "masks", "search"; ``benchmarks/ray_memory.py`` samples the workers' memory in it).
    """
    from logiclens.core.concepts import ConceptSet
    from logiclens.runs import layout
    from logiclens.runs.directory import RunDirectory
    from logiclens.vision.dissect.masks import masks_stage
    from logiclens.vision.dissect.record import record_stage
    from logiclens.vision.dissect.search import search_stage
    from logiclens.vision.dissect.split import split_stage
    from logiclens.vision.dissect.thresholds import thresholds_stage

    watch = watch or (lambda stage: contextlib.nullcontext())
    shutil.rmtree(out, ignore_errors=True)
    run = RunDirectory(out)
    times: dict[str, float] = {}
    start = time.perf_counter()
    with watch("record"):
        record_key = record_stage(run, model, probe, settings, 0)
    times["record"] = time.perf_counter() - start
    concepts = ConceptSet.load(run / layout.CONCEPTS)
    split = split_stage(run, record_key, probe, settings)
    tables = []
    for layer in settings.layers:
        start = time.perf_counter()
        thresholds_key, thresholds, cuts = thresholds_stage(run, layer, record_key, probe.mask_size, settings, 0)
        times[f"thresholds {layer}"] = time.perf_counter() - start
        start = time.perf_counter()
        with watch("masks"):
            masks_key, masks = masks_stage(run, layer, thresholds_key, thresholds, cuts, concepts, split, settings, 0)
        times[f"masks {layer}"] = time.perf_counter() - start
        start = time.perf_counter()
        with watch("search"):
            tables.append(search_stage(run, layer, masks_key, masks, concepts, thresholds, split, settings, 0))
        times[f"search {layer}"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    (out / "results.csv").write_text("".join(t.to_csv(index=False) for t in tables), encoding="utf-8")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="probe images (default: the default probe's 2000)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/scale_out"))
    parser.add_argument("--order", default="local,ray,ray,local",
                        help="backends, in the order they run (default ABBA: a drift in load cancels)")  # fmt: skip
    parser.add_argument("--shard-images", type=int, default=512)
    parser.add_argument("--search-units", type=int, default=128, help="conv_head units timed for the per-unit cost")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import numpy as np
    import ray

    from logiclens import CompositionalExplainer
    from logiclens.core.concepts import ConceptSet
    from logiclens.core.masks import UnitMasks
    from logiclens.core.signatures import SignatureIndex
    from logiclens.runs import layout
    from logiclens.runs.directory import RunDirectory
    from logiclens.vision.dissect import DissectionSettings
    from logiclens.vision.dissect.masks import load_variants
    from logiclens.vision.dissect.record import record_stage
    from logiclens.vision.dissect.recording import Store, predicting, record_pass
    from logiclens.vision.dissect.search import variants_of
    from logiclens.vision.dissect.split import split_stage
    from logiclens.vision.models import load_model
    from logiclens.vision.probes.registry import open_probe

    model = load_model("efficientnet-lite0")
    probe = open_probe("default", n_images=args.images, image_size=model.input_size[0])
    explainer = CompositionalExplainer(holdout=0.2, n_null=20, random_state=0, n_jobs=2, verbose=0)
    report: dict = {"images": len(probe), "probe": probe.config().get("kind"), "cpus": os.cpu_count(), "runs": {}}

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    report["ray_init_seconds"] = time.perf_counter() - start
    backends = args.order.split(",")
    for backend in backends:
        settings = DissectionSettings(
            layers=list(model.default_layers), explainer=explainer, backend=backend, shard_images=args.shard_images
        )
        load = _load()
        times = _stages(model, probe, args.out / backend, settings)
        runs = report["runs"].setdefault(backend, [])
        runs.append({"seconds": times, "load_before": load, "load_after": _load()})
        print(backend, {k: round(v, 1) for k, v in times.items()}, f"load {load:.1f} -> {_load():.1f}", flush=True)
    if {"local", "ray"} <= set(backends):
        local, on_ray = (sum(r["seconds"]["total"] for r in report["runs"][b]) for b in ("local", "ray"))
        report["ray_over_local"] = on_ray / local
        same = (args.out / "local/results.csv").read_bytes() == (args.out / "ray/results.csv").read_bytes()
        report["results_identical"] = same
        print(f"ray / local (summed over the runs) = {on_ray / local:.2f}; results.csv identical: {same}", flush=True)
    ray.shutdown()

    # one worker's record throughput: a shard of images in this process
    settings = DissectionSettings(layers=list(model.default_layers), explainer=explainer)
    n_shard = min(args.shard_images, len(probe))
    folder = args.out / "one_shard"
    shutil.rmtree(folder, ignore_errors=True)
    store = Store(folder, 0, n_shard, probe.mask_size, predicting(model, settings))
    start, cpu = time.perf_counter(), time.process_time()
    record_pass(model, probe, settings, store, SignatureIndex(len(probe.concept_names)), 0, n_shard)
    store.flush()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    report["record_images_per_second"] = n_shard / wall
    report["record_cpu_seconds_per_image"] = cpu / n_shard

    # the beam's cost per unit on conv_head's search part, one process
    run = RunDirectory(args.out / backends[0])
    layer = model.default_layers[-1]
    concepts = ConceptSet.load(run / layout.CONCEPTS)
    split = split_stage(run, record_stage(run, model, probe, settings, 0), probe, settings)  # both reused
    masks = load_variants(run / layout.units_file(layer))
    signatures = np.load(run / layout.SIGNATURES, mmap_mode="r")
    n_images = signatures.shape[0]
    variants = variants_of(concepts, masks, split, signatures)
    units = min(args.search_units, len(variants.search))
    search = UnitMasks(variants.search.counts[:units], variants.search.names[:units])
    beam = CompositionalExplainer(random_state=0, n_jobs=1, verbose=0)
    start = time.process_time()
    beam.fit(search, variants.search_concepts)
    report["search_cpu_seconds_per_unit"] = (time.process_time() - start) / units
    report["signatures"] = int(variants.search_concepts.n_signatures)
    masks_seconds = report["runs"][backends[0]][0]["seconds"][f"masks {layer}"]
    n_units = len(masks[0])
    report["masks_wall_seconds_per_map"] = masks_seconds / (n_images * n_units)
    report["masks_variants"] = len(masks)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
