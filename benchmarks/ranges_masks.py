"""The ranged mask stage against the single-range one, side by side, on the default dissection.

EfficientNet-Lite0's ``conv_head`` (or ``--layer``) on the default probe (20 % held out, 20-permutation null:
22 variants) is recorded once (reused from ``--out`` when it is already there); thresholds
are computed with ``ranges=1`` and ``ranges=K``; then the mask stage
(:func:`~logiclens.vision.dissect.masks.count_unit_masks`) runs with each, alternating,
``--repeats`` times in one process (ranged: the compiled path where numba is installed;
``--dense-gib`` sets how much memory its dense counts may take, hence how many passes over
the units it makes). Also reported: the process's peak resident memory (with
``--numpy-repeats 0``, the compiled path's). The NumPy ranged path runs ``--numpy-repeats``
times too, and its counts are compared with the compiled path's. Also reported: how the
NumPy ranged counting split the work (blocks, tiles and quads decided as a whole, pixels
evaluated one by one), on ``--sample`` images.

Usage::

    python benchmarks/ranges_masks.py --images 200 --ranges 5 [--out /tmp/bench_ranges_masks]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--ranges", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layer", default="conv_head", help="layer of EfficientNet-Lite0 (one --out per layer)")
    parser.add_argument("--out", default="/tmp/bench_ranges_masks")
    parser.add_argument("--numpy-repeats", type=int, default=1, help="runs of the NumPy ranged path")
    parser.add_argument("--sample", type=int, default=20, help="images on which the work split is counted")
    parser.add_argument(
        "--dense-gib", type=float, help="memory of the compiled path's dense counts (default: the package's)"
    )
    args = parser.parse_args(argv)

    from logiclens.core.concepts import ConceptSet
    from logiclens.core.io import read_npz
    from logiclens.explain.compositional import CompositionalExplainer
    from logiclens.runs import layout
    from logiclens.runs.directory import RunDirectory
    from logiclens.vision.activations import counting
    from logiclens.vision.activations.compiled_ranges import available
    from logiclens.vision.activations.regions import RegionGrid
    from logiclens.vision.activations.upsample import BilinearUpsampler
    from logiclens.vision.dissect.masks import count_unit_masks
    from logiclens.vision.dissect.record import record_stage
    from logiclens.vision.dissect.settings import DissectionSettings
    from logiclens.vision.dissect.split import split_stage
    from logiclens.vision.dissect.thresholds import thresholds_stage
    from logiclens.vision.models import load_model
    from logiclens.vision.probes.registry import open_probe

    model = load_model("efficientnet-lite0")
    probe = open_probe("default", n_images=args.images, seed=0, image_size=model.input_size[0])
    out, layer = Path(args.out), args.layer
    explainer = CompositionalExplainer(holdout=0.2, n_null=20, verbose=0)
    report: dict = {"images": len(probe), "layer": layer, "load_start": os.getloadavg()}
    if args.dense_gib is not None:
        counting.DENSE_COUNTS_BYTES = int(args.dense_gib * 2**30)
    base = RunDirectory(out / "k1")
    record_key = record_stage(base, model, probe, DissectionSettings(layers=[layer], explainer=explainer), 0)
    if not (out / f"k{args.ranges}").exists():
        shutil.copytree(out / "k1", out / f"k{args.ranges}")
    inputs = {}
    for k in (1, args.ranges):
        settings = DissectionSettings(layers=[layer], explainer=explainer, ranges=k)
        run = RunDirectory(out / f"k{k}")
        split = split_stage(run, record_key, probe, settings)
        _, thresholds, cuts = thresholds_stage(run, layer, record_key, probe.mask_size, settings, 0)
        stored = read_npz(run / layout.thresholds_file(layer))
        ranges = (stored["range_low"], stored["range_high"]) if "range_low" in stored else None
        inputs[k] = (thresholds, cuts, ranges)
    concepts = ConceptSet.load(base / layout.CONCEPTS)
    activations = np.load(base / layout.record_file(layer), mmap_mode="r")
    signatures = np.load(base / layout.SIGNATURES, mmap_mode="r")
    runs = [("ranges_1", 1, None), (f"ranges_{args.ranges}", args.ranges, None)]
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    plan = runs * args.repeats + [(f"ranges_{args.ranges}_numpy", args.ranges, False)] * args.numpy_repeats
    results = {}
    for name, k, compiled in plan:
        thresholds, cuts, ranges = inputs[k]
        start, start_cpu = time.perf_counter(), time.process_time()
        results[name] = count_unit_masks(
            activations, signatures, thresholds, concepts.n_signatures, split.variants, cuts, ranges=ranges,
            compiled=compiled,
        )  # fmt: skip
        times.setdefault(name, []).append(time.perf_counter() - start)
        cpu.setdefault(name, []).append(time.process_time() - start_cpu)
    report["compiled"] = available()
    report["dense_counts_gib"] = counting.DENSE_COUNTS_BYTES / 2**30
    per_pass = counting.ranged_units_per_pass(args.ranges, len(split.variants), concepts.n_signatures)
    report["passes"] = -(-activations.shape[1] // per_pass)
    report["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # the whole process so far
    report["variants"] = len(split.variants)
    report["masks_s"] = times
    report["masks_cpu_s"] = cpu
    ranged = f"ranges_{args.ranges}"
    report["ratio_best"] = min(times[ranged]) / min(times["ranges_1"])
    report["ratio_best_cpu"] = min(cpu[ranged]) / min(cpu["ranges_1"])
    if args.numpy_repeats:
        numpy_masks = results[f"{ranged}_numpy"]
        report["numpy_counts_equal"] = all(
            (a.counts != b.counts).nnz == 0 for a, b in zip(results[ranged], numpy_masks, strict=True)
        )
    # how the ranged counting split the work, on the first images
    _, _, (low, high) = inputs[args.ranges]
    grid = RegionGrid(BilinearUpsampler(activations.shape[2:], signatures.shape[1:]))
    sample = min(args.sample, len(activations))
    for image in range(sample):
        grid.assign(np.asarray(activations[image], np.float32), low.astype(np.float32), high.astype(np.float32))
    pixels = sample * activations.shape[1] * signatures.shape[1] * signatures.shape[2]
    report["work_sample_images"] = sample
    report["work"] = dict(grid.work)
    report["pixels_evaluated_one_by_one_fraction"] = grid.work["pixels"] / pixels
    report["load_end"] = os.getloadavg()
    json.dump(report, sys.stdout, indent=2, default=float)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
